"""Rank-normalised split R-hat of many columns at once (Vehtari et al. 2021).

:func:`rank_split_rhat` computes, for every column of a stack of draws, the same number as
``arviz_stats``' rank-normalised R-hat (``array_stats.rhat(..., method="rank")``): split each
chain in halves, rank all draws together (average ranks for ties), back-transform the ranks
to normal scores (Blom's offset 3/8), take the classic R-hat of the scores and of the scores
of the draws folded about their median, and keep the larger. arviz-stats loops over the
columns in Python (a rank, a normal quantile and two R-hats per column: 10 s for the 990
parameters of a d=30, K=2 posterior in :func:`bayesgmm.posterior.modes.drifting_chains`);
here the columns are ranked and reduced along one axis. Columns holding a non-finite value
are handed to arviz-stats one by one, so every column gives arviz-stats' number.
"""

from __future__ import annotations

import numpy as np
from arviz_stats.base import array_stats
from scipy import special

#: Blom's fractional offset of the rank back-transformation (arviz-stats' default).
BLOM_OFFSET = 3 / 8
#: Fewest draws per chain (before splitting) that R-hat is computed on (arviz-stats' limit).
MIN_DRAWS = 4


def rank_split_rhat(values: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat of every column, arviz-stats' number.

    Parameters
    ----------
    values : ndarray of shape (..., n_chains, n_draws, n_columns)
        Leading dimensions are independent sets of chains.

    Returns
    -------
    ndarray of shape (..., n_columns)
        NaN for a column that does not vary (0/0), holds a NaN, or when there are fewer
        than 2 chains or :data:`MIN_DRAWS` draws.
    """
    values = np.asarray(values, dtype=float)
    *lead, n_chains, n_draws, n_columns = values.shape
    # (..., n_columns, n_chains, n_draws): a column's chains are contiguous rows, reduced
    # along the last axis as arviz-stats reduces each column's (chain, draw) array
    by_column = np.moveaxis(values, -1, -3)
    out = np.full((*lead, n_columns), np.nan)
    if n_chains < 2 or n_draws < MIN_DRAWS or n_columns == 0:
        return out
    finite = np.isfinite(by_column).all(axis=(-2, -1))
    half = n_draws // 2
    split = np.concatenate([by_column[..., :half], by_column[..., n_draws - half :]], axis=-2)
    flat = split.reshape(*split.shape[:-2], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        bulk = _rhat(_z_scale(flat).reshape(split.shape))
        folded = np.abs(flat - np.median(flat, axis=-1, keepdims=True))
        tail = _rhat(_z_scale(folded).reshape(split.shape))
    # Python's max(bulk, tail), as arviz-stats takes it (NaN bulk stays NaN)
    out[...] = np.where(tail > bulk, tail, bulk)
    for index in zip(*np.nonzero(~finite), strict=True):
        column = by_column[index]
        if np.isnan(column).any():
            out[index] = np.nan
        else:  # infinite entries: arviz-stats' own handling
            with np.errstate(invalid="ignore", divide="ignore"):
                out[index] = float(array_stats.rhat(column, method="rank"))
    return out


def _z_scale(flat: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks along the last axis (all of a column's split chains).

    ``special.ndtri`` is what ``stats.norm.ppf`` evaluates, without its argument checks.
    """
    size = flat.shape[-1]
    return special.ndtri((average_ranks(flat) - BLOM_OFFSET) / (size - 2 * BLOM_OFFSET + 1))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties given their average rank.

    ``scipy.stats.rankdata(values, method="average", axis=-1)`` for values without NaN
    (the same numbers: half-integers), from one sort per row; only rows with ties pay for
    the averaging.
    """
    n = values.shape[-1]
    flat = values.reshape(-1, n)
    order = np.argsort(flat, axis=-1)
    ordered = np.take_along_axis(flat, order, axis=-1)
    rank_of_sorted = np.tile(np.arange(1.0, n + 1.0), (flat.shape[0], 1))
    tied = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    if tied.size:
        rank_of_sorted[tied] = _tied_ranks(ordered[tied])
    ranks = np.empty(flat.shape)
    ranks[np.arange(flat.shape[0])[:, None], order] = rank_of_sorted
    return ranks.reshape(values.shape)


def _tied_ranks(ordered: np.ndarray) -> np.ndarray:
    """Average ranks of rows already sorted: each run of equal values gets the mean of the
    positions (1-based) it spans."""
    n = ordered.shape[-1]
    position = np.broadcast_to(np.arange(n), ordered.shape)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=-1)[:, ::-1]
    return (first + last) / 2 + 1


def _rhat(z: np.ndarray) -> np.ndarray:
    """Classic R-hat of shape (...,) from scores of shape (..., n_chains, n_draws)."""
    n_draws = z.shape[-1]
    chain_mean = np.mean(z, axis=-1)
    chain_var = np.var(z, axis=-1, ddof=1)
    between = n_draws * np.var(chain_mean, axis=-1, ddof=1)
    within = np.mean(chain_var, axis=-1)
    return np.sqrt((between / within + n_draws - 1) / n_draws)


__all__ = ["BLOM_OFFSET", "MIN_DRAWS", "average_ranks", "rank_split_rhat"]
