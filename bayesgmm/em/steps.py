"""The E-step and M-step of EM for Gaussian mixtures, maximum likelihood or MAP.

Pure functions on arrays. With ``gamma_nk`` the responsibilities:

* E-step: ``log gamma_nk = log alpha_k + log N(x_n | mu_k, Sigma_k) - logsumexp_j(...)``,
  normalised in log space (never exponentiated before normalising).
* M-step (maximum likelihood): ``N_k = sum_n gamma_nk``, ``alpha_k = N_k / N``,
  ``mu_k = sum_n gamma_nk x_n / N_k``,
  ``Sigma_k = sum_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T / N_k``.
* M-step (MAP, conjugate :class:`~bayesgmm.core.priors.MixturePrior`): the same sufficient
  statistics, then the joint posterior mode of each component's Normal-Inverse-Wishart
  (or Normal-Inverse-Gamma) posterior and the Dirichlet mode of the weights:

  - ``alpha_k = (N_k + a0 - 1) / (N + K (a0 - 1))``
  - ``mu_k = (N_k xbar_k + kappa0 m0) / (N_k + kappa0)``
  - full: ``Sigma_k = (Psi0 + S_k + B_k) / (nu0 + N_k + d + 2)`` with
    ``S_k = sum_n gamma_nk (x_n - xbar_k)(x_n - xbar_k)^T`` and
    ``B_k = kappa0 N_k / (kappa0 + N_k) (xbar_k - m0)(xbar_k - m0)^T``
  - tied: ``Sigma = (Psi0 + sum_k (S_k + B_k)) / (nu0 + N + d + 1 + K)``
  - diag: ``sigma2_kj = (psi0_j + S_kjj + B_kjj) / (nu0 + N_k + 3)``
  - spherical: ``sigma2_k = (psi0 + tr(S_k + B_k)) / (nu0 + 2 + d + d N_k)``

``reg_covar`` is added to every variance afterwards, as in scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesgmm.core.covariance import CovarianceStructure, get_structure
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior

_EPS = 10 * np.finfo(np.float64).eps


def estimate_weighted_log_prob(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """``log alpha_k + log N(x_n | mu_k, Sigma_k)``, shape (n_samples, n_components)."""
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights)
    return (
        params.structure.log_gaussian_prob(X, params.means, params.precisions_cholesky)
        + log_weights
    )


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """``log(sum_k exp(a_nk))`` per row, stably, for a finite-max array of shape (n, K)."""
    top = a.max(axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - top[:, None]).sum(axis=1)) + top


#: Floor of every log-density: a sample whose log-density is below it (or underflows to
#: ``-inf``, e.g. ``1e200`` standard deviations away) is reported at this finite value.
#: Small enough to be far below any real log-density, large enough that summing it over
#: ``1e8`` samples stays finite.
LOG_DENSITY_FLOOR = -1e300


def e_step(X: np.ndarray, params: MixtureParams) -> tuple[np.ndarray, np.ndarray]:
    """Log-responsibilities and per-sample log-likelihood.

    Everything is computed in log space. A sample so far from every component that all
    its log-densities underflow to ``-inf`` (or lose all precision) is given wholly to the
    nearest component in Mahalanobis distance, and its log-likelihood is
    :data:`LOG_DENSITY_FLOOR`; no row is ever NaN.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    params : MixtureParams

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
        ``log gamma_nk``; each row's ``exp`` sums to one.
    log_lik : ndarray of shape (n_samples,)
        ``log p(x_n | params) = logsumexp_k(log alpha_k + log N(x_n | mu_k, Sigma_k))``,
        floored at :data:`LOG_DENSITY_FLOOR`.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        weighted = estimate_weighted_log_prob(X, params)
    weighted = np.where(np.isnan(weighted), -np.inf, weighted)
    log_lik = logsumexp_rows(weighted)
    with np.errstate(under="ignore", invalid="ignore"):
        log_resp = weighted - log_lik[:, None]
    lost = ~np.isfinite(log_lik)
    if lost.any():
        log_resp[lost] = _nearest_one_hot(X[lost], params)
    return log_resp, np.maximum(np.where(lost, -np.inf, log_lik), LOG_DENSITY_FLOOR)


def _nearest_one_hot(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """Log-responsibilities putting each row on its nearest component (Mahalanobis).

    The distance is computed on each row's difference divided by its largest entry, so it
    stays finite however far the row is: ``log d^2 = 2 log c + log ||(x - mu) / c||_P^2``.
    """
    structure = params.structure
    log_distance = np.full((X.shape[0], params.n_components), np.inf)
    zeros = np.zeros_like(params.means)
    for k in np.flatnonzero(params.weights > 0):
        diff = X - params.means[k]
        c = np.abs(diff).max(axis=1)
        c = np.where(c > 0, c, 1.0)
        unit = structure._mahalanobis(diff / c[:, None], zeros, params.precisions_cholesky)
        with np.errstate(divide="ignore"):
            log_distance[:, k] = 2.0 * np.log(c) + np.log(np.maximum(unit[:, k], 0.0))
    log_resp = np.full(log_distance.shape, -np.inf)
    log_resp[np.arange(X.shape[0]), log_distance.argmin(axis=1)] = 0.0
    return log_resp


@dataclass(frozen=True)
class SufficientStatistics:
    """What the M-step needs from the data and the responsibilities.

    Attributes
    ----------
    nk : ndarray of shape (n_components,)
        Soft counts ``N_k = sum_n gamma_nk`` (plus ``10 eps``, as scikit-learn).
    xbar : ndarray of shape (n_components, n_features)
        Weighted means ``sum_n gamma_nk x_n / N_k``.
    scatter : ndarray
        ``S_k = sum_n gamma_nk (x_n - xbar_k)(x_n - xbar_k)^T``: shape (K, d, d) for
        ``full``/``tied``; only its diagonal, shape (K, d), for ``diag``/``spherical``.
    """

    nk: np.ndarray
    xbar: np.ndarray
    scatter: np.ndarray


def sufficient_statistics(
    X: np.ndarray, resp: np.ndarray, covariance_type: str | CovarianceStructure
) -> SufficientStatistics:
    """Centred sufficient statistics of one data set (see :class:`SufficientStatistics`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    resp : ndarray of shape (n_samples, n_components)
    covariance_type : str or CovarianceStructure
        Decides whether full scatter matrices or their diagonals are kept.
    """
    nk = resp.sum(axis=0) + _EPS
    xbar = resp.T @ X / nk[:, None]
    scatter = get_structure(covariance_type).scatter(X, resp, xbar, nk)
    return SufficientStatistics(nk, xbar, scatter)


def _weights(nk: np.ndarray, prior: MixturePrior | None) -> np.ndarray:
    if prior is None:
        return nk / nk.sum()
    unnormalised = nk + prior.concentration(nk.shape[0]) - 1.0
    return unnormalised / unnormalised.sum()


def _means(nk: np.ndarray, xbar: np.ndarray, prior: MixturePrior | None) -> np.ndarray:
    if prior is None:
        return xbar
    kappa = prior.mean_precision
    return (nk[:, None] * xbar + kappa * prior.mean_prior) / (nk + kappa)[:, None]


def m_step_from_statistics(
    stats: SufficientStatistics,
    covariance_type: str | CovarianceStructure = "full",
    prior: MixturePrior | None = None,
    reg_covar: float = 0.0,
) -> MixtureParams:
    """The M-step from sufficient statistics (in memory or accumulated over chunks).

    Parameters
    ----------
    stats : SufficientStatistics
    covariance_type : str or CovarianceStructure
    prior : MixturePrior or None
        ``None`` gives the maximum-likelihood updates.
    reg_covar : float
        Added to the diagonal of every covariance.

    Returns
    -------
    MixtureParams
    """
    structure = get_structure(covariance_type)
    return MixtureParams(
        _weights(stats.nk, prior),
        _means(stats.nk, stats.xbar, prior),
        structure.m_step(stats, prior, reg_covar),
        structure.name,
    )


def m_step(
    X: np.ndarray,
    resp: np.ndarray,
    covariance_type: str | CovarianceStructure = "full",
    prior: MixturePrior | None = None,
    reg_covar: float = 0.0,
) -> MixtureParams:
    """Maximum-likelihood (``prior=None``) or MAP update of the mixture parameters.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    resp : ndarray of shape (n_samples, n_components)
        Responsibilities ``gamma_nk`` (rows sum to one).
    covariance_type : str or CovarianceStructure
    prior : MixturePrior or None
        Conjugate prior; ``None`` gives the maximum-likelihood updates.
    reg_covar : float
        Added to the diagonal of every covariance.

    Returns
    -------
    MixtureParams

    Raises
    ------
    SingularCovarianceError
        If an updated covariance is not positive definite (maximum likelihood only:
        a proper prior keeps every covariance positive definite).
    """
    return m_step_from_statistics(
        sufficient_statistics(X, resp, covariance_type), covariance_type, prior, reg_covar
    )


def log_objective(log_lik: np.ndarray, params: MixtureParams, prior: MixturePrior | None) -> float:
    """The quantity EM increases, per sample: mean log-likelihood, plus ``log p(theta) / N``.

    Parameters
    ----------
    log_lik : ndarray of shape (n_samples,)
    params : MixtureParams
    prior : MixturePrior or None
    """
    value = float(np.mean(log_lik))
    if prior is not None:
        value += prior.log_density(params) / log_lik.shape[0]
    return value


__all__ = [
    "LOG_DENSITY_FLOOR",
    "SufficientStatistics",
    "e_step",
    "estimate_weighted_log_prob",
    "log_objective",
    "m_step",
    "m_step_from_statistics",
    "sufficient_statistics",
]
