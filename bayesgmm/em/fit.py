"""The EM loop: restarts, convergence, collapse handling. MLE and MAP share it.

MLE and MAP differ only in the M-step (``prior`` given or not) and the objective
(``log p(X | theta)`` or ``log p(X | theta) + log p(theta)``), exactly as in the notes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from bayesgmm._types import CovarianceType
from bayesgmm.em.gaussian import SingularCovarianceError
from bayesgmm.em.init import initial_responsibilities
from bayesgmm.em.steps import e_step, log_objective, m_step
from bayesgmm.params import MixtureParams
from bayesgmm.priors import MixturePrior

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
) -> MixtureParams:
    """Move a collapsed component onto the worst-explained sample with the data's spread."""
    n_components, d = params.n_components, params.n_features
    means = params.means.copy()
    means[component] = X[np.argmin(log_lik)]
    spread = np.atleast_2d(np.cov(X, rowvar=False)) / n_components ** (2.0 / d)
    covariances = params.covariances.copy()
    if params.covariance_type == "full":
        covariances[component] = spread
    elif params.covariance_type == "diag":
        covariances[component] = np.diag(spread)
    else:
        covariances[component] = np.trace(spread) / d
    weights = params.weights.copy()
    weights[component] = 1.0 / n_components
    return MixtureParams(weights / weights.sum(), means, covariances, params.covariance_type)


def _m_step_or_reseed(
    X, log_resp, log_lik, params, covariance_type, prior, reg_covar
) -> tuple[MixtureParams, bool]:
    resp = np.exp(log_resp)
    nk = resp.sum(axis=0)
    empty = np.flatnonzero(nk < MIN_COMPONENT_COUNT)
    if prior is None and empty.size and covariance_type != "tied":
        return _reseed(X, params, log_lik, int(empty[0])), True
    try:
        return m_step(X, resp, covariance_type, prior, reg_covar), False
    except SingularCovarianceError as err:
        if prior is not None or covariance_type == "tied" or err.component is None:
            raise
        return _reseed(X, params, log_lik, err.component), True


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
    covariance_type = params.covariance_type

    def step(current: MixtureParams) -> tuple[float, MixtureParams, bool]:
        log_resp, log_lik = e_step(X, current)
        objective = log_objective(log_lik, current, prior)
        updated, reseeded = _m_step_or_reseed(
            X, log_resp, log_lik, current, covariance_type, prior, reg_covar
        )
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
    n_components: int,
    covariance_type: CovarianceType,
    *,
    prior: MixturePrior | None,
    reg_covar: float,
    init_params: str,
    rng: np.random.Generator,
    weights_init: np.ndarray | None = None,
    means_init: np.ndarray | None = None,
    precisions_init: np.ndarray | None = None,
) -> MixtureParams:
    """Starting parameters: an M-step on initial responsibilities, ``alpha_k = 1/K``.

    If an initial cluster is degenerate (its maximum-likelihood covariance is singular),
    the start uses the MAP update under :meth:`MixturePrior.default` instead.

    Explicit ``weights_init``, ``means_init`` and ``precisions_init`` override the
    corresponding parts (precisions in scikit-learn's layout for ``covariance_type``).
    """
    if means_init is not None and precisions_init is not None:
        start = None  # nothing left to initialise from data
    else:
        resp = initial_responsibilities(X, n_components, init_params, rng)
        try:
            start = m_step(X, resp, covariance_type, prior, reg_covar)
        except SingularCovarianceError:
            # An initial cluster with too few distinct points: start that fit from the
            # covariances regularised by the default prior instead of failing.
            default = MixturePrior.default(X, n_components, covariance_type)
            start = m_step(X, resp, covariance_type, default, reg_covar)
    weights = np.full(n_components, 1.0 / n_components) if weights_init is None else weights_init
    means = start.means if means_init is None else means_init
    if precisions_init is None:
        covariances = start.covariances
    elif covariance_type in ("full", "tied"):
        covariances = np.linalg.inv(precisions_init)
    else:
        covariances = 1.0 / np.asarray(precisions_init, dtype=np.float64)
    return MixtureParams(weights, means, covariances, covariance_type)


def fit_em(
    X: np.ndarray,
    n_components: int,
    covariance_type: CovarianceType = "full",
    *,
    prior: MixturePrior | None = None,
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
    max_iter: int = 100,
    n_init: int = 1,
    init_params: str = "kmeans",
    random_state: int | np.random.Generator | None = None,
    weights_init: np.ndarray | None = None,
    means_init: np.ndarray | None = None,
    precisions_init: np.ndarray | None = None,
    warn_not_converged: bool = True,
) -> EMResult:
    """Fit a Gaussian mixture by EM (MLE) or MAP-EM, keeping the best of ``n_init`` starts.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated, finite data.
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    prior : MixturePrior or None
    reg_covar, tol, max_iter : see :func:`run_em`
    n_init : int
        Number of starts; the one with the highest final objective is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
    random_state : int, Generator or None
        Seed of every random choice.
    weights_init, means_init, precisions_init : ndarray, optional
        Explicit starting values (shapes as in scikit-learn).
    warn_not_converged : bool
        Emit a :class:`~sklearn.exceptions.ConvergenceWarning` if no start converged.

    Returns
    -------
    EMResult
    """
    rng = np.random.default_rng(random_state)
    best: EMResult | None = None
    for _ in range(n_init):
        start = initial_params(
            X,
            n_components,
            covariance_type,
            prior=prior,
            reg_covar=reg_covar,
            init_params=init_params,
            rng=rng,
            weights_init=weights_init,
            means_init=means_init,
            precisions_init=precisions_init,
        )
        result = run_em(X, start, prior=prior, reg_covar=reg_covar, tol=tol, max_iter=max_iter)
        if best is None or result.lower_bound > best.lower_bound:
            best = result
    assert best is not None
    if warn_not_converged and not best.converged and max_iter > 0:
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (tol={tol}, last change "
            f"{np.diff(best.trace[-2:]).tolist() or 'n/a'}). Increase max_iter or tol, or "
            "check the initialisation.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return best


__all__ = ["EMResult", "fit_em", "initial_params", "iterate_em", "run_em"]
