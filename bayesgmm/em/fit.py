"""The EM loop: restarts, convergence, collapse handling. MLE and MAP share it.

MLE and MAP differ only in the M-step (``prior`` given or not) and the objective
(``log p(X | theta)`` or ``log p(X | theta) + log p(theta)``), exactly as in the notes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from bayesgmm._validation import check_random_state
from bayesgmm.em.init import initial_responsibilities
from bayesgmm.em.steps import e_step, log_objective, m_step
from bayesgmm.exceptions import DegenerateFitWarning, NumericalError, SingularCovarianceError
from bayesgmm.params import MixtureParams
from bayesgmm.priors import MixturePrior, sample_moments
from bayesgmm.spec import EMOptions, MixtureSpec, Standardization

#: A component whose soft count falls below this many samples is treated as collapsed.
MIN_COMPONENT_COUNT = 1e-3


@dataclass(frozen=True)
class EMResult:
    """Outcome of one EM fit.

    Attributes
    ----------
    params : MixtureParams
        Parameters after the last M-step.
    lower_bound : float
        Objective per sample at the last E-step (scikit-learn's ``lower_bound_``).
    converged : bool
    n_iter : int
    trace : ndarray of shape (n_iter,)
        Objective per sample at every iteration.
    n_reseeds : int
        How many collapsed components were re-seeded (maximum likelihood only).
    """

    params: MixtureParams
    lower_bound: float
    converged: bool
    n_iter: int
    trace: np.ndarray
    n_reseeds: int = 0


def _reseed(
    X: np.ndarray, params: MixtureParams, log_lik: np.ndarray, component: int
) -> MixtureParams | None:
    """Move a collapsed component onto the worst-explained sample with the data's spread.

    Returns ``None`` when the structure cannot re-seed one component (a shared covariance).
    """
    n_components, d = params.n_components, params.n_features
    spread = sample_moments(X)[1] / n_components ** (2.0 / d)
    covariances = params.structure.reseed(params.covariances, component, spread)
    if covariances is None:
        return None
    means = params.means.copy()
    means[component] = X[np.argmin(log_lik)]
    weights = params.weights.copy()
    weights[component] = 1.0 / n_components
    return MixtureParams(weights / weights.sum(), means, covariances, params.covariance_type)


def _m_step_or_reseed(
    X, log_resp, log_lik, params: MixtureParams, prior, reg_covar
) -> tuple[MixtureParams, bool]:
    resp = np.exp(log_resp)
    nk = resp.sum(axis=0)
    empty = np.flatnonzero(nk < MIN_COMPONENT_COUNT)
    if prior is None and empty.size:
        reseeded = _reseed(X, params, log_lik, int(empty[0]))
        if reseeded is not None:
            return reseeded, True
    try:
        return m_step(X, resp, params.structure, prior, reg_covar), False
    except SingularCovarianceError as err:
        if prior is not None or err.component is None:
            raise
        reseeded = _reseed(X, params, log_lik, err.component)
        if reseeded is None:
            raise
        return reseeded, True


def run_em(
    X: np.ndarray,
    params: MixtureParams,
    *,
    prior: MixturePrior | None = None,
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
    max_iter: int = 100,
    max_reseeds: int | None = None,
) -> EMResult:
    """Iterate E- and M-steps from ``params`` until the objective changes by less than ``tol``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    params : MixtureParams
        Starting point.
    prior : MixturePrior or None
        ``None`` for maximum likelihood, else MAP under this prior.
    reg_covar : float
        Added to covariance diagonals in every M-step.
    tol : float
        Convergence threshold on the change of the per-sample objective.
    max_iter : int
    max_reseeds : int, optional
        Limit on re-seeding collapsed components (default ``10 * K``); past it a
        :class:`SingularCovarianceError` names the component and the remedy.

    Returns
    -------
    EMResult
    """

    def step(current: MixtureParams) -> tuple[float, MixtureParams, bool]:
        log_resp, log_lik = e_step(X, current)
        objective = log_objective(log_lik, current, prior)
        updated, reseeded = _m_step_or_reseed(X, log_resp, log_lik, current, prior, reg_covar)
        return objective, updated, reseeded

    return iterate_em(step, params, tol=tol, max_iter=max_iter, max_reseeds=max_reseeds)


def iterate_em(
    step: Callable[[MixtureParams], tuple[float, MixtureParams, bool]],
    params: MixtureParams,
    *,
    tol: float,
    max_iter: int,
    max_reseeds: int | None = None,
) -> EMResult:
    """The convergence loop shared by in-memory and chunked EM.

    Parameters
    ----------
    step : callable
        ``step(params) -> (objective at params, params after the M-step, reseeded)``: one
        E-step (which yields the per-sample objective) and one M-step.
    params : MixtureParams
        Starting point.
    tol, max_iter : float, int
        Stop when the objective changes by less than ``tol``, or after ``max_iter`` steps.
    max_reseeds : int, optional
        Re-seeded steps allowed (default ``10 * K``) before a
        :class:`SingularCovarianceError`; a re-seed restarts the convergence test.
    """
    max_reseeds = 10 * params.n_components if max_reseeds is None else max_reseeds
    lower_bound = -np.inf
    trace: list[float] = []
    converged = False
    n_reseeds = 0
    for _ in range(max_iter):
        previous = lower_bound
        lower_bound, params, reseeded = step(params)
        trace.append(lower_bound)
        if reseeded:
            n_reseeds += 1
            if n_reseeds > max_reseeds:
                raise SingularCovarianceError()
            lower_bound = -np.inf
            continue
        if abs(lower_bound - previous) < tol:
            converged = True
            break
    return EMResult(params, lower_bound, converged, len(trace), np.asarray(trace), n_reseeds)


def initial_params(
    X: np.ndarray,
    spec: MixtureSpec,
    options: EMOptions,
    rng: np.random.Generator,
) -> MixtureParams:
    """Starting parameters: an M-step on initial responsibilities, ``alpha_k = 1/K``.

    If an initial cluster is degenerate (its maximum-likelihood covariance is singular),
    the start uses the MAP update under :meth:`MixturePrior.default` instead.

    Explicit ``weights_init``, ``means_init`` and ``precisions_init`` of ``options``
    override the corresponding parts (precisions in the structure's layout).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    spec : MixtureSpec
    options : EMOptions
    rng : numpy.random.Generator
    """
    k, structure, prior = spec.n_components, spec.structure, spec.prior
    if options.has_full_start:
        start = None  # nothing left to initialise from data
    else:
        resp = initial_responsibilities(X, k, options.init_params, rng)
        try:
            start = m_step(X, resp, structure, prior, options.reg_covar)
        except SingularCovarianceError:
            # An initial cluster with too few distinct points: start that fit from the
            # covariances regularised by the default prior instead of failing.
            default = MixturePrior.default(X, k, structure.name)
            start = m_step(X, resp, structure, default, options.reg_covar)
    weights = np.full(k, 1.0 / k) if options.weights_init is None else options.weights_init
    means = start.means if options.means_init is None else options.means_init
    if options.precisions_init is None:
        covariances = start.covariances
    else:
        covariances = structure.covariances_from_precisions(options.precisions_init)
    return MixtureParams(weights, means, covariances, structure.name)


def check_map_prior(spec: MixtureSpec) -> None:
    """Raise ``ValueError`` if MAP-EM is undefined under the spec's prior.

    Below ``weight_concentration = 1`` the Dirichlet density has no interior mode.
    """
    prior = spec.prior
    if prior is not None and np.any(prior.concentration(spec.n_components) < 1.0):
        raise ValueError(
            "MAP-EM needs weight_concentration >= 1 (below 1 the Dirichlet density has no "
            "interior mode); use BayesianGaussianMixture for sparse Dirichlet priors"
        )


def fit_em(
    X: np.ndarray,
    spec: MixtureSpec,
    options: EMOptions | None = None,
    *,
    random_state: int | np.random.Generator | None = None,
    warn_not_converged: bool = True,
) -> EMResult:
    """Fit a Gaussian mixture by EM (MLE) or MAP-EM, keeping the best of ``n_init`` starts.

    EM runs on standardised data (:meth:`Standardization.from_data`: each feature centred
    and divided by its standard deviation, or by one common scale for structures that need
    an isotropic rescaling), with the prior and explicit starts mapped to that scale. The
    result is mapped back exactly, so the fit does not depend on the data's units, and
    ``options.reg_covar`` is relative: it is added to the standardised covariances, which
    is ``reg_covar * scale_j ** 2`` on feature ``j`` in the data's units.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated, finite data.
    spec : MixtureSpec
        K, the covariance structure and the prior (``None``: maximum likelihood).
    options : EMOptions, optional
        Tolerance, iterations, restarts, initialisation (defaults: :class:`EMOptions`).
    random_state : int, Generator or None
        Seed of every random choice.
    warn_not_converged : bool
        Emit a :class:`~sklearn.exceptions.ConvergenceWarning` if no start converged.

    Returns
    -------
    EMResult
        Parameters on the data's scale; ``lower_bound`` and ``trace`` are the objective of
        the data (log-likelihood per sample, plus ``log p(theta) / N`` for MAP) on that scale.

    Raises
    ------
    NumericalError
        EM produced non-finite values, or the fitted parameters cannot be represented in
        float64 on the data's scale (variances beyond ``1e308`` or below ``1e-308``).
    """
    options = EMOptions() if options is None else options
    check_map_prior(spec)
    options.check_starts(spec)
    check_random_state(random_state)
    scaling = Standardization.from_data(X, spec.structure)
    working_spec = replace(spec, prior=spec.working_prior_for(scaling))
    working_options = _options_to_working(options, scaling, spec)
    Z = scaling.to_working(X)
    rng = np.random.default_rng(random_state)
    best: EMResult | None = None
    for _ in range(options.n_init):
        start = initial_params(Z, working_spec, working_options, rng)
        result = run_em(
            Z,
            start,
            prior=working_spec.prior,
            reg_covar=options.reg_covar,
            tol=options.tol,
            max_iter=options.max_iter,
        )
        if best is None or result.lower_bound > best.lower_bound:
            best = result
    assert best is not None
    if not (np.isfinite(best.lower_bound) or best.n_iter == 0):
        raise NumericalError(
            f"EM produced a non-finite objective ({best.lower_bound}) on data of shape "
            f"{X.shape}: the data are degenerate for K={spec.n_components}; fit with a "
            "prior (prior='default'), increase reg_covar or decrease n_components"
        )
    result = result_to_user(best, scaling, spec, working_spec, X.shape[0])
    if spec.prior is None:
        warn_if_degenerate(best.params, options.reg_covar)
    if warn_not_converged:
        warn_if_not_converged(result, options)
    return result


def _options_to_working(
    options: EMOptions, scaling: Standardization, spec: MixtureSpec
) -> EMOptions:
    """``options`` with explicit starting means and precisions on the working scale."""
    means = options.means_init
    precisions = options.precisions_init
    return replace(
        options,
        means_init=None if means is None else scaling.to_working(means),
        precisions_init=(
            None
            if precisions is None
            else scaling.precisions_to_working(precisions, spec.structure)
        ),
    )


def result_to_user(
    result: EMResult,
    scaling: Standardization,
    spec: MixtureSpec,
    working_spec: MixtureSpec,
    n_samples: int,
) -> EMResult:
    """Map a working-scale result back to the data's scale (parameters and objective).

    ``working_spec`` is ``spec`` with its prior mapped to the working scale.

    The per-sample log-likelihood shifts by ``-sum(log scale)``; the log prior by the
    log-Jacobian of the (affine) parameter map, a constant computed at the final parameters.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        try:
            params = scaling.params_to_user(result.params)
        except ValueError:  # non-finite, or a covariance that underflowed to singular
            params = None
    if params is None:
        peak = float(np.max(scaling.scale))
        low = float(np.min(scaling.scale))
        raise NumericalError(
            "the fitted covariances cannot be represented in float64 on the data's scale "
            f"(feature standard deviations from {low:.3g} to {peak:.3g}): rescale the data, "
            "for example to unit standard deviation, before fitting"
        )
    shift = -scaling.log_jacobian
    if spec.prior is not None:
        shift += (
            spec.prior.log_density(params) - working_spec.prior.log_density(result.params)
        ) / n_samples
    return EMResult(
        params,
        result.lower_bound + shift,
        result.converged,
        result.n_iter,
        result.trace + shift,
        result.n_reseeds,
    )


def warn_if_degenerate(params: MixtureParams, reg_covar: float) -> None:
    """Warn when a maximum-likelihood component rests on (nearly) one point.

    ``params`` are on the working (standardised) scale, where a component whose variance
    in every direction is a few ``reg_covar`` has collapsed onto one point: its covariance
    is set by ``reg_covar`` alone and the likelihood is unbounded there.
    """
    largest = np.linalg.eigvalsh(params.full_covariances())[:, -1]
    collapsed = np.flatnonzero(largest <= max(10.0 * reg_covar, 1e-12))
    if collapsed.size:
        warnings.warn(
            f"maximum likelihood is degenerate: component(s) {collapsed.tolist()} rest on "
            "one point or on identical points (a variance of reg_covar alone). Fit with a "
            "prior (prior='default') to get a proper estimate, or decrease n_components.",
            DegenerateFitWarning,
            stacklevel=3,
        )


def warn_if_not_converged(result: EMResult, options: EMOptions) -> None:
    """The :class:`~sklearn.exceptions.ConvergenceWarning` of every EM path."""
    if result.converged or options.max_iter == 0:
        return
    warnings.warn(
        f"EM did not converge in max_iter={options.max_iter} iterations (tol={options.tol}, "
        f"last change {np.diff(result.trace[-2:]).tolist() or 'n/a'}). Increase max_iter or "
        "tol, or check the initialisation.",
        ConvergenceWarning,
        stacklevel=3,
    )


__all__ = [
    "EMResult",
    "check_map_prior",
    "fit_em",
    "initial_params",
    "iterate_em",
    "result_to_user",
    "run_em",
    "warn_if_degenerate",
    "warn_if_not_converged",
]
