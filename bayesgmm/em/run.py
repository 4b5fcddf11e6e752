"""One EM run from one start: E- and M-steps until the stopping rule holds.

MLE and MAP differ only in the M-step (``prior`` given or not) and the objective
(``log p(X | theta)`` or ``log p(X | theta) + log p(theta)``), exactly as in the notes.
:func:`run_em` takes the structure's compiled code where it has some
(:mod:`bayesgmm.em.backends`) and the NumPy steps of :mod:`bayesgmm.em.steps` otherwise;
:func:`iterate_em` is the convergence loop every EM path shares (in memory, chunked,
missing data, noise component).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bayesgmm.core.exceptions import SingularCovarianceError
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.weights import weighted_moments
from bayesgmm.em.backends import kernel_layout, structure_kernels, structure_loop
from bayesgmm.em.steps import (
    LOG_DENSITY_FLOOR,
    SufficientStatistics,
    e_step,
    m_step_from_statistics,
    sufficient_statistics,
)
from bayesgmm.em.stopping import STOPPING_RULES

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
    degenerate : bool
        Whether a component is degenerate
        (:func:`~bayesgmm.em.degenerate.degenerate_components`): set by
        :func:`~bayesgmm.em.fit.fit_em` when every start ended degenerate.
    noise_weight : float or None
        Weight of the uniform noise component (:mod:`bayesgmm.em.noise`); ``None`` when
        the model has none. ``params`` then hold the Gaussians' conditional weights.
    optima : tuple of (MixtureParams, float)
        Every distinct optimum the starts reached
        (:func:`~bayesgmm.em.starts.distinct_optima`), best first, each with its objective
        per sample; the first is ``(params, lower_bound)``. Set by
        :func:`~bayesgmm.em.fit.fit_em`; empty for a single EM run.
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
    from bayesgmm.em.fused import fused_log_resp, fused_statistics

    args = (
        X,
        params.weights,
        params.means,
        params.precisions_cholesky,
        kernel_layout(params.structure),
    )
    stats = fused_statistics(*args, sample_weight=sample_weight)
    return (
        stats.sufficient_statistics(),
        stats.log_lik_sum,
        stats.weight_sum,
        lambda: fused_log_resp(*args)[1],
    )


def log_responsibilities(X: np.ndarray, params: MixtureParams) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~bayesgmm.em.steps.e_step`, through the structure's fused kernel on large data.

    Beyond :data:`COMPILED_MAX_ROWS` rows a structure with fused kernels computes the
    log-responsibilities in one parallel compiled pass (NumPy's path makes several
    temporaries of shape (n_samples, n_components) and runs on one core: 1.7 s against
    about 0.2 s on 10^6 x 2 rows, K=3); rows whose every log-density underflows get the
    NumPy path's answer (the nearest component, :data:`~bayesgmm.em.steps.LOG_DENSITY_FLOOR`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Complete rows.
    params : MixtureParams

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
    log_lik : ndarray of shape (n_samples,)
    """
    layout = kernel_layout(params.structure)
    if layout is None or X.shape[0] <= COMPILED_MAX_ROWS:
        return e_step(X, params)
    from bayesgmm.em.fused import fused_log_resp

    log_resp, log_lik = fused_log_resp(
        X, params.weights, params.means, params.precisions_cholesky, layout
    )
    lost = ~np.isfinite(log_lik) | np.isnan(log_resp).any(axis=1)
    if lost.any():
        log_resp[lost], log_lik[lost] = e_step(X[lost], params)
    return log_resp, np.maximum(log_lik, LOG_DENSITY_FLOOR)


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
    one_pass = _numpy_pass if structure_kernels(params.structure) is None else _fused_pass

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
    from bayesgmm.em.fused import _as_data, _parameter_array, _sample_weight
    from bayesgmm.em.kernels import BLOCK_SIZE
    from bayesgmm.em.loop import CONVERGED, MAX_ITER, RULE_CODES

    structure = params.structure
    loop = structure_loop(structure)
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


__all__ = [
    "COMPILED_MAX_ROWS",
    "MIN_COMPONENT_COUNT",
    "EMResult",
    "iterate_em",
    "log_responsibilities",
    "run_em",
]
