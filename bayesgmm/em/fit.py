"""The EM loop: restarts, convergence, collapse handling. MLE and MAP share it.

MLE and MAP differ only in the M-step (``prior`` given or not) and the objective
(``log p(X | theta)`` or ``log p(X | theta) + log p(theta)``), exactly as in the notes.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from bayesgmm.core.exceptions import DegenerateFitWarning, NumericalError, SingularCovarianceError
from bayesgmm.core.missing import MissingPatterns, has_missing, mean_imputed
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import AUTO_N_INIT, EMOptions, MixtureSpec, Standardization
from bayesgmm.core.validation import check_feature_combination, check_random_state
from bayesgmm.core.weights import positive_rows, weight_total, weighted_moments
from bayesgmm.em.init import initial_responsibilities, later_starts
from bayesgmm.em.steps import (
    SufficientStatistics,
    e_step,
    m_step,
    m_step_from_statistics,
    sufficient_statistics,
)
from bayesgmm.posterior.relabel import align_point_estimate

#: A component whose soft count falls below this many samples is treated as collapsed.
MIN_COMPONENT_COUNT = 1e-3


#: A fitted component is *degenerate* when, measured in units of the data's covariance, one
#: of its variances is below this: it sits on repeated values (integer measurements, say)
#: and its likelihood grows without bound as its variance shrinks to ``reg_covar``.
DEGENERATE_VARIANCE_RATIO = 1e-5

#: Responsibility above which a row counts as carrying a component (for the distinct rows).
_CARRIES = 0.01


def degenerate_components(
    params: MixtureParams, X: np.ndarray, data_covariance: np.ndarray
) -> np.ndarray:
    """Which components are degenerate, as mclust would report them (no BIC).

    A component is degenerate if a variance of it, relative to the data's along the same
    direction (the eigenvalues of ``L^-1 Sigma_k L^-T`` with ``L L^T`` the data's
    covariance), is below :data:`DEGENERATE_VARIANCE_RATIO`, or if fewer than ``d + 1``
    distinct rows carry it (responsibility above 1%): its covariance then rests on too few
    points, e.g. on one repeated value.

    Parameters
    ----------
    params : MixtureParams
    X : ndarray of shape (n_samples, n_features)
    data_covariance : ndarray of shape (n_features, n_features)

    Returns
    -------
    ndarray of bool, shape (n_components,)
    """
    k, d = params.n_components, params.n_features
    data_covariance = np.atleast_2d(data_covariance).astype(np.float64)
    try:
        scale = np.linalg.cholesky(data_covariance)
    except np.linalg.LinAlgError:  # fewer rows than features: a singular data covariance
        jitter = 1e-10 * max(float(np.trace(data_covariance)) / d, np.finfo(np.float64).tiny)
        scale = np.linalg.cholesky(data_covariance + jitter * np.eye(d))
    blocks = np.reshape(params.structure.batched_full(params.covariances, k, d), (-1, d, d))
    half = np.linalg.solve(scale, blocks)
    relative = np.linalg.solve(scale, np.swapaxes(half, -1, -2))
    tiny = np.linalg.eigvalsh(relative)[:, 0] < DEGENERATE_VARIANCE_RATIO
    tiny = np.broadcast_to(tiny, (k,)) if tiny.size == 1 else tiny
    if params.structure.kernels is None or X.shape[0] <= COMPILED_MAX_ROWS:
        log_resp = e_step(X, params)[0]  # small data: cheaper than starting threads
    else:
        from bayesgmm.em.kernels import fused_log_resp

        log_resp = fused_log_resp(
            X,
            params.weights,
            params.means,
            params.precisions_cholesky,
            params.structure.kernel_layout,
        )[0]
    carried = log_resp > np.log(_CARRIES)
    few = np.array([_fewer_distinct_rows(X[carried[:, j]], d + 1) for j in range(k)])
    return tiny | few


#: Largest difference (working scale: standardised data) between two components' means and
#: covariances for them to count as one component written twice.
COINCIDENT_ATOL = 1e-6


def coincident_components(params: MixtureParams, atol: float = COINCIDENT_ATOL) -> bool:
    """Whether two components of ``params`` are the same Gaussian (to ``atol``).

    EM started from random responsibilities can converge to the symmetric stationary point
    where components coincide: a (K-1)-component fit written with K components, a saddle
    of the likelihood rather than a K-component optimum.

    Parameters
    ----------
    params : MixtureParams
        On the working (standardised) scale.
    atol : float

    Returns
    -------
    bool
    """
    k, d = params.n_components, params.n_features
    if k < 2:
        return False
    covariances = np.reshape(params.structure.batched_full(params.covariances, k, d), (-1, d, d))
    covariances = np.broadcast_to(covariances, (k, d, d))
    for i, j in itertools.combinations(range(k), 2):
        if np.allclose(params.means[i], params.means[j], rtol=0.0, atol=atol) and np.allclose(
            covariances[i], covariances[j], rtol=0.0, atol=atol
        ):
            return True
    return False


def _fewer_distinct_rows(rows: np.ndarray, count: int) -> bool:
    """Whether ``rows`` has fewer than ``count`` distinct rows (without sorting them all)."""
    for _ in range(count):
        if rows.shape[0] == 0:
            return True
        rows = rows[np.any(rows != rows[0], axis=1)]
    return False


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
    degenerate : bool
        Whether a component is degenerate (:func:`degenerate_components`): set by
        :func:`fit_em` when every start ended degenerate.
    noise_weight : float or None
        Weight of the uniform noise component (:mod:`bayesgmm.em.noise`); ``None`` when
        the model has none. ``params`` then hold the Gaussians' conditional weights.
    optima : tuple of (MixtureParams, float)
        Every distinct optimum the starts reached (:func:`distinct_optima`), best first,
        each with its objective per sample; the first is ``(params, lower_bound)``. Set by
        :func:`fit_em`; empty for a single EM run.
    """

    params: MixtureParams
    lower_bound: float
    converged: bool
    n_iter: int
    trace: np.ndarray
    n_reseeds: int = 0
    degenerate: bool = False
    noise_weight: float | None = None
    optima: tuple[tuple[MixtureParams, float], ...] = ()


#: Two EM optima are the same (up to relabelling) when, after matching their components,
#: no weight differs by more than ``OPTIMUM_WEIGHT_TOL`` and no mean by more than
#: ``OPTIMUM_MEAN_TOL`` standard deviations of the data (the working scale).
OPTIMUM_WEIGHT_TOL = 0.02
OPTIMUM_MEAN_TOL = 0.1


def same_optimum(a: MixtureParams, b: MixtureParams) -> bool:
    """Whether two working-scale fits are one optimum up to a permutation of the labels."""
    aligned = align_point_estimate(b, a.means, a.full_covariances())
    return bool(
        np.max(np.abs(aligned.weights - a.weights)) <= OPTIMUM_WEIGHT_TOL
        and np.max(np.abs(aligned.means - a.means)) <= OPTIMUM_MEAN_TOL
    )


def distinct_optima(results: list[EMResult]) -> list[EMResult]:
    """The results that reach different optima (beyond label permutation), best first.

    Parameters
    ----------
    results : list of EMResult
        Fits on the working (standardised) scale.

    Returns
    -------
    list of EMResult
        Sorted by decreasing ``lower_bound``; of the results that share an optimum
        (:func:`same_optimum`) only the best is kept.
    """
    kept: list[EMResult] = []
    for result in sorted(results, key=lambda r: -r.lower_bound):
        if not any(same_optimum(k.params, result.params) for k in kept):
            kept.append(result)
    return kept


def _reseed(
    X: np.ndarray,
    params: MixtureParams,
    log_lik: np.ndarray,
    component: int,
    sample_weight: np.ndarray | None = None,
) -> MixtureParams | None:
    """Move a collapsed component onto the worst-explained sample with the data's spread.

    Returns ``None`` when the structure cannot re-seed one component (a shared covariance).
    """
    n_components, d = params.n_components, params.n_features
    spread = weighted_moments(X, sample_weight)[1] / n_components ** (2.0 / d)
    if sample_weight is not None:
        log_lik = np.where(sample_weight > 0, log_lik, np.inf)
    covariances = params.structure.reseed(params.covariances, component, spread)
    if covariances is None:
        return None
    means = params.means.copy()
    means[component] = X[np.argmin(log_lik)]
    weights = params.weights.copy()
    weights[component] = 1.0 / n_components
    return MixtureParams(weights / weights.sum(), means, covariances, params.covariance_type)


def _m_step_or_reseed(
    X,
    stats: SufficientStatistics,
    row_log_lik: Callable[[], np.ndarray],
    params: MixtureParams,
    prior,
    reg_covar,
    sample_weight: np.ndarray | None = None,
) -> tuple[MixtureParams, bool]:
    """The M-step from ``stats``, or ``params`` with one collapsed component re-seeded.

    ``row_log_lik()`` gives ``log p(x_n | params)`` per row; it is called only to re-seed
    (the fused path then makes one extra pass over the data).
    """
    empty = np.flatnonzero(stats.nk < MIN_COMPONENT_COUNT)
    if prior is None and empty.size:
        reseeded = _reseed(X, params, row_log_lik(), int(empty[0]), sample_weight)
        if reseeded is not None:
            return reseeded, True
    try:
        return m_step_from_statistics(stats, params.structure, prior, reg_covar), False
    except SingularCovarianceError as err:
        if prior is not None or err.component is None:
            raise
        reseeded = _reseed(X, params, row_log_lik(), err.component, sample_weight)
        if reseeded is None:
            raise
        return reseeded, True


def _numpy_pass(X: np.ndarray, params: MixtureParams, sample_weight: np.ndarray | None = None):
    """E-step and sufficient statistics with NumPy (structures without fused kernels)."""
    log_resp, log_lik = e_step(X, params)
    if sample_weight is None:
        stats = sufficient_statistics(X, np.exp(log_resp), params.structure)
        return stats, float(log_lik.sum()), float(X.shape[0]), lambda: log_lik
    resp = np.exp(log_resp) * sample_weight[:, None]
    stats = sufficient_statistics(X, resp, params.structure)
    total = float(sample_weight.sum())
    return stats, float(sample_weight @ log_lik), total, lambda: log_lik


def _fused_pass(X: np.ndarray, params: MixtureParams, sample_weight: np.ndarray | None = None):
    """E-step and sufficient statistics in one pass of the structure's fused kernel."""
    from bayesgmm.em.kernels import fused_log_resp, fused_statistics

    args = (
        X,
        params.weights,
        params.means,
        params.precisions_cholesky,
        params.structure.kernel_layout,
    )
    stats = fused_statistics(*args, sample_weight=sample_weight)
    return (
        stats.sufficient_statistics(),
        stats.log_lik_sum,
        stats.weight_sum,
        lambda: fused_log_resp(*args)[1],
    )


def run_em(
    X: np.ndarray,
    params: MixtureParams,
    *,
    prior: MixturePrior | None = None,
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
    max_iter: int = 100,
    max_reseeds: int | None = None,
    stopping: str = "absolute",
    sample_weight: np.ndarray | None = None,
    compiled: bool | None = None,
) -> EMResult:
    """Iterate E- and M-steps from ``params`` until the stopping rule holds.

    Each iteration is one pass of the structure's fused kernel
    (:mod:`bayesgmm.em.kernels`: E-step and sufficient statistics without any (N, K)
    array) followed by the shared M-step; structures without kernels use NumPy. On small
    data (at most :data:`COMPILED_MAX_ROWS` rows) the whole loop runs in one compiled call
    (:mod:`bayesgmm.em.loop`, the same iterations without Python's per-iteration cost);
    a start that needs a re-seed (a collapsed component, a singular covariance) or hits
    a non-finite objective there is rerun by the Python loop, so the result is the same.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float64, or float32 (read as it is and computed in float64).
    params : MixtureParams
        Starting point.
    prior : MixturePrior or None
        ``None`` for maximum likelihood, else MAP under this prior.
    reg_covar : float
        Added to covariance diagonals in every M-step.
    tol : float
        Convergence threshold on the per-sample objective (see :data:`STOPPING_RULES`).
    max_iter : int
    max_reseeds : int, optional
        Limit on re-seeding collapsed components (default ``10 * K``); past it a
        :class:`SingularCovarianceError` names the component and the remedy.
    stopping : {"absolute", "aitken"}
        The stopping rule (:data:`STOPPING_RULES`).
    sample_weight : ndarray of shape (n_samples,), optional
        Non-negative frequency weights (:mod:`bayesgmm.core.weights`): the objective is
        ``(sum_n w_n log p(x_n) + log p(theta)) / W`` with ``W = sum_n w_n``.
    compiled : bool, optional
        Run the compiled loop (``True``), the Python loop (``False``), or choose by the
        number of rows (``None``). Both give the same result to rounding.

    Returns
    -------
    EMResult
    """
    if compiled is None:
        compiled = X.shape[0] <= COMPILED_MAX_ROWS
    if compiled:
        result = _run_compiled(X, params, prior, reg_covar, tol, max_iter, stopping, sample_weight)
        if result is not None:
            return result
    one_pass = _numpy_pass if params.structure.kernels is None else _fused_pass

    def step(current: MixtureParams) -> tuple[float, MixtureParams, bool]:
        stats, log_lik_sum, n_rows, row_log_lik = one_pass(X, current, sample_weight)
        objective = log_lik_sum / n_rows
        if prior is not None:
            objective += prior.log_density(current) / n_rows
        updated, reseeded = _m_step_or_reseed(
            X, stats, row_log_lik, current, prior, reg_covar, sample_weight
        )
        return objective, updated, reseeded

    return iterate_em(
        step, params, tol=tol, max_iter=max_iter, max_reseeds=max_reseeds, stopping=stopping
    )


#: Largest number of rows on which :func:`run_em` runs the compiled loop by default (beyond
#: it one iteration's pass over the data outweighs Python's per-iteration cost, and the
#: parallel kernel of :mod:`bayesgmm.em.kernels` uses every core).
COMPILED_MAX_ROWS = 4096


def _run_compiled(
    X: np.ndarray,
    params: MixtureParams,
    prior: MixturePrior | None,
    reg_covar: float,
    tol: float,
    max_iter: int,
    stopping: str,
    sample_weight: np.ndarray | None,
) -> EMResult | None:
    """:func:`run_em` by the compiled loop, or ``None`` where the Python loop must run it
    (no compiled loop for the structure or the stopping rule, a re-seed, a singular
    covariance or a non-finite objective)."""
    from bayesgmm.em.kernels import BLOCK_SIZE, _as_data, _parameter_array, _sample_weight
    from bayesgmm.em.loop import CONVERGED, MAX_ITER, RULE_CODES

    structure = params.structure
    loop = structure.em_loop
    if loop is None or stopping not in RULE_CODES:
        return None
    # float64 (exact for float32 data, which the kernels read in float64 anyway): one
    # compiled type of the loop, and a copy that small data afford
    X = np.ascontiguousarray(_as_data(X), dtype=np.float64)
    k, d = params.n_components, params.n_features
    sw = _sample_weight(sample_weight, X.shape[0])
    total = float(sw.sum()) if sw.size else float(X.shape[0])
    state = [
        _parameter_array(a)
        for a in (params.weights, params.means, params.covariances, params.precisions_cholesky)
    ]
    if prior is None:
        conc, nu, kappa = np.ones(k), 0.0, 1.0
        psi, m0 = np.ones(structure.prior_scale_shape(d)), np.zeros(d)
    else:
        conc = np.broadcast_to(prior.concentration(k), (k,))
        nu, kappa = float(prior.degrees_of_freedom), float(prior.mean_precision)
        psi, m0 = prior.covariance_prior, prior.mean_prior
    conc, m0 = _parameter_array(conc), _parameter_array(m0)
    psi = _parameter_array(np.atleast_1d(psi))
    prior_args = (conc, nu, psi, m0, kappa)
    offset = 0.0
    if prior is not None:  # the normalising constants the compiled log prior leaves out
        start = (state[0], state[1], state[3])
        offset = (prior.log_density(params) - loop.log_prior(*start, *prior_args)) / total
        if not np.isfinite(offset):
            return None
    trace = np.empty(max_iter)
    status, n_iter = loop.run(
        X, sw, *state, trace, float(tol), int(max_iter), RULE_CODES[stopping],
        float(reg_covar), MIN_COMPONENT_COUNT, prior is not None, *prior_args, BLOCK_SIZE,
    )  # fmt: skip
    if status not in (CONVERGED, MAX_ITER):
        return None
    trace = trace[:n_iter] + offset
    if n_iter == 0:
        return EMResult(params, -np.inf, False, 0, trace)
    weights, means, covariances, _ = state
    fitted = MixtureParams(weights, means, covariances, structure.name)
    return EMResult(fitted, float(trace[-1]), status == CONVERGED, n_iter, trace)


def _absolute_change(history: list[float], tol: float) -> bool:
    """scikit-learn's rule: the objective changed by less than ``tol``."""
    return _stopping_rule(history, tol, "absolute")


def _aitken(history: list[float], tol: float) -> bool:
    """Aitken's rule (Bohning et al. 1994, McNicholas et al. 2010; mclust's idea).

    EM converges linearly, ``l_{k+1} - l_k ~ a (l_k - l_{k-1})``, so a small change can
    hide a long way to go when ``a`` is near one. With ``a`` estimated from the last three
    objectives, the limit is ``l_inf = l_{k-1} + (l_k - l_{k-1}) / (1 - a)``; stop when
    ``|l_inf - l_{k-1}| < tol``, which is never looser than the absolute rule.
    """
    return _stopping_rule(history, tol, "aitken")


def _stopping_rule(history: list[float], tol: float, rule: str) -> bool:
    """The compiled loop's rule (:func:`bayesgmm.em.loop.converged`), one definition; both
    rules read only the last three objectives."""
    from bayesgmm.em.loop import RULE_CODES, converged

    recent = np.asarray(history[-3:], dtype=np.float64)
    return bool(converged(recent, len(recent), tol, RULE_CODES[rule]))


#: Stopping rules of EM: ``rule(objectives since the last re-seed, tol) -> converged``.
STOPPING_RULES: dict[str, Callable[[list[float], float], bool]] = {
    "absolute": _absolute_change,
    "aitken": _aitken,
}


def iterate_em(
    step: Callable[[MixtureParams], tuple[float, MixtureParams, bool]],
    params: MixtureParams,
    *,
    tol: float,
    max_iter: int,
    max_reseeds: int | None = None,
    stopping: str = "absolute",
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
        Stop when the stopping rule holds at ``tol``, or after ``max_iter`` steps.
    max_reseeds : int, optional
        Re-seeded steps allowed (default ``10 * K``) before a
        :class:`SingularCovarianceError`; a re-seed restarts the convergence test.
    stopping : {"absolute", "aitken"}
        A key of :data:`STOPPING_RULES`.
    """
    converged_at = STOPPING_RULES[stopping]
    max_reseeds = 10 * params.n_components if max_reseeds is None else max_reseeds
    lower_bound = -np.inf
    trace: list[float] = []
    history: list[float] = []
    converged = False
    n_reseeds = 0
    for _ in range(max_iter):
        lower_bound, params, reseeded = step(params)
        trace.append(lower_bound)
        if reseeded:
            n_reseeds += 1
            if n_reseeds > max_reseeds:
                raise SingularCovarianceError()
            lower_bound = -np.inf
            history = []
            continue
        history.append(lower_bound)
        if converged_at(history, tol):
            converged = True
            break
    return EMResult(params, lower_bound, converged, len(trace), np.asarray(trace), n_reseeds)


def initial_params(
    X: np.ndarray,
    spec: MixtureSpec,
    options: EMOptions,
    rng: np.random.Generator,
    sample_weight: np.ndarray | None = None,
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
    sample_weight : ndarray of shape (n_samples,), optional
        Positive frequency weights: they guide the initial clusters
        (:func:`~bayesgmm.em.init.initial_responsibilities`) and weight the first M-step.
    """
    k, structure, prior = spec.n_components, spec.structure, spec.prior
    if options.has_full_start:
        start = None  # nothing left to initialise from data
    else:
        resp = initial_responsibilities(X, k, options.init_params, rng, sample_weight)
        if sample_weight is not None:
            resp = resp * sample_weight[:, None]
        try:
            start = m_step(X, resp, structure, prior, options.reg_covar)
        except SingularCovarianceError:
            # An initial cluster with too few distinct points: start that fit from the
            # covariances regularised by the default prior instead of failing.
            mean, cov = weighted_moments(X, sample_weight)
            default = MixturePrior.from_moments(mean, cov, k, structure.name, data=X)
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
    sample_weight: np.ndarray | None = None,
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
        Validated data: finite, or with NaN marking missing entries (missing at random;
        no row or column entirely missing). With NaN, EM maximises the observed-data
        likelihood (:mod:`bayesgmm.em.missing`): every start is initialised on the
        mean-imputed data, then iterates on the observed entries only.
    spec : MixtureSpec
        K, the covariance structure and the prior (``None``: maximum likelihood).
    options : EMOptions, optional
        Tolerance, iterations, restarts, initialisation (defaults: :class:`EMOptions`).
    random_state : int, Generator or None
        Seed of every random choice.
    warn_not_converged : bool
        Emit a :class:`~sklearn.exceptions.ConvergenceWarning` if no start converged.
    sample_weight : ndarray of shape (n_samples,), optional
        Validated frequency weights (:func:`bayesgmm.core.weights.check_sample_weight`): row
        ``n`` counts ``w_n`` times, in the standardisation, the initialisation and every
        E-step; rows of weight 0 are dropped. ``N`` below is then ``W = sum_n w_n``.

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
    X, sample_weight = positive_rows(X, sample_weight)
    scaling = Standardization.from_data(X, spec.structure, sample_weight)
    working_spec = replace(spec, prior=spec.working_prior_for(scaling))
    working_options = options_to_working(options, scaling, spec)
    Z = scaling.to_working(X)
    # missing entries (NaN): EM on the observed-data likelihood, started (and checked for
    # degeneracy) on the mean-imputed data; complete data take the fused kernels
    run, Z_complete, log_jacobian = run_em, Z, scaling.log_jacobian
    if has_missing(Z):
        from bayesgmm.em.missing import run_em_missing

        check_feature_combination(noise=False, weighted=sample_weight is not None, missing=True)
        patterns = MissingPatterns.from_data(Z)
        run = partial(run_em_missing, patterns=patterns)
        Z_complete = mean_imputed(Z)
        log_jacobian = float((patterns.row_mask() @ np.log(scaling.scale)).mean())
    rng = np.random.default_rng(random_state)
    data_covariance = weighted_moments(Z_complete, sample_weight)[1]
    small = (
        Z.shape[0] <= COMPILED_MAX_ROWS
        and Z.shape[0] * spec.n_components * spec.n_features <= SPLIT_MERGE_BUDGET
    )
    n_starts = 1 if options.has_full_start else options.n_starts
    if options.auto_starts and small:
        n_starts = AUTO_N_INIT_SMALL
    elif options.auto_starts and not options.has_full_start:
        n_starts = auto_starts_for(Z.shape[0])
    if spec.n_components == 1:  # every start is the same fit
        n_starts = 1
    starts = run_starts(
        lambda start_options: initial_params(
            Z_complete, working_spec, start_options, rng, sample_weight
        ),
        partial(
            run,
            Z,
            prior=working_spec.prior,
            reg_covar=options.reg_covar,
            tol=options.tol,
            max_iter=options.max_iter,
            stopping=options.stopping,
            sample_weight=sample_weight,
        ),
        working_options,
        n_starts,
        is_degenerate=lambda result: (
            spec.prior is None
            and bool(degenerate_components(result.params, Z_complete, data_covariance).any())
        ),
    )
    best, fallback, error, reached = starts.best, starts.fallback, starts.error, starts.reached
    if (
        best is not None
        and run is run_em
        and options.auto_starts
        and not options.has_full_start
        and small
    ):
        # from each of the best few distinct optima: the best one's neighbours are not
        # always where the global optimum lies
        for start in distinct_optima(reached)[:SPLIT_MERGE_FROM]:
            moved, others = split_merge(
                Z, start, working_spec, options, data_covariance, sample_weight=sample_weight
            )
            reached.extend(others)
            if moved.lower_bound > best.lower_bound:
                best = moved
    best = best if best is not None else fallback
    if best is None:
        assert error is not None
        raise error
    if not (np.isfinite(best.lower_bound) or best.n_iter == 0):
        raise NumericalError(
            f"EM produced a non-finite objective ({best.lower_bound}) on data of shape "
            f"{X.shape}: the data are degenerate for K={spec.n_components}; fit with a "
            "prior (prior='default'), increase reg_covar or decrease n_components"
        )
    n_total = weight_total(sample_weight, X.shape[0])
    result = with_optima(
        best,
        reached,
        partial(
            result_to_user,
            scaling=scaling,
            spec=spec,
            working_spec=working_spec,
            n_samples=n_total,
            log_jacobian=log_jacobian,
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
            f"{spec.n_features + 1} distinct rows), e.g. on repeated values: decrease "
            "n_components, fit with a prior (prior='default'), or increase n_init.",
            UserWarning,
            stacklevel=2,
        )
    return result


#: ``n_init="auto"`` takes :data:`AUTO_N_INIT_SMALL` starts and makes split-and-merge
#: moves (:func:`split_merge`) when the data's ``N K d`` is at most this. The search costs
#: a few hundred EM runs, about proportional to ``N K d``: 1-4 s at ``N K d ~ 3000``
#: (Old Faithful, K = 5, 6) on a shared 2-core machine, where 20 starts of the Python
#: loop took 2-7 s; beyond this budget it would be slower than those 20 starts.
SPLIT_MERGE_BUDGET = 5_000

#: Split-and-merge moves start from each of this many best distinct optima of the starts.
SPLIT_MERGE_FROM = 3

#: Starts of ``n_init="auto"`` on small data (``N K d <= SPLIT_MERGE_BUDGET``), before
#: the split-and-merge moves; larger data get :func:`auto_starts_for`.
AUTO_N_INIT_SMALL = 60

#: Rows that the starts of ``n_init="auto"`` may cover in all on larger data: 20 starts
#: (:data:`bayesgmm.core.spec.AUTO_N_INIT`) up to 100,000 rows, fewer above (at least 2): a
#: million rows took 160 s with 20 starts against 5 s with one (notebook 06).
AUTO_ROW_BUDGET = 2_000_000


def auto_starts_for(n_rows: int) -> int:
    """Starts of ``n_init="auto"`` outside the split-and-merge budget, by the row count.

    ``AUTO_N_INIT`` while ``AUTO_N_INIT * n_rows <= AUTO_ROW_BUDGET``, then
    ``AUTO_ROW_BUDGET // n_rows``, never fewer than 2.
    """
    return int(min(AUTO_N_INIT, max(2, AUTO_ROW_BUDGET // max(int(n_rows), 1))))


#: Split-and-merge moves first run to this tolerance (per sample, Aitken's rule by
#: default); those that end within ten times it of the best fit are run on to ``tol``.
SPLIT_MERGE_SCREEN_TOL = 1e-5

#: At most this many split-and-merge moves per round (the most overlapping merges first).
MAX_SPLIT_MERGE_MOVES = 120

#: At most this many rounds of moves (each round starts from the best fit so far).
MAX_SPLIT_MERGE_ROUNDS = 10


def split_merge_starts(
    X: np.ndarray,
    params: MixtureParams,
    prior: MixturePrior | None,
    reg_covar: float,
    sample_weight: np.ndarray | None = None,
    *,
    max_moves: int = MAX_SPLIT_MERGE_MOVES,
):
    """Starts one split-and-merge move away from ``params`` (Ueda et al. 2000, SMEM).

    A move merges components ``a`` and ``b`` (their responsibilities added) and splits a
    third component ``j`` in two along its covariance's principal axis (its rows on either
    side of the mean, each with its responsibility for ``j``); the start is the M-step on
    these K responsibilities, so it keeps the fit everywhere else. Merges are tried in
    decreasing overlap of the two components' responsibilities.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    params : MixtureParams
        A fit with at least 3 components.
    prior : MixturePrior or None
    reg_covar : float
    sample_weight : ndarray of shape (n_samples,), optional
    max_moves : int

    Yields
    ------
    MixtureParams
        Starts; moves whose M-step gives a singular covariance are skipped.
    """
    k = params.n_components
    if k < 3:
        return
    resp = np.exp(e_step(X, params)[0])
    if sample_weight is not None:
        resp = resp * sample_weight[:, None]
    norms = np.sqrt(np.einsum("nk,nk->k", resp, resp))
    overlap = (resp.T @ resp) / np.maximum(np.outer(norms, norms), np.finfo(float).tiny)
    pairs = sorted(((a, b) for a in range(k) for b in range(a + 1, k)), key=lambda ab: -overlap[ab])
    axes = np.linalg.eigh(params.full_covariances())[1][:, :, -1]
    moves = [(a, b, j) for a, b in pairs for j in range(k) if j not in (a, b)][:max_moves]
    for a, b, j in moves:
        side = ((X - params.means[j]) @ axes[j] > 0.0)[:, None]
        keep = [i for i in range(k) if i not in (a, b, j)]
        split = resp[:, [j]] * np.hstack([side, ~side])
        new = np.hstack([resp[:, keep], resp[:, [a]] + resp[:, [b]], split])
        new = new + 1e-10 * (new.sum(axis=0) < 1.0)[None, :]
        try:
            yield m_step(X, new, params.structure, prior, reg_covar)
        except SingularCovarianceError:
            continue


def split_merge(
    X: np.ndarray,
    result: EMResult,
    spec: MixtureSpec,
    options: EMOptions,
    data_covariance: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    max_rounds: int = MAX_SPLIT_MERGE_ROUNDS,
) -> tuple[EMResult, list[EMResult]]:
    """Improve an EM fit by split-and-merge moves (:func:`split_merge_starts`) until none helps.

    Every move is run to convergence with ``options`` (screened first at
    :data:`SPLIT_MERGE_SCREEN_TOL`); a fit that ends degenerate
    (:func:`degenerate_components`, maximum likelihood only) or fails does not count.
    The first move that improves the fit ends a round and the next round's moves start
    from it; the search stops after a round without improvement or ``max_rounds``
    rounds. Random restarts find an optimum that few starts lead to (a small, tight
    component, say) only by chance; these moves reach it from a good fit nearby, which is
    how the defaults match the best of many restarts.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Working-scale data.
    result : EMResult
        The best fit of the starts (working scale).
    spec : MixtureSpec
        With the working-scale prior.
    options : EMOptions
    data_covariance : ndarray of shape (n_features, n_features)
    sample_weight : ndarray of shape (n_samples,), optional
    max_rounds : int

    Returns
    -------
    best : EMResult
    reached : list of EMResult
        The best fit after each round that improved (the optima the search passed).
    """
    reached: list[EMResult] = []
    for _ in range(max_rounds):
        improved = False
        for start in split_merge_starts(
            X, result.params, spec.prior, options.reg_covar, sample_weight
        ):
            run = partial(
                run_em,
                X,
                prior=spec.prior,
                reg_covar=options.reg_covar,
                max_iter=options.max_iter,
                stopping=options.stopping,
                sample_weight=sample_weight,
            )
            try:
                # screened at a looser tolerance; only a move that may beat the best fit
                # is run on to ``options.tol``
                moved = run(start, tol=max(options.tol, SPLIT_MERGE_SCREEN_TOL))
                if moved.lower_bound < result.lower_bound - 10.0 * SPLIT_MERGE_SCREEN_TOL:
                    continue
                if options.tol < SPLIT_MERGE_SCREEN_TOL:
                    moved = run(moved.params, tol=options.tol)
            except SingularCovarianceError:
                continue
            if spec.prior is None and degenerate_components(moved.params, X, data_covariance).any():
                continue
            if moved.lower_bound > result.lower_bound + max(options.tol, 1e-12):
                result, improved = moved, True
                break  # the next round's moves start from the improved fit
        if not improved:
            break
        reached.append(result)
    return result, reached


@dataclass(frozen=True)
class Starts:
    """What the restarts of :func:`run_starts` reached (working scale).

    Attributes
    ----------
    best : EMResult or None
        The best non-degenerate fit, ``None`` if every start failed or ended degenerate.
    fallback : EMResult or None
        The best degenerate fit (``degenerate=True``), if any.
    error : SingularCovarianceError or None
        The last error of a failed start.
    reached : list of EMResult
        Every non-degenerate fit, in the order of the starts.
    """

    best: EMResult | None
    fallback: EMResult | None
    error: SingularCovarianceError | None
    reached: list[EMResult]


def run_starts(
    make_start: Callable[[EMOptions], object],
    run: Callable[[object], EMResult],
    options: EMOptions,
    n_starts: int,
    *,
    is_degenerate: Callable[[EMResult], bool],
) -> Starts:
    """The restart loop of every in-memory EM fit (:func:`fit_em`, noise and missing data).

    Start ``i`` is ``make_start(options)`` with ``init_params`` the ``i``-th of
    :func:`~bayesgmm.em.init.later_starts` after ``options.init_params``, run by
    ``run(start)``. A start that raises :class:`SingularCovarianceError` or ends degenerate
    is replaced by another, up to ``2 * n_starts`` starts in all. A fit whose components
    coincide (:func:`coincident_components`, the symmetric stationary point) is kept only if
    no start reached anything else.

    Parameters
    ----------
    make_start : callable
        ``make_start(options) -> start`` (parameters, or parameters with a noise weight).
    run : callable
        ``run(start) -> EMResult``: EM to convergence from ``start``.
    options : EMOptions
        Working-scale options of the first start.
    n_starts : int
    is_degenerate : callable
        ``is_degenerate(result) -> bool`` (:func:`degenerate_components`; always false
        under a prior).

    Returns
    -------
    Starts
    """
    best: EMResult | None = None
    fallback: EMResult | None = None
    saddle: EMResult | None = None
    error: SingularCovarianceError | None = None
    reached: list[EMResult] = []
    start_options = options
    for attempt in range(2 * n_starts):
        if attempt >= n_starts and best is not None:
            break
        try:
            result = run(make_start(start_options))
        except SingularCovarianceError as err:
            error = err
            continue
        finally:
            start_options = replace(
                options, init_params=later_starts(options.init_params, attempt + 1)
            )
        if is_degenerate(result):
            if fallback is None or result.lower_bound > fallback.lower_bound:
                fallback = replace(result, degenerate=True)
        elif isinstance(result.params, MixtureParams) and coincident_components(result.params):
            if saddle is None or result.lower_bound > saddle.lower_bound:
                saddle = result
        else:
            reached.append(result)
            if best is None or result.lower_bound > best.lower_bound:
                best = result
    if best is None and fallback is None and saddle is not None:
        # every start ended with coinciding components: that is then the answer
        best, reached = saddle, [saddle]
    return Starts(best, fallback, error, reached)


def with_optima(
    best: EMResult, reached: list[EMResult], to_user: Callable[[EMResult], EMResult]
) -> EMResult:
    """``to_user(best)`` with :attr:`EMResult.optima`: the distinct optima of ``reached``
    (:func:`distinct_optima`), each mapped by ``to_user``; none for a single fit."""
    result = to_user(best)
    if len(reached) <= 1:
        return result
    others = [to_user(r) for r in distinct_optima(reached)[1:]]
    optima = ((result.params, result.lower_bound), *((r.params, r.lower_bound) for r in others))
    return replace(result, optima=optima)


def options_to_working(
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
    n_samples: float,
    *,
    log_jacobian: float | None = None,
) -> EMResult:
    """Map a working-scale result back to the data's scale (parameters and objective).

    ``working_spec`` is ``spec`` with its prior mapped to the working scale; ``n_samples``
    is the number of rows, or the weight total ``W`` of a weighted fit.

    The per-sample log-likelihood shifts by ``-sum(log scale)`` (or by ``-log_jacobian``
    when given: the mean over rows of ``sum(log scale)`` over each row's observed features,
    for data with missing entries); the log prior by the log-Jacobian of the (affine)
    parameter map, a constant computed at the final parameters.
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
    shift = -(scaling.log_jacobian if log_jacobian is None else log_jacobian)
    if spec.prior is not None:
        shift += (
            spec.prior.log_density(params) - working_spec.prior.log_density(result.params)
        ) / n_samples
    return replace(
        result,
        params=params,
        lower_bound=result.lower_bound + shift,
        trace=result.trace + shift,
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
    "DEGENERATE_VARIANCE_RATIO",
    "STOPPING_RULES",
    "EMResult",
    "Starts",
    "check_map_prior",
    "degenerate_components",
    "fit_em",
    "initial_params",
    "iterate_em",
    "options_to_working",
    "result_to_user",
    "run_em",
    "run_starts",
    "split_merge",
    "split_merge_starts",
    "warn_if_degenerate",
    "warn_if_not_converged",
    "with_optima",
]
