"""What the structures' NUTS-target kernels share: the weights, the data containers, transforms.

Numba side
    The weights' and the rows' terms every kernel inlines, the full one's included, are
    :mod:`bayesgmm.bayes.kernel_terms`'s.

Python side
    :class:`ContainerKernel`: the callable ``x -> (logp, grad)`` that reads a model's
    ``pm.Data`` containers (:data:`DATA_NAMES`) at every call and re-derives a kernel's
    packed arguments only when one of them was replaced. The NumPy transforms
    (:func:`simplex_backward`, :func:`simplex_forward`, :func:`spd_backward`,
    :func:`spd_forward`) give the traced values of an unconstrained vector and back, as
    the model's transforms do (PyMC's ``SimplexTransform``, ``LogTransform`` and
    :class:`~bayesgmm.bayes.structures.SPDCholeskyTransform`), so a kernel-backed structure
    compiles no PyTensor function.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numba
import numpy as np
from scipy.special import gammaln

from bayesgmm.bayes.kernel_terms import _JIT

# the model's pm.Data containers every kernel reads, in the order ContainerKernel passes
# their values to its ``prepare``: the full kernel's
from bayesgmm.bayes.posterior_kernel import DATA_NAMES

_FIRST = operator.itemgetter(0)


def dirichlet_constant(concentration: np.ndarray) -> float:
    """``log Gamma(sum a) - sum log Gamma(a_k) + log K`` (Dirichlet and simplex Jacobian);
    0 when K = 1 (``weights`` is then the constant 1)."""
    n_components = concentration.shape[0]
    if n_components == 1:
        return 0.0
    return float(gammaln(concentration.sum()) - gammaln(concentration).sum() + np.log(n_components))


class ContainerKernel:
    """``x -> (logp, grad)``: a kernel fed from a model's ``pm.Data`` containers.

    Called like the PyTensor function it replaces and from many threads at once: it reads
    the current values of the containers (:data:`DATA_NAMES`) at every call, and derives the
    kernel's arguments (``prepare(values) -> (data, packed)``: the contiguous data and
    everything else in one vector, which numba types faster than many arguments) only when
    one of them was replaced; the result is kept as one tuple, replaced whole, so a thread
    never sees half of an update.

    Parameters
    ----------
    model : pymc.Model
    prepare : callable
        ``prepare(values) -> (data, packed)`` from the containers' values.
    kernel : numba function
        ``kernel(x, data, packed) -> (logp, grad)``.
    """

    def __init__(self, model, prepare: Callable, kernel) -> None:
        self._cells = tuple(model[name].container.storage for name in DATA_NAMES)
        self._prepare = prepare
        self.kernel = kernel
        self._prepared: tuple | None = None

    def arguments(self) -> tuple[np.ndarray, np.ndarray]:
        """``(data, packed)`` for the containers' current values."""
        return self._prepare(tuple(map(_FIRST, self._cells)))

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density and gradient at the unconstrained ``x`` (n_dim,)."""
        prepared = self._prepared
        if prepared is None or not all(map(operator.is_, prepared[0], map(_FIRST, self._cells))):
            values = tuple(map(_FIRST, self._cells))
            prepared = self._prepared = (values, *self._prepare(values))
        return self.kernel(x, prepared[1], prepared[2])


def contiguous(value) -> np.ndarray:
    """``value`` as a C-contiguous float64 array."""
    return np.ascontiguousarray(value, dtype=np.float64)


# ---- the models' transforms in NumPy (expand and unconstrain) ---------------------------


@numba.njit(**_JIT)
def _exp(a):
    """``exp`` of a 1-d array with numba's (LLVM's) ``exp``, as PyTensor's numba backend,
    whose last bits NumPy's vectorised ``exp`` does not always give."""
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = np.exp(a[i])
    return out


@numba.njit(**_JIT)
def _log(a):
    """``log`` of a 1-d array with numba's ``log`` (see :func:`_exp`)."""
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = np.log(a[i])
    return out


def exp(a: np.ndarray) -> np.ndarray:
    """Elementwise ``exp`` with the PyTensor graph's bits (any shape)."""
    a = np.asarray(a, dtype=np.float64)
    return _exp(np.ascontiguousarray(a).ravel()).reshape(a.shape)


def log(a: np.ndarray) -> np.ndarray:
    """Elementwise ``log`` with the PyTensor graph's bits (any shape)."""
    a = np.asarray(a, dtype=np.float64)
    return _log(np.ascontiguousarray(a).ravel()).reshape(a.shape)


@numba.njit(**_JIT)
def _simplex_backward(y):
    n = y.shape[0] + 1
    z = np.empty(n)
    total = 0.0
    for k in range(n - 1):
        z[k] = y[k]
        total += y[k]
    z[n - 1] = -total
    top = z[0]
    for k in range(1, n):
        top = max(top, z[k])
    total = 0.0
    for k in range(n):
        z[k] = np.exp(z[k] - top)
        total += z[k]
    for k in range(n):
        z[k] = z[k] / total
    return z


@numba.njit(**_JIT)
def _simplex_forward(weights):
    n = weights.shape[0]
    log_w = np.empty(n)
    total = 0.0
    for k in range(n):
        log_w[k] = np.log(weights[k])
        total += log_w[k]
    shift = total / n
    out = np.empty(n - 1)
    for k in range(n - 1):
        out[k] = log_w[k] - shift
    return out


def simplex_backward(y: np.ndarray) -> np.ndarray:
    """PyMC's ``SimplexTransform.backward``: ``y`` (K-1,) -> weights (K,)."""
    return _simplex_backward(contiguous(y))


def simplex_forward(weights: np.ndarray) -> np.ndarray:
    """PyMC's ``SimplexTransform.forward``: weights (K,) -> ``y`` (K-1,)."""
    return _simplex_forward(contiguous(weights))


@numba.njit(**_JIT)
def _ordered_backward(y):
    out = np.empty_like(y)
    acc = y[0]
    out[0] = acc
    for k in range(1, y.shape[0]):
        acc += np.exp(y[k])
        out[k] = acc
    return out


@numba.njit(**_JIT)
def _ordered_forward(means):
    out = np.empty_like(means)
    out[0] = means[0]
    for k in range(1, means.shape[0]):
        out[k] = np.log(means[k] - means[k - 1])
    return out


def ordered_backward(y: np.ndarray) -> np.ndarray:
    """:class:`~bayesgmm.bayes.ordering.OrderedComponents`' backward map: ``y`` (K,) -> the
    increasing means (K, 1): ``mu_0 = y_0``, ``mu_k = mu_{k-1} + exp(y_k)``."""
    return _ordered_backward(contiguous(y))[:, None]


def ordered_forward(means: np.ndarray) -> np.ndarray:
    """The inverse of :func:`ordered_backward`: means (K, 1) -> ``y`` (K,)."""
    return _ordered_forward(contiguous(np.ravel(means)))


#: ``kind`` of :func:`expand_values`: how the covariance block of ``x`` is laid out
FULL_KIND, TIED_KIND, DIAG_KIND, SPHERICAL_KIND = 0, 1, 2, 3


@numba.njit(**_JIT)
def expand_values(x, n_components, d, kind, location, scale):
    """The traced values at the unconstrained ``x``, as the graph's ``expand`` computes them.

    Parameters
    ----------
    x : ndarray of shape (n_dim,)
        ``(y_w (K-1), covariance block, means block)``.
    n_components, d : int
    kind : int
        :data:`FULL_KIND` (``K d(d+1)/2``, Cholesky), :data:`TIED_KIND` (``d(d+1)/2``),
        :data:`DIAG_KIND` (``K d`` log variances), :data:`SPHERICAL_KIND` (``K``).
    location, scale : ndarray of shape (d,)

    Returns
    -------
    weights : ndarray of shape (K,)
    covariance : ndarray of shape (n_cov,)
        The covariance variable, flattened (``L L^T`` per matrix, or the variances).
    means_z, means : ndarray of shape (K, d)
        Working and user scale (in one dimension, ordered: ``mu_k = mu_{k-1} + exp(y_k)``).
    covariances : ndarray of shape (K, d, d)
        On the user's scale, ``(Sigma_z,ij * scale_i) * scale_j`` (the graph's order).
    """
    n_tri = d * (d + 1) // 2
    off = n_components - 1
    weights = _simplex_backward(x[:off]) if n_components > 1 else np.ones(1)
    if kind == FULL_KIND or kind == TIED_KIND:
        n_mat = n_components if kind == FULL_KIND else 1
        covariance = np.empty(n_mat * d * d)
        working = np.empty((n_mat, d, d))
        chol = np.zeros((d, d))
        for c in range(n_mat):
            t = off + c * n_tri
            for i in range(d):
                for j in range(i):
                    chol[i, j] = x[t]
                    t += 1
                chol[i, i] = np.exp(x[t])
                t += 1
            working[c] = np.dot(chol, chol.T)
        covariance[:] = working.ravel()
        off += n_mat * n_tri
    else:
        n_var = d if kind == DIAG_KIND else 1
        covariance = np.empty(n_components * n_var)
        working = np.zeros((n_components, d, d))
        for k in range(n_components):
            for v in range(n_var):
                covariance[k * n_var + v] = np.exp(x[off + k * n_var + v])
            for i in range(d):
                for j in range(d):
                    var = covariance[k * n_var + (i if n_var > 1 else 0)]
                    working[k, i, j] = var * (1.0 if i == j else 0.0)
        off += n_components * n_var
    means_z = np.empty((n_components, d))
    if d == 1:
        acc = x[off]
        means_z[0, 0] = acc
        for k in range(1, n_components):
            acc += np.exp(x[off + k])
            means_z[k, 0] = acc
    else:
        for k in range(n_components):
            for i in range(d):
                means_z[k, i] = x[off + k * d + i]
    means = np.empty((n_components, d))
    covariances = np.empty((n_components, d, d))
    for k in range(n_components):
        c = k if working.shape[0] > 1 else 0
        for i in range(d):
            means[k, i] = location[i] + scale[i] * means_z[k, i]
            for j in range(d):
                covariances[k, i, j] = working[c, i, j] * scale[i] * scale[j]
    return weights, covariance, means_z, means, covariances


def spd_backward(y: np.ndarray, d: int) -> np.ndarray:
    """:class:`~bayesgmm.bayes.structures.SPDCholeskyTransform`'s backward map.

    ``y`` (..., d(d+1)/2) -> ``L L^T`` (..., d, d), ``L`` lower triangular with the lower
    triangle of ``y`` row by row and its diagonal exponentiated.
    """
    rows, cols = np.tril_indices(d)
    chol = np.zeros((*y.shape[:-1], d, d))
    chol[..., rows, cols] = y
    diag = np.arange(d)
    chol[..., diag, diag] = exp(chol[..., diag, diag])
    return chol @ np.swapaxes(chol, -1, -2)


def spd_forward(value: np.ndarray, d: int) -> np.ndarray:
    """:class:`~bayesgmm.bayes.structures.SPDCholeskyTransform`'s forward map (the inverse)."""
    rows, cols = np.tril_indices(d)
    packed = np.linalg.cholesky(value)[..., rows, cols]
    on_diag = rows == cols
    packed[..., on_diag] = log(packed[..., on_diag])
    return packed


__all__ = [
    "DATA_NAMES",
    "DIAG_KIND",
    "FULL_KIND",
    "SPHERICAL_KIND",
    "TIED_KIND",
    "ContainerKernel",
    "contiguous",
    "dirichlet_constant",
    "exp",
    "expand_values",
    "log",
    "ordered_backward",
    "ordered_forward",
    "simplex_backward",
    "simplex_forward",
    "spd_backward",
    "spd_forward",
]
