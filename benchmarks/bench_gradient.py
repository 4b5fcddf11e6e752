"""Time per call of a compiled NUTS target: PyTensor graph, fused likelihood Op, Numba kernel.

Builds each structure in one process with the observed density of
:func:`bayesgmm.bayes.model.mixture_logp` (the fused :mod:`bayesgmm.bayes.likelihood` Op)
and, for the
``graph`` variant, once more with :func:`bayesgmm.bayes.model.mixture_logp_graph` (the same
density written with PyTensor ops, which PyTensor differentiates). Variants:

``graph``
    the PyTensor function of the model with the PyTensor-written likelihood;
``fused``
    the PyTensor function of the model with the fused likelihood Op;
``kernel``
    :class:`bayesgmm.bayes.posterior_kernel.PosteriorKernel` (the whole log posterior and
    gradient in one Numba kernel), for the structures it covers (full covariances,
    ``d >= 2``).

Each is called through :meth:`~bayesgmm.bayes.compiled.CompiledMixture.logp_dlogp` (as nutpie
calls it) in interleaved batches at points near the MAP, after checking that the variants
agree there; reports the minimum over batches of the time per call (the machine is
shared) and the build time of each (PyTensor's disk cache as it is).

Usage::

    PYTHONPATH=. python benchmarks/bench_gradient.py [--batches 30] [--sets a,b]
        [--variants graph,fused,kernel] [--fastmath]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from bayesgmm import datasets
from bayesgmm.bayes import compiled, model
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em.estimator import GaussianMixture


def cases() -> dict[str, tuple[np.ndarray, int, str]]:
    synthetic, _, _ = datasets.make_mixture(2000, 4, 2, separation=3.0, random_state=12)
    return {
        "galaxies K=2": (datasets.load_galaxies(), 2, "full"),
        "galaxies K=3": (datasets.load_galaxies(), 3, "full"),
        "faithful K=2 full": (datasets.load_faithful(), 2, "full"),
        "synthetic 2-D N=2000 K=4 full": (synthetic, 4, "full"),
        "wine 13-D K=3 full": (_standardised("wine"), 3, "full"),
        "breast-cancer 30-D K=2 full": (_standardised("breast_cancer"), 2, "full"),
    }


def _standardised(name: str) -> np.ndarray:
    """A scikit-learn data set's features, each column to mean 0 and sd 1."""
    from sklearn import datasets as sk

    X = getattr(sk, f"load_{name}")().data
    return (X - X.mean(axis=0)) / X.std(axis=0)


def build(X, spec, *, fused: bool) -> tuple[compiled.CompiledMixture, float]:
    """The compiled target with the fused Op or the PyTensor graph, and its build time (s)."""
    original = model._OBSERVED_DIST["logp"]
    model._OBSERVED_DIST["logp"] = model.mixture_logp if fused else model.mixture_logp_graph
    try:
        start = time.perf_counter()
        target = compiled.CompiledMixture.build(X, spec, compiled.StructureKey.of(spec))
        return target, time.perf_counter() - start
    finally:
        model._OBSERVED_DIST["logp"] = original


def time_per_call(target, points, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        for x in points:
            target.logp_dlogp(x)
    return (time.perf_counter() - start) / (repeats * len(points))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--sets", default="", help="comma-separated subset of the case names")
    parser.add_argument(
        "--variants", default="graph,fused,kernel", help="comma-separated: graph, fused, kernel"
    )
    parser.add_argument(
        "--fastmath", action="store_true", help="compile with numba's fast-math (not the default)"
    )
    args = parser.parse_args()
    compiled.COMPILE_FLAGS["numba__fastmath"] = args.fastmath
    selected = cases()
    if args.sets:
        selected = {n: c for n, c in selected.items() if any(s in n for s in args.sets.split(","))}
    wanted = args.variants.split(",")
    for name, (X, k, covariance_type) in selected.items():
        spec = MixtureSpec.from_data(X, k, covariance_type, "default")
        targets, builds = {}, {}
        fused, builds["fused"] = build(X, spec, fused=True)
        fused.set_data(X, spec)
        if "graph" in wanted:
            graph, builds["graph"] = build(X, spec, fused=False)
            graph.set_data(X, spec)
            # the PyTensor function even where the kernel applies
            targets["graph"] = dataclasses.replace(graph, _logp_dlogp=graph._graph_logp_dlogp)
        if "fused" in wanted:
            targets["fused"] = dataclasses.replace(fused, _logp_dlogp=fused._graph_logp_dlogp)
        if "kernel" in wanted and fused.uses_kernel:
            targets["kernel"] = fused
        params = GaussianMixture(
            k, covariance_type=covariance_type, prior="default", random_state=0
        )
        params = params.fit(X).params_.sorted_by_mean()
        centre = fused.unconstrained(model.initial_point(params, fused.model, spec))
        rng = np.random.default_rng(0)
        points = [centre + rng.normal(0.0, 0.05, centre.size) for _ in range(10)]
        reference = fused._graph_logp_dlogp
        for x in points:  # the same function
            expected = reference(x)
            for target in targets.values():
                value, grad = target.logp_dlogp(x)
                np.testing.assert_allclose(value, expected[0], rtol=1e-10)
                np.testing.assert_allclose(grad, expected[1], rtol=1e-8, atol=1e-8)
        best = {variant: np.inf for variant in targets}
        for _ in range(args.batches):
            for variant, target in targets.items():
                best[variant] = min(best[variant], time_per_call(target, points, args.repeats))
        times = ", ".join(f"{variant} {1e6 * t:.1f} us" for variant, t in best.items())
        ratio = ""
        if "kernel" in best and "fused" in best:
            ratio = f" (fused / kernel {best['fused'] / best['kernel']:.2f}x)"
        built = ", ".join(f"{variant} {t:.1f} s" for variant, t in builds.items())
        print(f"{name}: {times} per call{ratio}; build {built}", flush=True)


if __name__ == "__main__":
    main()
