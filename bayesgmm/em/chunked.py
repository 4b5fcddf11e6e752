"""EM over data that do not fit in memory: the same M-step on chunked sufficient statistics.

Each E-step pass visits the data chunk by chunk; the structure's fused kernel
(:func:`bayesgmm.em.fused.fused_moments`) reduces every chunk to moments about the
*current* means ``mu_k`` (no cancellation, whatever the data's offset):
``s0 = sum gamma``, ``s1 = sum gamma (x - mu_k)``, ``s2 = sum gamma (x - mu_k)(x - mu_k)^T``.
Moments about the same means add up over chunks; from their sum ``xbar = mu_k + s1 / N_k``
and ``S_k = s2 - s1 s1^T / N_k`` feed :func:`~bayesgmm.em.steps.m_step_from_statistics`,
the M-step the in-memory path uses. Memory is O(chunk_size * d) whatever the number of
rows (the kernel allocates no (rows, K) array).

Accepted data: NumPy arrays (including ``np.memmap``), Dask arrays (blocks are
reduced in parallel by Dask's scheduler: threads, processes, or a ``dask.distributed``
cluster, whichever is active), and anything else that slices by rows and has ``shape``,
such as HDF5 or Zarr arrays. float32 chunks are read as float32 and computed in float64.

Threads: the kernels are themselves parallel (Numba); Dask's threaded scheduler runs
several chunks at once, and Numba's ``workqueue`` threading layer aborts when called from
several threads at once, so :mod:`bayesgmm.em.kernels` runs one kernel call at a time per
process (a lock). Each call already uses every core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesgmm.core.params import MixtureParams
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em.backends import kernel_layout, structure_kernels
from bayesgmm.em.fit import check_map_prior
from bayesgmm.em.options import EMOptions
from bayesgmm.em.run import EMResult, iterate_em
from bayesgmm.em.starts import initial_params
from bayesgmm.em.steps import SufficientStatistics, e_step, m_step_from_statistics


@dataclass(frozen=True)
class ChunkMoments:
    """Moments of one or more chunks about ``shift``; ``+`` combines them.

    Attributes
    ----------
    s0 : ndarray of shape (K,)
    s1 : ndarray of shape (K, d)
    s2 : ndarray of shape (K, d, d) (full, tied) or (K, d) (diag, spherical)
    log_lik : float
        Sum of ``log p(x_n)`` (``w_n log p(x_n)`` with weights) over the rows seen.
    n_samples : int or float
        Rows seen, or their weight total ``sum_n w_n`` with weights.
    """

    s0: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    log_lik: float
    n_samples: float

    def __add__(self, other: ChunkMoments) -> ChunkMoments:
        return ChunkMoments(
            self.s0 + other.s0,
            self.s1 + other.s1,
            self.s2 + other.s2,
            self.log_lik + other.log_lik,
            self.n_samples + other.n_samples,
        )

    def statistics(self, shift: np.ndarray) -> SufficientStatistics:
        """Centred statistics for the M-step; ``shift`` of shape (d,) or (K, d), the point(s)
        the moments were taken about."""
        nk = self.s0 + 10 * np.finfo(np.float64).eps
        centred_mean = self.s1 / nk[:, None]
        if self.s2.ndim == 3:
            scatter = self.s2 - nk[:, None, None] * centred_mean[:, :, None] * centred_mean[:, None]
        else:
            scatter = self.s2 - nk[:, None] * centred_mean**2
        return SufficientStatistics(nk, shift + centred_mean, scatter)


def chunk_moments(
    chunk: np.ndarray, params: MixtureParams, sample_weight: np.ndarray | None = None
) -> ChunkMoments:
    """E-step on one chunk, reduced to moments about the current means ``params.means``.

    Parameters
    ----------
    chunk : ndarray of shape (n_rows, n_features)
    params : MixtureParams
    sample_weight : ndarray of shape (n_rows,), optional
        Frequency weights of the chunk's rows.
    """
    chunk = _finite_chunk(chunk)
    sample_weight = _weight_chunk(sample_weight)
    if structure_kernels(params.structure) is None:
        return _numpy_chunk_moments(chunk, params, sample_weight)
    from bayesgmm.em.fused import fused_moments

    moments = fused_moments(
        chunk,
        params.weights,
        params.means,
        params.precisions_cholesky,
        kernel_layout(params.structure),
        sample_weight=sample_weight,
    )
    return ChunkMoments(moments.s0, moments.s1, moments.s2, moments.log_lik_sum, moments.weight_sum)


def _numpy_chunk_moments(
    chunk: np.ndarray, params: MixtureParams, sample_weight: np.ndarray | None = None
) -> ChunkMoments:
    """:func:`chunk_moments` with NumPy, for structures without fused kernels."""
    log_resp, log_lik = e_step(chunk, params)
    resp = np.exp(log_resp)
    total = float(chunk.shape[0])
    if sample_weight is not None:
        resp = resp * sample_weight[:, None]
        log_lik = log_lik * sample_weight
        total = float(sample_weight.sum())
    s1 = resp.T @ chunk - resp.sum(axis=0)[:, None] * params.means
    s2 = np.stack(
        [
            params.structure.second_moments(resp[:, [k]], chunk - params.means[k])[0]
            for k in range(params.n_components)
        ]
    )
    return ChunkMoments(resp.sum(axis=0), s1, s2, float(log_lik.sum()), total)


def _weight_chunk(sample_weight) -> np.ndarray | None:
    """A chunk of weights as a float64 array (computing it if it is a Dask slice)."""
    if sample_weight is None:
        return None
    if is_dask_array(sample_weight):
        sample_weight = sample_weight.compute()
    return np.asarray(sample_weight, dtype=np.float64)


def check_chunked_sample_weight(sample_weight, X) -> tuple[object | None, float]:
    """Validate frequency weights of chunked data ``X`` in one pass.

    Parameters
    ----------
    sample_weight : array-like or Dask array of shape (n_samples,), or None
    X : chunked array of shape (n_samples, n_features)

    Returns
    -------
    weights : ndarray, Dask array (chunked like the rows of a Dask ``X``) or None
    total : float
        ``sum_n w_n``, or the number of rows without weights.

    Raises
    ------
    ValueError
        As :func:`bayesgmm.core.weights.check_sample_weight`.
    """
    from bayesgmm.core.weights import check_sample_weight, one_per_row

    n_samples = X.shape[0]
    if sample_weight is None:
        return None, float(n_samples)
    if not is_dask_array(sample_weight):
        weights = check_sample_weight(sample_weight, n_samples)
        if is_dask_array(X):
            import dask.array as da

            weights = da.from_array(weights, chunks=(X.chunks[0],))
        return weights, float(weights.sum())
    import dask

    weights = one_per_row(sample_weight.astype(np.float64), n_samples)
    finite, smallest, total = dask.compute(np.isfinite(weights).all(), weights.min(), weights.sum())
    if not finite:
        raise ValueError("sample_weight contains NaN or infinity: give every row a finite weight")
    if smallest < 0:
        raise ValueError(f"sample_weight must be non-negative; the smallest is {float(smallest)}")
    if not total > 0:
        raise ValueError(
            "sample_weight is zero for every row: at least one row needs a positive weight"
        )
    if is_dask_array(X):
        weights = weights.rechunk((X.chunks[0],))
    else:
        weights = weights.compute()
    return weights, float(total)


def _finite_chunk(chunk) -> np.ndarray:
    """A chunk as a finite float array (computing it first if it is a Dask slice)."""
    if is_dask_array(chunk):
        chunk = chunk.compute()
    chunk = np.asarray(chunk)
    if chunk.dtype not in (np.float32, np.float64):
        chunk = chunk.astype(np.float64)
    if chunk.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {chunk.shape}")
    if not np.isfinite(chunk).all():
        cols = sorted(set(np.nonzero(~np.isfinite(chunk))[1].tolist()))
        raise ValueError(f"Input X contains NaN or infinity in column(s) {cols}")
    return chunk


def is_dask_array(X) -> bool:
    """Whether ``X`` is a Dask array (duck-typed, so Dask need not be installed)."""
    return hasattr(X, "to_delayed") and hasattr(X, "chunks")


def is_chunked_store(X) -> bool:
    """Whether ``X`` is a chunked on-disk array other than Dask's (Zarr, HDF5 with chunks)."""
    return (
        not isinstance(X, np.ndarray)
        and not is_dask_array(X)
        and hasattr(X, "shape")
        and len(getattr(X, "shape", ())) == 2
        and isinstance(getattr(X, "chunks", None), tuple)
    )


def as_dask_array(X, min_rows: int = 100_000):
    """A Zarr/HDF5 array as a Dask array of row blocks (at least ``min_rows`` rows each,
    whole stored chunks), so that Dask's scheduler, or a ``dask.distributed`` cluster,
    reduces it."""
    import dask.array as da

    stored = X.chunks[0]
    rows = max(stored, -(-min_rows // stored) * stored)
    return da.from_array(X, chunks=(rows, X.shape[1]))


def _row_slices(n_samples: int, chunk_size: int):
    for start in range(0, n_samples, chunk_size):
        yield slice(start, min(start + chunk_size, n_samples))


def _reduce(X, chunk_size: int, fn, sample_weight=None) -> ChunkMoments:
    """Apply ``fn(chunk, weights of its rows or None)`` to every chunk of ``X``; add the results."""
    if is_dask_array(X):
        import dask

        rows = X.rechunk({1: -1})
        blocks = rows.to_delayed().ravel()
        if sample_weight is None:
            weight_blocks = [None] * len(blocks)
        else:
            weight_blocks = sample_weight.rechunk((rows.chunks[0],)).to_delayed().ravel()
        parts = dask.compute(
            *[dask.delayed(fn)(block, w) for block, w in zip(blocks, weight_blocks, strict=True)]
        )
    else:
        parts = [
            fn(X[rows], None if sample_weight is None else sample_weight[rows])
            for rows in _row_slices(X.shape[0], chunk_size)
        ]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def data_moments(
    X, chunk_size: int = 100_000, *, sample_weight=None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of chunked data in one pass.

    With validated ``sample_weight`` (:func:`check_chunked_sample_weight`), those of the
    rows repeated ``w_n`` times (:func:`bayesgmm.core.weights.weighted_moments`).
    """
    first = _finite_chunk(X[:chunk_size])
    shift = first.mean(axis=0)
    one = MixtureParams(np.ones(1), shift[None], np.ones(1), "spherical")
    total = _reduce(X, chunk_size, lambda c, w: _plain_moments(c, shift, one, w), sample_weight)
    stats = total.statistics(shift)
    return stats.xbar[0], stats.scatter[0] / (total.n_samples - 1)


def _plain_moments(chunk, shift, one: MixtureParams, sample_weight=None) -> ChunkMoments:
    chunk = _finite_chunk(chunk)
    centred = chunk - shift
    sample_weight = _weight_chunk(sample_weight)
    if sample_weight is None:
        weighted, total = centred, float(chunk.shape[0])
    else:
        weighted, total = centred * sample_weight[:, None], float(sample_weight.sum())
    return ChunkMoments(
        np.array([total]),
        weighted.sum(axis=0)[None],
        (weighted.T @ centred)[None],
        0.0,
        total,
    )


def fit_em_chunked(
    X,
    spec: MixtureSpec,
    options: EMOptions | None = None,
    *,
    chunk_size: int = 100_000,
    init_size: int = 20_000,
    random_state: int | np.random.Generator | None = None,
    params_init: MixtureParams | None = None,
    sample_weight=None,
) -> EMResult:
    """EM or MAP-EM on chunked data (see the module docstring).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NumPy (or memmap), Dask, or any row-sliceable array.
    spec : MixtureSpec
        Built with the data's moments (:func:`data_moments`) when the prior is the
        data-scaled default.
    options : EMOptions, optional
        ``tol``, ``max_iter``, ``reg_covar`` and ``init_params`` are used (one start).
    chunk_size : int
        Rows per chunk for non-Dask input (Dask input uses its own row blocks).
    init_size : int
        Rows of a seeded random subsample used to initialise.
    random_state : int, Generator or None
    params_init : MixtureParams, optional
        Explicit start (overrides the subsample initialisation).
    sample_weight : ndarray or Dask array of shape (n_samples,), optional
        Validated frequency weights (:func:`check_chunked_sample_weight`); the objective
        is then per unit of weight.

    Returns
    -------
    EMResult
        With ``lower_bound`` the per-sample objective over all rows.
    """
    options = EMOptions() if options is None else options
    check_map_prior(spec)
    rng = np.random.default_rng(random_state)
    n_samples = X.shape[0]
    if spec.n_components > n_samples:
        raise ValueError(f"n_components={spec.n_components} must be <= n_samples={n_samples}")
    prior = spec.prior
    if params_init is None:
        rows = np.sort(rng.choice(n_samples, size=min(init_size, n_samples), replace=False))
        subset = _finite_chunk(X[rows])
        weights = None
        if sample_weight is not None:
            weights = _weight_chunk(sample_weight[rows])
            subset, weights = subset[weights > 0], weights[weights > 0]
        params_init = initial_params(subset, spec, options, rng, weights)

    def step(params: MixtureParams) -> tuple[float, MixtureParams, bool]:
        moments = _reduce(X, chunk_size, lambda c, w: chunk_moments(c, params, w), sample_weight)
        objective = moments.log_lik / moments.n_samples
        if prior is not None:
            objective += prior.log_density(params) / moments.n_samples
        updated = m_step_from_statistics(
            moments.statistics(params.means), spec.structure, prior, options.reg_covar
        )
        return objective, updated, False

    return iterate_em(
        step, params_init, tol=options.tol, max_iter=options.max_iter, stopping=options.stopping
    )


__all__ = [
    "ChunkMoments",
    "as_dask_array",
    "check_chunked_sample_weight",
    "chunk_moments",
    "data_moments",
    "fit_em_chunked",
    "is_chunked_store",
    "is_dask_array",
]
