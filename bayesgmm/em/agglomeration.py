"""Model-based hierarchical agglomeration (mclust's ``hc``, model ``VVV``), the EM start.

Banfield & Raftery (1993) and Fraley (1998) merge, at every step, the two clusters whose
union lowers most an approximate classification likelihood of unconstrained Gaussian
clusters. mclust's ``hcVVV`` regularises it so that small clusters have a finite criterion:
a cluster ``C`` of ``l`` points with scatter ``W`` contributes

    term(C) = l log( det(W / l) + beta (tr(W) + alpha) / l )      (l > d)
    term(C) = l log( beta (tr(W) + alpha) / l )                   (l <= d)

(a singleton ``log(alpha beta)``), and merging ``C_i, C_j`` costs
``term(C_i u C_j) - term(C_i) - term(C_j)``; ``alpha = tr(scatter of the data) / (n d)``,
``beta = 1``. The data are first transformed as mclust's default ``hcUse = "SVD"``:
centred, scaled to unit standard deviation, rotated onto their right singular vectors and
each direction divided by the square root of its singular value.

The criterion, the packed order in which pairs are scanned (the last of equal costs wins),
and the relabelling after a merge (the merged cluster keeps the smaller slot, the last slot
moves into the freed one) follow mclust's Fortran ``hcvvv``, so that ties between
duplicated rows resolve the same way; determinants come from a Cholesky factorisation of
the scatter here, so a near-tie can still resolve differently (mclust updates its factors
by Givens rotations). The cuts at ``K = 1, ..., k_max`` are nested partitions: each merge
joins two clusters of the finer one. The whole tree costs ``O(n^2 d^3)`` once per data set
and is cut for every K and every model (:mod:`bayesgmm.em.table`).
"""

from __future__ import annotations

import numba
import numpy as np

_RTHALF = 0.7071067811865476
_NEG_BIG = -1.7976931348623157e308


def svd_transform(X: np.ndarray) -> np.ndarray:
    """mclust's ``hcUse = "SVD"`` transform of the data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_samples, p)
        ``Xs V diag(s)^(-1/2)`` with ``Xs`` the centred, unit-standard-deviation columns
        (constant columns dropped), ``Xs = U diag(s) V^T`` and ``p = min(n, d)``.
    """
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=0)
    sd = centred.std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    keep = sd > 0
    scaled = centred[:, keep] / sd[keep]
    _, s, vt = np.linalg.svd(scaled, full_matrices=False)
    positive = s > 0
    return (scaled @ vt[positive].T) / np.sqrt(s[positive])


@numba.njit(cache=True, error_model="numpy")
def _log_det_over(W, l):
    """``log det(W / l)`` through a Cholesky factorisation; ``_NEG_BIG`` when singular."""
    d = W.shape[0]
    L = np.zeros((d, d))
    total = 0.0
    for j in range(d):
        s = W[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if s <= 0.0:
            return _NEG_BIG
        L[j, j] = np.sqrt(s)
        total += np.log(s)
        for i in range(j + 1, d):
            t = W[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / L[j, j]
    return total - d * np.log(float(l))


@numba.njit(cache=True, error_model="numpy")
def _term(l, W, trace, alpha, beta):
    """mclust's ``vvvtij``: the criterion of one cluster of ``l`` points (module docstring)."""
    d = W.shape[0]
    base = beta * (trace + alpha) / l
    if l <= d:
        value = np.log(base)
    elif trace == 0.0:
        value = np.log(alpha * beta / l)
    else:
        detlog = _log_det_over(W, l)
        if detlog == _NEG_BIG:
            value = np.log(base)
        elif detlog <= 0.0:
            value = np.log(np.exp(detlog) + base)
        else:
            value = np.log(1.0 + np.exp(-detlog) * base) + detlog
    return l * value


@numba.njit(cache=True, error_model="numpy")
def _pair(a, b, count, xs, W, trace, term, alpha, beta, v, Wab):
    """Merge cost of slots ``a`` and ``b``; fills ``v`` (the between-cluster vector) and
    ``Wab`` (the merged scatter); returns ``(cost, merged trace, merged term)``."""
    d = xs.shape[1]
    na, nb = count[a], count[b]
    n = na + nb
    if na == 1 and nb == 1:
        for j in range(d):
            v[j] = (xs[a, j] - xs[b, j]) * _RTHALF
        tr = 0.0
        for j in range(d):
            tr += v[j] * v[j]
    else:
        q = 1.0 / n
        sa = np.sqrt(na * q)
        sb = np.sqrt(nb * q)
        for j in range(d):
            v[j] = sb * xs[a, j] + (-sa) * xs[b, j]
        dot = 0.0
        for j in range(d):
            dot += v[j] * v[j]
        tr = (trace[a] + trace[b]) + dot
    for i in range(d):
        for j in range(d):
            Wab[i, j] = W[a, i, j] + W[b, i, j] + v[i] * v[j]
    merged = _term(n, Wab, tr, alpha, beta)
    return merged - (term[a] + term[b]), tr, merged


@numba.njit(cache=True, error_model="numpy")
def _agglomerate(Z, k_max, alpha, beta):
    """Labels (k_max, n): row ``K - 1`` is the partition into ``min(K, n)`` clusters."""
    n, d = Z.shape
    labels = np.empty((k_max, n), dtype=np.int64)
    slot = np.arange(n)
    count = np.ones(n, dtype=np.int64)
    xs = Z.copy()
    W = np.zeros((n, d, d))
    trace = np.zeros(n)
    ablog = np.log(beta * alpha)
    term = np.full(n, ablog)
    cost = np.full((n, n), np.inf)  # cost[i, j], i < j
    v = np.empty(d)
    Wab = np.empty((d, d))
    for j in range(1, n):
        for i in range(j):
            cost[i, j] = _pair(i, j, count, xs, W, trace, term, alpha, beta, v, Wab)[0]
    for k in range(n, k_max + 1):
        labels[k - 1] = slot
    lg = n
    while lg > 1:
        best, bi, bj = np.inf, 0, 1
        for j in range(1, lg):
            for i in range(j):
                if cost[i, j] <= best:
                    best, bi, bj = cost[i, j], i, j
        _, tr, merged = _pair(bi, bj, count, xs, W, trace, term, alpha, beta, v, Wab)
        na, nb = count[bi], count[bj]
        if na == 1 and nb == 1:
            sa = _RTHALF
            sb = _RTHALF
        else:
            q = 1.0 / (na + nb)
            sa, sb = np.sqrt(na * q), np.sqrt(nb * q)
        for j in range(d):
            xs[bi, j] = sa * xs[bi, j] + sb * xs[bj, j]
        W[bi] = Wab
        trace[bi] = tr
        term[bi] = merged
        count[bi] = na + nb
        last = lg - 1
        for i in range(n):
            if slot[i] == bj:
                slot[i] = bi
        if bj != last:
            xs[bj] = xs[last]
            W[bj] = W[last]
            trace[bj] = trace[last]
            term[bj] = term[last]
            count[bj] = count[last]
            for t in range(last):
                if t != bj:
                    cost[min(t, bj), max(t, bj)] = cost[min(t, last), max(t, last)]
            for i in range(n):
                if slot[i] == last:
                    slot[i] = bj
        lg -= 1
        for t in range(lg):
            if t != bi:
                a, b = min(t, bi), max(t, bi)
                cost[a, b] = _pair(a, b, count, xs, W, trace, term, alpha, beta, v, Wab)[0]
        if lg <= k_max:
            labels[lg - 1] = slot
    return labels


def hc_partitions(X: np.ndarray, k_max: int, *, transform: bool = True) -> np.ndarray:
    """The agglomeration's partitions into 1, ..., ``k_max`` clusters.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    k_max : int
        The largest number of clusters wanted.
    transform : bool, default=True
        Apply :func:`svd_transform` first (mclust's default); ``False`` agglomerates ``X``
        as given.

    Returns
    -------
    ndarray of int of shape (k_max, n_samples)
        Row ``K - 1`` labels every row with its cluster in ``0, ..., K - 1`` (with ``n``
        clusters, all singletons, when ``K > n``).
    """
    if k_max < 1:
        raise ValueError(f"k_max must be a positive int, got {k_max}")
    Z = svd_transform(X) if transform else np.asarray(X, dtype=np.float64)
    n, p = Z.shape
    if n == 0 or p == 0:
        raise ValueError(
            f"hierarchical agglomeration needs data with rows and spread, got {Z.shape}"
        )
    centred = Z - Z.mean(axis=0)
    alpha = max(float(np.sum(centred**2)) / (n * p), np.finfo(float).eps)
    return _agglomerate(np.ascontiguousarray(Z), int(k_max), alpha, 1.0)


def classification_criterion(X: np.ndarray, labels: np.ndarray, alpha: float) -> float:
    """The agglomeration's criterion ``sum_C term(C)`` of a partition (lower is better).

    Parameters
    ----------
    X : ndarray of shape (n_samples, d)
        The data as agglomerated (after :func:`svd_transform` if it was applied).
    labels : ndarray of int of shape (n_samples,)
    alpha : float
        The regularisation (``tr(scatter) / (n d)`` of the data agglomerated).
    """
    X = np.asarray(X, dtype=np.float64)
    total = 0.0
    for label in np.unique(labels):
        rows = X[labels == label]
        centred = rows - rows.mean(axis=0)
        W = centred.T @ centred
        total += _term(len(rows), W, float(np.trace(W)), float(alpha), 1.0)
    return total


__all__ = ["classification_criterion", "hc_partitions", "svd_transform"]
