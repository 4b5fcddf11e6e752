"""VI against NUTS: q's own draws and the PSIS-corrected draws (defensive proposal).

For Old Faithful (K=2, full) and galaxies (K=3): a NUTS reference (4 x 1000 + 1000 tuning
from the MAP, seed 1, keeping the chains that stay in the MAP's mode), then for each method
and fit seed: ``fit_vi``, the k-hat of q (check seed fit + 2) with q's mean error and sd
ratios from 4000 draws, and the k-hat of the defensive proposal (check seed fit + 3) with the
mean error and sd ratios of its 2000 resampled draws (``psis_posterior``). Mean error: largest
|VI - NUTS| posterior mean of the component means in data sds; sd ratio: range of VI sd /
NUTS sd over weights, means and covariances. Figures in ``reports/vi.md``.

Usage::

    .venv/bin/python benchmarks/bench_vi_correction.py galaxies --seeds 1 2 3
    .venv/bin/python benchmarks/bench_vi_correction.py galaxies --methods fullrank_advi \\
        --seeds 2 --fit-kwargs '{"tol": 1e-5}'
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import pymc as pm

from bayesgmm import GaussianMixture, datasets
from bayesgmm.model import build_model, initial_point
from bayesgmm.spec import MixtureSpec
from bayesgmm.vi import fit_vi, psis_khat, psis_posterior

VARS = ("weights", "means", "covariances")


def problem(name: str):
    """Data, model and MAP start of ``name`` (as in tests/test_vi.py)."""
    X, K = (datasets.load_faithful(), 2) if name == "faithful" else (datasets.load_galaxies(), 3)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    spec = MixtureSpec.from_data(X, K, "full", "default")
    model = build_model(X, spec)
    gm = GaussianMixture(K, prior="default", tol=1e-6, max_iter=1000, n_init=5, random_state=0)
    params = gm._fit_spec(X, spec).params_
    if X.shape[1] == 1:
        params = params.sorted_by_mean()
    return X, spec, model, initial_point(params, model, spec)


def nuts_reference(X, spec, model, start) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Posterior mean and sd of each variable over the NUTS chains that stay in the mode."""
    with model:
        idata = pm.sample(
            draws=1000,
            tune=1000,
            chains=4,
            cores=1,
            initvals=start,
            random_seed=1,
            nuts_sampler="pymc",
            progressbar=False,
            compute_convergence_checks=False,
        )
    std = spec.standardization
    start_means = std.location + std.scale * start["means_z"]
    chain_means = idata.posterior["means"].mean("draw").values
    stayed = np.all(np.abs(chain_means - start_means) < 0.5 * X.std(0), axis=(1, 2))
    print(f"NUTS chains kept: {stayed.tolist()}")
    return _moments(idata.posterior, np.flatnonzero(stayed))


def _moments(posterior, chains=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for v in VARS:
        a = posterior[v].values if chains is None else posterior[v].values[chains]
        a = a.reshape(-1, *a.shape[2:])
        out[v] = (a.mean(0), a.std(0))
    return out


def _compare(vi, nuts, sd) -> str:
    err = np.max(np.abs(vi["means"][0] - nuts["means"][0]) / sd)
    ratios = np.concatenate([(vi[v][1] / nuts[v][1]).ravel() for v in VARS])
    return f"mean err {err:.3f}, sd ratio {ratios.min():.2f}-{ratios.max():.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=["faithful", "galaxies"])
    parser.add_argument("--methods", nargs="+", default=["fullrank_advi", "advi"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--fit-kwargs", default="{}", help="JSON: further fit_vi settings")
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.ERROR)
    X, spec, model, start = problem(args.data)
    nuts = nuts_reference(X, spec, model, start)
    extra = json.loads(args.fit_kwargs)
    for method in args.methods:
        for seed in args.seeds:
            t0 = time.perf_counter()
            fit = fit_vi(model, start, method, random_seed=seed, **extra)
            seconds = time.perf_counter() - t0
            approx = fit.approximation
            raw = _moments(approx.sample(4000, random_seed=seed + 1).posterior)
            q = psis_khat(model, approx, random_seed=seed + 2)
            corr = psis_khat(model, approx, random_seed=seed + 3, proposal="defensive")
            line = (
                f"{args.data} {method} seed {seed} {extra}: {fit.n_iter} it ({seconds:.0f} s), "
                f"ELBO {fit.final_elbo:.2f} | q: k-hat {q.khat:.2f}, "
                f"{_compare(raw, nuts, X.std(0))}"
                f" | correction: k-hat {corr.khat:.2f} (ESS {corr.ess:.0f})"
            )
            if corr.reliable:
                post = psis_posterior(model, approx, corr, 2000, random_seed=seed).posterior
                line += ", " + _compare(_moments(post), nuts, X.std(0))
            print(line, flush=True)


if __name__ == "__main__":
    main()
