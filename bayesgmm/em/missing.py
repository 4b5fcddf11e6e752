"""EM with missing entries under missing at random (Ghahramani & Jordan 1994).

With ``o`` the observed and ``m`` the missing coordinates of row ``n``:

* E-step: responsibilities and the log-likelihood from the marginal Gaussians of the
  observed block, ``gamma_nk propto w_k N(x_o | mu_k[o], Sigma_k[o, o])``; the objective
  is the observed-data log-likelihood ``sum_n log p(x_n,o)``.
* Conditional moments of the missing block given the observed one and component ``k``:
  ``xhat_nk[m] = mu_k[m] + Sigma_k[m, o] Sigma_k[o, o]^-1 (x_o - mu_k[o])`` and
  ``C_k = Sigma_k[m, m] - Sigma_k[m, o] Sigma_k[o, o]^-1 Sigma_k[o, m]``
  (``xhat_nk[o] = x_o``, ``C_k`` zero outside the missing block).
* M-step: the structure's own M-step (:meth:`CovarianceStructure.m_step`, MLE or MAP)
  on the *expected* sufficient statistics, ``N_k = sum_n gamma_nk``,
  ``xbar_k = sum_n gamma_nk xhat_nk / N_k`` and the expected scatter
  ``S_k = sum_n gamma_nk [(xhat_nk - xbar_k)(xhat_nk - xbar_k)^T + C_nk]`` (its diagonal
  for ``diag``/``spherical``). The complete-data log-likelihood (and log prior) is linear
  in these statistics, so this is the exact EM (MAP-EM) update for every structure, and
  the observed-data objective never decreases (up to ``reg_covar``).

Rows are grouped by missingness pattern (:class:`bayesgmm.core.missing.MissingPatterns`) and
each group is computed with batched NumPy linear algebra over the components; the
covariances are expanded to full matrices (``structure.expand``) for the conditioning.
Data without NaN never come here: they take the fused complete-data kernels.
"""

from __future__ import annotations

import numpy as np

from bayesgmm.core.missing import MissingPatterns
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.em.run import EMResult, _m_step_or_reseed, iterate_em
from bayesgmm.em.steps import _EPS, LOG_DENSITY_FLOOR, SufficientStatistics, logsumexp_rows

_LOG_2PI = np.log(2.0 * np.pi)


def _condition(
    X_rows: np.ndarray, means: np.ndarray, covariances: np.ndarray, observed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marginal log-densities and conditional moments of one missingness pattern.

    Parameters
    ----------
    X_rows : ndarray of shape (n_rows, d)
        The pattern's rows (NaN where not observed).
    means : ndarray of shape (K, d)
    covariances : ndarray of shape (K, d, d)
        Full matrices.
    observed : ndarray of bool, shape (d,)

    Returns
    -------
    log_prob : ndarray of shape (n_rows, K)
        ``log N(x_o | mu_k[o], Sigma_k[o, o])``.
    completed : ndarray of shape (K, n_rows, d)
        ``xhat_nk``: the row with its missing block replaced by the conditional mean.
    cond_cov : ndarray of shape (K, n_missing, n_missing)
        ``C_k``, the conditional covariance of the missing block (same for every row).
    """
    obs = np.flatnonzero(observed)
    mis = np.flatnonzero(~observed)
    chol = np.linalg.cholesky(covariances[:, obs[:, None], obs])  # (K, o, o)
    diff = X_rows[:, obs][None] - means[:, None, obs]  # (K, n, o)
    whitened = np.linalg.solve(chol, np.swapaxes(diff, 1, 2))  # (K, o, n)
    half_log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    log_prob = (
        -0.5 * (obs.size * _LOG_2PI + np.sum(whitened**2, axis=1)) - half_log_det[:, None]
    ).T
    completed = np.broadcast_to(X_rows, (means.shape[0], *X_rows.shape)).copy()
    if not mis.size:
        return log_prob, completed, np.zeros((means.shape[0], 0, 0))
    # A = L^-1 Sigma_om, so Sigma_mo Sigma_oo^-1 (x_o - mu_o) = A^T z and C = Sigma_mm - A^T A
    cross = np.linalg.solve(chol, covariances[:, obs[:, None], mis])  # (K, o, m)
    completed[:, :, mis] = means[:, None, mis] + np.einsum("kom,kon->knm", cross, whitened)
    cond_cov = covariances[:, mis[:, None], mis] - np.swapaxes(cross, 1, 2) @ cross
    return log_prob, completed, cond_cov


def _pass(X: np.ndarray, params: MixtureParams, patterns: MissingPatterns):
    """Marginal log-densities (N, K), completed rows (K, N, d), conditional covariances."""
    k, d = params.n_components, params.n_features
    covariances = params.full_covariances()
    log_prob = np.empty((X.shape[0], k))
    completed = np.empty((k, X.shape[0], d))
    cond = []
    for rows, observed in patterns:
        log_prob[rows], completed[:, rows], cond_cov = _condition(
            X[rows], params.means, covariances, observed
        )
        cond.append(cond_cov)
    return log_prob, completed, cond


def _normalise(log_prob: np.ndarray, params: MixtureParams) -> tuple[np.ndarray, np.ndarray]:
    """Log-responsibilities and floored per-row log-likelihood (as :func:`e_step`)."""
    with np.errstate(divide="ignore"):
        weighted = log_prob + np.log(params.weights)
    log_lik = logsumexp_rows(weighted)
    with np.errstate(under="ignore", invalid="ignore"):
        log_resp = weighted - log_lik[:, None]
    lost = ~np.isfinite(log_lik)
    if lost.any():  # every density underflowed: the row goes to its most likely component
        nearest = np.nan_to_num(log_prob[lost], nan=-np.inf, neginf=-np.finfo(float).max)
        log_resp[lost] = -np.inf
        log_resp[lost, nearest.argmax(axis=1)] = 0.0
    return log_resp, np.maximum(np.where(lost, -np.inf, log_lik), LOG_DENSITY_FLOOR)


def marginal_log_gaussian_prob(
    X: np.ndarray, params: MixtureParams, patterns: MissingPatterns | None = None
) -> np.ndarray:
    """``log N(x_n,o | mu_k[o], Sigma_k[o, o])`` of every row's observed block.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN marks a missing entry; no row may be entirely missing.
    params : MixtureParams
    patterns : MissingPatterns, optional
        The patterns of ``X`` (computed when not given).

    Returns
    -------
    ndarray of shape (n_samples, n_components)
    """
    patterns = MissingPatterns.from_data(X) if patterns is None else patterns
    return _pass(X, params, patterns)[0]


def e_step_missing(
    X: np.ndarray, params: MixtureParams, patterns: MissingPatterns | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The E-step on rows with missing entries: :func:`bayesgmm.em.steps.e_step`'s outputs.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN marks a missing entry.
    params : MixtureParams
    patterns : MissingPatterns, optional

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
        ``log p(z_n = k | x_n,o)``.
    log_lik : ndarray of shape (n_samples,)
        ``log p(x_n,o)``, floored at :data:`~bayesgmm.em.steps.LOG_DENSITY_FLOOR`.
    """
    return _normalise(marginal_log_gaussian_prob(X, params, patterns), params)


def expected_statistics(
    resp: np.ndarray,
    completed: np.ndarray,
    cond_covs: list[np.ndarray],
    patterns: MissingPatterns,
    params: MixtureParams,
) -> SufficientStatistics:
    """Expected sufficient statistics of the complete data (see the module docstring).

    Parameters
    ----------
    resp : ndarray of shape (n_samples, n_components)
    completed : ndarray of shape (n_components, n_samples, n_features)
        ``xhat_nk``.
    cond_covs : list of ndarray of shape (n_components, n_missing_p, n_missing_p)
        Conditional covariances of each pattern's missing block.
    patterns : MissingPatterns
    params : MixtureParams
        Read for its structure (full scatter matrices or their diagonals).
    """
    k, d = params.n_components, params.n_features
    nk = resp.sum(axis=0) + _EPS
    xbar = np.einsum("nk,knd->kd", resp, completed) / nk[:, None]
    conditional = np.zeros((k, d, d))
    for (rows, observed), cond_cov in zip(patterns, cond_covs, strict=True):
        mis = np.flatnonzero(~observed)
        if mis.size:
            conditional[:, mis[:, None], mis] += resp[rows].sum(axis=0)[:, None, None] * cond_cov
    centred = completed - xbar[:, None, :]
    weighted = resp.T[:, :, None] * centred  # (K, N, d)
    if params.structure.matrix_scatter:
        scatter = np.swapaxes(weighted, 1, 2) @ centred + conditional
    else:
        scatter = np.sum(weighted * centred, axis=1) + np.diagonal(conditional, axis1=1, axis2=2)
    return SufficientStatistics(nk, xbar, scatter)


def conditional_mean_imputation(
    X: np.ndarray, params: MixtureParams, patterns: MissingPatterns | None = None
) -> np.ndarray:
    """``E[x_n | x_n,o] = sum_k gamma_nk xhat_nk``: missing entries replaced, shape (N, d)."""
    patterns = MissingPatterns.from_data(X) if patterns is None else patterns
    log_prob, completed, _ = _pass(X, params, patterns)
    resp = np.exp(_normalise(log_prob, params)[0])
    return np.einsum("nk,knd->nd", resp, completed)


def run_em_missing(
    X: np.ndarray,
    params: MixtureParams,
    *,
    patterns: MissingPatterns | None = None,
    prior: MixturePrior | None = None,
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
    max_iter: int = 100,
    max_reseeds: int | None = None,
    stopping: str = "absolute",
    sample_weight: None = None,
) -> EMResult:
    """:func:`bayesgmm.em.run.run_em` for data with missing entries (NaN).

    ``sample_weight`` must be ``None`` (weights with missing entries are not implemented;
    the estimators refuse the combination with a clear error).

    The same convergence loop (:func:`~bayesgmm.em.run.iterate_em`); the objective is the
    observed-data log-likelihood per row (plus ``log p(theta) / N`` for MAP). A collapsed
    component is re-seeded from the conditional-mean imputation of the data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN marks a missing entry; no row entirely missing.
    params : MixtureParams
        Starting point.
    patterns : MissingPatterns, optional
        The patterns of ``X`` (computed when not given).
    prior, reg_covar, tol, max_iter, max_reseeds, stopping
        As in :func:`~bayesgmm.em.run.run_em`.

    Returns
    -------
    EMResult
    """
    patterns = MissingPatterns.from_data(X) if patterns is None else patterns
    # the rows sorted by pattern, so that every pattern is a slice (no gathers or scatters);
    # the fit does not depend on the order of the rows
    order, patterns = patterns.sorted_by_pattern()
    X = X[order]
    n_rows = float(X.shape[0])

    def step(current: MixtureParams) -> tuple[float, MixtureParams, bool]:
        log_prob, completed, cond_covs = _pass(X, current, patterns)
        log_resp, log_lik = _normalise(log_prob, current)
        resp = np.exp(log_resp)
        stats = expected_statistics(resp, completed, cond_covs, patterns, current)
        objective = float(log_lik.sum()) / n_rows
        if prior is not None:
            objective += prior.log_density(current) / n_rows
        imputed = np.einsum("nk,knd->nd", resp, completed)
        updated, reseeded = _m_step_or_reseed(
            imputed, stats, lambda: log_lik, current, prior, reg_covar
        )
        return objective, updated, reseeded

    return iterate_em(
        step, params, tol=tol, max_iter=max_iter, max_reseeds=max_reseeds, stopping=stopping
    )


__all__ = [
    "conditional_mean_imputation",
    "e_step_missing",
    "expected_statistics",
    "marginal_log_gaussian_prob",
    "run_em_missing",
]
