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

Each covariance structure has its own compiled kernel (no string branching inside
compiled code); :data:`KERNELS` maps the structure name to them. The layout of
``precisions_cholesky`` is scikit-learn's: full (K, d, d) upper-triangular ``U`` with
``U U^T`` the precision, so ``y = (x - mu) U``; tied (d, d); diag (K, d) ``1 / sd``;
spherical (K,) ``1 / sd``.

Reproducibility: ``numba.prange`` runs over fixed blocks of rows, each block writes its
partial sums into its own slot of an (n_blocks, ...) array, and the slots are added
sequentially in block order. Every sum is therefore computed in the same order whatever
the number of threads or their scheduling: the result is bit-for-bit reproducible.

Precision: float32 data are read as they are (no copy) and every row is computed in
float64, as are all the sums; float64 results therefore do not depend on the input
dtype beyond the rounding of the data themselves. (scikit-learn computes in float32.)
Kernels are compiled with ``fastmath=False`` (results equal scikit-learn's to ~1e-12)
and cached on disk (``cache=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from bayesgmm._types import CovarianceType
from bayesgmm.em.gaussian import log_det_cholesky
from bayesgmm.em.steps import SufficientStatistics

#: Rows per block: each block is one task of the parallel loop and one slot of partial sums.
BLOCK_SIZE = 2048

_EPS = 10 * np.finfo(np.float64).eps
_LOG_2PI = np.log(2.0 * np.pi)
_JIT = dict(nogil=True, cache=True, fastmath=False)
_INLINE = dict(_JIT, inline="always")


# ---------------------------------------------------------------------------------------
# Per-row building blocks, shared by all structures (inlined by LLVM).


@numba.njit(**_INLINE)
def _normalise(a, resp):
    """``log sum_k exp(a_k)``; writes ``exp(a_k - lse)`` into ``resp``. Log space throughout."""
    top = a[0]
    for k in range(1, a.shape[0]):
        if a[k] > top:
            top = a[k]
    if not np.isfinite(top):
        top = 0.0
    total = 0.0
    for k in range(a.shape[0]):
        resp[k] = np.exp(a[k] - top)
        total += resp[k]
    for k in range(a.shape[0]):
        resp[k] /= total
    return np.log(total) + top


@numba.njit(**_INLINE)
def _add_outer(w, resp, diff, s0, s1, s2):
    """Add one row to the moments, upper triangle of ``s2`` only."""
    n_components, d = diff.shape
    for k in range(n_components):
        g = w * resp[k]
        s0[k] += g
        for i in range(d):
            gi = g * diff[k, i]
            s1[k, i] += gi
            for j in range(i, d):
                s2[k, i, j] += gi * diff[k, j]


@numba.njit(**_INLINE)
def _add_diagonal(w, resp, diff, s0, s1, s2):
    """Add one row to the moments, diagonal second moments."""
    n_components, d = diff.shape
    for k in range(n_components):
        g = w * resp[k]
        s0[k] += g
        for i in range(d):
            gi = g * diff[k, i]
            s1[k, i] += gi
            s2[k, i] += gi * diff[k, i]


@numba.njit(**_INLINE)
def _row_weight(sample_weight, n):
    return sample_weight[n] if sample_weight.shape[0] > 0 else 1.0


# ---------------------------------------------------------------------------------------
# Log-densities of one row, one function per structure. ``a_k`` gets ``log_const_k - sq/2``
# with ``log_const_k = log alpha_k + log det U_k - d log(2 pi) / 2``; ``diff`` gets x - mu_k.


@numba.njit(**_INLINE)
def _log_prob_full(X, n_row, log_const, means, prec_chol, diff, a):
    n_components, d = means.shape
    for k in range(n_components):
        for i in range(d):
            diff[k, i] = X[n_row, i] - means[k, i]
        sq = 0.0
        for j in range(d):
            y = 0.0
            for i in range(j + 1):
                y += diff[k, i] * prec_chol[k, i, j]
            sq += y * y
        a[k] = log_const[k] - 0.5 * sq


@numba.njit(**_INLINE)
def _log_prob_tied(X, n_row, log_const, means, prec_chol, diff, a):
    n_components, d = means.shape
    for k in range(n_components):
        for i in range(d):
            diff[k, i] = X[n_row, i] - means[k, i]
        sq = 0.0
        for j in range(d):
            y = 0.0
            for i in range(j + 1):
                y += diff[k, i] * prec_chol[i, j]
            sq += y * y
        a[k] = log_const[k] - 0.5 * sq


@numba.njit(**_INLINE)
def _log_prob_diag(X, n_row, log_const, means, prec_chol, diff, a):
    n_components, d = means.shape
    for k in range(n_components):
        sq = 0.0
        for i in range(d):
            diff[k, i] = X[n_row, i] - means[k, i]
            y = diff[k, i] * prec_chol[k, i]
            sq += y * y
        a[k] = log_const[k] - 0.5 * sq


@numba.njit(**_INLINE)
def _log_prob_spherical(X, n_row, log_const, means, prec_chol, diff, a):
    n_components, d = means.shape
    for k in range(n_components):
        sq = 0.0
        for i in range(d):
            diff[k, i] = X[n_row, i] - means[k, i]
            sq += diff[k, i] * diff[k, i]
        p = prec_chol[k]
        a[k] = log_const[k] - 0.5 * (p * p * sq)


# ---------------------------------------------------------------------------------------
# Fused E-step + moments, one kernel per structure. Signature of every kernel:
# (X, sample_weight, log_const, means, prec_chol, block_size) -> (s0, s1, s2, log_lik_sum)
# with ``sample_weight`` of shape (N,) or (0,) for unit weights.


@numba.njit(**_JIT)
def _sum_outer(p0, p1, p2, pl):
    """Sum the per-block slots in block order; mirror the upper triangle of ``s2``."""
    s0, s1, s2 = p0[0].copy(), p1[0].copy(), p2[0].copy()
    log_lik = pl[0]
    for b in range(1, p0.shape[0]):
        s0 += p0[b]
        s1 += p1[b]
        s2 += p2[b]
        log_lik += pl[b]
    for i in range(s2.shape[1]):
        for j in range(i):
            s2[:, i, j] = s2[:, j, i]
    return s0, s1, s2, log_lik


@numba.njit(**_JIT)
def _sum_diagonal(p0, p1, p2, pl):
    """Sum the per-block slots in block order."""
    s0, s1, s2 = p0[0].copy(), p1[0].copy(), p2[0].copy()
    log_lik = pl[0]
    for b in range(1, p0.shape[0]):
        s0 += p0[b]
        s1 += p1[b]
        s2 += p2[b]
        log_lik += pl[b]
    return s0, s1, s2, log_lik


@numba.njit(parallel=True, **_JIT)
def _moments_full(X, sample_weight, log_const, means, prec_chol, block_size):
    n, d = X.shape
    n_components = means.shape[0]
    n_blocks = max(1, (n + block_size - 1) // block_size)
    p0 = np.zeros((n_blocks, n_components))
    p1 = np.zeros((n_blocks, n_components, d))
    p2 = np.zeros((n_blocks, n_components, d, d))
    pl = np.zeros(n_blocks)
    for b in prange(n_blocks):
        diff = np.empty((n_components, d))
        a = np.empty(n_components)
        resp = np.empty(n_components)
        s0 = np.zeros(n_components)
        s1 = np.zeros((n_components, d))
        s2 = np.zeros((n_components, d, d))
        log_lik = 0.0
        for n_row in range(b * block_size, min(n, (b + 1) * block_size)):
            w = _row_weight(sample_weight, n_row)
            if w == 0.0:
                continue
            _log_prob_full(X, n_row, log_const, means, prec_chol, diff, a)
            log_lik += w * _normalise(a, resp)
            _add_outer(w, resp, diff, s0, s1, s2)
        p0[b] = s0
        p1[b] = s1
        p2[b] = s2
        pl[b] = log_lik
    return _sum_outer(p0, p1, p2, pl)


@numba.njit(parallel=True, **_JIT)
def _moments_tied(X, sample_weight, log_const, means, prec_chol, block_size):
    n, d = X.shape
    n_components = means.shape[0]
    n_blocks = max(1, (n + block_size - 1) // block_size)
    p0 = np.zeros((n_blocks, n_components))
    p1 = np.zeros((n_blocks, n_components, d))
    p2 = np.zeros((n_blocks, n_components, d, d))
    pl = np.zeros(n_blocks)
    for b in prange(n_blocks):
        diff = np.empty((n_components, d))
        a = np.empty(n_components)
        resp = np.empty(n_components)
        s0 = np.zeros(n_components)
        s1 = np.zeros((n_components, d))
        s2 = np.zeros((n_components, d, d))
        log_lik = 0.0
        for n_row in range(b * block_size, min(n, (b + 1) * block_size)):
            w = _row_weight(sample_weight, n_row)
            if w == 0.0:
                continue
            _log_prob_tied(X, n_row, log_const, means, prec_chol, diff, a)
            log_lik += w * _normalise(a, resp)
            _add_outer(w, resp, diff, s0, s1, s2)
        p0[b] = s0
        p1[b] = s1
        p2[b] = s2
        pl[b] = log_lik
    return _sum_outer(p0, p1, p2, pl)


@numba.njit(parallel=True, **_JIT)
def _moments_diag(X, sample_weight, log_const, means, prec_chol, block_size):
    n, d = X.shape
    n_components = means.shape[0]
    n_blocks = max(1, (n + block_size - 1) // block_size)
    p0 = np.zeros((n_blocks, n_components))
    p1 = np.zeros((n_blocks, n_components, d))
    p2 = np.zeros((n_blocks, n_components, d))
    pl = np.zeros(n_blocks)
    for b in prange(n_blocks):
        diff = np.empty((n_components, d))
        a = np.empty(n_components)
        resp = np.empty(n_components)
        s0 = np.zeros(n_components)
        s1 = np.zeros((n_components, d))
        s2 = np.zeros((n_components, d))
        log_lik = 0.0
        for n_row in range(b * block_size, min(n, (b + 1) * block_size)):
            w = _row_weight(sample_weight, n_row)
            if w == 0.0:
                continue
            _log_prob_diag(X, n_row, log_const, means, prec_chol, diff, a)
            log_lik += w * _normalise(a, resp)
            _add_diagonal(w, resp, diff, s0, s1, s2)
        p0[b] = s0
        p1[b] = s1
        p2[b] = s2
        pl[b] = log_lik
    return _sum_diagonal(p0, p1, p2, pl)


@numba.njit(parallel=True, **_JIT)
def _moments_spherical(X, sample_weight, log_const, means, prec_chol, block_size):
    n, d = X.shape
    n_components = means.shape[0]
    n_blocks = max(1, (n + block_size - 1) // block_size)
    p0 = np.zeros((n_blocks, n_components))
    p1 = np.zeros((n_blocks, n_components, d))
    p2 = np.zeros((n_blocks, n_components, d))
    pl = np.zeros(n_blocks)
    for b in prange(n_blocks):
        diff = np.empty((n_components, d))
        a = np.empty(n_components)
        resp = np.empty(n_components)
        s0 = np.zeros(n_components)
        s1 = np.zeros((n_components, d))
        s2 = np.zeros((n_components, d))
        log_lik = 0.0
        for n_row in range(b * block_size, min(n, (b + 1) * block_size)):
            w = _row_weight(sample_weight, n_row)
            if w == 0.0:
                continue
            _log_prob_spherical(X, n_row, log_const, means, prec_chol, diff, a)
            log_lik += w * _normalise(a, resp)
            _add_diagonal(w, resp, diff, s0, s1, s2)
        p0[b] = s0
        p1[b] = s1
        p2[b] = s2
        pl[b] = log_lik
    return _sum_diagonal(p0, p1, p2, pl)


# ---------------------------------------------------------------------------------------
# Per-row kernels for prediction: write log-responsibilities (N, K) and log p(x) (N,) into
# preallocated arrays. Signature: (X, log_const, means, prec_chol, block_size, log_resp,
# log_lik) -> None.


@numba.njit(parallel=True, **_JIT)
def _rows_full(X, log_const, means, prec_chol, block_size, log_resp, log_lik):
    n, d = X.shape
    n_components = means.shape[0]
    for b in prange((n + block_size - 1) // block_size):
        diff = np.empty((n_components, d))
        a = np.empty(n_components)
        resp = np.empty(n_components)
        for n_row in range(b * block_size, min(n, (b + 1) * block_size)):
            _log_prob_full(X, n_row, log_const, means, prec_chol, diff, a)
            _write_row(a, resp, n_row, log_resp, log_lik)


@numba.njit(parallel=True, **_JIT)
def _rows_tied(X, log_const, means, prec_chol, block_size, log_resp, log_lik):
    n, d = X.shape
    n_components = means.shape[0]
    for b in prange((n + block_size - 1) // block_size):
        diff = np.empty((n_components, d))
        a = np.empty(n_components)
        resp = np.empty(n_components)
        for n_row in range(b * block_size, min(n, (b + 1) * block_size)):
            _log_prob_tied(X, n_row, log_const, means, prec_chol, diff, a)
            _write_row(a, resp, n_row, log_resp, log_lik)


@numba.njit(parallel=True, **_JIT)
def _rows_diag(X, log_const, means, prec_chol, block_size, log_resp, log_lik):
    n, d = X.shape
    n_components = means.shape[0]
    for b in prange((n + block_size - 1) // block_size):
        diff = np.empty((n_components, d))
        a = np.empty(n_components)
        resp = np.empty(n_components)
        for n_row in range(b * block_size, min(n, (b + 1) * block_size)):
            _log_prob_diag(X, n_row, log_const, means, prec_chol, diff, a)
            _write_row(a, resp, n_row, log_resp, log_lik)


@numba.njit(parallel=True, **_JIT)
def _rows_spherical(X, log_const, means, prec_chol, block_size, log_resp, log_lik):
    n, d = X.shape
    n_components = means.shape[0]
    for b in prange((n + block_size - 1) // block_size):
        diff = np.empty((n_components, d))
        a = np.empty(n_components)
        resp = np.empty(n_components)
        for n_row in range(b * block_size, min(n, (b + 1) * block_size)):
            _log_prob_spherical(X, n_row, log_const, means, prec_chol, diff, a)
            _write_row(a, resp, n_row, log_resp, log_lik)


@numba.njit(**_INLINE)
def _write_row(a, resp, n_row, log_resp, log_lik):
    lse = _normalise(a, resp)
    log_lik[n_row] = lse
    for k in range(a.shape[0]):
        log_resp[n_row, k] = a[k] - lse


# ---------------------------------------------------------------------------------------
# Registry and Python wrappers.


class StructureKernels(NamedTuple):
    """The compiled kernels of one covariance structure.

    Attributes
    ----------
    moments : numba dispatcher
        ``(X, sample_weight, log_const, means, prec_chol, block_size)
        -> (s0, s1, s2, log_lik_sum)``; ``sample_weight`` of shape (N,), or (0,) for unit
        weights.
    rows : numba dispatcher
        ``(X, log_const, means, prec_chol, block_size, log_resp, log_lik) -> None``.
    """

    moments: object
    rows: object


#: Structure name -> its kernels.
KERNELS: dict[str, StructureKernels] = {
    "full": StructureKernels(_moments_full, _rows_full),
    "tied": StructureKernels(_moments_tied, _rows_tied),
    "diag": StructureKernels(_moments_diag, _rows_diag),
    "spherical": StructureKernels(_moments_spherical, _rows_spherical),
}


@dataclass(frozen=True)
class FusedMoments:
    """Weighted moments of the data about the current means, from one fused pass.

    Attributes
    ----------
    shift : ndarray of shape (n_components, n_features)
        The means the moments are taken about.
    s0 : ndarray of shape (n_components,)
        ``sum_n w_n gamma_nk``.
    s1 : ndarray of shape (n_components, n_features)
        ``sum_n w_n gamma_nk (x_n - mu_k)``.
    s2 : ndarray of shape (n_components, n_features, n_features) or (n_components, n_features)
        ``sum_n w_n gamma_nk (x_n - mu_k)(x_n - mu_k)^T`` (full, tied) or its diagonal
        (diag, spherical).
    log_lik_sum : float
        ``sum_n w_n log p(x_n)``.
    weight_sum : float
        ``sum_n w_n`` (the number of rows for unit weights).
    """

    shift: np.ndarray
    s0: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    log_lik_sum: float
    weight_sum: float


@dataclass(frozen=True)
class FusedStatistics:
    """Centred sufficient statistics and the log-likelihood, from one fused pass.

    Attributes
    ----------
    nk : ndarray of shape (n_components,)
        ``N_k = sum_n w_n gamma_nk + 10 eps`` (the ``10 eps`` of
        :func:`~bayesgmm.em.steps.sufficient_statistics`).
    xbar : ndarray of shape (n_components, n_features)
        ``sum_n w_n gamma_nk x_n / N_k``.
    scatter : ndarray of shape (n_components, n_features, n_features) or (n_components, n_features)
        ``S_k = sum_n w_n gamma_nk (x_n - xbar_k)(x_n - xbar_k)^T`` (full, tied) or its
        diagonal (diag, spherical): the layout of
        :class:`~bayesgmm.em.steps.SufficientStatistics`.
    log_lik_sum : float
        ``sum_n w_n log p(x_n)``.
    weight_sum : float
        ``sum_n w_n``; ``log_lik_sum / weight_sum`` is scikit-learn's per-sample bound.
    """

    nk: np.ndarray
    xbar: np.ndarray
    scatter: np.ndarray
    log_lik_sum: float
    weight_sum: float

    def sufficient_statistics(self) -> SufficientStatistics:
        """The statistics as :func:`~bayesgmm.em.steps.m_step_from_statistics` takes them."""
        return SufficientStatistics(self.nk, self.xbar, self.scatter)


def centred_statistics(moments: FusedMoments) -> FusedStatistics:
    """``N_k = s0_k + 10 eps``, ``xbar_k = mu_k + s1_k / N_k``, ``S_k = s2_k - s1_k s1_k^T / N_k``."""
    nk = moments.s0 + _EPS
    centred_mean = moments.s1 / nk[:, None]
    if moments.s2.ndim == 3:
        scatter = moments.s2 - nk[:, None, None] * centred_mean[:, :, None] * centred_mean[:, None]
    else:
        scatter = moments.s2 - nk[:, None] * centred_mean**2
    return FusedStatistics(
        nk, moments.shift + centred_mean, scatter, moments.log_lik_sum, moments.weight_sum
    )


def fused_moments(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    structure: CovarianceType,
    *,
    sample_weight: np.ndarray | None = None,
    block_size: int = BLOCK_SIZE,
) -> FusedMoments:
    """E-step and moments about ``means`` in one pass (see the module docstring).

    Moments of several chunks about the same ``means`` add up, so this is the per-chunk
    work of out-of-core EM as well.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float64 or float32 (read without a copy when C-contiguous); other dtypes are
        converted to float64. Must be finite (not checked here).
    weights : ndarray of shape (n_components,)
        Mixing proportions ``alpha_k``.
    means : ndarray of shape (n_components, n_features)
    precisions_cholesky : ndarray
        scikit-learn's layout for ``structure`` (see the module docstring).
    structure : {"full", "tied", "diag", "spherical"}
    sample_weight : ndarray of shape (n_samples,), optional
        Non-negative frequency weights (default: ones). Rows of weight 0 are skipped.
    block_size : int
        Rows per parallel block; results depend on it only through summation order.

    Returns
    -------
    FusedMoments
    """
    X = _as_data(X)
    kernels = _kernels(structure)
    means = np.ascontiguousarray(means, dtype=np.float64)
    prec_chol = np.ascontiguousarray(precisions_cholesky, dtype=np.float64)
    _check_shapes(X, weights, means, prec_chol, structure)
    sample_weight = _sample_weight(sample_weight, X.shape[0])
    block_size = _block_size(block_size)
    log_const = _log_const(weights, prec_chol, structure, X.shape[1])
    s0, s1, s2, log_lik_sum = kernels.moments(
        X, sample_weight, log_const, means, prec_chol, block_size
    )
    weight_sum = float(sample_weight.sum()) if sample_weight.size else float(X.shape[0])
    return FusedMoments(means, s0, s1, s2, float(log_lik_sum), weight_sum)


def fused_statistics(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    structure: CovarianceType,
    *,
    sample_weight: np.ndarray | None = None,
    block_size: int = BLOCK_SIZE,
) -> FusedStatistics:
    """E-step and centred sufficient statistics in one pass over ``X``.

    Equal (to rounding) to ``e_step`` followed by ``sufficient_statistics`` with
    responsibilities ``w_n gamma_nk``, without any (N, K) array.

    Parameters
    ----------
    X, weights, means, precisions_cholesky, structure, sample_weight, block_size
        As in :func:`fused_moments`.

    Returns
    -------
    FusedStatistics
        ``.sufficient_statistics()`` feeds :func:`~bayesgmm.em.steps.m_step_from_statistics`.
    """
    return centred_statistics(
        fused_moments(
            X,
            weights,
            means,
            precisions_cholesky,
            structure,
            sample_weight=sample_weight,
            block_size=block_size,
        )
    )


def fused_log_resp(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    structure: CovarianceType,
    *,
    log_resp: np.ndarray | None = None,
    log_lik: np.ndarray | None = None,
    block_size: int = BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Log-responsibilities and ``log p(x_n)`` row by row (``predict_proba``, ``score_samples``).

    Parameters
    ----------
    X, weights, means, precisions_cholesky, structure, block_size
        As in :func:`fused_moments`.
    log_resp : ndarray of shape (n_samples, n_components), optional
        float64, C-contiguous output array (allocated if not given).
    log_lik : ndarray of shape (n_samples,), optional
        float64 output array (allocated if not given).

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
    log_lik : ndarray of shape (n_samples,)
    """
    X = _as_data(X)
    kernels = _kernels(structure)
    means = np.ascontiguousarray(means, dtype=np.float64)
    prec_chol = np.ascontiguousarray(precisions_cholesky, dtype=np.float64)
    _check_shapes(X, weights, means, prec_chol, structure)
    n_samples, n_components = X.shape[0], means.shape[0]
    if log_resp is None:
        log_resp = np.empty((n_samples, n_components))
    if log_lik is None:
        log_lik = np.empty(n_samples)
    _check_output(log_resp, (n_samples, n_components), "log_resp")
    _check_output(log_lik, (n_samples,), "log_lik")
    log_const = _log_const(weights, prec_chol, structure, X.shape[1])
    kernels.rows(X, log_const, means, prec_chol, _block_size(block_size), log_resp, log_lik)
    return log_resp, log_lik


def _kernels(structure: str) -> StructureKernels:
    try:
        return KERNELS[structure]
    except KeyError:
        raise ValueError(
            f"structure={structure!r} has no fused kernel; use one of {sorted(KERNELS)}"
        ) from None


def _as_data(X) -> np.ndarray:
    X = np.asarray(X)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    X = np.ascontiguousarray(X, dtype=dtype)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    return X


def _check_shapes(X, weights, means, prec_chol, structure) -> None:
    n_components, d = means.shape
    if d != X.shape[1]:
        raise ValueError(f"means have {d} features but X has {X.shape[1]}; pass X of width {d}")
    expected = {
        "full": (n_components, d, d),
        "tied": (d, d),
        "diag": (n_components, d),
        "spherical": (n_components,),
    }[structure]
    if prec_chol.shape != expected:
        raise ValueError(
            f"precisions_cholesky for {structure!r} must have shape {expected}, got "
            f"{prec_chol.shape}"
        )
    if np.shape(weights) != (n_components,):
        raise ValueError(f"weights must have shape ({n_components},), got {np.shape(weights)}")


def _check_output(out: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    if out.shape != shape or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(
            f"{name} must be a C-contiguous float64 array of shape {shape}, got "
            f"{out.dtype} {out.shape}"
        )


def _sample_weight(sample_weight, n_samples: int) -> np.ndarray:
    if sample_weight is None:
        return np.empty(0)
    sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
    if sample_weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per row of X, got "
            f"{sample_weight.shape}"
        )
    if not np.all(np.isfinite(sample_weight) & (sample_weight >= 0.0)):
        raise ValueError("sample_weight must be finite and non-negative; drop or fix the rows")
    return sample_weight


def _block_size(block_size: int) -> int:
    if int(block_size) < 1:
        raise ValueError(f"block_size must be a positive number of rows, got {block_size}")
    return int(block_size)


def _log_const(weights, prec_chol, structure, n_features: int) -> np.ndarray:
    """``log alpha_k + log det U_k - d log(2 pi) / 2``, shape (K,)."""
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(weights, dtype=np.float64))
    log_det = log_det_cholesky(prec_chol, structure, n_features)
    return np.ascontiguousarray(log_weights + log_det - 0.5 * n_features * _LOG_2PI)


__all__ = [
    "BLOCK_SIZE",
    "KERNELS",
    "FusedMoments",
    "FusedStatistics",
    "StructureKernels",
    "centred_statistics",
    "fused_log_resp",
    "fused_moments",
    "fused_statistics",
]
