"""Split-and-merge moves (Ueda et al. 2000, SMEM): better optima from a good fit nearby.

:func:`bayesgmm.em.fit.fit_em` makes these moves with ``n_init="auto"`` on small data
(``N K d`` at most :data:`SPLIT_MERGE_BUDGET`), from each of the :data:`SPLIT_MERGE_FROM`
best distinct optima of its starts.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from bayesgmm.core.exceptions import SingularCovarianceError
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em.degenerate import degenerate_components
from bayesgmm.em.options import EMOptions
from bayesgmm.em.run import EMResult, run_em
from bayesgmm.em.steps import e_step, m_step

#: ``n_init="auto"`` takes :data:`AUTO_N_INIT_SMALL` starts and makes split-and-merge
#: moves (:func:`split_merge`) when the data's ``N K d`` is at most this. The search costs
#: a few hundred EM runs, about proportional to ``N K d``: 1-4 s at ``N K d ~ 3000``
#: (Old Faithful, K = 5, 6) on a shared 2-core machine, where 20 starts of the Python
#: loop took 2-7 s; beyond this budget it would be slower than those 20 starts.
SPLIT_MERGE_BUDGET = 5_000

#: Split-and-merge moves start from each of this many best distinct optima of the starts.
SPLIT_MERGE_FROM = 3

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
    (:func:`~bayesgmm.em.degenerate.degenerate_components`, maximum likelihood only) or
    fails does not count.
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


__all__ = [
    "MAX_SPLIT_MERGE_MOVES",
    "MAX_SPLIT_MERGE_ROUNDS",
    "SPLIT_MERGE_BUDGET",
    "SPLIT_MERGE_FROM",
    "SPLIT_MERGE_SCREEN_TOL",
    "split_merge",
    "split_merge_starts",
]
