"""A model's log density, gradient and transforms compiled by PyTensor (numba backend).

For the structures without a hand-written kernel (:mod:`bayesgmm.bayes.kernels`: the LKJ
prior family, ordered projections, noise components, sample weights, missing entries) and
for the tests that check the kernels, :class:`GraphFunctions` compiles a
:func:`bayesgmm.bayes.model.build_model` model's three functions: the log density and its
gradient in the unconstrained space, ``expand`` (the traced variables) and ``unconstrain``.
:mod:`bayesgmm.bayes.compiled` describes the rewrites (:func:`collapse_cholesky`,
:func:`unbatch_alloc_diag`), the GIL-free linker (:class:`NogilNumbaLinker`), the
reproducible compilation without fast-math (:func:`reproducible_compilation`) and the disk
cache, with their measurements; they are defined here.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.pytensorf import compile as compile_pymc
from pytensor import config
from pytensor.compile import optdb
from pytensor.compile.mode import Mode, get_mode
from pytensor.graph import node_rewriter
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.replace import graph_replace
from pytensor.graph.rewriting.basic import dfs_rewriter
from pytensor.link.numba.cache import compile_numba_function_src
from pytensor.link.numba.dispatch.basic import numba_njit
from pytensor.link.numba.linker import NumbaLinker
from pytensor.tensor.basic import AllocDiag
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.rewriting.linalg.decomposition import cholesky_ldotlt

#: Tag of :func:`unbatch_alloc_diag` in PyTensor's ``specialize`` rewrites (off by default).
UNBATCH_ALLOC_DIAG = "bayesgmm_unbatch_alloc_diag"


@node_rewriter([Blockwise])
def unbatch_alloc_diag(fgraph, node):
    """Write a batched ``AllocDiag`` as one ``AllocDiag`` over the batch axes.

    The gradient of a batched Cholesky factorisation holds ``Blockwise(AllocDiag)``
    nodes. PyTensor inlines an ``AllocDiag`` (a symbolic op) into zeros and an indexed
    assignment while specialising, but not one wrapped in a ``Blockwise``, which its numba
    backend then runs in object mode (through the interpreter, at every gradient call, and
    uncached). An ``AllocDiag`` whose diagonal axes follow the batch axes is the same
    function, and is inlined.
    """
    core = node.op.core_op
    if not isinstance(core, AllocDiag):
        return None
    n_batch = node.outputs[0].type.ndim - 2
    op = AllocDiag(axis1=core.axis1 + n_batch, axis2=core.axis2 + n_batch, offset=core.offset)
    return [op(node.inputs[0])]


# only in :data:`MODE` (its own tag); overwrite: a reloaded module registers it again
optdb["specialize"].register(
    "unbatch_alloc_diag", unbatch_alloc_diag, UNBATCH_ALLOC_DIAG, overwrite_existing=True
)


class NogilNumbaLinker(NumbaLinker):
    """PyTensor's numba linker, its compiled function releasing the GIL while it runs.

    nutpie calls the log-density of every chain from its own thread; a function that holds
    the GIL would run the chains one at a time. The whole graph is wrapped in one more
    jitted function (``nogil=True``), cached on disk under its own key, so it does not
    collide with PyTensor's entry for the same graph compiled with the GIL.
    """

    def jit_compile(self, fn_and_cache):
        fn, cache_key = fn_and_cache
        if cache_key is None:
            return numba_njit(fn.py_func, final_function=True, nogil=True)
        wrapper = compile_numba_function_src(
            src="def nogil_fgraph(*args): return fgraph(*args)",
            function_name="nogil_fgraph",
            # a module's globals: numba rebuilds a cached function's environment by module name
            global_env=globals() | {"fgraph": fn},
            # the fast-math flag as in PyTensor's own keys (the graph's key does not hold it)
            cache_key=f"{cache_key}_fastmath{int(config.numba__fastmath)}_bayesgmm_nogil",
        )
        return numba_njit(wrapper, final_function=True, cache=True, nogil=True)


#: PyTensor settings while a structure is compiled: numba without fast-math (PyTensor's
#: default allows reassociation and approximate functions), so a structure compiled afresh
#: and one loaded from the disk cache give the same draws bit for bit (measured: with
#: fast-math they differed in the last digits).
COMPILE_FLAGS = {"numba__fastmath": False}


def reproducible_compilation():
    """A context in which PyTensor compiles with :data:`COMPILE_FLAGS`.

    :meth:`bayesgmm.BayesianGaussianMixture.fit` and the VI functions
    (:func:`bayesgmm.bayes.vi.fit_vi`, :func:`bayesgmm.bayes.psis.psis_khat`) run under it, so a
    graph compiled afresh and one loaded from the disk cache compute the same bits and a seed
    gives the same fit on a machine's first run as on later ones (measured: with fast-math,
    full-rank ADVI on galaxies K=3 reached another approximation after a fresh compilation,
    and a test comparing its sds with NUTS's failed on an empty cache only). PyTensor's
    numba cache keys carry the flag, so code compiled with fast-math is not reused.
    """
    return config.change_flags(**COMPILE_FLAGS)


#: PyTensor compile mode of the three functions: the default rewrites (numba) with
#: :func:`unbatch_alloc_diag`, linked by :class:`NogilNumbaLinker`.
MODE = Mode(NogilNumbaLinker(), get_mode("NUMBA").provided_optimizer).including(UNBATCH_ALLOC_DIAG)


@dataclass(frozen=True)
class GraphFunctions:
    """A model's three functions compiled by PyTensor (numba backend, :data:`MODE`).

    Attributes
    ----------
    logp_dlogp : callable
        ``x -> (logp, grad)`` (:func:`reentrant`).
    expand : callable
        ``x -> traced values`` (:func:`reentrant`).
    unconstrain : pytensor Function
        ``(*constrained free values) -> x``.
    free_names, slices, trace_names, trace_shapes, n_dim
        As :class:`CompiledMixture`'s.
    x0 : ndarray of shape (n_dim,)
        The model's initial point.
    """

    logp_dlogp: Callable[..., tuple]
    expand: Callable[..., tuple]
    unconstrain: Any
    free_names: list[str]
    slices: list[slice]
    trace_names: list[str]
    trace_shapes: list[tuple[int, ...]]
    n_dim: int
    x0: np.ndarray

    @classmethod
    def compile(cls, model: pm.Model) -> GraphFunctions:
        """Compile ``model``'s log density and gradient, ``expand`` and ``unconstrain``."""
        free = list(model.free_RVs)
        value_vars = [model.rvs_to_values[rv] for rv in free]
        point = model.initial_point()
        shapes = [np.shape(point[v.name]) for v in value_vars]
        sizes = [int(np.prod(s)) for s in shapes]
        ends = np.cumsum([0, *sizes])
        slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(ends)]
        joined = pt.dvector("unconstrained")
        pieces = {
            v: joined[s].reshape(shape)
            for v, s, shape in zip(value_vars, slices, shapes, strict=True)
        }
        logp = collapse_cholesky(model.logp())
        grads = pt.grad(logp, value_vars)
        grad = pt.concatenate([g.ravel() for g in grads])
        logp, grad = graph_replace([logp, grad], pieces, strict=False)
        traced = [*free, *model.deterministics]
        trace_out = graph_replace(model.replace_rvs_by_values(traced), pieces, strict=False)
        constrained = [rv.type(name=rv.name) for rv in free]
        forward = []
        for rv, x in zip(free, constrained, strict=True):
            transform = model.rvs_to_transforms.get(rv)
            y = x if transform is None else transform.forward(x, *rv.owner.inputs)
            forward.append(pt.as_tensor(y).ravel())
        with model, warnings.catch_warnings(), reproducible_compilation():
            # PyTensor 3's numba backend has no kernel for a batched AllocDiag (from the
            # gradient of the Cholesky parametrisation) and says it runs it in object mode;
            # expected (measured at ~10% of a gradient call)
            warnings.filterwarnings("ignore", message="Numba will use object mode")
            # one function for the density, its gradient and the traced values: they share
            # most of the graph, and numba compiles a graph's operations again for each
            # function (measured: expand compiled apart took a fifth to a third as long
            # again as the density and gradient; tracing costs a gradient call little)
            joint = compile_pymc([joined], [logp, grad, *trace_out], mode=MODE)
            unconstrain = compile_pymc(constrained, pt.concatenate(forward), mode=MODE)
        for fn in (joint, unconstrain):
            fn.trust_input = True
        x0 = np.concatenate([np.ravel(point[v.name]) for v in value_vars])
        # numba compiles lazily, on the first call
        with warnings.catch_warnings(), reproducible_compilation():
            warnings.filterwarnings("ignore", message="Numba will use object mode")
            traced_x0 = joint(x0)[2:]
            trace_shapes = [np.shape(v) for v in traced_x0]
            unconstrain(*(np.asarray(v, dtype=np.float64) for v in traced_x0[: len(free)]))
        both = reentrant(joint)
        return cls(
            logp_dlogp=rejecting(_outputs(both, slice(0, 2)), int(ends[-1])),
            expand=_outputs(both, slice(2, None)),
            unconstrain=unconstrain,
            free_names=[rv.name for rv in free],
            slices=slices,
            trace_names=[rv.name for rv in traced],
            trace_shapes=trace_shapes,
            n_dim=int(ends[-1]),
            x0=x0,
        )


def reentrant(fn) -> Callable[..., tuple]:
    """The numba function behind a compiled PyTensor function, callable from many threads.

    A PyTensor ``Function`` keeps its inputs and outputs in storage cells of its own, so
    two threads calling it at once (nutpie's chains) overwrite each other's. The function
    returned calls the compiled graph directly with the explicit inputs and the current
    values of the shared variables (the data that :meth:`CompiledMixture.set_data` swaps),
    and returns the outputs as a tuple. ``fn`` must have been called once (numba compiles
    on the first call) and the inputs must have the types of that call.
    """
    thunk = fn.vm
    jitted = thunk.jit_fn
    n_explicit = sum(not spec.implicit for spec in fn.maker.inputs)
    shared_cells = thunk.inputs[n_explicit:]

    def call(*inputs):
        return jitted(*inputs, *[cell[0] for cell in shared_cells])

    call.function = fn
    return call


def _outputs(fn: Callable[..., tuple], which: slice) -> Callable[..., tuple]:
    """``fn`` (:func:`reentrant`) returning the outputs ``which`` only."""

    def call(*inputs):
        return fn(*inputs)[which]

    call.function = fn.function
    return call


def rejecting(fn: Callable[..., tuple], n_dim: int) -> Callable[..., tuple]:
    """``fn`` (the log density and gradient) giving ``-inf`` and a zero gradient where the
    compiled graph raises ``ZeroDivisionError`` or ``FloatingPointError``.

    PyTensor's numba backend runs some ops in object mode, where a division by zero raises
    (Python semantics) instead of giving inf; NUTS meets such points only far out in a
    diverging trajectory (measured: MASS crabs K=4 under the hierarchical prior, in
    warm-up), and nutpie treats a non-finite log density as a divergence, where an exception
    would abort the whole run.
    """

    def call(*inputs):
        try:
            return fn(*inputs)
        except (ZeroDivisionError, FloatingPointError):
            return np.float64(-np.inf), np.zeros(n_dim)

    call.function = getattr(fn, "function", None)
    return call


def collapse_cholesky(logp: pt.TensorVariable) -> pt.TensorVariable:
    """``logp`` with ``cholesky(L @ L.mT)`` replaced by ``L`` for tagged lower-triangular ``L``.

    The covariances are ``L L^T`` of the unconstrained Cholesky factor
    (:class:`bayesgmm.bayes.model.SPDCholeskyTransform`, which tags ``L``), and the model takes
    their Cholesky factor again (likelihood, Inverse-Wishart density, means prior).
    PyTensor removes that round trip when it compiles, but after differentiation, which has
    already written the gradient of each factorisation (triangular solves, ``AllocDiag``);
    removing it first leaves a smaller gradient.
    """
    graph = FunctionGraph(outputs=[logp], clone=False)
    dfs_rewriter(cholesky_ldotlt).rewrite(graph)
    return graph.outputs[0]


__all__ = [
    "COMPILE_FLAGS",
    "MODE",
    "GraphFunctions",
    "NogilNumbaLinker",
    "collapse_cholesky",
    "reentrant",
    "rejecting",
    "reproducible_compilation",
    "unbatch_alloc_diag",
]
