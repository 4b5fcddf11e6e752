"""NUTS: bayesgmm's default fit against an expert hand-written PyMC model, in one process.

The expert model is what a PyMC user would write: ``pm.NormalMixture`` (1-D, ordered
means, half-normal scales) or ``pm.Mixture`` of ``pm.MvNormal`` components with
``pm.LKJCholeskyCov`` priors (d > 1), Dirichlet weights, every chain started at
scikit-learn's EM solution, sampled by ``pm.sample`` with its defaults (PyMC 6.4 picks
nutpie's numba backend). bayesgmm runs :class:`~bayesgmm.BayesianGaussianMixture` with
its defaults (nutpie's low-rank mass-matrix adaptation, chains one after another
unless a gradient call takes 100 µs or more), and
variants: chains in parallel threads (``cores=2``), the diagonal mass matrix and PyMC's NUTS
(``sampler="pymc"``). Same data, draws, chains and seed; each side tunes for its
default number of steps (``pm.sample``'s 1000, bayesgmm's :data:`bayesgmm.core.methods.TUNE`);
whole calls are timed, so compilation counts, and the EM start and post-processing count
for bayesgmm.

Reported per data set and run: wall time (s), compile time (s; the expert's
``nutpie.compile_pymc_model``, bayesgmm's :func:`bayesgmm.bayes.compiled.compiled_mixture`),
the minimum bulk ESS over weights, means and covariance parameters, that ESS per
second of wall time, max R-hat, divergences, and the ratio of ESS/s to the expert's.
"cold" is the first fit of the structure in the process (PyTensor's disk cache as it
is); "warm" a second fit with another seed (the in-process cache). Writes the section
"NUTS: bayesgmm vs an expert PyMC model" of ``reports/benchmarks.md``.

Usage: ``.venv/bin/python benchmarks/bench_nuts.py [--quick] [--draws N] [--sets a,b]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pymc as pm
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from bayesgmm import BayesianGaussianMixture, datasets
from bayesgmm.bayes import compiled
from bayesgmm.core.methods import TUNE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import REPORT, _write_section

HEADING = "## NUTS: bayesgmm vs an expert PyMC model"


def data_sets() -> dict[str, tuple[np.ndarray, int]]:
    """Name -> (X, K): galaxies K=3, Old Faithful K=2 full, synthetic 2-D N=2000 K=4."""
    synthetic, _, _ = datasets.make_mixture(2000, 4, 2, separation=3.0, random_state=12)
    return {
        "galaxies K=3": (datasets.load_galaxies(), 3),
        "faithful K=2 full": (datasets.load_faithful(), 2),
        "synthetic 2-D N=2000 K=4 full": (synthetic, 4),
    }


def expert_model(X: np.ndarray, k: int) -> tuple[pm.Model, dict, list[str]]:
    """The hand-written model, its EM start (scikit-learn) and the variables to assess."""
    em = SkGaussianMixture(k, covariance_type="full", n_init=5, random_state=0).fit(X)
    d = X.shape[1]
    center, spread = X.mean(axis=0), X.std(axis=0)
    order = np.argsort(em.means_[:, 0])
    with pm.Model() as model:
        w = pm.Dirichlet("w", a=np.ones(k))
        if d == 1:
            mu = pm.Normal(
                "mu",
                mu=center[0],
                sigma=10 * spread[0],
                shape=k,
                transform=pm.distributions.transforms.ordered,
            )
            sigma = pm.HalfNormal("sigma", sigma=2 * spread[0], shape=k)
            pm.NormalMixture("x", w=w, mu=mu, sigma=sigma, observed=X[:, 0])
            start = {
                "w": em.weights_[order],
                "mu": em.means_[order, 0],
                "sigma": np.sqrt(em.covariances_[order, 0, 0]),
            }
            names = ["w", "mu", "sigma"]
        else:
            mu = pm.Normal("mu", mu=center, sigma=10 * spread, shape=(k, d))
            comps = []
            for j in range(k):
                chol, _, _ = pm.LKJCholeskyCov(
                    f"chol{j}",
                    n=d,
                    eta=2.0,
                    sd_dist=pm.HalfNormal.dist(2 * spread),
                    compute_corr=True,
                )
                comps.append(pm.MvNormal.dist(mu=mu[j], chol=chol))
            pm.Mixture("x", w=w, comp_dists=comps, observed=X)
            start = {"w": em.weights_, "mu": em.means_}
            for j in range(k):
                chol = np.linalg.cholesky(em.covariances_[j])
                start[f"chol{j}"] = chol[np.tril_indices(d)]
            names = (
                ["w", "mu"]
                + [f"chol{j}_stds" for j in range(k)]
                + [f"chol{j}_corr" for j in range(k)]
            )
    return model, start, names


def assess(idata, names: list[str]) -> dict[str, float]:
    """Min bulk ESS and max R-hat over ``names`` (off-diagonal-free entries), divergences."""
    post = idata["posterior"].to_dataset()[names]
    ess = azs.ess(post, method="bulk")
    rhat = azs.rhat(post)
    min_ess = min(float(np.nanmin(ess[v].values)) for v in names)
    max_rhat = max(float(np.nanmax(rhat[v].values)) for v in names)
    stats = idata["sample_stats"].to_dataset()
    return {"ess": min_ess, "rhat": max_rhat, "div": int(stats["diverging"].sum())}


class CompileTimer:
    """Total seconds spent in the wrapped function while installed."""

    def __init__(self, owner, name: str) -> None:
        self.owner, self.name, self.seconds = owner, name, 0.0
        self.original = getattr(owner, name)

    def __enter__(self):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(self.owner, self.name, timed)
        return self

    def __exit__(self, *exc) -> None:
        setattr(self.owner, self.name, self.original)


def run_expert(X, k, draws, chains, seed) -> dict:
    import nutpie

    start = time.perf_counter()
    model, init, names = expert_model(X, k)
    with CompileTimer(nutpie, "compile_pymc_model") as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(
            draws,
            tune=draws,
            chains=chains,
            initvals=init,
            model=model,
            random_seed=seed,
            progressbar=False,
            compute_convergence_checks=False,
        )
    wall = time.perf_counter() - start
    return {"wall": wall, "compile": timer.seconds, **assess(idata, names)}


def run_bayesgmm(X, k, draws, chains, seed, **settings) -> dict:
    start = time.perf_counter()
    with CompileTimer(compiled.CompiledMixture, "build") as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = BayesianGaussianMixture(
            k,
            draws=draws,
            max_draws=draws,  # the expert's fixed length, for a like-for-like ESS per second
            chains=chains,
            random_state=seed,
            progressbar=False,
            **settings,
        ).fit(X)
    wall = time.perf_counter() - start
    names = ["weights", "means", "covariances"] if k > 1 else ["means", "covariances"]
    result = assess(fit.idata_, names)
    return {"wall": wall, "compile": timer.seconds, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000, help="draws and tuning steps per chain")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sets", default="", help="comma-separated subset of the data set names")
    parser.add_argument("--quick", action="store_true", help="no pymc-sampler variant")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    sets = data_sets()
    if args.sets:
        sets = {name: sets[name] for name in sets if any(s in name for s in args.sets.split(","))}
    rows = []
    for name, (X, k) in sets.items():
        runs = {"expert (pm.sample, nutpie)": run_expert(X, k, args.draws, args.chains, args.seed)}
        runs["bayesgmm default, cold (first fit of the structure)"] = run_bayesgmm(
            X, k, args.draws, args.chains, args.seed
        )
        runs["bayesgmm default, warm"] = run_bayesgmm(X, k, args.draws, args.chains, args.seed + 1)
        runs["bayesgmm warm, chains in parallel threads (cores=2)"] = run_bayesgmm(
            X, k, args.draws, args.chains, args.seed + 1, sampler_kwargs={"cores": 2}
        )
        runs["bayesgmm diagonal mass matrix, warm"] = run_bayesgmm(
            X, k, args.draws, args.chains, args.seed + 1, sampler_kwargs={"adaptation": "diag"}
        )
        if not args.quick:
            runs["bayesgmm sampler='pymc'"] = run_bayesgmm(
                X, k, args.draws, args.chains, args.seed, sampler="pymc"
            )
        base = runs["expert (pm.sample, nutpie)"]
        base_rate = base["ess"] / base["wall"]
        for run, r in runs.items():
            rate = r["ess"] / r["wall"]
            rows.append(
                f"| {name} | {run} | {r['wall']:.1f} | {r['compile']:.1f} | {r['ess']:.0f} | "
                f"{rate:.1f} | {rate / base_rate:.2f} | {r['rhat']:.3f} | {r['div']} |"
            )
            print(rows[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = [
        HEADING,
        "",
        f"{args.chains} chains x {args.draws} draws, seed {args.seed}; tuning steps: each "
        f"side's default (the expert: {args.draws}, pm.sample's 1000 at 1000 draws; "
        f"bayesgmm: {TUNE}, `bayesgmm.core.methods.TUNE`); "
        f"one process; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load:.1f} at the end; `benchmarks/bench_nuts.py"
        f"{' --quick' if args.quick else ''}"
        f"{f' --draws {args.draws}' if args.draws != 1000 else ''}`. Wall: the whole call "
        "(bayesgmm: EM start, compilation, sampling, relabelling, pointwise groups); compile: "
        "the part spent compiling; ESS: minimum bulk ESS over weights, means and covariance "
        "parameters; ratio: ESS/s over the expert's. Cold: first fit of the structure in "
        "the process (PyTensor's disk cache as the machine had it); warm: the compiled model "
        "reused (another seed). bayesgmm's chains run as by default (one after another, in "
        "parallel threads when a gradient call takes >= 100 µs: here the synthetic set) unless "
        "the row says otherwise, for the fixed 1000 draws (`max_draws=draws`).",
        "",
        "| data | run | wall s | compile s | min bulk ESS | ESS/s | ratio | max R-hat | div |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    text = "\n".join(header + rows) + "\n"
    print(text)
    if not args.no_write:
        _write_section(REPORT, HEADING, text)
        print(f"written to {REPORT}")


if __name__ == "__main__":
    main()
