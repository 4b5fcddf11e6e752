"""Block building blocks of the fused EM kernels (:mod:`bayesgmm.em.kernels`).

A block of ``m`` rows is held transposed, ``xt[i, n]`` (features x rows), padded with
zero-weight rows to ``mp``, a multiple of 8, so that every inner loop runs over rows with a
unit stride and vectorises. Sums over rows use eight interleaved accumulators in a fixed
order (deterministic, and not a serial chain of additions). Shared by every covariance
structure; the kernels inline them (and register this module with
:func:`bayesgmm._numba.cache.depend_on`, so an edit here recompiles them).
"""

import numba
import numpy as np

_JIT = dict(nogil=True, cache=True, fastmath=False)

# ---------------------------------------------------------------------------------------
# Block building blocks, shared by all structures and inlined into the kernels. A block of
# m rows is held transposed, ``xt[i, n]`` (features x rows), padded with zero-weight rows to
# ``mp``, a multiple of 8, so that every inner loop runs over rows with a unit stride and
# vectorises. Sums over rows use eight interleaved accumulators in a fixed order
# (deterministic, and not a serial chain of additions).


@numba.njit(**_JIT)
def _sum8(p, mp):
    """``sum_n p[n]`` for n < mp (mp a multiple of 8), in a fixed order."""
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = 0.0
    for n in range(0, mp, 8):
        t0 += p[n]
        t1 += p[n + 1]
        t2 += p[n + 2]
        t3 += p[n + 3]
        t4 += p[n + 4]
        t5 += p[n + 5]
        t6 += p[n + 6]
        t7 += p[n + 7]
    return ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7))


@numba.njit(**_JIT)
def _dot8(p, q, mp):
    """``sum_n p[n] q[n]`` for n < mp (mp a multiple of 8), in a fixed order."""
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = 0.0
    for n in range(0, mp, 8):
        t0 += p[n] * q[n]
        t1 += p[n + 1] * q[n + 1]
        t2 += p[n + 2] * q[n + 2]
        t3 += p[n + 3] * q[n + 3]
        t4 += p[n + 4] * q[n + 4]
        t5 += p[n + 5] * q[n + 5]
        t6 += p[n + 6] * q[n + 6]
        t7 += p[n + 7] * q[n + 7]
    return ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7))


@numba.njit(**_JIT)
def _block_span(n_samples, block_size, b):
    """First row, row count and padded row count of block ``b``."""
    start = b * block_size
    m = min(n_samples, start + block_size) - start
    return start, m, (m + 7) // 8 * 8


@numba.njit(**_JIT)
def _load_block(X, start, m, mp, xt):
    """``xt[i, n] = X[start + n, i]`` in float64; zero for the padding rows."""
    d = X.shape[1]
    for n in range(m):
        for i in range(d):
            xt[i, n] = X[start + n, i]
    for i in range(d):
        for n in range(m, mp):
            xt[i, n] = 0.0


@numba.njit(**_JIT)
def _load_weights(sample_weight, start, m, mp, w):
    """Row weights (ones if ``sample_weight`` is empty); zero for the padding rows."""
    if sample_weight.shape[0] > 0:
        for n in range(m):
            w[n] = sample_weight[start + n]
    else:
        for n in range(m):
            w[n] = 1.0
    for n in range(m, mp):
        w[n] = 0.0


@numba.njit(**_JIT)
def _centre(xt, means, k, mp, dx):
    """``dx[i, n] = x_n,i - mu_k,i``."""
    for i in range(xt.shape[0]):
        mu = means[k, i]
        for n in range(mp):
            dx[i, n] = xt[i, n] - mu


@numba.njit(**_JIT)
def _log_sum_exp(a, m, mp, e, lse):
    """Per row ``lse = log sum_k exp(a_k)``; ``e_k = exp(a_k - max_j a_j)``, their row sums
    returned in place of the maxima. ``e`` is zero on the padding rows. Log space throughout."""
    n_components = a.shape[0]
    top = np.empty(mp)
    for n in range(m):
        top[n] = a[0, n]
    for k in range(1, n_components):
        for n in range(m):
            v = a[k, n]
            top[n] = v if v > top[n] else top[n]
    for n in range(m):
        if not np.isfinite(top[n]):
            top[n] = 0.0
    # Row by row: a loop over rows calling exp cannot be vectorised, and interleaving the
    # K calls of one row is faster than K passes over the block.
    total = np.empty(mp)
    for n in range(m):
        t = 0.0
        for k in range(n_components):
            v = np.exp(a[k, n] - top[n])
            e[k, n] = v
            t += v
        total[n] = t
        lse[n] = np.log(t) + top[n]
    for k in range(n_components):
        for n in range(m, mp):
            e[k, n] = 0.0
    return total


@numba.njit(**_JIT)
def _weigh_rows(w, lse, total, m, mp):
    """``sum_n w_n lse_n``; ``total`` becomes ``w_n / total_n``. Rows of weight 0 contribute
    exact zeros, whatever their (finite) values."""
    wl = np.zeros(mp)
    for n in range(m):
        wl[n] = w[n] * lse[n] if w[n] != 0.0 else 0.0
        total[n] = w[n] / total[n] if w[n] != 0.0 else 0.0
    for n in range(m, mp):
        total[n] = 0.0
    return _sum8(wl, mp)


@numba.njit(**_JIT)
def _accumulate_outer(xt, mp, means, e, scale, dx, g, gd, out):
    """Block moments ``s0_k, s1_k`` and the upper triangle of ``s2_k``, with
    ``g_n = e_nk * scale_n`` the weighted responsibilities."""
    n_components, d = means.shape
    for k in range(n_components):
        _centre(xt, means, k, mp, dx)
        for n in range(mp):
            g[n] = e[k, n] * scale[n] if scale[n] != 0.0 else 0.0
        out[k] = _sum8(g, mp)
        for i in range(d):
            for n in range(mp):
                gd[n] = g[n] * dx[i, n]
            out[n_components + k * d + i] = _sum8(gd, mp)
            for j in range(i, d):
                out[n_components * (1 + d) + (k * d + i) * d + j] = _dot8(gd, dx[j], mp)


@numba.njit(**_JIT)
def _accumulate_diagonal(xt, mp, means, e, scale, dx, g, gd, out):
    """Block moments ``s0_k, s1_k`` and the diagonal ``s2_k``."""
    n_components, d = means.shape
    for k in range(n_components):
        _centre(xt, means, k, mp, dx)
        for n in range(mp):
            g[n] = e[k, n] * scale[n] if scale[n] != 0.0 else 0.0
        out[k] = _sum8(g, mp)
        for i in range(d):
            for n in range(mp):
                gd[n] = g[n] * dx[i, n]
            out[n_components + k * d + i] = _sum8(gd, mp)
            out[n_components * (1 + d) + k * d + i] = _dot8(gd, dx[i], mp)
