"""NUTS chains of a compiled mixture, run by nutpie: one sampler per chain, checkpoints.

:func:`sample_chains` is :meth:`bayesgmm.bayes.compiled.CompiledMixture.sample`: it swaps
the data into the compiled structure, starts one nutpie sampler per chain (each with its own
start and seed), runs at most ``cores`` of them at once and stops them at checkpoints.

Sampler
    NUTS is nutpie's (Rust: tree building, step-size and mass-matrix adaptation) on a
    log-density and gradient compiled by PyTensor's numba backend and called from Python
    (``nutpie.compiled_pyfunc.from_pyfunc``). nutpie's own PyMC compilation
    (``nutpie.compile_pymc_model``) wraps the same numba code in a C callback, which LLVM
    re-optimises as one module: 20-60 s per structure and per process on this project's 2-core
    machine, where the Python call costs a few microseconds per gradient. PyMC's own NUTS spends
    about 80 µs of Python per leapfrog step on top of the gradient. Each chain is one
    ``nutpie.sample`` call with its own start and seed, so the draws do not depend on how many
    run at once: ``cores`` of them in nutpie's threads (default
    :meth:`~bayesgmm.bayes.compiled.CompiledMixture.default_cores`). The compiled graph releases
    the GIL (:class:`~bayesgmm.bayes.graph.NogilNumbaLinker`) and is called directly, not
    through the PyTensor ``Function``, whose storage cells the threads would share
    (:func:`~bayesgmm.bayes.graph.reentrant`); but nutpie calls it from Python, and that part
    of every call holds the GIL: on this 2-core machine at load 0.7-0.9, warm fits (4 x 1000
    draws, seeds 1-3, interleaved) took 2.42-2.47 s in turn against 4.27-4.44 s two at a time on
    galaxies K=3, and 2.97-3.01 s against 4.30-4.46 s on Old Faithful K=2 full, whose gradients
    took 20-27 µs then (11 µs with the posterior kernel); on the synthetic set (188 µs per
    gradient then, 129 µs now) two threads were faster, 14.9 s against 19.8 s. So the chains run
    in turn unless a gradient call (timed at the first start) takes 100 µs or more
    (:data:`~bayesgmm.bayes.compiled.PARALLEL_MIN_GRADIENT_SECONDS`), then ``min(chains,
    os.cpu_count())`` at once; ``sampler_kwargs={"cores": n}`` decides.

    Measured by ``benchmarks/bench_nuts.py --quick`` (4 chains x 1000 draws; the expert
    tunes 1000 steps, bayesgmm its default 500; one process, this project's 2-core machine
    at load 0.9-1.0, 2026-11-27 04:12 UTC; ``reports/benchmarks.md``), minimum bulk ESS per
    second of wall time, compilation, EM start and post-processing included, as a multiple
    of an expert PyMC model's (``pm.sample``, which picks nutpie's numba backend, started
    at scikit-learn's EM solution):

    =============================================  ============  =================  =========
    run                                            galaxies K=3  faithful K=2 full  synthetic
    =============================================  ============  =================  =========
    default, first fit of the structure            69.6x         3.71x              5.31x
    default, warm                                  54.4x         7.16x              5.41x
    warm, chains in parallel threads (``cores=2``)  30.5x         3.28x              5.36x
    diagonal mass matrix, warm                     103x          6.58x              2.26x
    =============================================  ============  =================  =========

    (synthetic: 2-D, N=2000, K=4, full; the default runs its chains two at a time, its
    gradient taking 129 µs. Old Faithful and the synthetic set use the full/NIW posterior
    kernel, galaxies the graph.) One run each: the ratios move by 30% or more between
    runs on this shared machine. The first fit of a structure spends 1.0-1.7 s building
    it with PyTensor's disk cache warm (20 s for a structure missing from the cache, about
    a minute with an empty cache). The low-rank mass matrix (nutpie's
    ``adaptation="low_rank"``) is the default (:data:`ADAPTATION`): 2.2x the diagonal
    one's ESS on the synthetic set, a little less than it elsewhere;
    ``sampler_kwargs={"adaptation": "diag"}`` restores the diagonal one. PyMC's own NUTS
    (``sampler="pymc"``) reached 8.3x and 0.42x on galaxies and Old Faithful in an earlier
    run.

Threads
    A :class:`~bayesgmm.bayes.compiled.CompiledMixture` holds one set of data at a time;
    :func:`sample_chains` sets the data and samples under its lock, so threads fitting the same
    structure do not mix data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from bayesgmm.core.spec import MixtureSpec

if TYPE_CHECKING:
    from bayesgmm.bayes.compiled import CompiledMixture

#: nutpie's mass-matrix adaptation unless ``sampler_kwargs`` name one (measured, see above).
ADAPTATION = "low_rank"


def sample_chains(
    compiled: CompiledMixture,
    X: np.ndarray,
    spec: MixtureSpec,
    starts: list[np.ndarray],
    *,
    draws: int,
    tune: int,
    seed: int,
    target_accept: float,
    progressbar: bool = False,
    order_basis: np.ndarray | None = None,
    checkpoints: tuple[int, ...] = (),
    enough: Callable[[xr.DataTree], bool] | None = None,
    **kwargs,
) -> xr.DataTree:
    """NUTS (nutpie) on the posterior of ``X``, chain ``c`` starting at ``starts[c]``.

    Parameters
    ----------
    compiled : CompiledMixture
        The structure to sample (its data are swapped under its lock).
    X : ndarray of shape (n_samples, n_features)
    spec : MixtureSpec
        Of this structure; its standardisation and prior are swapped in with ``X``.
    starts : list of ndarray of shape (n_dim,)
        One start per chain.
    draws, tune : int
    seed : int
        Seeds every chain (independent streams).
    target_accept : float
    progressbar : bool
    order_basis : ndarray of shape (n_features, n_features), optional
        The identifying basis (see :meth:`CompiledMixture.set_data`).
    checkpoints : tuple of int
        Longer runs (draws per chain, each above ``draws``): when all chains have made
        ``draws`` draws, ``enough`` is asked about them; if it says no, the same chains
        go on to the next checkpoint, and so on. The draws up to a checkpoint are those a
        run of that length gives (nutpie's warm-up does not depend on the run's
        length), so the result depends on the seed only, not on timing.
    enough : callable, optional
        ``enough(trace) -> bool`` on the trace cut at a checkpoint (the return value's
        layout); required with ``checkpoints``.
    **kwargs
        Further arguments of :func:`nutpie.sample` (e.g. ``adaptation="low_rank"``).

    Returns
    -------
    xarray.DataTree
        ``posterior`` and ``sample_stats`` (nutpie's, less its text-valued
        divergence messages) with dims ``chain``, ``draw``: ``draws`` draws per chain,
        or those of the first checkpoint ``enough`` accepted (else the last).
    """
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    names, shapes = compiled.trace_names, compiled.trace_shapes
    dims = {n: tuple(compiled.model.named_vars_to_dims.get(n, ())) for n in names}
    coords = {
        name: np.asarray(values)
        for name, values in compiled.model.coords.items()
        if any(name in d for d in dims.values())
    }

    def make_logp():
        return compiled.logp_dlogp

    def make_expand(*_):
        return compiled.expand

    kwargs.setdefault("adaptation", ADAPTATION)
    cores = kwargs.pop("cores", None)
    seeds = np.random.SeedSequence(seed).generate_state(len(starts), dtype=np.uint32)

    lengths = sorted({int(draws), *(int(c) for c in checkpoints if c > draws)})
    if len(lengths) > 1 and enough is None:
        raise ValueError("checkpoints need an `enough` rule")

    def start_chain(start, chain_seed, progress):
        start = np.asarray(start, dtype=np.float64)
        target = from_pyfunc(
            compiled.n_dim,
            make_logp,
            make_expand,
            [np.dtype("float64")] * len(names),
            shapes,
            names,
            coords=coords,
            dims=dims,
            make_initial_point_fn=lambda _, start=start: start.copy(),
        )
        return nutpie.sample(
            target,
            draws=lengths[-1],
            tune=tune,
            chains=1,
            cores=1,
            seed=int(chain_seed),
            target_accept=target_accept,
            progress_bar=progressbar,
            save_warmup=False,
            blocking=False,
            progress_callback=progress,
            **kwargs,
        )

    # each chain is its own nutpie sampler (its own start and seed, so the draws do not
    # depend on ``cores``), ``cores`` of them running at once in nutpie's threads; the
    # compiled log-density releases the GIL while it runs (NogilNumbaLinker)
    with compiled.lock:
        compiled.set_data(X, spec, order_basis)
        if cores is None:
            cores = compiled.default_cores(starts[0], len(starts))
        cores = max(1, int(cores))
        runs = [
            _ChainRun(start, chain_seed, tune)
            for start, chain_seed in zip(starts, seeds, strict=True)
        ]
        try:
            for length in lengths:
                _run_to(runs, length, cores, start_chain, final=length == lengths[-1])
                chains = [run.trace(length) for run in runs]
                if length == lengths[-1] or enough(_combine_chains(chains)):
                    break
        finally:
            for run in runs:
                run.stop()
    return _combine_chains(chains)


def _combine_chains(chains: list[xr.DataTree]) -> xr.DataTree:
    """One ``posterior`` / ``sample_stats`` tree of single-chain traces, chains in order."""
    groups = {}
    for group in ("posterior", "sample_stats"):
        parts = [tree[group].to_dataset() for tree in chains]
        combined = xr.concat(parts, dim="chain", data_vars="all", coords="minimal")
        # object-dtype statistics (nutpie's divergence messages) do not serialise
        text = [name for name, var in combined.data_vars.items() if var.dtype == object]
        groups[group] = combined.drop_vars(text).assign_coords(chain=np.arange(len(chains)))
    return xr.DataTree.from_dict(groups)


class _ChainRun:
    """One chain's nutpie sampler: started when a core is free, paused at a checkpoint."""

    def __init__(self, start: np.ndarray, seed, tune: int) -> None:
        self.start, self.seed, self.tune = start, seed, tune
        self.sampler = None
        self.result: xr.DataTree | None = None  # the whole trace, once the sampler ended
        self.draws = 0  # draws after tuning, as nutpie's progress callback last said
        self.running = False

    def progress(self, chains) -> None:  # called from nutpie's thread
        self.draws = max(0, int(chains[0].finished_draws) - self.tune)

    @property
    def ended(self) -> bool:
        return self.result is not None or (self.sampler is not None and _finished(self.sampler))

    def reached(self, length: int, final: bool) -> bool:
        """Whether the chain is done for this checkpoint (the last one: its sampler ended)."""
        return self.ended or (not final and self.sampler is not None and self.draws >= length)

    def launch(self, start_chain) -> None:
        if self.sampler is None:
            self.sampler = start_chain(self.start, self.seed, self.progress)
        else:
            self.sampler.resume()
        self.running = True

    def pause(self) -> None:
        if not self.ended:
            self.sampler.pause()
        self.running = False

    def trace(self, length: int) -> xr.DataTree:
        """The first ``length`` draws (``KeyboardInterrupt`` if the chain has fewer)."""
        if self.result is None and _finished(self.sampler):
            self.result = self.sampler.wait()
        trace = _complete(self.sampler.inspect() if self.result is None else self.result, length)
        return xr.DataTree.from_dict(
            {
                group: trace[group].to_dataset().isel(draw=slice(0, length))
                for group in ("posterior", "sample_stats")
            }
        )

    def stop(self) -> None:
        if self.sampler is not None and self.result is None:
            self.sampler.cancel()


def _finished(sampler) -> bool:
    """nutpie's ``is_finished``, which raises ``TimeoutError`` (not False) on some calls."""
    try:
        return bool(sampler.is_finished)
    except TimeoutError:
        return False


def _run_to(runs: list[_ChainRun], length: int, cores: int, start_chain, *, final: bool) -> None:
    """Advance every chain to ``length`` draws, at most ``cores`` chains at once.

    A chain that reached ``length`` is paused so that its core goes to a chain behind;
    at the last checkpoint (``final``) every sampler runs to its own end.
    """
    while True:
        for run in runs:
            if run.running and run.reached(length, final):
                run.pause()
        if all(run.reached(length, final) for run in runs):
            return
        waiting = [run for run in runs if not run.running and not run.reached(length, final)]
        while waiting and sum(run.running for run in runs) < cores:
            waiting.pop(0).launch(start_chain)
        time.sleep(0.02)


def _complete(trace: xr.DataTree, draws: int) -> xr.DataTree:
    """``trace``, or ``KeyboardInterrupt`` if nutpie returned it cut short.

    nutpie's ``sample`` turns Ctrl-C into a *partial* trace and returns it; an interrupted
    chain must stop the fit, not pass for a finished one (nor start the next chain).
    """
    if trace["posterior"].sizes["draw"] < draws:
        raise KeyboardInterrupt(f"sampling was interrupted after fewer than {draws} draws")
    return trace


__all__ = ["ADAPTATION", "sample_chains"]
