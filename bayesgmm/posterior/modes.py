"""Chains grouped by the posterior mode they sit in, drifting chains, empty components.

Chains that sit in different modes of the posterior (:func:`chain_modes`) are named:
chains whose means of the log posterior density (``sample_stats.lp``) and of every
(relabelled) parameter lie within ``MODE_SEPARATION`` within-chain standard deviations
of each other share a mode (single linkage); each mode carries the stacking weight of
its chains (:mod:`bayesgmm.posterior.stacking`). :func:`drifting_chains` finds the chains
that move between configurations instead (see :mod:`bayesgmm.posterior.diagnostics`).
Pure NumPy/arviz-stats maths on arrays of draws; the record and its sentences live in
:mod:`bayesgmm.posterior.diagnostics` and :mod:`bayesgmm.posterior.messages`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import xarray as xr

from bayesgmm.posterior.rhat import rank_split_rhat

#: R-hat above which chains probably sit in different modes (fewer components may help).
MULTIMODAL_RHAT = 1.1
#: Two chains share a mode when the means of the log density and of every parameter
#: differ by at most this many within-chain standard deviations.
MODE_SEPARATION = 2.0
#: Names of the model's log density in ``sample_stats`` (PyMC's sampler, nutpie).
LOG_DENSITY_STATS: tuple[str, ...] = ("lp", "logp")
#: A chain with a component empty in at least this fraction of its draws is reported.
SOMETIMES_EMPTY_FRACTION = 0.01


@dataclass(frozen=True)
class Mode:
    """A group of chains that sit in the same mode of the posterior.

    Attributes
    ----------
    name : str
        ``"A"``, ``"B"``, ... in decreasing mean log posterior density.
    chains : tuple of int
    mean_log_density : float
        Mean over the group's draws of the model's log density (NaN if not stored).
    weight : float
        Stacking weight of the group's chains (NaN if not computed).
    """

    name: str
    chains: tuple[int, ...]
    mean_log_density: float
    weight: float = float("nan")

    def describe(self) -> str:
        chains = ",".join(str(c) for c in self.chains)
        noun = "chain" if len(self.chains) == 1 else "chains"
        density = (
            f" (mean sampler log density {self.mean_log_density:.1f})"
            if np.isfinite(self.mean_log_density)
            else ""
        )
        return f"{noun} {chains} in mode {self.name}{density}"


def empty_draw_fractions(counts: np.ndarray, min_count: float = 1.0) -> tuple[float, ...]:
    """Per chain, the fraction of draws in which some component holds < ``min_count``.

    Label-invariant (the smallest ``N_k`` of each draw), so it does not depend on the
    relabelling.

    Parameters
    ----------
    counts : ndarray of shape (n_chains, n_draws, n_components)
        Posterior draws of ``N_k = sum_n gamma_nk``.
    min_count : float

    Returns
    -------
    tuple of float, one per chain
    """
    counts = np.asarray(counts, dtype=float)
    return tuple(float(f) for f in (counts.min(axis=-1) < min_count).mean(axis=1))


def empty_components(counts: np.ndarray, min_count: float = 1.0) -> tuple[int, ...]:
    """Components that are more likely than not to hold fewer than ``min_count`` samples.

    Parameters
    ----------
    counts : ndarray of shape (n_draws, n_components)
        Posterior draws of ``N_k = sum_n gamma_nk``.
    min_count : float

    Returns
    -------
    tuple of int
        Indices ``k`` with ``P(N_k < min_count | X) > 0.5``.
    """
    counts = np.asarray(counts, dtype=float)
    return tuple(int(k) for k in np.flatnonzero((counts < min_count).mean(axis=0) > 0.5))


def chain_modes(
    log_density: np.ndarray | None,
    params: np.ndarray,
    *,
    chain_weights: np.ndarray | None = None,
    separation: float = MODE_SEPARATION,
) -> tuple[Mode, ...]:
    """Group chains by the posterior mode they sit in.

    Chains ``i`` and ``j`` are linked when, for the log density and for every parameter,
    ``|mean_i - mean_j| <= separation * sqrt((var_i + var_j) / 2)`` (within-chain means
    and variances); modes are the connected groups (single linkage), named ``A``, ``B``,
    ... in decreasing mean log density (else by their first chain).

    Parameters
    ----------
    log_density : ndarray of shape (n_chains, n_draws) or None
        The model's log density of every draw (``sample_stats.lp``).
    params : ndarray of shape (n_chains, n_draws, n_params)
        Relabelled parameters; entries constant within every chain are ignored.
    chain_weights : ndarray of shape (n_chains,), optional
        Stacking weights; a mode's weight is the sum over its chains.
    separation : float

    Returns
    -------
    tuple of Mode
    """
    values = _chain_values(log_density, params)
    n_chains = values.shape[0]
    parent = _linked_groups(values, separation)
    groups: dict[int, list[int]] = {}
    for c in range(n_chains):
        groups.setdefault(parent[c], []).append(c)
    chains = list(groups.values())
    if log_density is not None:
        lp = np.asarray(log_density, dtype=float)
        density = [float(lp[g].mean()) for g in chains]
    else:
        density = [float("nan")] * len(chains)
    order = sorted(range(len(chains)), key=lambda g: (-np.nan_to_num(density[g]), chains[g][0]))
    weights = None if chain_weights is None else np.asarray(chain_weights, dtype=float)
    return tuple(
        Mode(
            name=_mode_name(rank),
            chains=tuple(chains[g]),
            mean_log_density=density[g],
            weight=float("nan") if weights is None else float(weights[chains[g]].sum()),
        )
        for rank, g in enumerate(order)
    )


def _chain_values(log_density: np.ndarray | None, params: np.ndarray) -> np.ndarray:
    """The log density (if any) and the parameters as shape (n_chains, n_draws, n_columns)."""
    columns = [np.asarray(params, dtype=float)]
    if log_density is not None:
        columns.insert(0, np.asarray(log_density, dtype=float)[:, :, None])
    return np.concatenate(columns, axis=2)


def _linked_groups(values: np.ndarray, separation: float) -> list[int]:
    """Group label of every chain: single linkage of chains whose means are close.

    Chains ``i`` and ``j`` are linked when every column satisfies ``|mean_i - mean_j| <=
    separation * sqrt((var_i + var_j) / 2)``; returns, for each chain, the smallest chain
    index of its connected group.
    """
    n_chains = values.shape[0]
    means = values.mean(axis=1)
    variances = values.var(axis=1, ddof=1)
    parent = list(range(n_chains))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(n_chains):
        for j in range(i + 1, n_chains):
            scale = np.sqrt((variances[i] + variances[j]) / 2)
            gap = np.abs(means[i] - means[j])
            with np.errstate(invalid="ignore", divide="ignore"):
                far = np.where(scale > 0, gap > separation * scale, gap > 0)
            if not far.any():
                a, b = sorted((root(i), root(j)))
                parent[b] = a
    return [root(c) for c in range(n_chains)]


def split_rhat(values: np.ndarray) -> float:
    """Largest rank-normalised split R-hat over the columns of some chains' draws.

    Parameters
    ----------
    values : ndarray of shape (n_chains, n_draws, n_columns)
        One chain is split into its two halves first (R-hat needs two chains).

    Returns
    -------
    float
        NaN when no column varies.
    """
    values = np.asarray(values, dtype=float)
    if values.shape[0] == 1:
        values = _halves(values)[0]
    return _worst(rank_split_rhat(values))


def _halves(values: np.ndarray) -> np.ndarray:
    """Each chain's first and second halves as two chains: shape (n_chains, 2, half, n_columns)
    from (n_chains, n_draws, n_columns) (the middle draw of an odd length left out)."""
    half = values.shape[1] // 2
    return np.stack([values[:, :half], values[:, half : 2 * half]], axis=1)


def _worst(rhat: np.ndarray) -> float:
    """The largest R-hat over columns; NaN when none is finite (no column varies)."""
    return float(np.nanmax(rhat)) if np.isfinite(rhat).any() else float("nan")


def drifting_chains(
    log_density: np.ndarray | None,
    params: np.ndarray,
    modes: tuple[Mode, ...],
    *,
    threshold: float = MULTIMODAL_RHAT,
    separation: float = MODE_SEPARATION,
) -> tuple[int, ...]:
    """Chains that do not stay in one mode but drift between configurations.

    :func:`chain_modes` compares whole-chain means, so chains that move between two
    configurations at different times have means in between and wide spreads, and are
    linked into one "mode". A chain drifts when

    * its first and second halves fall into different groups when the half-chains are
      grouped like chains (:func:`chain_modes`' rule), or
    * its own halves disagree, or the chains of its mode disagree: the largest
      rank-normalised split R-hat of the log density and of every parameter, over the
      chain's halves or over the mode's chains, exceeds ``threshold``.

    Parameters
    ----------
    log_density : ndarray of shape (n_chains, n_draws) or None
    params : ndarray of shape (n_chains, n_draws, n_params)
    modes : tuple of Mode
        The grouping of :func:`chain_modes`.
    threshold : float
        R-hat within a mode above which its chains drift.
    separation : float

    Returns
    -------
    tuple of int
        The drifting chains, in increasing order (empty when every chain stays in its mode).

    Notes
    -----
    The answer is kept for the same draws, modes and settings (:data:`DRIFT_CACHE_SIZE`
    answers, keyed on a digest of the draws): a fit asks once when it combines its chains
    and again when it is diagnosed.
    """
    values = np.ascontiguousarray(_chain_values(log_density, params))
    key = _drift_key(values, modes, threshold, separation)
    with _DRIFT_LOCK:
        found = _DRIFT_CACHE.get(key)
    if found is None:
        found = _find_drifting(values, modes, threshold, separation)
        with _DRIFT_LOCK:
            _DRIFT_CACHE[key] = found
            while len(_DRIFT_CACHE) > DRIFT_CACHE_SIZE:
                _DRIFT_CACHE.popitem(last=False)
    return found


#: Results of :func:`drifting_chains` kept, keyed on a digest of the draws and settings: a
#: fit combines its chains (:func:`bayesgmm.bayes.postprocess.combine_chains`) and is then
#: diagnosed (:func:`bayesgmm.posterior.diagnostics.diagnose`) on the same draws.
DRIFT_CACHE_SIZE = 16
_DRIFT_CACHE: OrderedDict[bytes, tuple[int, ...]] = OrderedDict()
_DRIFT_LOCK = threading.Lock()


def clear_drift_cache() -> None:
    """Forget the results :func:`drifting_chains` kept (the next call computes afresh)."""
    with _DRIFT_LOCK:
        _DRIFT_CACHE.clear()


def _drift_key(
    values: np.ndarray, modes: tuple[Mode, ...], threshold: float, separation: float
) -> bytes:
    """A digest of the draws (shape, bytes), the modes' chains and the two settings."""
    digest = hashlib.blake2b(digest_size=20)
    settings = (values.shape, str(values.dtype), [m.chains for m in modes], threshold, separation)
    digest.update(repr(settings).encode())
    digest.update(memoryview(values).cast("B"))
    return digest.digest()


def _find_drifting(
    values: np.ndarray, modes: tuple[Mode, ...], threshold: float, separation: float
) -> tuple[int, ...]:
    """:func:`drifting_chains` on ``values`` of shape (n_chains, n_draws, n_columns)."""
    n_chains, n_draws = values.shape[:2]
    half = n_draws // 2
    drifting: set[int] = set()
    if half >= 2:
        halves = np.concatenate([values[:, :half], values[:, half : 2 * half]], axis=0)
        group = _linked_groups(halves, separation)
        drifting.update(c for c in range(n_chains) if group[c] != group[c + n_chains])
    # every chain's own halves at once: shape (n_chains, n_columns)
    own = [_worst(rhat) for rhat in rank_split_rhat(_halves(values))]
    drifting.update(c for c in range(n_chains) if own[c] > threshold)
    for mode in modes:
        chains = list(mode.chains)
        worst = own[chains[0]] if len(chains) == 1 else split_rhat(values[chains])
        if worst > threshold:
            drifting.update(mode.chains)
    return tuple(sorted(drifting))


def stacking_groups(modes: tuple[Mode, ...], drifting: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The units that stacking weighs: each mode's chains together, a drifting chain alone.

    Chains that share a stable mode are pooled (stacking them one by one would give
    arbitrary weights among equals); a chain that drifts between configurations covers
    its own mixture of them, so it is weighed on its own (Yao, Vehtari and Gelman 2022
    stack single chains).
    """
    groups: list[tuple[int, ...]] = []
    for mode in modes:
        stable = tuple(c for c in mode.chains if c not in drifting)
        if stable:
            groups.append(stable)
        groups.extend((c,) for c in mode.chains if c in drifting)
    return sorted(groups)


def _mode_name(rank: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[rank] if rank < len(letters) else f"M{rank}"


def log_density_draws(idata: xr.DataTree) -> np.ndarray | None:
    """The log density of every draw, shape (n_chains, n_draws), if the sampler stored it."""
    if "sample_stats" not in idata.children:
        return None
    stats = idata["sample_stats"].to_dataset()
    for name in LOG_DENSITY_STATS:
        if name in stats:
            return stats[name].transpose("chain", "draw").values.astype(float)
    return None


def parameter_matrix(posterior: xr.Dataset, var_names: tuple[str, ...]) -> np.ndarray:
    """Posterior variables flattened to shape (n_chains, n_draws, n_params)."""
    blocks = []
    for name in var_names:
        var = posterior[name]
        rest = [d for d in var.dims if d not in ("chain", "draw")]
        values = var.transpose("chain", "draw", *rest).values
        blocks.append(values.reshape(values.shape[0], values.shape[1], -1))
    return np.concatenate(blocks, axis=2)


def chain_stacking_weights(
    idata: xr.DataTree, groups: list[tuple[int, ...]] | None = None
) -> np.ndarray | None:
    """Stacking weights of the chains from the pointwise log-likelihood (None without it).

    ``groups`` (chains that share a mode, e.g. from :func:`chain_modes`) are stacked as
    units (:func:`bayesgmm.posterior.stacking.mode_stacking_weights`); by default every chain is
    its own group.
    """
    stacking = chain_stacking(idata, groups)
    return None if stacking is None else stacking.stacked


def chain_stacking(idata: xr.DataTree, groups: list[tuple[int, ...]] | None = None):
    """:func:`~bayesgmm.posterior.stacking.stack_chains` on the pointwise log-likelihood (or None).

    Returns
    -------
    ChainStacking or None
        The stacking weights of ``groups`` (default: every chain alone), their gain over
        pooling and whether it is significant; None without a pointwise log-likelihood or
        with fewer draws per chain than a PSIS-LOO estimate takes
        (:data:`~bayesgmm.posterior.stacking.PSIS_MIN_DRAWS`).
    """
    from bayesgmm.posterior.stacking import PSIS_MIN_DRAWS, stack_chains

    if "log_likelihood" not in idata.children or idata.posterior.sizes["draw"] < PSIS_MIN_DRAWS:
        return None
    log_lik = idata["log_likelihood"].to_dataset()
    (name, *_) = log_lik.data_vars
    var = log_lik[name]
    rest = [d for d in var.dims if d not in ("chain", "draw")]
    values = var.transpose("chain", "draw", *rest).values
    values = values.reshape(values.shape[0], values.shape[1], -1)
    if groups is None:
        groups = [(c,) for c in range(values.shape[0])]
    return stack_chains(values, groups)


__all__ = [
    "LOG_DENSITY_STATS",
    "MODE_SEPARATION",
    "MULTIMODAL_RHAT",
    "SOMETIMES_EMPTY_FRACTION",
    "Mode",
    "chain_modes",
    "chain_stacking",
    "chain_stacking_weights",
    "clear_drift_cache",
    "drifting_chains",
    "empty_components",
    "empty_draw_fractions",
    "log_density_draws",
    "parameter_matrix",
    "split_rhat",
    "stacking_groups",
]
