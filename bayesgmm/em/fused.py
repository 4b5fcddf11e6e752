"""The fused EM passes as Python functions: checked inputs, one compiled call, named results.

:func:`fused_moments`, :func:`fused_statistics` and :func:`fused_log_resp` call the
structure's compiled kernels (:data:`bayesgmm.em.kernels.KERNELS`, whose docstring describes
the pass, its layout of the work, its reproducibility and its precision) on validated,
contiguous arrays, one call at a time per process (Numba's ``workqueue`` threading layer is
not thread-safe; each call already uses every core), and turn the flat totals into
:class:`FusedMoments` and :class:`FusedStatistics`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from bayesgmm._numba.gaussian import LOG_2PI
from bayesgmm.core.covariance import CovarianceType
from bayesgmm.em.gaussian import log_det_cholesky
from bayesgmm.em.kernels import _EPS, BLOCK_SIZE, KERNELS, StructureKernels
from bayesgmm.em.steps import SufficientStatistics

#: One kernel call at a time per process (the workqueue layer is not thread-safe).
_CALL_LOCK = threading.Lock()


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
    "FusedMoments",
    "FusedStatistics",
    "centred_statistics",
    "fused_log_resp",
    "fused_moments",
    "fused_statistics",
]
