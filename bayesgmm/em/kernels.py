"""Fused EM kernels: the E-step and the sufficient statistics in one pass over the data.

For every row ``x_n`` (weight ``w_n``) a kernel computes the log-densities
``a_nk = log alpha_k + log N(x_n | mu_k, Sigma_k)`` through the precision Cholesky
factors, the row's log-sum-exp ``log p(x_n)``, the responsibilities ``gamma_nk`` and
adds the row to moments about the *current* means ``mu_k`` (no cancellation):

* ``s0_k = sum_n w_n gamma_nk``
* ``s1_k = sum_n w_n gamma_nk (x_n - mu_k)``
* ``s2_k = sum_n w_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T`` (its diagonal for diag and
  spherical),

and ``sum_n w_n log p(x_n)``. Then ``N_k = s0_k + 10 eps`` (as
:func:`~bayesgmm.em.steps.sufficient_statistics`), ``xbar_k = mu_k + s1_k / N_k`` and
``S_k = s2_k - s1_k s1_k^T / N_k``, which feed
:func:`~bayesgmm.em.steps.m_step_from_statistics`. Nothing of shape (N, K, d) or even
(N, K) is ever allocated.

The kernels are written once, as templates; each covariance structure gets its own
compiled copy (no string branching inside compiled code), bound to that structure's row
log-density (``_log_prob_<structure>``) and moments layout (outer products or their
diagonal) by :func:`bayesgmm._numba.specialise.specialise`; :data:`KERNELS` maps the
structure name to them (the Python functions that call them, with their checks and
the lock described below, are :mod:`bayesgmm.em.fused`'s). The layout of
``precisions_cholesky`` is scikit-learn's: full (K, d, d) upper-triangular ``U`` with
``U U^T`` the precision, so ``y = (x - mu) U``; tied (d, d); diag (K, d) ``1 / sd``;
spherical (K,) ``1 / sd``.

Layout of the work: ``numba.prange`` runs over fixed blocks of :data:`BLOCK_SIZE` rows.
A block is copied transposed (features x rows, float64) into a small buffer so that every
inner loop runs over rows with unit stride and vectorises, except the ``exp``/``log``
calls, made row by row. Sums over a block's rows use eight interleaved accumulators in a
fixed order.

Reproducibility: each block writes its partial sums into its own row of an
(n_blocks, ...) array, and the rows are added sequentially in block order. Every sum is
therefore computed in the same order whatever the number of threads or their scheduling:
the result is bit-for-bit reproducible (for a given ``block_size``).

Threads: the kernels use Numba's threading layer, ``workqueue`` unless the environment
variable ``NUMBA_THREADING_LAYER`` chooses another (on a machine shared with other jobs
the ``omp`` layer's barrier waits for descheduled threads: 3-12 ms per call measured).
The ``workqueue`` layer aborts the process when called from several threads at once
(Dask's threaded scheduler, say), so :mod:`bayesgmm.em.fused`'s wrappers run one kernel
call at a time per process (a lock; each call already uses every core).

Precision: float32 data are read as they are (no copy) and every row is computed in
float64, as are all the sums; float64 results therefore do not depend on the input
dtype beyond the rounding of the data themselves. (scikit-learn computes in float32.)
Kernels are compiled with ``fastmath=False`` (results equal scikit-learn's to ~1e-12)
and cached on disk (``cache=True``).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from bayesgmm._numba import gaussian
from bayesgmm._numba.cache import depend_on
from bayesgmm._numba.gaussian import cholesky_lower, inv_lower
from bayesgmm._numba.specialise import specialise
from bayesgmm.em import blocks
from bayesgmm.em.blocks import (
    _accumulate_diagonal,
    _accumulate_outer,
    _block_span,
    _centre,
    _load_block,
    _load_weights,
    _log_sum_exp,
    _weigh_rows,
)

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

#: Rows per block: one task of the parallel loop and one slot of partial sums. 512 rows keep
#: a block's working set ((2 d + K + 6) * 512 doubles) in L1/L2 up to d ~ 10; measured
#: single-threaded: d=10, K=5 is ~20% slower at 2048, d=2 is flat from 128 to 2048.
BLOCK_SIZE = 512

_EPS = 10 * np.finfo(np.float64).eps
_JIT = dict(nogil=True, cache=True, fastmath=False)


# ---------------------------------------------------------------------------------------
# Log-densities of a block, one function per structure:
# ``a[k, n] = log_const_k - |(x_n - mu_k) U_k|^2 / 2`` with
# ``log_const_k = log alpha_k + log det U_k - d log(2 pi) / 2``.


@numba.njit(**_JIT)
def _log_prob_full(xt, mp, log_const, means, prec_chol, dx, y, a):
    n_components, d = means.shape
    for k in range(n_components):
        _centre(xt, means, k, mp, dx)
        sq = a[k]
        sq[:mp] = 0.0
        for j in range(d):
            u = prec_chol[k, 0, j]
            for n in range(mp):
                y[n] = dx[0, n] * u
            for i in range(1, j + 1):
                u = prec_chol[k, i, j]
                for n in range(mp):
                    y[n] += dx[i, n] * u
            for n in range(mp):
                sq[n] += y[n] * y[n]
        c = log_const[k]
        for n in range(mp):
            sq[n] = c - 0.5 * sq[n]


@numba.njit(**_JIT)
def _log_prob_tied(xt, mp, log_const, means, prec_chol, dx, y, a):
    n_components, d = means.shape
    for k in range(n_components):
        _centre(xt, means, k, mp, dx)
        sq = a[k]
        sq[:mp] = 0.0
        for j in range(d):
            u = prec_chol[0, j]
            for n in range(mp):
                y[n] = dx[0, n] * u
            for i in range(1, j + 1):
                u = prec_chol[i, j]
                for n in range(mp):
                    y[n] += dx[i, n] * u
            for n in range(mp):
                sq[n] += y[n] * y[n]
        c = log_const[k]
        for n in range(mp):
            sq[n] = c - 0.5 * sq[n]


@numba.njit(**_JIT)
def _log_prob_diag(xt, mp, log_const, means, prec_chol, dx, y, a):
    n_components, d = means.shape
    for k in range(n_components):
        sq = a[k]
        sq[:mp] = 0.0
        for i in range(d):
            mu = means[k, i]
            u = prec_chol[k, i]
            for n in range(mp):
                v = (xt[i, n] - mu) * u
                sq[n] += v * v
        c = log_const[k]
        for n in range(mp):
            sq[n] = c - 0.5 * sq[n]


@numba.njit(**_JIT)
def _log_prob_spherical(xt, mp, log_const, means, prec_chol, dx, y, a):
    n_components, d = means.shape
    for k in range(n_components):
        sq = a[k]
        sq[:mp] = 0.0
        for i in range(d):
            mu = means[k, i]
            for n in range(mp):
                v = xt[i, n] - mu
                sq[n] += v * v
        c = log_const[k]
        p2 = prec_chol[k] * prec_chol[k]
        for n in range(mp):
            sq[n] = c - 0.5 * (p2 * sq[n])


# ---------------------------------------------------------------------------------------
# Layouts of the moments: full (d, d) outer products (full, tied) or their diagonal (diag,
# spherical). ``size`` is the length of the flat moments [s0 (K), s1 (K*d), s2].


@numba.njit(**_JIT)
def _outer_size(n_components, d):
    return n_components * (1 + d + d * d)


@numba.njit(**_JIT)
def _diagonal_size(n_components, d):
    return n_components * (1 + 2 * d)


class _MomentsLayout(NamedTuple):
    """How one structure's moments are accumulated: ``accumulate`` (block moments into a
    row of partial sums), ``size`` (``(K, d) ->`` their flat length) and ``outer``."""

    accumulate: object
    size: object
    outer: bool


_OUTER = _MomentsLayout(_accumulate_outer, _outer_size, True)
_DIAGONAL = _MomentsLayout(_accumulate_diagonal, _diagonal_size, False)


# ---------------------------------------------------------------------------------------
# Precision factors in the kernels' layout from covariances (the compiled EM loop's
# M-step, :mod:`bayesgmm.em.loop`): ``False`` where a covariance is not positive definite.


@numba.njit(**_JIT)
def _upper_precision_cholesky(cov, out):
    """``out = L^-T`` with ``L L^T = cov``; ``False`` if ``cov`` is not positive definite."""
    lower = np.empty_like(cov)
    if not cholesky_lower(cov, lower, 0.0):
        return False
    inv_lower(lower, out.T)
    return np.all(np.isfinite(out))


@numba.njit(**_JIT)
def _precisions_full(covs, out):
    for k in range(covs.shape[0]):
        if not _upper_precision_cholesky(covs[k], out[k]):
            return False
    return True


@numba.njit(**_JIT)
def _precisions_tied(covs, out):
    return _upper_precision_cholesky(covs, out)


@numba.njit(**_JIT)
def _precisions_variances(covs, out):
    """diag and spherical: ``1 / sd``."""
    flat, out_flat = covs.ravel(), out.ravel()
    for i in range(flat.shape[0]):
        if not flat[i] > 0.0:
            return False
        out_flat[i] = 1.0 / np.sqrt(flat[i])
    return np.all(np.isfinite(out))


# ---------------------------------------------------------------------------------------
# The kernels, written once for every structure: templates whose placeholder names (None
# here) :func:`~bayesgmm._numba.specialise.specialise` binds to one structure's log-density
# (``_log_prob``) and moments layout (``_accumulate``, ``_moments_size``), and to the
# specialised block functions (``_block_moments``, ``_block_log_resp``).
#
# Fused E-step + moments: (X, sample_weight, log_const, means, prec_chol, block_size) ->
# totals, with ``sample_weight`` of shape (N,), or (0,) for unit weights, and ``totals``
# the flat concatenation [s0 (K), s1 (K*d), s2 (K*d*d, upper triangle only, or K*d),
# log_lik_sum]. Each block fills its own row of ``partial``; the rows are added in block
# order. Compiled twice per structure: parallel over the blocks (``moments``) and serial
# (``serial_moments``, one pass of the compiled EM loop), the same sums in the same order.
#
# Per-row kernels for prediction: write log-responsibilities (N, K) and log p(x) (N,)
# into preallocated arrays: (X, log_const, means, prec_chol, block_size, log_resp,
# log_lik) -> None.

_log_prob = _accumulate = _moments_size = _block_moments = _block_log_resp = None


@numba.njit(**_JIT)
def _sum_blocks(partial):
    """Sum the per-block rows in block order."""
    total = partial[0].copy()
    for b in range(1, partial.shape[0]):
        for j in range(partial.shape[1]):
            total[j] += partial[b, j]
    return total


@numba.njit(**_JIT)
def _write_rows(a, lse, start, m, log_resp, log_lik):
    for n in range(m):
        log_lik[start + n] = lse[n]
        for k in range(a.shape[0]):
            log_resp[start + n, k] = a[k, n] - lse[n]


def _block_moments_template(X, sample_weight, log_const, means, prec_chol, block_size, b, out):
    """Moments of block ``b`` into ``out``; returns its ``sum_n w_n log p(x_n)``."""
    start, m, mp = _block_span(X.shape[0], block_size, b)
    d, n_components = X.shape[1], means.shape[0]
    xt, dx, a = np.empty((d, mp)), np.empty((d, mp)), np.empty((n_components, mp))
    w, y, g, lse = np.empty(mp), np.empty(mp), np.empty(mp), np.empty(mp)
    _load_block(X, start, m, mp, xt)
    _load_weights(sample_weight, start, m, mp, w)
    _log_prob(xt, mp, log_const, means, prec_chol, dx, y, a)
    scale = _log_sum_exp(a, m, mp, a, lse)
    log_lik = _weigh_rows(w, lse, scale, m, mp)
    _accumulate(xt, mp, means, a, scale, dx, g, y, out)
    return log_lik


def _moments_template(X, sample_weight, log_const, means, prec_chol, block_size):
    """The fused pass over every block (signature above)."""
    n_samples, d = X.shape
    n_components = means.shape[0]
    n_blocks = max(1, (n_samples + block_size - 1) // block_size)
    partial = np.zeros((n_blocks, _moments_size(n_components, d) + 1))
    for b in prange(n_blocks):
        partial[b, -1] = _block_moments(
            X, sample_weight, log_const, means, prec_chol, block_size, b, partial[b]
        )
    return _sum_blocks(partial)


def _block_log_resp_template(X, log_const, means, prec_chol, block_size, b, log_resp, log_lik):
    """Log-responsibilities and log-likelihoods of block ``b``'s rows."""
    start, m, mp = _block_span(X.shape[0], block_size, b)
    d, n_components = X.shape[1], means.shape[0]
    xt, dx = np.empty((d, mp)), np.empty((d, mp))
    a, e = np.empty((n_components, mp)), np.empty((n_components, mp))
    y, lse = np.empty(mp), np.empty(mp)
    _load_block(X, start, m, mp, xt)
    _log_prob(xt, mp, log_const, means, prec_chol, dx, y, a)
    _log_sum_exp(a, m, mp, e, lse)
    _write_rows(a, lse, start, m, log_resp, log_lik)


def _log_resp_template(X, log_const, means, prec_chol, block_size, log_resp, log_lik):
    """Every row's log-responsibilities and log-likelihood (signature above)."""
    for b in prange((X.shape[0] + block_size - 1) // block_size):
        _block_log_resp(X, log_const, means, prec_chol, block_size, b, log_resp, log_lik)


# ---------------------------------------------------------------------------------------
# Registry and Python wrappers.


class StructureKernels(NamedTuple):
    """The compiled kernels of one covariance structure.

    Attributes
    ----------
    moments : numba dispatcher
        ``(X, sample_weight, log_const, means, prec_chol, block_size) -> totals``:
        ``sample_weight`` of shape (N,), or (0,) for unit weights; ``log_const`` of shape
        (K,) is ``log alpha_k + log det U_k - d log(2 pi) / 2``; ``totals`` is the flat
        ``[s0 (K), s1 (K d), s2 (K d d, upper triangle filled) or (K d), log_lik_sum]``.
    rows : numba dispatcher
        ``(X, log_const, means, prec_chol, block_size, log_resp, log_lik) -> None``.
    outer : bool
        Whether ``s2`` holds full (d, d) outer products (full, tied) or their diagonal.
    serial_moments : numba dispatcher
        ``moments`` without threads (the same sums in the same order), for the compiled
        EM loop.
    precisions : numba dispatcher
        ``(covariances, out) -> bool``: the precision factors in the kernels' layout
        written into ``out``; ``False`` if a covariance is not positive definite.
    """

    moments: object
    rows: object
    outer: bool
    serial_moments: object
    precisions: object


def _structure_kernels(name: str, log_prob, layout: _MomentsLayout, precisions) -> StructureKernels:
    """Specialise the templates above for one structure (each compiled copy is named after
    its template and the structure: its entry in the disk cache)."""
    namespace = globals()
    block_moments = specialise(
        _block_moments_template,
        f"_block_moments_{name}",
        namespace,
        _JIT,
        _log_prob=log_prob,
        _accumulate=layout.accumulate,
    )
    block_log_resp = specialise(
        _block_log_resp_template, f"_block_rows_{name}", namespace, _JIT, _log_prob=log_prob
    )
    moments = {
        parallel: specialise(
            _moments_template,
            f"_moments_{name}" if parallel else f"_serial_moments_{name}",
            namespace,
            dict(_JIT, parallel=parallel),
            _block_moments=block_moments,
            _moments_size=layout.size,
        )
        for parallel in (True, False)
    }
    rows = specialise(
        _log_resp_template,
        f"_rows_{name}",
        namespace,
        dict(_JIT, parallel=True),
        _block_log_resp=block_log_resp,
    )
    return StructureKernels(moments[True], rows, layout.outer, moments[False], precisions)


#: Structure name -> its kernels.
KERNELS: dict[str, StructureKernels] = {
    "full": _structure_kernels("full", _log_prob_full, _OUTER, _precisions_full),
    "tied": _structure_kernels("tied", _log_prob_tied, _OUTER, _precisions_tied),
    "diag": _structure_kernels("diag", _log_prob_diag, _DIAGONAL, _precisions_variances),
    "spherical": _structure_kernels(
        "spherical", _log_prob_spherical, _DIAGONAL, _precisions_variances
    ),
}

# the precision factors inline gaussian.py's Cholesky factor and triangular inverse; every
# kernel inlines the block building blocks of blocks.py
depend_on(globals(), gaussian, blocks)


__all__ = [
    "BLOCK_SIZE",
    "KERNELS",
    "StructureKernels",
]
