"""Where EM starts: initial parameters, the restarts, and the distinct optima they reach.

:func:`initial_params` turns initial responsibilities (:mod:`bayesgmm.em.init`) into a
start; :func:`run_starts` is the restart loop of every in-memory EM fit; how many starts
``n_init="auto"`` takes is :func:`auto_starts_for` (and :data:`AUTO_N_INIT_SMALL` on small
data); :func:`distinct_optima` keeps one fit per optimum, up to relabelling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from bayesgmm.core.exceptions import SingularCovarianceError
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.core.weights import weighted_moments
from bayesgmm.em.degenerate import coincident_components
from bayesgmm.em.init import initial_responsibilities, later_starts
from bayesgmm.em.options import AUTO_N_INIT, EMOptions
from bayesgmm.em.run import EMResult
from bayesgmm.em.steps import m_step
from bayesgmm.posterior.relabel import align_point_estimate


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


#: Starts of ``n_init="auto"`` on small data (``N K d <= SPLIT_MERGE_BUDGET``), before
#: the split-and-merge moves; larger data get :func:`auto_starts_for`.
AUTO_N_INIT_SMALL = 60

#: Rows that the starts of ``n_init="auto"`` may cover in all on larger data: 20 starts
#: (:data:`bayesgmm.em.options.AUTO_N_INIT`) up to 100,000 rows, fewer above (at least 2): a
#: million rows took 160 s with 20 starts against 5 s with one (notebook 06).
AUTO_ROW_BUDGET = 2_000_000


def auto_starts_for(n_rows: int) -> int:
    """Starts of ``n_init="auto"`` outside the split-and-merge budget, by the row count.

    ``AUTO_N_INIT`` while ``AUTO_N_INIT * n_rows <= AUTO_ROW_BUDGET``, then
    ``AUTO_ROW_BUDGET // n_rows``, never fewer than 2.
    """
    return int(min(AUTO_N_INIT, max(2, AUTO_ROW_BUDGET // max(int(n_rows), 1))))


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
    """The restart loop of every in-memory EM fit (``fit_em``, noise and missing data).

    Start ``i`` is ``make_start(options)`` with ``init_params`` the ``i``-th of
    :func:`~bayesgmm.em.init.later_starts` after ``options.init_params``, run by
    ``run(start)``. A start that raises :class:`SingularCovarianceError` or ends degenerate
    is replaced by another, up to ``2 * n_starts`` starts in all. A fit whose components
    coincide (:func:`~bayesgmm.em.degenerate.coincident_components`, the symmetric
    stationary point) is kept only if no start reached anything else.

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
        ``is_degenerate(result) -> bool``
        (:func:`~bayesgmm.em.degenerate.degenerate_components`; always false under a prior).

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


__all__ = [
    "AUTO_N_INIT_SMALL",
    "AUTO_ROW_BUDGET",
    "OPTIMUM_MEAN_TOL",
    "OPTIMUM_WEIGHT_TOL",
    "Starts",
    "auto_starts_for",
    "distinct_optima",
    "initial_params",
    "run_starts",
    "same_optimum",
    "with_optima",
]
