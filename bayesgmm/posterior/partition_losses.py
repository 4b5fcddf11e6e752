"""Partitions of the points drawn from a mixture posterior, their similarity and losses.

The pieces that :func:`bayesgmm.posterior.partitions.salso` and
:func:`~bayesgmm.posterior.partitions.summarize_partitions` build on (moved whole out of
:mod:`bayesgmm.posterior.partitions`, which re-exports every public name):
canonical labels, allocation draws from ``log_joint``, the posterior similarity matrix
and co-clustering certainty, and the distances and expected losses between partitions
(variation of information, Binder, the VI lower bound).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numba import njit

from bayesgmm.core.validation import check_positive_int

Loss = Literal["vi", "binder"]
_LOSSES = ("vi", "binder")


# --------------------------------------------------------------------------- labels


@njit(cache=True)
def _first_appearance(z: np.ndarray, n_values: int) -> np.ndarray:
    """Relabel each row of ``z`` (values in 0..n_values-1) by order of first appearance."""
    n_rows, n = z.shape
    out = np.empty((n_rows, n), np.int32)
    code = np.full(n_values, -1, np.int64)
    for s in range(n_rows):
        nxt = 0
        for i in range(n):
            v = z[s, i]
            if code[v] < 0:
                code[v] = nxt
                nxt += 1
            out[s, i] = code[v]
        for i in range(n):
            code[z[s, i]] = -1
    return out


def canonical_labels(z: np.ndarray) -> np.ndarray:
    """Relabel partitions to ``0..C-1`` in order of first appearance.

    Two labellings of the same partition give the same result, so this is the
    representative of a partition modulo label switching.

    Parameters
    ----------
    z : array-like of int, shape (n_samples,) or (n_draws, n_samples)
        One partition, or one partition per row.

    Returns
    -------
    ndarray of int32, same shape as ``z``
    """
    z = np.asarray(z)
    if z.ndim not in (1, 2) or z.size == 0:
        raise ValueError(
            f"expected a non-empty partition of shape (n_samples,) or (n_draws, n_samples), "
            f"got shape {z.shape}"
        )
    if not np.issubdtype(z.dtype, np.integer):
        if not np.all(np.equal(np.mod(z, 1), 0)):
            raise ValueError("cluster labels must be integers")
        z = z.astype(np.int64)
    rows = np.atleast_2d(z)
    low, high = rows.min(), rows.max()
    if low >= 0 and high <= rows.size:
        out = _first_appearance(rows.astype(np.int64, copy=False), int(high) + 1)
    else:
        values, inverse = np.unique(rows, return_inverse=True)
        out = _first_appearance(inverse.reshape(rows.shape).astype(np.int64), len(values))
    return out[0] if z.ndim == 1 else out


def _check_draws(z_draws: np.ndarray) -> np.ndarray:
    z_draws = np.asarray(z_draws)
    if z_draws.ndim != 2:
        raise ValueError(
            f"z_draws must have shape (n_draws, n_samples), got shape {z_draws.shape}; "
            "for a single partition pass z[None, :]"
        )
    return canonical_labels(z_draws)


def _check_partition(partition: np.ndarray, n_samples: int) -> np.ndarray:
    partition = np.asarray(partition)
    if partition.ndim != 1 or len(partition) != n_samples:
        raise ValueError(
            f"partition must have shape ({n_samples},) to match the draws or the similarity "
            f"matrix, got shape {partition.shape}"
        )
    return canonical_labels(partition)


def _check_psm(psm: np.ndarray) -> np.ndarray:
    psm = np.asarray(psm, dtype=np.float64)
    if psm.ndim != 2 or psm.shape[0] != psm.shape[1]:
        raise ValueError(f"psm must be a square (n_samples, n_samples) matrix, got {psm.shape}")
    if not np.all(np.isfinite(psm)) or psm.min() < -1e-9 or psm.max() > 1 + 1e-9:
        raise ValueError("psm entries must be probabilities in [0, 1]")
    return psm


def _check_loss(loss: str) -> None:
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")


def _responsibilities(log_joint: np.ndarray) -> np.ndarray:
    top = log_joint.max(axis=-1, keepdims=True)
    if not np.all(np.isfinite(top)):
        raise ValueError(
            "log_joint has a row where every component is -inf or some entry is nan: "
            "each point needs a finite log density under at least one component"
        )
    resp = np.exp(log_joint - top)
    resp /= resp.sum(axis=-1, keepdims=True)
    return resp


def _check_log_joint(log_joint: np.ndarray) -> np.ndarray:
    log_joint = np.asarray(log_joint, dtype=np.float64)
    if log_joint.ndim != 3:
        raise ValueError(
            f"log_joint must have shape (n_draws, n_samples, n_components), got {log_joint.shape}"
        )
    return log_joint


# ---------------------------------------------------------------------- allocations


def allocation_draws(
    log_joint: np.ndarray, rng: np.random.Generator, *, chunk_draws: int = 256
) -> np.ndarray:
    """Draw one allocation per posterior draw from the per-draw responsibilities.

    ``z_sn ~ Categorical(softmax_k(log_joint[s, n, :]))`` independently over ``n``: the
    conditional posterior of the labels given the parameters of draw ``s``.

    Parameters
    ----------
    log_joint : ndarray of shape (n_draws, n_samples, n_components)
        ``log w_k + log N(x_n | mu_k, Sigma_k)`` per posterior draw.
    rng : numpy Generator
        Source of the uniforms (seeded by the caller).
    chunk_draws : int, default=256
        Draws converted to responsibilities at a time (bounds the memory).

    Returns
    -------
    ndarray of int64, shape (n_draws, n_samples)
        Component index of each point in each draw. Component numbers carry no meaning
        across draws; the summaries below never use them.
    """
    log_joint = _check_log_joint(log_joint)
    chunk_draws = check_positive_int(chunk_draws, "chunk_draws")
    n_draws, n_samples, k = log_joint.shape
    z = np.empty((n_draws, n_samples), dtype=np.int64)
    for start in range(0, n_draws, chunk_draws):
        block = slice(start, start + chunk_draws)
        cdf = np.cumsum(_responsibilities(log_joint[block]), axis=-1)
        u = rng.random(cdf.shape[:2])[..., None] * cdf[..., -1:]
        z[block] = np.minimum((cdf <= u).sum(axis=-1), k - 1)
    return z


# ------------------------------------------------------------------------ similarity


@njit(cache=True)
def _coclustering(z_t: np.ndarray) -> np.ndarray:
    n, s_count = z_t.shape
    out = np.empty((n, n))
    for i in range(n):
        out[i, i] = 1.0
        for j in range(i + 1, n):
            same = 0
            for s in range(s_count):
                if z_t[i, s] == z_t[j, s]:
                    same += 1
            out[i, j] = same / s_count
            out[j, i] = out[i, j]
    return out


def similarity_matrix(draws: np.ndarray) -> np.ndarray:
    """Posterior similarity matrix ``P(z_i = z_j | X)``.

    Parameters
    ----------
    draws : ndarray
        Either allocations of shape (n_draws, n_samples) (integers, e.g. from
        :func:`allocation_draws`): the fraction of draws in which ``i`` and ``j`` share a
        cluster; or responsibilities of shape (n_draws, n_samples, n_components) (rows
        summing to one): ``mean_s sum_k r_sik r_sjk``, the same expectation with the
        labels summed out (Rao-Blackwellised, so lower Monte Carlo error), valid because
        ``z_i`` and ``z_j`` are independent given the parameters of a draw.

    Returns
    -------
    ndarray of shape (n_samples, n_samples)
        Symmetric, unit diagonal, entries in [0, 1]; unchanged by relabelling
        components within any draw.
    """
    draws = np.asarray(draws)
    if draws.ndim == 2:
        z = _check_draws(draws)
        return _coclustering(np.ascontiguousarray(z.T))
    if draws.ndim == 3:
        resp = np.asarray(draws, dtype=np.float64)
        if not np.allclose(resp.sum(axis=-1), 1.0, atol=1e-6) or resp.min() < 0:
            raise ValueError(
                "3-D input is read as responsibilities (n_draws, n_samples, n_components) "
                "with rows summing to one; for log densities call "
                "similarity_matrix(softmax(log_joint, axis=-1)) or summarize_partitions"
            )
        n_draws, n_samples, _ = resp.shape
        flat = resp.transpose(1, 0, 2).reshape(n_samples, -1)
        psm = np.clip(flat @ flat.T / n_draws, 0.0, 1.0)
        np.fill_diagonal(psm, 1.0)
        return psm
    raise ValueError(
        f"draws must be allocations (n_draws, n_samples) or responsibilities "
        f"(n_draws, n_samples, n_components), got shape {draws.shape}"
    )


def coclustering_certainty(partition: np.ndarray, psm: np.ndarray) -> np.ndarray:
    """Mean posterior similarity of each point with the other points of its cluster.

    Parameters
    ----------
    partition : array-like of int, shape (n_samples,)
    psm : ndarray of shape (n_samples, n_samples)

    Returns
    -------
    ndarray of shape (n_samples,)
        ``mean_{j != i, c_j = c_i} psm[i, j]``; ``nan`` for a point alone in its cluster.
    """
    psm = _check_psm(psm)
    labels = _check_partition(partition, len(psm))
    onehot = np.eye(labels.max() + 1)[labels]
    within = (psm @ onehot)[np.arange(len(labels)), labels] - np.diag(psm)
    others = onehot.sum(axis=0)[labels] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(others > 0, within / others, np.nan)


# ---------------------------------------------------------------------------- losses


@njit(cache=True)
def _distances(c: np.ndarray, n_c: int, z: np.ndarray, n_z: int, vi: bool) -> np.ndarray:
    """VI (natural log) or Binder distance between ``c`` and every row of ``z``."""
    n_draws, n = z.shape
    sizes_c = np.zeros(n_c, np.int64)
    for i in range(n):
        sizes_c[c[i]] += 1
    joint = np.zeros(n_c * n_z, np.int64)
    touched = np.empty(n, np.int64)
    sizes_z = np.zeros(n_z, np.int64)
    out = np.empty(n_draws)
    for s in range(n_draws):
        n_touched = 0
        for i in range(n):
            cell = c[i] * n_z + z[s, i]
            if joint[cell] == 0:
                touched[n_touched] = cell
                n_touched += 1
            joint[cell] += 1
            sizes_z[z[s, i]] += 1
        total = 0.0
        for t in range(n_touched):
            cell = touched[t]
            m = joint[cell]
            a = sizes_c[cell // n_z]
            b = sizes_z[cell % n_z]
            if vi:
                total += m * (np.log(a) + np.log(b) - 2.0 * np.log(m))
            else:
                total -= m * (m - 1.0)
            joint[cell] = 0
        if vi:
            out[s] = max(total / n, 0.0)
        else:
            for k in range(n_c):
                total += 0.5 * sizes_c[k] * (sizes_c[k] - 1.0)
            for k in range(n_z):
                total += 0.5 * sizes_z[k] * (sizes_z[k] - 1.0)
            out[s] = total
        sizes_z[:] = 0
    return out


def partition_distances(
    partition: np.ndarray, z_draws: np.ndarray, loss: Loss = "vi", *, base: float = 2.0
) -> np.ndarray:
    """Distance from ``partition`` to each drawn partition, from contingency tables.

    Parameters
    ----------
    partition : array-like of int, shape (n_samples,)
    z_draws : array-like of int, shape (n_draws, n_samples)
    loss : {"vi", "binder"}
        ``"vi"``: variation of information ``sum_kl n_kl (log n_k + log m_l - 2 log n_kl)
        / N`` in log base ``base``; ``"binder"``: number of pairs ``i < j`` together in
        one partition and apart in the other.
    base : float, default=2
        Logarithm base of VI (2: bits; ``np.e``: nats). Ignored for Binder.

    Returns
    -------
    ndarray of shape (n_draws,)
    """
    _check_loss(loss)
    z = _check_draws(z_draws)
    c = _check_partition(partition, z.shape[1])
    d = _distances(c, int(c.max()) + 1, z, int(z.max()) + 1, loss == "vi")
    return d / np.log(base) if loss == "vi" else d


def expected_vi(partition: np.ndarray, z_draws: np.ndarray, *, base: float = 2.0) -> float:
    """Posterior expected variation of information, exact over the draws.

    Parameters
    ----------
    partition : array-like of int, shape (n_samples,)
    z_draws : array-like of int, shape (n_draws, n_samples)
    base : float, default=2
        Logarithm base (2: bits, as Wade & Ghahramani 2018; ``np.e``: nats).

    Returns
    -------
    float
        ``mean_s VI(partition, z_draws[s])`` (Meilă 2007), between 0 and ``log N``.
    """
    return float(partition_distances(partition, z_draws, "vi", base=base).mean())


@njit(cache=True)
def _binder(c: np.ndarray, psm: np.ndarray) -> float:
    n = len(c)
    total = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            if c[i] == c[j]:
                total += 1.0 - psm[i, j]
            else:
                total += psm[i, j]
    return total


def binder_loss(partition: np.ndarray, psm: np.ndarray) -> float:
    """Posterior expected Binder loss with equal costs.

    Parameters
    ----------
    partition : array-like of int, shape (n_samples,)
    psm : ndarray of shape (n_samples, n_samples)
        Posterior similarity matrix (:func:`similarity_matrix`).

    Returns
    -------
    float
        ``sum_{i<j} |1{c_i = c_j} - psm[i, j]|``: the expected number of pairs on which
        ``partition`` and the posterior disagree (Binder 1978). Divide by
        ``N (N - 1) / 2`` for one minus the expected Rand index.
    """
    psm = _check_psm(psm)
    return float(_binder(_check_partition(partition, len(psm)), psm))


def vi_lower_bound(
    partition: np.ndarray,
    psm: np.ndarray,
    *,
    z_draws: np.ndarray | None = None,
    base: float = 2.0,
) -> float:
    """Wade & Ghahramani's (2018) Jensen bound on the expected VI, from the PSM.

    With ``|c_n|`` the size of ``n``'s cluster in ``partition`` and ``z`` a posterior
    partition,
    ``E[VI] = (1/N) sum_n [log |c_n| + E log |z_n| - 2 E log |c_n and z_n|]``. Jensen's
    inequality on the last term gives the bound
    ``(1/N) sum_n [log |c_n| + E log |z_n| - 2 log sum_{m in c_n} psm[n, m]]``.

    Parameters
    ----------
    partition : array-like of int, shape (n_samples,)
    psm : ndarray of shape (n_samples, n_samples)
    z_draws : array-like of int, shape (n_draws, n_samples), optional
        Used only for the term ``E log |z_n|``, which does not depend on ``partition``.
        Given, the result is a true lower bound on :func:`expected_vi`. Omitted, that
        term is replaced by ``log sum_m psm[n, m]`` (as ``mcclust.ext::VI.lb`` in R);
        this is not below ``E log |z_n|`` in general, so the value is then a criterion
        with the same minimiser, not a guaranteed bound.
    base : float, default=2

    Returns
    -------
    float
    """
    psm = _check_psm(psm)
    labels = _check_partition(partition, len(psm))
    onehot = np.eye(labels.max() + 1)[labels]
    rows = np.arange(len(labels))
    size = onehot.sum(axis=0)[labels]
    within = (psm @ onehot)[rows, labels]
    if z_draws is None:
        posterior_term = np.log(psm.sum(axis=1)).mean()
    else:
        z = _check_draws(z_draws)
        if z.shape[1] != len(labels):
            raise ValueError(f"z_draws must have {len(labels)} columns, got {z.shape[1]}")
        sizes = np.stack([np.bincount(r, minlength=z.max() + 1) for r in z])
        with np.errstate(divide="ignore", invalid="ignore"):
            posterior_term = np.nansum(sizes * np.log(sizes)) / z.size
    terms = np.log(size) - 2.0 * np.log(within)
    return float((terms.mean() + posterior_term) / np.log(base))


__all__ = [
    "Loss",
    "allocation_draws",
    "binder_loss",
    "canonical_labels",
    "coclustering_certainty",
    "expected_vi",
    "partition_distances",
    "similarity_matrix",
    "vi_lower_bound",
]
