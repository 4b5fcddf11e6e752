"""Posterior summaries of the clustering itself: which points belong together.

A mixture posterior gives, per draw ``s``, ``log w_k + log N(x_n | mu_k, Sigma_k)``.
From it this module draws allocations ``z`` (one partition of the ``N`` points per
draw), and summarises the posterior over partitions, where label switching plays no
part: every function below depends on a partition only through which points share a
cluster, never on the cluster numbers.

* :func:`similarity_matrix`: the posterior similarity matrix ``P(z_i = z_j | X)``.
* :func:`binder_loss`, :func:`expected_vi`, :func:`vi_lower_bound`: posterior expected
  losses of a candidate partition (Binder 1978; Meilă 2007; Wade & Ghahramani 2018).
* :func:`salso`: the partition that minimises the expected loss, by sequential
  allocation and sweetening (Dahl, Johnson & Müller 2022, JCGS 31, 1189-1201).
* :func:`credible_ball`: the ``ci_prob`` credible ball around a partition and its bounds
  (Wade & Ghahramani 2018, Bayesian Analysis 13, 559-626).
* :func:`summarize_partitions`: all of the above from ``log_joint``, as a
  :class:`PartitionSummary`; with a seeded subsample for ``N`` too large for ``N x N``.

Variation of information is ``VI(c, c') = H(c) + H(c') - 2 I(c, c')`` with the entropies
of the cluster-size proportions, in bits (``base=2``, as Wade & Ghahramani) unless
``base`` says otherwise. The Binder loss with equal costs counts the pairs ``i < j`` on
which two partitions disagree (together in one, apart in the other).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from bayesgmm.core.validation import check_positive_int
from bayesgmm.posterior.partition_losses import (
    Loss,
    _binder,
    _check_draws,
    _check_log_joint,
    _check_loss,
    _check_psm,
    _distances,
    _responsibilities,
    allocation_draws,
    binder_loss,
    canonical_labels,
    coclustering_certainty,
    expected_vi,
    partition_distances,
    similarity_matrix,
    vi_lower_bound,
)

_MAX_SWEEPS = 1000
_TOL = 1e-12


# ----------------------------------------------------------------------------- SALSO


@njit(cache=True)
def _grow(table: np.ndarray, sizes: np.ndarray, cost: np.ndarray):
    cap = 2 * len(sizes)
    new_table = np.zeros((cap, table.shape[1], table.shape[2]), table.dtype)
    new_table[: len(sizes)] = table
    new_sizes = np.zeros(cap, sizes.dtype)
    new_sizes[: len(sizes)] = sizes
    return new_table, new_sizes, np.empty(cap, cost.dtype)


@njit(cache=True)
def _costs(i, labels, sizes, n_slots, table, z_t, psm, vi, grow, cost):
    """Change in the objective from adding ``i`` to each slot (empty slots: 0)."""
    n_draws = z_t.shape[1]
    for k in range(n_slots):
        cost[k] = 0.0
    if vi:
        for k in range(n_slots):
            if sizes[k] == 0:
                continue
            acc = 0.0
            for s in range(n_draws):
                acc += grow[table[k, s, z_t[i, s]]]
            cost[k] = grow[sizes[k]] - 2.0 * acc / n_draws
    else:
        for j in range(len(labels)):
            if j != i and labels[j] >= 0:
                cost[labels[j]] += 1.0 - 2.0 * psm[i, j]


@njit(cache=True)
def _move(i, k, step, labels, sizes, table, z_t, vi):
    sizes[k] += step
    if vi:
        for s in range(z_t.shape[1]):
            table[k, s, z_t[i, s]] += step
    labels[i] = k if step > 0 else -1


@njit(cache=True)
def _best_slot(cost, sizes, n_slots, allow_new):
    """Cheapest non-empty slot, or an empty one (cost 0) if opening a cluster is cheaper."""
    best = -1
    best_cost = np.inf
    empty = -1
    for k in range(n_slots):
        if sizes[k] == 0:
            if empty < 0:
                empty = k
        elif cost[k] < best_cost:
            best = k
            best_cost = cost[k]
    if allow_new and (best < 0 or best_cost > _TOL):
        return empty if empty >= 0 else n_slots
    return best


@njit(cache=True)
def _salso_run(z_t, n_labels, psm, vi, max_clusters, rng):
    """One SALSO run: sequential allocation in a random order, then sweetening sweeps."""
    n, n_draws = z_t.shape
    grow = np.zeros(n + 1)  # (m + 1) log(m + 1) - m log m
    for m in range(1, n + 1):
        grow[m] = (m + 1) * np.log(m + 1) - m * np.log(m)
    cap = 8
    table = np.zeros((cap, n_draws if vi else 1, n_labels if vi else 1), np.int32)
    sizes = np.zeros(cap, np.int64)
    cost = np.empty(cap)
    labels = np.full(n, -1, np.int64)
    n_slots = 0
    n_clusters = 0
    for i in rng.permutation(n):
        _costs(i, labels, sizes, n_slots, table, z_t, psm, vi, grow, cost)
        k = _best_slot(cost, sizes, n_slots, n_clusters < max_clusters)
        if k == n_slots:
            if n_slots == len(sizes):
                table, sizes, cost = _grow(table, sizes, cost)
            n_slots += 1
        if sizes[k] == 0:
            n_clusters += 1
        _move(i, k, 1, labels, sizes, table, z_t, vi)
    for _ in range(_MAX_SWEEPS):
        changed = False
        for i in rng.permutation(n):
            a = labels[i]
            _move(i, a, -1, labels, sizes, table, z_t, vi)
            if sizes[a] == 0:
                n_clusters -= 1
            _costs(i, labels, sizes, n_slots, table, z_t, psm, vi, grow, cost)
            stay = cost[a] if sizes[a] > 0 else 0.0
            k = _best_slot(cost, sizes, n_slots, n_clusters < max_clusters)
            if k == n_slots:
                if n_slots == len(sizes):
                    table, sizes, cost = _grow(table, sizes, cost)
                n_slots += 1
            new_cost = cost[k] if sizes[k] > 0 else 0.0
            if k != a and not (sizes[a] == 0 and sizes[k] == 0) and new_cost < stay - _TOL:
                changed = True
            else:
                k = a
            if sizes[k] == 0:
                n_clusters += 1
            _move(i, k, 1, labels, sizes, table, z_t, vi)
        if not changed:
            break
    return labels


@dataclass(frozen=True, eq=False)
class SalsoResult:
    """Point estimate of the partition from :func:`salso`.

    Attributes
    ----------
    labels : ndarray of int, shape (n_samples,)
        Clusters ``0..C-1`` in order of first appearance.
    loss : {"vi", "binder"}
    loss_value : float
        Expected loss of ``labels`` (VI in bits; Binder as in :func:`binder_loss`).
    n_runs : int
    """

    labels: np.ndarray
    loss: str
    loss_value: float
    n_runs: int

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1

    def __str__(self) -> str:
        return (
            f"SalsoResult({self.n_clusters} clusters, expected {self.loss} "
            f"{self.loss_value:.4g}, best of {self.n_runs} runs)"
        )


def salso(
    z_draws: np.ndarray,
    loss: Loss = "vi",
    *,
    psm: np.ndarray | None = None,
    max_clusters: int | None = None,
    n_runs: int = 16,
    random_state: int | np.random.Generator | None = None,
) -> SalsoResult:
    """Partition minimising the posterior expected loss (SALSO, Dahl et al. 2022).

    Each run visits the points in a random order and puts each in the existing or new
    cluster that minimises the expected loss of the points placed so far (sequential
    allocation); then sweeps over the points in fresh random orders, moving single
    points to the best cluster, a new one included, until a sweep changes nothing
    (sweetening). The best of ``n_runs`` runs is returned. Both steps use incremental
    updates: for VI, per-draw contingency tables cluster x drawn label, so a point
    costs ``O(n_draws * C)``; for Binder, one row of the PSM, ``O(N)``.

    Parameters
    ----------
    z_draws : array-like of int, shape (n_draws, n_samples)
        Posterior draws of the allocations (any labels; relabelling within a draw does
        not change the result).
    loss : {"vi", "binder"}, default="vi"
    psm : ndarray of shape (n_samples, n_samples), optional
        Similarity matrix for the Binder loss; by default computed from ``z_draws``.
        Pass the one from responsibilities for lower Monte Carlo error.
    max_clusters : int, optional
        Most clusters the estimate may have (default: no limit).
    n_runs : int, default=16
    random_state : int, Generator or None

    Returns
    -------
    SalsoResult
    """
    _check_loss(loss)
    z = _check_draws(z_draws)
    n_samples = z.shape[1]
    n_runs = check_positive_int(n_runs, "n_runs")
    cap = n_samples if max_clusters is None else check_positive_int(max_clusters, "max_clusters")
    vi = loss == "vi"
    if vi:
        psm_arr = np.zeros((1, 1))
    else:
        psm_arr = similarity_matrix(z) if psm is None else _check_psm(psm)
        if psm_arr.shape != (n_samples, n_samples):
            raise ValueError(f"psm must have shape {(n_samples, n_samples)}, got {psm_arr.shape}")
    rng = np.random.default_rng(random_state)
    z_t = np.ascontiguousarray(z.T)
    n_labels = int(z.max()) + 1
    best_labels, best_value = None, np.inf
    for run_rng in rng.spawn(n_runs):
        labels = canonical_labels(_salso_run(z_t, n_labels, psm_arr, vi, cap, run_rng))
        if vi:
            value = _distances(labels, labels.max() + 1, z, n_labels, True).mean() / np.log(2)
        else:
            value = _binder(labels, psm_arr)
        if value < best_value - _TOL:
            best_labels, best_value = labels, value
    return SalsoResult(best_labels, loss, float(best_value), n_runs)


# ---------------------------------------------------------------------- credible ball


@dataclass(frozen=True, eq=False)
class CredibleBall:
    """Credible ball around a point estimate (Wade & Ghahramani 2018, section 3.2).

    The ball is ``{c : d(point, c) <= radius}``, with the smallest radius that holds
    posterior probability ``ci_prob``, estimated from the draws. Its bounds are drawn
    partitions inside the ball, each the farthest from ``point`` in its class (the
    first draw in draw order on ties):

    Attributes
    ----------
    ci_prob : float
    loss : {"vi", "binder"}
    radius : float
    horizontal : ndarray of shape (n_samples,)
        Farthest partition in the ball.
    upper_vertical : ndarray of shape (n_samples,)
        Farthest among the partitions in the ball with the fewest clusters.
    lower_vertical : ndarray of shape (n_samples,)
        Farthest among the partitions in the ball with the most clusters.
    distances : ndarray of shape (3,)
        Distance of the horizontal, upper-vertical and lower-vertical bound to ``point``.
    n_in_ball : int
        Draws inside the ball.
    n_draws : int
    """

    ci_prob: float
    loss: str
    radius: float
    horizontal: np.ndarray
    upper_vertical: np.ndarray
    lower_vertical: np.ndarray
    distances: np.ndarray
    n_in_ball: int
    n_draws: int

    def bounds_frame(self) -> pd.DataFrame:
        """One row per bound: its distance to the point estimate and its cluster count."""
        names = ["horizontal", "upper_vertical", "lower_vertical"]
        parts = [self.horizontal, self.upper_vertical, self.lower_vertical]
        return pd.DataFrame(
            {
                "distance": self.distances,
                "n_clusters": [int(p.max()) + 1 for p in parts],
            },
            index=pd.Index(names, name="bound"),
        )

    def __str__(self) -> str:
        frame = self.bounds_frame()
        bounds = ", ".join(
            f"{row.Index} {row.n_clusters} clusters at {row.distance:.3g}"
            for row in frame.itertuples()
        )
        return (
            f"CredibleBall({self.ci_prob:.0%}, {self.loss} radius {self.radius:.4g}, "
            f"{self.n_in_ball}/{self.n_draws} draws inside; {bounds})"
        )


def credible_ball(
    point: np.ndarray,
    z_draws: np.ndarray,
    ci_prob: float = 0.95,
    loss: Loss = "vi",
    *,
    base: float = 2.0,
) -> CredibleBall:
    """The ``ci_prob`` credible ball around ``point`` and its bounds (Wade & Ghahramani 2018).

    Parameters
    ----------
    point : array-like of int, shape (n_samples,)
        Centre, usually the :func:`salso` estimate.
    z_draws : array-like of int, shape (n_draws, n_samples)
    ci_prob : float in (0, 1], default=0.95
    loss : {"vi", "binder"}, default="vi"
        Distance between partitions (see :func:`partition_distances`).
    base : float, default=2
        Logarithm base of VI.

    Returns
    -------
    CredibleBall
        ``radius`` is the smallest ``eps`` with ``mean_s 1{d(point, z_s) <= eps} >= ci_prob``;
        with ``ci_prob=1`` it is the largest distance to a draw.
    """
    if not 0 < ci_prob <= 1:
        raise ValueError(f"ci_prob must be in (0, 1], got {ci_prob!r}")
    z = _check_draws(z_draws)
    d = partition_distances(point, z, loss, base=base)
    n_draws = len(d)
    ordered = np.sort(d)
    coverage = np.arange(1, n_draws + 1) / n_draws
    radius = float(ordered[np.searchsorted(coverage, ci_prob - 1e-12)])
    inside = np.flatnonzero(d <= radius)
    n_clusters = z.max(axis=1)[inside] + 1

    def farthest(candidates: np.ndarray) -> int:
        return int(candidates[np.argmax(d[candidates])])

    picks = [
        farthest(inside),
        farthest(inside[n_clusters == n_clusters.min()]),
        farthest(inside[n_clusters == n_clusters.max()]),
    ]
    return CredibleBall(
        ci_prob=float(ci_prob),
        loss=loss,
        radius=radius,
        horizontal=z[picks[0]].copy(),
        upper_vertical=z[picks[1]].copy(),
        lower_vertical=z[picks[2]].copy(),
        distances=d[picks],
        n_in_ball=len(inside),
        n_draws=n_draws,
    )


# -------------------------------------------------------------------------- summary


@dataclass(frozen=True, eq=False)
class PartitionSummary:
    """The posterior over partitions in one record.

    Attributes
    ----------
    partition : ndarray of int, shape (n_samples,)
        Point estimate, clusters ``0..C-1`` in order of first appearance.
    loss : {"vi", "binder"}
    loss_value : float
        Expected loss of ``partition`` over the allocation draws, all points (VI in bits).
    credible_ball : CredibleBall
    n_clusters : int
    certainty : ndarray of shape (n_samples,)
        Mean posterior similarity of each point with the other points of its cluster
        (``nan`` for a singleton); with a subsample, the mean over the subsampled
        points of its cluster.
    psm : ndarray of shape (n_sub, n_sub)
        Posterior similarity matrix (from responsibilities) of the points ``psm_index``.
    psm_index : ndarray of shape (n_sub,)
        Points covered by ``psm``: all of them, or the seeded subsample.
    """

    partition: np.ndarray
    loss: str
    loss_value: float
    credible_ball: CredibleBall
    n_clusters: int
    certainty: np.ndarray
    psm: np.ndarray
    psm_index: np.ndarray

    @property
    def subsampled(self) -> bool:
        return len(self.psm_index) < len(self.partition)

    def to_frame(self) -> pd.DataFrame:
        """One row per point: ``cluster`` and ``certainty``."""
        return pd.DataFrame(
            {"cluster": self.partition, "certainty": self.certainty},
            index=pd.RangeIndex(len(self.partition), name="obs"),
        )

    def cluster_frame(self) -> pd.DataFrame:
        """One row per cluster: ``size`` and mean ``certainty``."""
        frame = self.to_frame()
        return frame.groupby("cluster").agg(
            size=("certainty", "size"), certainty=("certainty", "mean")
        )

    def __str__(self) -> str:
        sizes = np.bincount(self.partition).tolist()
        sub = f", PSM on a subsample of {len(self.psm_index)}" if self.subsampled else ""
        return (
            f"PartitionSummary({self.n_clusters} clusters of sizes {sizes}, expected "
            f"{self.loss} {self.loss_value:.4g}, median certainty "
            f"{np.nanmedian(self.certainty):.3f}{sub})\n  {self.credible_ball}"
        )


def _extend_by_similarity(
    resp: np.ndarray, index: np.ndarray, labels: np.ndarray, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Assign every point to the subsample cluster of highest mean similarity, blockwise."""
    n_draws, n_samples, _ = resp.shape
    onehot = np.eye(labels.max() + 1)[labels]
    sizes = onehot.sum(axis=0)
    sub = resp[:, index].transpose(1, 0, 2).reshape(len(index), -1)
    partition = np.empty(n_samples, dtype=np.int64)
    certainty = np.empty(n_samples)
    for start in range(0, n_samples, block):
        rows = resp[:, start : start + block].transpose(1, 0, 2).reshape(-1, sub.shape[1])
        mean_sim = (rows @ sub.T / n_draws) @ onehot / sizes
        best = mean_sim.argmax(axis=1)
        partition[start : start + block] = best
        certainty[start : start + block] = mean_sim[np.arange(len(best)), best]
    return partition, certainty


def summarize_partitions(
    log_joint: np.ndarray,
    *,
    loss: Loss = "vi",
    ci_prob: float = 0.95,
    n_runs: int = 16,
    max_clusters: int | None = None,
    max_points: int = 2000,
    random_state: int | np.random.Generator | None = None,
) -> PartitionSummary:
    """Point estimate, credible ball and co-clustering certainty from posterior draws.

    Draws allocations from ``log_joint`` (:func:`allocation_draws`), computes the
    similarity matrix from the responsibilities (:func:`similarity_matrix`), finds the
    :func:`salso` estimate and its :func:`credible_ball`.

    When ``n_samples > max_points``, SALSO runs on a seeded subsample of ``max_points``
    points (drawn without replacement), so nothing ``N x N`` is formed; every other point
    joins the subsample cluster with the highest mean similarity to it, computed in
    blocks of ``max_points`` rows (memory ``O(max_points^2)``, time
    ``O(N max_points n_draws K)``; N = 20000, 300 draws, K = 5 takes about 7 s). The
    loss value and the credible ball are then evaluated on all points, from the draws.
    The similarity matrix is ``O(max_points^2)`` in memory; at the default 2000 that is
    32 MB.

    Parameters
    ----------
    log_joint : ndarray of shape (n_draws, n_samples, n_components)
        ``log w_k + log N(x_n | mu_k, Sigma_k)`` per posterior draw.
    loss : {"vi", "binder"}, default="vi"
    ci_prob : float, default=0.95
        Credible-ball probability.
    n_runs : int, default=16
        SALSO runs.
    max_clusters : int, optional
    max_points : int, default=2000
        Largest number of points summarised exactly.
    random_state : int, Generator or None

    Returns
    -------
    PartitionSummary
    """
    _check_loss(loss)
    log_joint = _check_log_joint(log_joint)
    max_points = check_positive_int(max_points, "max_points", minimum=2)
    rng = np.random.default_rng(random_state)
    n_samples = log_joint.shape[1]
    z = allocation_draws(log_joint, rng)
    resp = _responsibilities(log_joint)
    if n_samples > max_points:
        index = np.sort(rng.choice(n_samples, size=max_points, replace=False))
    else:
        index = np.arange(n_samples)
    psm = similarity_matrix(resp[:, index])
    estimate = salso(
        z[:, index], loss, psm=psm, max_clusters=max_clusters, n_runs=n_runs, random_state=rng
    )
    if len(index) < n_samples:
        partition, certainty = _extend_by_similarity(resp, index, estimate.labels, max_points)
        sub_certainty = coclustering_certainty(estimate.labels, psm)
        partition[index] = estimate.labels
        certainty[index] = sub_certainty
        partition = canonical_labels(partition)
    else:
        partition = estimate.labels
        certainty = coclustering_certainty(partition, psm)
    distances = partition_distances(partition, z, loss)
    return PartitionSummary(
        partition=partition,
        loss=loss,
        loss_value=float(distances.mean()),
        credible_ball=credible_ball(partition, z, ci_prob, loss),
        n_clusters=int(partition.max()) + 1,
        certainty=certainty,
        psm=psm,
        psm_index=index,
    )


__all__ = [
    "CredibleBall",
    "PartitionSummary",
    "SalsoResult",
    "allocation_draws",
    "binder_loss",
    "canonical_labels",
    "coclustering_certainty",
    "credible_ball",
    "expected_vi",
    "partition_distances",
    "salso",
    "similarity_matrix",
    "summarize_partitions",
    "vi_lower_bound",
]
