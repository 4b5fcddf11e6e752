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
structure name to them. The layout of
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
(Dask's threaded scheduler, say), so the wrappers below run one kernel call at a time per
process (a lock; each call already uses every core).

Precision: float32 data are read as they are (no copy) and every row is computed in
float64, as are all the sums; float64 results therefore do not depend on the input
dtype beyond the rounding of the data themselves. (scikit-learn computes in float32.)
Kernels are compiled with ``fastmath=False`` (results equal scikit-learn's to ~1e-12)
and cached on disk (``cache=True``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from bayesgmm._numba import gaussian
from bayesgmm._numba.cache import depend_on
from bayesgmm._numba.gaussian import LOG_2PI, cholesky_lower, inv_lower
from bayesgmm._numba.specialise import specialise
from bayesgmm.core.covariance import CovarianceType
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
from bayesgmm.em.gaussian import log_det_cholesky
from bayesgmm.em.steps import SufficientStatistics

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

#: One kernel call at a time per process (the workqueue layer is not thread-safe).
_CALL_LOCK = threading.Lock()

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
    """Centre moments: ``N_k = s0_k + 10 eps``, ``xbar_k = mu_k + s1_k / N_k``,
    ``S_k = s2_k - s1_k s1_k^T / N_k``."""
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
    means, prec_chol = _parameter_array(means), _parameter_array(precisions_cholesky)
    _check_shapes(X, weights, means, prec_chol, structure)
    sample_weight = _sample_weight(sample_weight, X.shape[0])
    block_size = _block_size(block_size)
    log_const = _log_const(weights, prec_chol, structure, X.shape[1])
    with _CALL_LOCK:
        totals = kernels.moments(X, sample_weight, log_const, means, prec_chol, block_size)
    n_components, d = means.shape
    s0 = totals[:n_components]
    s1 = totals[n_components : n_components * (1 + d)].reshape(n_components, d)
    if kernels.outer:
        s2 = totals[n_components * (1 + d) : -1].reshape(n_components, d, d)
        s2 = s2 + np.triu(s2, 1).swapaxes(1, 2)
    else:
        s2 = totals[n_components * (1 + d) : -1].reshape(n_components, d)
    weight_sum = float(sample_weight.sum()) if sample_weight.size else float(X.shape[0])
    return FusedMoments(means, s0, s1, s2, float(totals[-1]), weight_sum)


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
    means, prec_chol = _parameter_array(means), _parameter_array(precisions_cholesky)
    _check_shapes(X, weights, means, prec_chol, structure)
    n_samples, n_components = X.shape[0], means.shape[0]
    if log_resp is None:
        log_resp = np.empty((n_samples, n_components))
    if log_lik is None:
        log_lik = np.empty(n_samples)
    _check_output(log_resp, (n_samples, n_components), "log_resp")
    _check_output(log_lik, (n_samples,), "log_lik")
    log_const = _log_const(weights, prec_chol, structure, X.shape[1])
    with _CALL_LOCK:
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


def _parameter_array(a) -> np.ndarray:
    """A fresh writable C-contiguous float64 copy (small): one compiled type, whether the
    caller's array is read-only (as in ``MixtureParams``) or not."""
    return np.array(a, dtype=np.float64, order="C")


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
    if not sample_weight.flags.writeable:  # one compiled type (see _parameter_array)
        sample_weight = sample_weight.copy()
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
    return np.ascontiguousarray(log_weights + log_det - 0.5 * n_features * LOG_2PI)


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
