"""The mixture log-likelihood as one fused PyTensor ``Op`` with an analytic gradient.

:func:`mixture_loglik` computes, per observation,

``log p(x_n) = logsumexp_k(log w_k + log N(x_z | mu_k, L_k L_k^T)) - sum(log scale)``,
``x_z = (x_n - location) / scale``,

the density of the observed variable of :func:`bayesgmm.bayes.model.build_model`
(:func:`bayesgmm.bayes.model.mixture_logp_graph` writes it with PyTensor ops: a batched
triangular solve, broadcasts and a log-sum-exp, which PyTensor differentiates into a
graph several times that size). Here the density and its gradient are Numba kernels:

:class:`MixtureLogp`
    ``(value (N, d), weights (K,), means (K, d), chol (K or 1, d, d), location (d,),
    scale (d,)) -> (N,)``. ``chol`` holds lower Cholesky factors (the upper triangle is
    never read); a leading dimension of 1 is one factor shared by every component (the
    tied structure).
:class:`MixtureLogpGrad`
    For the upstream gradient ``g`` (N,), the gradients with respect to ``weights``,
    ``means`` and ``chol``. With ``r_nk`` the responsibilities, ``z_nk = L_k^{-1}(x_z - mu_k)``
    and ``u_nk = L_k^{-T} z_nk``::

        d/dw_k  = sum_n g_n r_nk / w_k
        d/dmu_k = sum_n g_n r_nk u_nk
        d/dL_k  = sum_n g_n r_nk tril(u_nk z_nk^T - diag(1 / L_k,ii))

    summed over the components for a shared factor. ``value``, ``location`` and ``scale``
    are data: their gradients are undefined (``pytensor.gradient.grad_undefined``; asking
    for one raises).
:class:`MixtureLogpAndGrad`
    Both in one pass over the rows (the log densities and responsibilities computed
    once); :func:`fuse_mixture_logp_and_grad`, one of PyTensor's default rewrites, puts it
    in place of a :class:`MixtureLogp` and the :class:`MixtureLogpGrad` of the same inputs.
    On the project's NUTS targets (``benchmarks/bench_gradient.py``) a call of the log
    density and gradient takes 19 µs instead of 22 µs on galaxies K=2 and 27 µs instead
    of 37 µs on Old Faithful K=2 full; most of what remains (about 15 µs) is the rest of
    the model (priors, transforms) and the call, whatever the number of rows.

Each kernel is one ``numba.njit`` function (``fastmath=False``, ``nogil=True``: bit-for-bit
the same result in every backend and when loaded from the disk cache, callable from
nutpie's threads). The Python and C backends (PyMC's own NUTS, variational inference,
``compute_log_likelihood``) run it from ``perform``; PyTensor's numba backend calls it
from the compiled graph (registered with ``register_funcify_default_op_cache_key``, so the
graph keeps its place in PyTensor's disk cache; the key carries a hash of this module's
kernel source, so a changed kernel is compiled again).
"""

from __future__ import annotations

import hashlib
import inspect

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.gradient import grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key
from pytensor.tensor.type import TensorType

from bayesgmm._numba import gaussian
from bayesgmm._numba.cache import depend_on, source_digest
from bayesgmm._numba.gaussian import (
    exp_shifted,
    gaussian_log_const,
    inverse_diagonal,
    log_sum_exp_shift,
    whiten,
)

_JIT = dict(nogil=True, cache=True, fastmath=False)
#: Helpers are inlined into the kernels (a call passing arrays costs reference counting).
_INLINE = dict(_JIT, inline="always")


@numba.njit(**_INLINE)
def _component_constants(weights, chol, d):
    """``log w_k - sum_i log L_k,ii - d/2 log 2 pi`` (K,) and ``1 / L_k,ii`` (K or 1, d)."""
    n_components = weights.shape[0]
    n_chol = chol.shape[0]
    inv_diag = np.empty((n_chol, d))
    for c in range(n_chol):
        inverse_diagonal(chol[c], inv_diag[c])
    const = np.empty(n_components)
    for k in range(n_components):
        const[k] = gaussian_log_const(np.log(weights[k]), chol[k if n_chol > 1 else 0])
    return const, inv_diag


@numba.njit(**_INLINE)
def _scale_terms(scale):
    """``sum_i log scale_i`` (the standardisation's log-Jacobian) and ``1 / scale`` (d,)."""
    log_scale = 0.0
    inv_scale = np.empty(scale.shape[0])
    for i in range(scale.shape[0]):
        log_scale += np.log(scale[i])
        inv_scale[i] = 1.0 / scale[i]
    return log_scale, inv_scale


@numba.njit(**_INLINE)
def _row_log_joint(value, n, means, chol, location, inv_scale, const, inv_diag, x_z, z, log_joint):
    """Fill ``log_joint`` (K,) with ``log w_k + log N(x_z | mu_k, Sigma_k)`` of row ``n``.

    Leaves the whitened residuals ``L_k^{-1}(x_z - mu_k)`` in ``z`` (K, d); returns the
    largest entry of ``log_joint`` (0 when it is not finite: the log-sum-exp's shift).
    """
    n_chol = chol.shape[0]
    for i in range(x_z.shape[0]):
        x_z[i] = (value[n, i] - location[i]) * inv_scale[i]
    for k in range(const.shape[0]):
        c = k if n_chol > 1 else 0
        log_joint[k] = const[k] - 0.5 * whiten(x_z, means[k], chol[c], inv_diag[c], z[k])
    return log_sum_exp_shift(log_joint)


@numba.njit(**_JIT)
def mixture_logp_kernel(value, weights, means, chol, location, scale):
    """Per-row mixture log density (see the module docstring); returns shape (N,)."""
    n_rows, d = value.shape
    n_components = weights.shape[0]
    const, inv_diag = _component_constants(weights, chol, d)
    log_scale, inv_scale = _scale_terms(scale)
    x_z = np.empty(d)
    z = np.empty((n_components, d))
    log_joint = np.empty(n_components)
    out = np.empty(n_rows)
    for n in range(n_rows):
        top = _row_log_joint(
            value, n, means, chol, location, inv_scale, const, inv_diag, x_z, z, log_joint
        )
        out[n] = top + np.log(exp_shifted(log_joint, top)) - log_scale
    return out


@numba.njit(**_JIT)
def mixture_logp_and_grad_kernel(value, weights, means, chol, location, scale, g):
    """Per-row log density (N,) and the gradients of ``sum_n g_n log p(x_n)``.

    Returns ``logp`` (as :func:`mixture_logp_kernel`, bit for bit) and the gradients with
    respect to weights (K,), means (K, d) and chol (K or 1, d, d). Two passes: one over
    the rows that writes each row's density, ``g_n r_nk``, ``z_nk`` and ``u_nk``
    (independent rows, nothing accumulated), then sums over the rows in a fixed order.
    """
    n_rows, d = value.shape
    n_components = weights.shape[0]
    n_chol = chol.shape[0]
    const, inv_diag = _component_constants(weights, chol, d)
    log_scale, inv_scale = _scale_terms(scale)
    x_z = np.empty(d)
    z = np.empty((n_components, d))
    log_joint = np.empty(n_components)
    out = np.empty(n_rows)
    coef = np.empty((n_components, n_rows))  # g_n r_nk
    zs = np.empty((n_components, d, n_rows))
    us = np.empty((n_components, d, n_rows))
    for n in range(n_rows):
        top = _row_log_joint(
            value, n, means, chol, location, inv_scale, const, inv_diag, x_z, z, log_joint
        )
        total = exp_shifted(log_joint, top)  # unnormalised responsibilities
        out[n] = top + np.log(total) - log_scale
        scaled = g[n] / total
        for k in range(n_components):
            coef[k, n] = scaled * log_joint[k]
            c = k if n_chol > 1 else 0
            for back in range(d):  # u = L^{-T} z, from the last coordinate
                i = d - 1 - back
                s = z[k, i]
                for j in range(i + 1, d):
                    s -= chol[c, j, i] * us[k, j, n]
                us[k, i, n] = s * inv_diag[c, i]
                zs[k, i, n] = z[k, i]
    d_weights = np.empty(n_components)
    d_means = np.empty((n_components, d))
    d_chol = np.zeros((n_chol, d, d))
    for k in range(n_components):
        c = k if n_chol > 1 else 0
        acc = 0.0
        for n in range(n_rows):
            acc += coef[k, n]
        d_weights[k] = acc / weights[k]
        for i in range(d):
            d_chol[c, i, i] -= acc * inv_diag[c, i]
            acc_mean = 0.0
            for n in range(n_rows):
                acc_mean += coef[k, n] * us[k, i, n]
            d_means[k, i] = acc_mean
            for j in range(i + 1):
                acc_chol = 0.0
                for n in range(n_rows):
                    acc_chol += coef[k, n] * us[k, i, n] * zs[k, j, n]
                d_chol[c, i, j] += acc_chol
    return out, d_weights, d_means, d_chol


@numba.njit(**_JIT)
def mixture_logp_grad_kernel(value, weights, means, chol, location, scale, g):
    """The gradients of :func:`mixture_logp_and_grad_kernel` alone."""
    _, d_weights, d_means, d_chol = mixture_logp_and_grad_kernel(
        value, weights, means, chol, location, scale, g
    )
    return d_weights, d_means, d_chol


def _kernel_version() -> int:
    """A hash of the kernels' source and of :mod:`bayesgmm._numba.gaussian`'s (which they
    inline): part of their key in PyTensor's disk cache."""
    kernels = (
        _component_constants,
        _scale_terms,
        _row_log_joint,
        mixture_logp_kernel,
        mixture_logp_and_grad_kernel,
        mixture_logp_grad_kernel,
    )
    source = "".join(inspect.getsource(k.py_func) for k in kernels) + source_digest(gaussian)
    return int(hashlib.sha256(source.encode()).hexdigest()[:12], 16)


_KERNEL_VERSION = _kernel_version()

# the kernels inline gaussian.py's helpers: recompile them when that file changes
depend_on(globals(), gaussian)


def _as_float_tensors(*inputs):
    return [pt.as_tensor_variable(x).astype("float64") for x in inputs]


def _contiguous(arrays):
    """C-contiguous copies where needed (one compiled signature per kernel in ``perform``)."""
    return [np.ascontiguousarray(a) for a in arrays]


def _check_ranks(value, weights, means, chol, location, scale) -> None:
    ranks = {
        "value": (value, 2),
        "weights": (weights, 1),
        "means": (means, 2),
        "chol": (chol, 3),
        "location": (location, 1),
        "scale": (scale, 1),
    }
    for name, (x, ndim) in ranks.items():
        if x.type.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimension(s), got {x.type.ndim}")


class MixtureLogp(Op):
    """Per-row log density of a Gaussian mixture on standardised data (module docstring).

    Inputs ``value`` (N, d), ``weights`` (K,), ``means`` (K, d), ``chol`` (K or 1, d, d)
    lower-triangular, ``location`` (d,), ``scale`` (d,); output (N,).
    """

    __props__ = ()

    def make_node(self, value, weights, means, chol, location, scale):
        inputs = _as_float_tensors(value, weights, means, chol, location, scale)
        _check_ranks(*inputs)
        out = TensorType("float64", shape=(inputs[0].type.shape[0],))()
        return Apply(self, inputs, [out])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = mixture_logp_kernel(*_contiguous(inputs))

    def infer_shape(self, node, shapes):
        return [(shapes[0][0],)]

    def pullback(self, inputs, outputs, cotangents):
        value, location, scale = inputs[0], inputs[4], inputs[5]
        d_weights, d_means, d_chol = MixtureLogpGrad()(*inputs, cotangents[0])
        return [
            grad_undefined(self, 0, value, "the observations are data"),
            d_weights,
            d_means,
            d_chol,
            grad_undefined(self, 4, location, "the standardisation is data"),
            grad_undefined(self, 5, scale, "the standardisation is data"),
        ]


class MixtureLogpGrad(Op):
    """Gradients of ``sum_n g_n MixtureLogp(...)_n`` w.r.t. ``weights``, ``means``, ``chol``.

    Inputs those of :class:`MixtureLogp` and ``g`` (N,); outputs of the shapes of
    ``weights``, ``means`` and ``chol`` (the lower triangle of ``chol``'s gradient; zeros
    above the diagonal).
    """

    __props__ = ()

    def make_node(self, value, weights, means, chol, location, scale, g):
        inputs = _as_float_tensors(value, weights, means, chol, location, scale, g)
        _check_ranks(*inputs[:6])
        outputs = [inputs[i].type() for i in (1, 2, 3)]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        for storage, result in zip(
            output_storage, mixture_logp_grad_kernel(*_contiguous(inputs)), strict=True
        ):
            storage[0] = result

    def infer_shape(self, node, shapes):
        return [shapes[1], shapes[2], shapes[3]]


class MixtureLogpAndGrad(Op):
    """:class:`MixtureLogp` and :class:`MixtureLogpGrad` of the same inputs in one pass.

    Inputs those of :class:`MixtureLogpGrad`; outputs the density (N,) and the three
    gradients. Put in place of the pair by :func:`fuse_mixture_logp_and_grad`.
    """

    __props__ = ()

    def make_node(self, value, weights, means, chol, location, scale, g):
        inputs = _as_float_tensors(value, weights, means, chol, location, scale, g)
        _check_ranks(*inputs[:6])
        logp = TensorType("float64", shape=(inputs[0].type.shape[0],))()
        return Apply(self, inputs, [logp, *(inputs[i].type() for i in (1, 2, 3))])

    def perform(self, node, inputs, output_storage):
        results = mixture_logp_and_grad_kernel(*_contiguous(inputs))
        for storage, result in zip(output_storage, results, strict=True):
            storage[0] = result

    def infer_shape(self, node, shapes):
        return [(shapes[0][0],), shapes[1], shapes[2], shapes[3]]


@node_rewriter([MixtureLogpGrad])
def fuse_mixture_logp_and_grad(fgraph, node):
    """Replace a :class:`MixtureLogpGrad` and the :class:`MixtureLogp` of its inputs by one node.

    A NUTS target needs both the density and its gradient; computed apart, the rows'
    log densities and responsibilities are computed twice.
    """
    inputs = node.inputs[:6]
    for client, _ in fgraph.clients[inputs[0]]:
        if isinstance(getattr(client, "op", None), MixtureLogp) and client.inputs == inputs:
            fused = MixtureLogpAndGrad()(*node.inputs)
            return dict(zip([client.outputs[0], *node.outputs], fused, strict=True))
    return None


# in PyTensor's default rewrites (every backend); overwrite: a reloaded module registers again.
# Not in FAST_COMPILE: there PyTensor's rewriting never finished on these models' gradients
# with it (``model.compile_dlogp(mode="FAST_COMPILE")``: minutes, against 0.7 s without)
optdb["specialize"].register(
    "bayesgmm_fuse_mixture_logp_and_grad",
    fuse_mixture_logp_and_grad,
    "fast_run",
    overwrite_existing=True,
)


@register_funcify_default_op_cache_key(MixtureLogp)
def _numba_mixture_logp(op, node=None, **kwargs):
    return mixture_logp_kernel, _KERNEL_VERSION


@register_funcify_default_op_cache_key(MixtureLogpGrad)
def _numba_mixture_logp_grad(op, node=None, **kwargs):
    return mixture_logp_grad_kernel, _KERNEL_VERSION


@register_funcify_default_op_cache_key(MixtureLogpAndGrad)
def _numba_mixture_logp_and_grad(op, node=None, **kwargs):
    return mixture_logp_and_grad_kernel, _KERNEL_VERSION


_mixture_logp = MixtureLogp()


def mixture_loglik(value, weights, means, chol, location, scale) -> pt.TensorVariable:
    """Log-density of each observation under the mixture (one :class:`MixtureLogp` node).

    Parameters
    ----------
    value : tensor of shape (n_samples, n_features)
        Observations on the user's scale.
    weights : tensor of shape (n_components,)
    means : tensor of shape (n_components, n_features)
        Working-scale means.
    chol : tensor of shape (n_components, n_features, n_features) or (1, ...)
        Lower Cholesky factors of the working-scale covariances (one shared factor with a
        leading dimension of 1).
    location, scale : tensor of shape (n_features,)
        The standardisation ``x_z = (x - location) / scale``.

    Returns
    -------
    tensor of shape (n_samples,)
    """
    return _mixture_logp(value, weights, means, chol, location, scale)


__all__ = [
    "MixtureLogp",
    "MixtureLogpAndGrad",
    "MixtureLogpGrad",
    "fuse_mixture_logp_and_grad",
    "mixture_loglik",
    "mixture_logp_and_grad_kernel",
    "mixture_logp_grad_kernel",
    "mixture_logp_kernel",
]
