"""Time per call of a compiled NUTS target: the fused likelihood Op against the PyTensor graph.

Builds each structure twice in one process, once with the observed density of
:func:`bayesgmm.model.mixture_logp` (the fused :mod:`bayesgmm.likelihood` Op) and once with
:func:`bayesgmm.model.mixture_logp_graph` (the same density written with PyTensor ops,
which PyTensor differentiates), and times ``logp_dlogp`` in interleaved batches at points
near the MAP; reports the minimum over batches of the time per call (the machine is shared)
and the build time of each (PyTensor's disk cache as it is).

Usage::

    PYTHONPATH=. python benchmarks/bench_gradient.py [--batches 30] [--sets a,b] [--fastmath]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bayesgmm import compiled, datasets, model
from bayesgmm.mixture import GaussianMixture
from bayesgmm.spec import MixtureSpec


def cases() -> dict[str, tuple[np.ndarray, int, str]]:
    synthetic, _, _ = datasets.make_mixture(2000, 4, 2, separation=3.0, random_state=12)
    return {
        "galaxies K=2": (datasets.load_galaxies(), 2, "full"),
        "galaxies K=3": (datasets.load_galaxies(), 3, "full"),
        "faithful K=2 full": (datasets.load_faithful(), 2, "full"),
        "synthetic 2-D N=2000 K=4 full": (synthetic, 4, "full"),
    }


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
        "--fastmath", action="store_true", help="compile with numba's fast-math (not the default)"
    )
    args = parser.parse_args()
    compiled.COMPILE_FLAGS["numba__fastmath"] = args.fastmath
    selected = cases()
    if args.sets:
        selected = {n: c for n, c in selected.items() if any(s in n for s in args.sets.split(","))}
    for name, (X, k, covariance_type) in selected.items():
        spec = MixtureSpec.from_data(X, k, covariance_type, "default")
        targets, builds = {}, {}
        for variant, fused in (("graph", False), ("fused", True)):
            targets[variant], builds[variant] = build(X, spec, fused=fused)
            targets[variant].set_data(X, spec)
        params = GaussianMixture(
            k, covariance_type=covariance_type, prior="default", random_state=0
        )
        params = params.fit(X).params_.sorted_by_mean()
        centre = targets["fused"].unconstrained(
            model.initial_point(params, targets["fused"].model, spec)
        )
        rng = np.random.default_rng(0)
        points = [centre + rng.normal(0.0, 0.05, centre.size) for _ in range(10)]
        for x in points:  # the same function
            a, b = targets["graph"].logp_dlogp(x), targets["fused"].logp_dlogp(x)
            np.testing.assert_allclose(a[0], b[0], rtol=1e-10)
            np.testing.assert_allclose(a[1], b[1], rtol=1e-8, atol=1e-8)
        best = {variant: np.inf for variant in targets}
        for _ in range(args.batches):
            for variant, target in targets.items():
                best[variant] = min(best[variant], time_per_call(target, points, args.repeats))
        print(
            f"{name}: graph {1e6 * best['graph']:.1f} us, fused {1e6 * best['fused']:.1f} us "
            f"per call ({best['graph'] / best['fused']:.1f}x); build graph "
            f"{builds['graph']:.1f} s, fused {builds['fused']:.1f} s"
        )


if __name__ == "__main__":
    main()
