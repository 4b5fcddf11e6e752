"""EM and MAP-EM with a uniform noise component (mclust's ``Vinv``; :mod:`bayesgmm.core.noise`).

With ``gamma_n0`` the noise responsibility and ``gamma_nk`` the Gaussians':

* E-step: the K Gaussian log joint densities ``log w_k + log N(x_n | mu_k, Sigma_k)``
  (absolute weights) and the noise's ``log w_0 - log V``, normalised together in log space.
* M-step: each Gaussian from its responsibilities (the sufficient statistics and M-step
  of :mod:`bayesgmm.em.steps`, unchanged); the weights of all K + 1 components
  ``w_j = N_j / N`` (maximum likelihood) or the mode of the Dirichlet posterior
  ``(N_j + a_j - 1) / (N + sum_j (a_j - 1))`` with the concentrations of
  :func:`bayesgmm.core.noise.noise_concentration`. So the noise weight is the mean noise
  responsibility under maximum likelihood.
* Objective: ``mean_n log p(x_n) + log p(theta) / N`` with the Dirichlet over K + 1
  weights in ``log p(theta)``; EM never decreases it.

The loop is :func:`bayesgmm.em.run.iterate_em` (no collapsed-component re-seeding: a
start whose covariance turns singular is replaced by the next start, as in
:func:`~bayesgmm.em.fit.fit_em`). The maths is NumPy (no fused kernel).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from bayesgmm.core.densities import log_dirichlet
from bayesgmm.core.exceptions import NumericalError
from bayesgmm.core.noise import NOISE_WEIGHT_START, noise_concentration, with_noise_column
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior, sample_moments
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.core.validation import check_random_state
from bayesgmm.em.degenerate import (
    DEGENERATE_VARIANCE_RATIO,
    degenerate_components,
    warn_if_degenerate,
)
from bayesgmm.em.fit import options_to_working, result_to_user, warn_if_not_converged
from bayesgmm.em.options import EMOptions
from bayesgmm.em.run import EMResult, iterate_em
from bayesgmm.em.starts import initial_params, run_starts, with_optima
from bayesgmm.em.steps import (
    LOG_DENSITY_FLOOR,
    e_step,
    estimate_weighted_log_prob,
    logsumexp_rows,
    m_step_from_statistics,
    sufficient_statistics,
)

#: Smallest starting noise weight from ``noise_init`` (a zero weight would stay zero).
MIN_NOISE_WEIGHT_START = 1e-3


@dataclass(frozen=True)
class NoisyParams:
    """Gaussian mixture plus noise weight: the state of EM with a noise component.

    Attributes
    ----------
    gaussian : MixtureParams
        The Gaussians, with conditional weights ``w_k / (1 - w_0)`` (summing to one).
    noise_weight : float
        ``w_0`` in [0, 1).
    """

    gaussian: MixtureParams
    noise_weight: float

    @property
    def n_components(self) -> int:
        """Number of Gaussian components K."""
        return self.gaussian.n_components

    @property
    def weights(self) -> np.ndarray:
        """Absolute Gaussian weights ``w_k``, shape (n_components,)."""
        return (1.0 - self.noise_weight) * self.gaussian.weights


def noise_e_step(
    X: np.ndarray, params: MixtureParams, noise_weight: float, log_noise_density: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log-responsibilities over K + 1 components and the per-sample log-likelihood.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    params : MixtureParams
        Gaussians with conditional weights (summing to one).
    noise_weight : float
        ``w_0``.
    log_noise_density : float
        ``-log V`` on the scale of ``X``.

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components + 1)
        The last column is the noise's; each row's ``exp`` sums to one.
    log_lik : ndarray of shape (n_samples,)
        ``log(sum_k w_k N(x_n | mu_k, Sigma_k) + w_0 / V)``, floored at
        :data:`~bayesgmm.em.steps.LOG_DENSITY_FLOOR`.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        gaussian = estimate_weighted_log_prob(X, params) + np.log1p(-noise_weight)
    gaussian = np.where(np.isnan(gaussian), -np.inf, gaussian)
    joint = with_noise_column(gaussian, noise_weight, log_noise_density)
    log_lik = logsumexp_rows(joint)
    with np.errstate(under="ignore", invalid="ignore"):
        log_resp = joint - log_lik[:, None]
    lost = ~np.isfinite(log_lik)
    if lost.any():  # only with a zero noise weight: the Gaussians' rule (nearest component)
        log_resp[lost, :-1] = e_step(X[lost], params)[0]
        log_resp[lost, -1] = -np.inf
    return log_resp, np.maximum(np.where(lost, -np.inf, log_lik), LOG_DENSITY_FLOOR)


def noise_log_prior(prior: MixturePrior, params: NoisyParams) -> float:
    """``log p(theta)``: Dirichlet over the K + 1 weights plus the Gaussians' priors."""
    k = params.n_components
    conc = noise_concentration(prior.weight_concentration, k)
    weights = np.append(params.weights, params.noise_weight)
    return float(log_dirichlet(weights, conc) + prior.structure.log_prior(prior, params.gaussian))


def gaussian_prior(prior: MixturePrior | None, n_components: int) -> MixturePrior | None:
    """``prior`` with the Gaussians' K Dirichlet concentrations (the noise's dropped)."""
    if prior is None:
        return None
    conc = noise_concentration(prior.weight_concentration, n_components)[:n_components]
    return replace(prior, weight_concentration=conc)


def noise_m_step(
    X: np.ndarray,
    resp: np.ndarray,
    params: MixtureParams,
    prior: MixturePrior | None,
    reg_covar: float,
) -> NoisyParams:
    """M-step from responsibilities over K + 1 components (last column: noise).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    resp : ndarray of shape (n_samples, n_components + 1)
    params : MixtureParams
        The current Gaussians (for their structure).
    prior : MixturePrior or None
    reg_covar : float

    Returns
    -------
    NoisyParams
    """
    k = params.n_components
    structure = params.structure
    stats = sufficient_statistics(X, resp[:, :k], structure)
    counts = np.append(stats.nk, resp[:, k].sum())
    if prior is not None:
        counts = counts + noise_concentration(prior.weight_concentration, k) - 1.0
    weights = counts / counts.sum()
    updated = m_step_from_statistics(stats, structure, gaussian_prior(prior, k), reg_covar)
    gaussian = MixtureParams(
        weights[:k] / weights[:k].sum(), updated.means, updated.covariances, structure.name
    )
    return NoisyParams(gaussian, float(weights[k]))


def run_noise_em(
    X: np.ndarray,
    start: NoisyParams,
    log_noise_density: float,
    *,
    prior: MixturePrior | None = None,
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
    max_iter: int = 100,
    stopping: str = "absolute",
) -> EMResult:
    """Iterate :func:`noise_e_step` and :func:`noise_m_step` from ``start``.

    Parameters are those of :func:`bayesgmm.em.run.run_em`, plus ``log_noise_density``
    (``-log V`` on the scale of ``X``).

    Returns
    -------
    EMResult
        ``params`` are the Gaussians (conditional weights), ``noise_weight`` is set.
    """
    n = X.shape[0]

    def step(current: NoisyParams) -> tuple[float, NoisyParams, bool]:
        log_resp, log_lik = noise_e_step(
            X, current.gaussian, current.noise_weight, log_noise_density
        )
        objective = float(log_lik.sum()) / n
        if prior is not None:
            objective += noise_log_prior(prior, current) / n
        updated = noise_m_step(X, np.exp(log_resp), current.gaussian, prior, reg_covar)
        return objective, updated, False

    result = iterate_em(step, start, tol=tol, max_iter=max_iter, max_reseeds=0, stopping=stopping)
    final: NoisyParams = result.params  # type: ignore[assignment]
    return replace(result, params=final.gaussian, noise_weight=final.noise_weight)


def initial_noisy_params(
    X: np.ndarray,
    spec: MixtureSpec,
    options: EMOptions,
    rng: np.random.Generator,
    noise_init: np.ndarray | None,
) -> NoisyParams:
    """Start of EM with a noise component.

    Without ``noise_init``: the Gaussians from the usual start on all rows
    (:func:`bayesgmm.em.starts.initial_params`) and the noise weight
    :data:`~bayesgmm.core.noise.NOISE_WEIGHT_START`. With it (as mclust's ``noise`` start):
    the usual start on the rows with noise probability below one half, and the noise
    weight the mean of ``noise_init`` (at least :data:`MIN_NOISE_WEIGHT_START`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    spec : MixtureSpec
    options : EMOptions
    rng : numpy.random.Generator
    noise_init : ndarray of shape (n_samples,) or None
        Initial noise probabilities (:func:`bayesgmm.core.noise.check_noise_init`).
    """
    if noise_init is None:
        return NoisyParams(initial_params(X, spec, options, rng), NOISE_WEIGHT_START)
    clean = X[noise_init < 0.5]
    if clean.shape[0] < spec.n_components:
        raise ValueError(
            f"noise_init leaves {clean.shape[0]} rows for {spec.n_components} Gaussian "
            "components: mark fewer rows as noise or decrease n_components"
        )
    weight = min(max(float(np.mean(noise_init)), MIN_NOISE_WEIGHT_START), 0.99)
    return NoisyParams(initial_params(clean, spec, options, rng), weight)


def check_noise_map_prior(spec: MixtureSpec) -> None:
    """Raise ``ValueError`` if MAP-EM has no mode under the K + 1 Dirichlet."""
    prior = spec.prior
    if prior is None:
        return
    if np.any(noise_concentration(prior.weight_concentration, spec.n_components) < 1.0):
        raise ValueError(
            "MAP-EM needs weight_concentration >= 1 for every component and the noise (below "
            "1 the Dirichlet density has no interior mode); use BayesianGaussianMixture for "
            "sparse Dirichlet priors"
        )


def fit_noise_em(
    X: np.ndarray,
    spec: MixtureSpec,
    options: EMOptions | None = None,
    *,
    noise_init: np.ndarray | None = None,
    random_state: int | np.random.Generator | None = None,
    warn_not_converged: bool = True,
) -> EMResult:
    """EM (MLE) or MAP-EM of K Gaussians plus the uniform component ``spec.noise``.

    The counterpart of :func:`bayesgmm.em.fit.fit_em`, with its standardisation,
    restarts (:func:`bayesgmm.em.starts.run_starts`: the best final objective among
    non-degenerate fits, and the distinct optima in ``optima``), warnings and errors;
    the noise density is mapped to the working scale with the data
    (:meth:`~bayesgmm.core.noise.NoiseComponent.working_log_density`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    spec : MixtureSpec
        With ``spec.noise`` set.
    options : EMOptions, optional
    noise_init : ndarray of shape (n_samples,), optional
        Initial noise probabilities (bools or numbers in [0, 1]), as mclust's
        ``initialization = list(noise = ...)``: the starts use the other rows.
    random_state : int, Generator or None
    warn_not_converged : bool

    Returns
    -------
    EMResult
        On the data's scale; ``noise_weight`` set; ``lower_bound`` and ``trace`` are the
        objective per sample (log-likelihood including the noise density, plus
        ``log p(theta) / N`` for MAP).
    """
    if spec.noise is None:
        raise ValueError("fit_noise_em needs a spec with a noise component (noise=True)")
    options = EMOptions() if options is None else options
    check_noise_map_prior(spec)
    options.check_starts(spec)
    check_random_state(random_state)
    scaling = Standardization.from_data(X, spec.structure)
    working_prior = spec.working_prior_for(scaling)
    working_spec = replace(spec, prior=gaussian_prior(working_prior, spec.n_components))
    working_options = options_to_working(options, scaling, spec)
    log_noise_density = spec.noise.working_log_density(scaling.scale)
    Z = scaling.to_working(X)
    rng = np.random.default_rng(random_state)
    data_covariance = sample_moments(Z)[1]
    n_starts = 1 if options.has_full_start else options.n_starts
    starts = run_starts(
        lambda start_options: initial_noisy_params(Z, working_spec, start_options, rng, noise_init),
        lambda start: run_noise_em(
            Z,
            start,
            log_noise_density,
            prior=working_prior,
            reg_covar=options.reg_covar,
            tol=options.tol,
            max_iter=options.max_iter,
            stopping=options.stopping,
        ),
        working_options,
        n_starts,
        is_degenerate=lambda result: (
            spec.prior is None
            and bool(degenerate_components(result.params, Z, data_covariance).any())
        ),
    )
    best, fallback, error = starts.best, starts.fallback, starts.error
    best = best if best is not None else fallback
    if best is None:
        assert error is not None
        raise error
    if not (np.isfinite(best.lower_bound) or best.n_iter == 0):
        raise NumericalError(
            f"EM with a noise component produced a non-finite objective ({best.lower_bound}) "
            f"on data of shape {X.shape}: fit with a prior (prior='default'), increase "
            "reg_covar or decrease n_components"
        )
    user_spec = replace(spec, prior=gaussian_prior(spec.prior, spec.n_components))
    result = with_optima(
        best,
        starts.reached,
        partial(
            result_to_user,
            scaling=scaling,
            spec=user_spec,
            working_spec=working_spec,
            n_samples=X.shape[0],
        ),
    )
    if spec.prior is None:
        warn_if_degenerate(best.params, options.reg_covar)
    if warn_not_converged:
        warn_if_not_converged(result, options)
    if best.degenerate:
        warnings.warn(
            f"Every start ended with a degenerate component (a variance below "
            f"{DEGENERATE_VARIANCE_RATIO:g} of the data's, or fewer than d + 1 = "
            f"{spec.n_features + 1} distinct rows): decrease n_components, fit with a prior "
            "(prior='default'), or increase n_init.",
            UserWarning,
            stacklevel=2,
        )
    return result


__all__ = [
    "NoisyParams",
    "check_noise_map_prior",
    "fit_noise_em",
    "gaussian_prior",
    "initial_noisy_params",
    "noise_e_step",
    "noise_log_prior",
    "noise_m_step",
    "run_noise_em",
]
