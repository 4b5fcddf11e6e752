"""Gaussian building blocks for the compiled kernels: Cholesky factors, triangular solves,
the Gaussian log-constant, the whitened residual of a row and the log-sum-exp.

Written once here for every Numba user of the package (:mod:`bayesgmm.em.loop`,
:mod:`bayesgmm.bayes.likelihood`, :mod:`bayesgmm.bayes.posterior_kernel`,
:mod:`bayesgmm.posterior.kernels`, :mod:`bayesgmm.selection.sparse`). Conventions:

* ``chol`` is a *lower* Cholesky factor ``L`` of a covariance, ``Sigma = L L^T``, shape
  (d, d); its upper triangle is never read. ``inv_diag`` holds ``1 / L_ii``, shape (d,).
* ``log N(x | mu, L L^T) = log_const - |z|^2 / 2`` with the whitened residual
  ``z = L^{-1}(x - mu)`` (forward substitution) and
  ``log_const = log w - sum_i log L_ii - d/2 log 2 pi`` (:func:`gaussian_log_const`, with
  the mixture weight's ``log w`` folded in).

Every function is ``inline="always"`` (Numba inlines it into the caller's IR: a call that
passes arrays would cost reference counting in the callers' innermost loops), cached,
``nogil`` and without fast-math, so results do not depend on the compilation. A cached
kernel of another module that calls these registers the dependency with
:func:`bayesgmm._numba.cache.depend_on` (Numba's cache does not see edits of a callee's
file).
"""

from __future__ import annotations

import numba
import numpy as np

#: ``log(2 pi)``.
LOG_2PI = float(np.log(2.0 * np.pi))

_INLINE = dict(nogil=True, cache=True, fastmath=False, inline="always")


@numba.njit(**_INLINE)
def cholesky_lower(a, low, floor):
    """Lower Cholesky factor of ``a`` (d, d), written into ``low`` (d, d; upper triangle zero).

    A pivot that is not positive (``a`` not positive definite) makes the function return
    ``False``, unless ``floor > 0``: then a pivot ``<= 0`` is replaced by ``floor`` and the
    factorisation goes on. Returns ``True`` otherwise.
    """
    d = a.shape[0]
    for j in range(d):
        for i in range(d):
            low[i, j] = 0.0
    for j in range(d):
        s = a[j, j]
        for p in range(j):
            s -= low[j, p] * low[j, p]
        if floor > 0.0:
            if s <= 0.0:
                s = floor
        elif not s > 0.0:
            return False
        low[j, j] = np.sqrt(s)
        for i in range(j + 1, d):
            t = a[i, j]
            for p in range(j):
                t -= low[i, p] * low[j, p]
            low[i, j] = t / low[j, j]
    return True


@numba.njit(**_INLINE)
def inv_lower(low, out):
    """``out = L^{-1}`` (lower triangular, zeros above) for a lower-triangular ``low`` (d, d).

    Column by column; ``out`` may be a transposed view (``inv_lower(low, u.T)`` writes
    ``u = L^{-T}``, scikit-learn's upper precision Cholesky factor).
    """
    d = low.shape[0]
    for j in range(d):
        for i in range(d):
            out[i, j] = 0.0
    for j in range(d):
        out[j, j] = 1.0 / low[j, j]
        for i in range(j + 1, d):
            s = 0.0
            for p in range(j, i):
                s -= low[i, p] * out[p, j]
            out[i, j] = s / low[i, i]


@numba.njit(**_INLINE)
def log_det_lower(chol):
    """``sum_i log L_ii = log|Sigma| / 2`` of a lower factor (d, d)."""
    s = 0.0
    for i in range(chol.shape[0]):
        s += np.log(chol[i, i])
    return s


@numba.njit(**_INLINE)
def gaussian_log_const(log_weight, chol):
    """``log w - sum_i log L_ii - d/2 log 2 pi``: a weighted component's log density at its
    mean (``log_weight = 0`` for the density alone)."""
    d = chol.shape[0]
    return log_weight - log_det_lower(chol) - 0.5 * d * LOG_2PI


@numba.njit(**_INLINE)
def inverse_diagonal(chol, out):
    """``out_i = 1 / L_ii`` (d,)."""
    for i in range(chol.shape[0]):
        out[i] = 1.0 / chol[i, i]


@numba.njit(**_INLINE)
def whiten(x, mean, chol, inv_diag, z):
    """``z = L^{-1}(x - mean)`` by forward substitution; returns ``|z|^2``, the Mahalanobis
    distance of ``x`` (d,) from ``mean`` (d,) under ``Sigma = L L^T``."""
    sq = 0.0
    for i in range(z.shape[0]):
        s = x[i] - mean[i]
        for j in range(i):
            s -= chol[i, j] * z[j]
        s *= inv_diag[i]
        z[i] = s
        sq += s * s
    return sq


@numba.njit(**_INLINE)
def log_sum_exp_shift(a):
    """The largest entry of ``a`` (K,), or 0 when it is not finite (every entry ``-inf``):
    the shift of a log-sum-exp."""
    top = -np.inf
    for k in range(a.shape[0]):
        top = max(top, a[k])
    return top if np.isfinite(top) else 0.0


@numba.njit(**_INLINE)
def exp_shifted(a, top):
    """``a_k <- exp(a_k - top)`` in place; returns their sum.

    The first entry equal to ``top`` is set to 1 without calling ``exp`` (``exp(0)`` is
    exactly 1, so the result is the same): one exponential fewer per row when ``top`` is
    the largest entry, as in a log-sum-exp.
    """
    total = 0.0
    first_top = True
    for k in range(a.shape[0]):
        if first_top and a[k] == top:
            a[k] = 1.0
            first_top = False
        else:
            a[k] = np.exp(a[k] - top)
        total += a[k]
    return total


@numba.njit(**_INLINE)
def log_sum_exp(a):
    """``log sum_k exp(a_k)`` of ``a`` (K,), shifted by its largest entry; ``-inf`` when every
    entry is. Overwrites ``a`` with ``exp(a_k - max a)``."""
    top = log_sum_exp_shift(a)
    return top + np.log(exp_shifted(a, top))


__all__ = [
    "LOG_2PI",
    "cholesky_lower",
    "exp_shifted",
    "gaussian_log_const",
    "inv_lower",
    "inverse_diagonal",
    "log_det_lower",
    "log_sum_exp",
    "log_sum_exp_shift",
    "whiten",
]
