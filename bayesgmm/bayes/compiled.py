"""One compiled NUTS target per model structure, reused across data sets.

A model of :func:`bayesgmm.bayes.model.build_model` reads its data, their standardisation
and the working-scale prior from ``pm.Data`` containers (shared variables whose
shapes are not fixed), so its compiled log-density depends only on the *structure*:
the number of components K, the covariance structure, the dimension d, the
covariance prior family (and the LKJ constants). :func:`compiled_mixture` keeps one
:class:`CompiledMixture` per structure for the life of the process; a later fit of
the same structure (another seed, another data set, a ``compare`` candidate, a
cross-validation fold) swaps its data in with :meth:`CompiledMixture.set_data` and
compiles nothing. PyTensor's on-disk cache of numba code makes the first compilation
in a fresh process cheap too once the structure has been compiled on the machine
before: the graph no longer holds the data as constants, so it is the same graph.

Sampler
    NUTS is nutpie's, one sampler per chain (:mod:`bayesgmm.bayes.chains`, which records
    how it was chosen and measured); :meth:`CompiledMixture.sample` runs it. The chains
    run in turn unless a gradient call (timed at the first start) takes 100 µs or more
    (:data:`PARALLEL_MIN_GRADIENT_SECONDS`), then ``min(chains, os.cpu_count())`` at once.

Graph
    (Compiled by :mod:`bayesgmm.bayes.graph`, which defines the pieces named here.)
    The mixture likelihood is one fused node (:mod:`bayesgmm.bayes.likelihood`: Numba
    kernels for the per-row density and its analytic gradient, computed in one pass). Two
    rewrites shrink the rest of the gradient.
    :func:`~bayesgmm.bayes.graph.collapse_cholesky` replaces the Cholesky factorisation of
    ``L L^T`` (the covariances from their unconstrained Cholesky factor) by ``L`` before
    differentiating, so the gradient holds no factorisation gradients;
    :func:`~bayesgmm.bayes.graph.unbatch_alloc_diag` writes the batched ``AllocDiag`` that
    such gradients hold as one PyTensor inlines, where numba would otherwise run it in
    object mode. Measured by ``benchmarks/bench_gradient.py`` (load 1.5-2, minimum of
    interleaved batches, both without fast-math), µs per call of the log density and
    gradient, likelihood written with PyTensor ops -> fused: galaxies K=2 22.3 -> 18.9, K=3
    24.0 -> 20.5, Old Faithful K=2 full 36.5 -> 26.6. About 15 µs of a call does not depend
    on the data (the same targets on one row: 14-17 µs): the priors, the transforms and the
    call itself.

    So for the default structures (full, tied, diag and spherical covariances with the
    package's conjugate-type prior, the Normal-Inverse-Wishart family, on complete data
    in any dimension, without ordered projection, noise component or sample weights), the
    whole log posterior and its gradient are one hand-written Numba kernel per structure
    (:mod:`bayesgmm.bayes.kernels`, :func:`~bayesgmm.bayes.kernels.kernel_target`; the full
    one is :mod:`bayesgmm.bayes.posterior_kernel`), and ``expand``/``unconstrain`` are the
    model's transforms in NumPy (:class:`~bayesgmm.bayes.kernels.KernelFunctions`, with
    numba's ``exp``/``log``, so they give the graph's bits): such a structure compiles no
    PyTensor function. The graph's functions (:class:`GraphFunctions`) are then compiled on
    first use of :attr:`CompiledMixture.graph` (tests comparing the two);
    ``posterior_kernel.ENABLED = False`` turns the kernels off for structures built
    afterwards. The kernels give the graph's value and gradient to rounding (tests: 1e-10
    and 1e-8 relative, tails included); the full one costs 1.7 µs on one row and needs no
    triangular solve per row. ``benchmarks/bench_gradient.py`` (2026-11-27, this 2-core
    machine shared at load 1.1-1.8, minimum of 30 interleaved batches, through
    :meth:`CompiledMixture.logp_dlogp`), µs per call, PyTensor-written likelihood / fused
    Op / kernel: Old Faithful K=2 full 32.3 / 27.1 / 11.2 (2.4x the fused graph),
    synthetic (2-D, N=2000, K=4, full) 196 / 189 / 129 (1.47x). The other kernels, against
    the fused graph (2026-12-06, load 6.5, minimum of 30 batches of 200 calls, interleaved),
    µs per call, graph / kernel: galaxies (1-D) K=2 21.4 / 4.8, K=3 57.1 / 5.9; Old Faithful
    K=2 tied 47.4 / 12.0, diag 70.3 / 9.6, spherical 52.8 / 9.6 (full 95.6 / 14.1 in that
    run).

Cold start
    Fits of Old Faithful, ``BayesianGaussianMixture(K, covariance_type=..., random_state=0)``
    with default settings, each in a new process (2026-12-06, this 2-core machine shared
    with other jobs at load 3-7, so wall times vary; the process's CPU time less so);
    cold: numba's and PyTensor's disk caches empty; warm: the caches that run left. Wall /
    CPU seconds, PyTensor graph (the full structure's kernel checked against it) -> kernels
    (nothing compiled in PyTensor): full K=2 cold 471 / 147 -> 30.2 / 29.7, warm 18.8 / 9.5
    -> 5.8 / 5.1, then K=3 in that warm process 57.0 / 46.1 -> 14.9 / 13.9; diag K=2 cold
    77.0 / 73.8 -> 29.6 / 28.5, warm 9.3 / 8.8 -> 6.9 / 6.6; spherical K=2 cold 93.5 / 75.4
    -> 66.0 / 32.4, warm 18.4 / 10.4 -> 9.9 / 5.7; tied K=2 cold 154.6 / 96.0 -> 62.9 / 38.7,
    warm 15.6 / 8.6 -> 8.1 / 5.5. What a cold fit still compiles is numba code (the EM start,
    the kernel, the post-processing), cached on disk for the next process.

Reproducibility
    The structures are compiled without numba's fast-math
    (:data:`~bayesgmm.bayes.graph.COMPILE_FLAGS`; PyTensor's default turns it on): a
    structure compiled afresh and one loaded from the disk cache then give the same log
    density, gradient and draws bit for bit (with fast-math, Old Faithful K=2 full's log
    density differed in the 14th digit and NUTS turned that into other draws). Measured
    cost: none for the fused targets above (the PyTensor-written likelihood's gradient was
    13% slower on Old Faithful without it).

Threads
    A :class:`CompiledMixture` holds one set of data at a time; :meth:`CompiledMixture.sample`
    sets the data and samples under a lock, so threads fitting the same structure do not
    mix data.

Disk cache
    PyTensor's numba backend caches compiled code on disk (``numba__cache``, under
    ``base_compiledir``), keyed by the rewritten graph; the GIL-free wrapper has a key of
    its own (with the fast-math flag). Building a structure in a fresh process with that
    cache warm takes 1.6-2.1 s on this machine at load 1.5 (galaxies K=2, K=3, Old
    Faithful K=2 full; 1.9-2.4 s with the likelihood written with PyTensor ops); with an
    empty cache 58 s for Old Faithful K=2 full (68 s before the fused likelihood).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from bayesgmm.bayes.chains import sample_chains
from bayesgmm.bayes.graph import GraphFunctions
from bayesgmm.bayes.kernels import KernelFunctions, kernel_target
from bayesgmm.bayes.model import build_model, set_model_data
from bayesgmm.core.priors import HierarchicalPrior
from bayesgmm.core.spec import MixtureSpec

#: Chains run in parallel threads by default only when a gradient call takes at least this
#: long: its Python part holds the GIL, so two threads were 1.5-1.8x slower than one at
#: 20-27 µs per call (galaxies, Old Faithful) and 1.33x faster at 188 µs (synthetic).
PARALLEL_MIN_GRADIENT_SECONDS = 100e-6


@dataclass(frozen=True)
class StructureKey:
    """What a compiled mixture model depends on (everything else is data).

    Attributes
    ----------
    n_components : int
    covariance_type : str
    n_features : int
    covariance_prior_family : str
    lkj_eta, lkj_sd_scale : float
        Constants of the ``"lkj"`` family (unused for ``"niw"``).
    ordered_projection : bool
        Means ordered along a direction (``build_model(..., order_basis=...)``); the
        direction itself is data.
    hierarchical : bool
        The prior's covariance scale is a variable
        (:class:`~bayesgmm.core.priors.HierarchicalPrior`; no kernel: the PyTensor graph).
    """

    n_components: int
    covariance_type: str
    n_features: int
    covariance_prior_family: str = "niw"
    lkj_eta: float = 2.0
    lkj_sd_scale: float = 1.0
    ordered_projection: bool = False
    hierarchical: bool = False

    @classmethod
    def of(
        cls,
        spec: MixtureSpec,
        covariance_prior_family: str = "niw",
        *,
        ordered_projection: bool = False,
        **lkj,
    ) -> StructureKey:
        """The key of the model that ``build_model(X, spec, ...)`` builds."""
        return cls(
            spec.n_components,
            spec.structure.name,
            spec.n_features,
            covariance_prior_family,
            ordered_projection=ordered_projection,
            hierarchical=isinstance(spec.prior, HierarchicalPrior),
            **lkj,
        )


@dataclass
class CompiledMixture:
    """A model of one structure with its NUTS target compiled once.

    Attributes
    ----------
    key : StructureKey or None
        ``None`` for a target compiled from one model with its own data
        (:meth:`of_model`: noise component, sample weights, missing entries).
    model : pymc.Model
        The model the functions were compiled from; :meth:`set_data` swaps its data.
    free_names : list of str
        Free variables, in the order of the unconstrained vector.
    slices : list of slice
        Position of each free variable in the unconstrained vector.
    trace_names : list of str
        Stored variables (constrained free variables, then deterministics).
    trace_shapes : list of tuple
    n_dim : int
        Length of the unconstrained vector.
    uses_kernel : bool
        Whether the log density and gradient are a hand-written Numba kernel's
        (:mod:`bayesgmm.bayes.kernels`) rather than the PyTensor graph's.
    graph : GraphFunctions
        The PyTensor functions (compiled on first access where :attr:`uses_kernel`).
    """

    key: StructureKey | None
    model: pm.Model
    free_names: list[str]
    slices: list[slice]
    trace_names: list[str]
    trace_shapes: list[tuple[int, ...]]
    n_dim: int
    _logp_dlogp: Any = field(repr=False)
    _expand: Any = field(repr=False)
    _unconstrain: Any = field(repr=False)
    #: the PyTensor functions (:class:`GraphFunctions`), compiled on first use where the NUTS
    #: target is a kernel
    _graph: GraphFunctions | None = field(default=None, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @classmethod
    def build(cls, X: np.ndarray, spec: MixtureSpec, key: StructureKey) -> CompiledMixture:
        """Build the model for ``X`` and ``spec`` and its three functions.

        Where a hand-written kernel applies (:func:`bayesgmm.bayes.kernels.kernel_target`),
        the three are the kernel and NumPy's ``expand``/``unconstrain``
        (:class:`~bayesgmm.bayes.kernels.KernelFunctions`) and nothing is compiled in
        PyTensor (the graph's functions are compiled on first use of
        :attr:`_graph_logp_dlogp`); else PyTensor compiles them from the model's graph.

        Returns
        -------
        CompiledMixture
        """
        model = build_model(
            X,
            spec,
            covariance_prior_family=key.covariance_prior_family,
            lkj_eta=key.lkj_eta,
            lkj_sd_scale=key.lkj_sd_scale,
            # a placeholder direction: set_data swaps in each fit's own
            order_basis=np.eye(key.n_features) if key.ordered_projection else None,
        )
        target = kernel_target(key, model, X)
        if target is not None:
            functions = KernelFunctions(target, model)
            return cls(
                key=key,
                model=model,
                free_names=functions.free_names,
                slices=functions.slices,
                trace_names=functions.trace_names,
                trace_shapes=functions.trace_shapes,
                n_dim=functions.n_dim,
                _logp_dlogp=target.logp_dlogp(model),
                _expand=functions.expand,
                _unconstrain=functions.unconstrain,
            )
        return cls._of_graph(key, model, GraphFunctions.compile(model))

    @classmethod
    def _of_graph(
        cls, key: StructureKey | None, model: pm.Model, graph: GraphFunctions
    ) -> CompiledMixture:
        """The target whose three functions are ``graph``'s (PyTensor's, no kernel)."""
        return cls(
            key=key,
            model=model,
            free_names=graph.free_names,
            slices=graph.slices,
            trace_names=graph.trace_names,
            trace_shapes=graph.trace_shapes,
            n_dim=graph.n_dim,
            _logp_dlogp=graph.logp_dlogp,
            _expand=graph.expand,
            _unconstrain=graph.unconstrain,
            _graph=graph,
        )

    @classmethod
    def of_model(cls, model: pm.Model) -> CompiledMixture:
        """The NUTS target of one model, its data fixed (no structure key, not cached here).

        For the models :func:`compiled_mixture` does not keep per structure (a noise
        component, sample weights, missing entries: :func:`bayesgmm.bayes.model.build_model`
        builds them around their data). PyTensor compiles the graph's three functions
        (:class:`GraphFunctions`) with :data:`~bayesgmm.bayes.graph.MODE` like any structure
        without a kernel, so the numba code lands in the disk cache, keyed by the graph, and
        :meth:`sample` runs the same chain runner, each chain from its own start. Before,
        these models went through ``nutpie.compile_pymc_model``, whose C callback LLVM
        re-optimised in every process. Measured (2026-12-06, this 2-core machine at load
        2.4-3.4, Old Faithful K=2 with ``noise=True``, 2 x 300 draws, a new process per fit):
        first fit with empty caches 131.5 s before / 134.3 s now (the same compilation), the
        next process 28.1 s before / 9.0 s now. :meth:`set_data` is a no-op: the model holds
        its data.
        """
        return cls._of_graph(None, model, GraphFunctions.compile(model))

    @property
    def graph(self) -> GraphFunctions:
        """The PyTensor functions of the model (compiled now if they were not)."""
        with self.lock:
            if self._graph is None:
                self._graph = GraphFunctions.compile(self.model)
            return self._graph

    @property
    def _graph_logp_dlogp(self):
        """The PyTensor function of the log density and gradient
        (:func:`~bayesgmm.bayes.graph.reentrant`)."""
        return self.graph.logp_dlogp

    @property
    def uses_kernel(self) -> bool:
        """Whether the NUTS target is a hand-written kernel (:mod:`bayesgmm.bayes.kernels`)."""
        return not (self._graph is not None and self._logp_dlogp is self._graph.logp_dlogp)

    def set_data(
        self, X: np.ndarray, spec: MixtureSpec, order_basis: np.ndarray | None = None
    ) -> None:
        """Make the compiled functions evaluate the posterior of ``X`` under ``spec``.

        ``order_basis`` (d, d): the identifying basis, required exactly when the key has
        ``ordered_projection``; :meth:`unconstrained` depends on it too. A target of one
        model (:meth:`of_model`, no key) keeps its own data: nothing to set.
        """
        key = self.key
        if key is None:  # a target of one model (:meth:`of_model`): its data are fixed
            if order_basis is not None:
                raise ValueError("a target compiled from one model takes no order_basis")
            return
        if (
            spec.n_components,
            spec.structure.name,
            spec.n_features,
            isinstance(spec.prior, HierarchicalPrior),
        ) != (key.n_components, key.covariance_type, key.n_features, key.hierarchical):
            raise ValueError(f"spec does not match the compiled structure {key}")
        set_model_data(self.model, X, spec, order_basis)

    def gradient_seconds(self, x: np.ndarray, calls: int = 25) -> float:
        """Median wall time of one log-density-and-gradient call at ``x`` (data as set)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        times = np.empty(calls)
        for i in range(calls):
            start = time.perf_counter()
            self._logp_dlogp(x)
            times[i] = time.perf_counter() - start
        return float(np.median(times))

    def default_cores(self, x: np.ndarray, n_chains: int) -> int:
        """Chains to run at once: one, unless a gradient call takes long enough
        (:data:`PARALLEL_MIN_GRADIENT_SECONDS`) that the GIL its Python part holds does
        not serialise the threads; then ``min(n_chains, os.cpu_count())``."""
        if self.gradient_seconds(x) < PARALLEL_MIN_GRADIENT_SECONDS:
            return 1
        return max(1, min(n_chains, os.cpu_count() or 1))

    def logp_dlogp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density (up to a constant) and its gradient at unconstrained ``x``."""
        logp, grad = self._logp_dlogp(np.ascontiguousarray(x, dtype=np.float64))
        return float(logp), grad

    def unconstrained(self, point: dict[str, np.ndarray]) -> np.ndarray:
        """The unconstrained vector, shape (n_dim,), of constrained free-variable values."""
        values = [np.asarray(point[name], dtype=np.float64) for name in self.free_names]
        return np.asarray(self._unconstrain(*values), dtype=np.float64)

    def evaluate(self, draws: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Log posterior density and stored variables of many unconstrained draws.

        Runs the compiled NUTS functions once per draw (nothing is compiled), on the data
        last set (:meth:`set_data`).

        Parameters
        ----------
        draws : ndarray of shape (n_draws, n_dim)

        Returns
        -------
        logp : ndarray of shape (n_draws,)
            The log density NUTS samples (Jacobian included, up to a constant).
        variables : dict
            Each stored variable (:attr:`trace_names`) stacked over draws.
        """
        draws = np.asarray(draws, dtype=np.float64)
        logp = np.empty(len(draws))
        stored = [np.empty((len(draws), *shape)) for shape in self.trace_shapes]
        for i, x in enumerate(draws):
            x = np.ascontiguousarray(x)
            value, _ = self._logp_dlogp(x)
            logp[i] = value
            for out, v in zip(stored, self._expand(x), strict=True):
                out[i] = v
        return logp, dict(zip(self.trace_names, stored, strict=True))

    def unconstrained_draws(self, posterior: xr.Dataset) -> np.ndarray:
        """The unconstrained vectors, shape (chain, draw, n_dim), of a posterior's draws.

        ``posterior`` holds the free variables (constrained) with dims ``chain``, ``draw``.
        """
        stacked = [
            np.asarray(posterior[name].transpose("chain", "draw", ...).values)
            for name in self.free_names
        ]
        n_chains, n_draws = stacked[0].shape[:2]
        out = np.empty((n_chains, n_draws, self.n_dim))
        for c, d in np.ndindex(n_chains, n_draws):
            out[c, d] = self._unconstrain(*(np.ascontiguousarray(v[c, d]) for v in stacked))
        return out

    def expand(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Stored variables (constrained free variables and deterministics) at ``x``."""
        values = self._expand(np.ascontiguousarray(x, dtype=np.float64))
        return {name: np.array(v) for name, v in zip(self.trace_names, values, strict=True)}

    def sample(
        self, X: np.ndarray, spec: MixtureSpec, starts: list[np.ndarray], **settings
    ) -> xr.DataTree:
        """NUTS (nutpie) on the posterior of ``X``, chain ``c`` starting at ``starts[c]``:
        :func:`bayesgmm.bayes.chains.sample_chains` on this structure, whose docstring lists
        the settings (``draws``, ``tune``, ``seed``, ``target_accept``, ``progressbar``,
        ``order_basis``, ``checkpoints``, ``enough`` and nutpie's own)."""
        return sample_chains(self, X, spec, starts, **settings)


_CACHE: dict[StructureKey, CompiledMixture] = {}
_CACHE_LOCK = threading.Lock()


def compiled_mixture(
    X: np.ndarray,
    spec: MixtureSpec,
    *,
    covariance_prior_family: str = "niw",
    lkj_eta: float = 2.0,
    lkj_sd_scale: float = 1.0,
    ordered_projection: bool = False,
) -> CompiledMixture:
    """The compiled model of ``spec``'s structure (compiled on the first call only).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated data on the user's scale (used only to build the model the first time;
        :meth:`CompiledMixture.sample` takes the data to sample).
    spec : MixtureSpec
        With a proper prior (sampling needs one).
    covariance_prior_family : {"niw", "lkj"}
    lkj_eta, lkj_sd_scale : float
    ordered_projection : bool
        Means ordered along a direction given per fit (``build_model(order_basis=...)``).

    Returns
    -------
    CompiledMixture
    """
    key = StructureKey.of(
        spec,
        covariance_prior_family,
        ordered_projection=ordered_projection,
        lkj_eta=float(lkj_eta),
        lkj_sd_scale=float(lkj_sd_scale),
    )
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            entry = _CACHE[key] = CompiledMixture.build(X, spec, key)
    return entry


def clear_cache() -> None:
    """Forget every compiled model (the next fit of each structure compiles again)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def cache_size() -> int:
    """Number of structures compiled in this process."""
    return len(_CACHE)


__all__ = [
    "CompiledMixture",
    "StructureKey",
    "cache_size",
    "clear_cache",
    "compiled_mixture",
]
