"""The terms every NUTS-target kernel computes alike, inlined into each.

:func:`simplex_weights` (PyMC's simplex transform's backward map, as the graph writes it) and
:func:`add_weights_terms` (the Dirichlet prior, the transform's Jacobian and their gradient
through the softmax) for K > 1 components; :func:`row_run` and :func:`add_row_total`, the
log-likelihood's sum of ``log sum_k exp(log_joint_nk - top_n)`` over the rows: each row's sum
lies in ``[1, K]``, so their product is kept and its log taken every :func:`row_run` rows
(before it could overflow), one log per run rather than per row. Used by
:mod:`bayesgmm.bayes.posterior_kernel` (full) and :mod:`bayesgmm.bayes.kernels` (tied, diag,
spherical); a module of its own so that both can import it.
"""

from __future__ import annotations

import numba
import numpy as np

#: Every NUTS-target kernel's compilation: reproducible (no fast-math), GIL-free, cached, and
#: ``error_model="numpy"``: a division by zero gives inf or NaN (as in the PyTensor graph),
#: not ``ZeroDivisionError``
_JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
#: the same, inlined into the kernel that calls it
_INLINE = dict(_JIT, inline="always")


@numba.njit(**_INLINE)
def simplex_weights(x, n_components, weights, log_w):
    """Fill ``weights`` and ``log_w`` (K,) from ``y_w = x[:K-1]`` (PyMC's simplex backward).

    ``z = (y_w, -sum y_w)``, ``w = exp(z - max z) / sum exp(z - max z)``; ``w = (1,)`` for K = 1.
    """
    if n_components == 1:
        weights[0] = 1.0
        log_w[0] = 0.0
        return
    last = 0.0
    for k in range(n_components - 1):
        last -= x[k]
    top = last
    for k in range(n_components - 1):
        top = max(top, x[k])
    total = 0.0
    for k in range(n_components):
        zk = x[k] if k < n_components - 1 else last
        weights[k] = np.exp(zk - top)
        total += weights[k]
    for k in range(n_components):
        weights[k] = weights[k] / total
        log_w[k] = np.log(weights[k])


@numba.njit(**_INLINE)
def add_weights_terms(concentration, counts, weights, log_w, grad):
    """``sum_k a_k log w_k`` (Dirichlet and simplex Jacobian, constants aside); the gradient.

    ``grad[:K-1]`` gets ``d/dy_j`` of that and of the likelihood, whose derivative with
    respect to ``log w_k`` is the responsibility sum ``counts[k]``: with ``G_k = a_k + N_k``,
    ``G_j - G_{K-1} - (sum_k G_k)(w_j - w_{K-1})``. Returns the value (0 when K = 1).
    """
    n_components = concentration.shape[0]
    if n_components == 1:
        return 0.0
    logp = 0.0
    total_g = 0.0
    for k in range(n_components):
        logp += concentration[k] * log_w[k]
        total_g += concentration[k] + counts[k]
    last = n_components - 1
    g_last = concentration[last] + counts[last]
    for j in range(n_components - 1):
        grad[j] = concentration[j] + counts[j] - g_last - total_g * (weights[j] - weights[last])
    return logp


@numba.njit(**_INLINE)
def row_run(n_rows, n_components):
    """Rows whose sums are multiplied before one log is taken (all of them when K = 1)."""
    return n_rows if n_components == 1 else max(1, int(600.0 / np.log(n_components)))


@numba.njit(**_INLINE)
def add_row_total(loglik, product, left, total, run, last):
    """One row's sum ``total`` into the running product; the product's log into ``loglik``
    when the run is complete or the row is the ``last``. Returns ``(loglik, product, left)``."""
    product *= total
    left -= 1
    if left == 0 or last:
        loglik += np.log(product)
        product = 1.0
        left = run
    return loglik, product, left


__all__ = ["add_row_total", "add_weights_terms", "row_run", "simplex_weights"]
