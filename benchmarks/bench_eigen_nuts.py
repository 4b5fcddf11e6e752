"""NUTS on mclust's decomposed models, each on data simulated from itself.

For every model asked for: two Gaussian components (means 0 and 5 in every coordinate) with
covariances ``lambda_k D_k A_k D_k^T`` of that model (volumes 1 and 0.35 where they vary,
shapes ``exp(linspace(1, -1, d))`` and ``exp(linspace(-0.6, 0.6, d))``, random rotations),
``--n`` rows each; ``BayesianGaussianMixture(2, covariance_type=model)`` with the given
draws, tuning and chains; prints the wall time of the fit (the first fit of a structure in
a process compiles it), ``diagnose()``'s worst R-hat, smallest bulk and tail ESS,
divergences and verdict, how far the posterior means of the covariance entries are from the
truth in posterior sds, and the R-hat of the raw (unidentified) sampler variables for
comparison.

Usage::

    PYTHONPATH=. python benchmarks/bench_eigen_nuts.py [--models VEV,VVE,VEI] [--n 60]
        [--d 2] [--draws 600] [--tune 600] [--chains 2] [--seed 3]
"""

from __future__ import annotations

import argparse
import time

import arviz_stats as azs
import numpy as np

from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.datasets import make_decomposed_mixture


def simulate(model: str, n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows per component of a two-component mixture of ``model``, and its covariances."""
    X, _, covs = make_decomposed_mixture(model, n, d, seed)
    return X, covs


def run(model: str, args: argparse.Namespace) -> None:
    X, covs = simulate(model, args.n, args.d, args.seed)
    start = time.perf_counter()
    fit = BayesianGaussianMixture(
        2,
        covariance_type=model,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        random_state=1,
        progressbar=False,
    ).fit(X)
    seconds = time.perf_counter() - start
    diag = fit.diagnose()
    posterior = fit.idata_["posterior"]
    draws = posterior["covariances"].stack(sample=("chain", "draw")).transpose("sample", ...)
    order = np.argsort(posterior["means"].mean(("chain", "draw")).values[:, 0])
    mean, sd = draws.values.mean(0)[order], draws.values.std(0)[order]
    z = float(np.max(np.abs(mean - covs) / np.where(sd > 0, sd, np.inf)))
    raw = [n for n in posterior.data_vars if n.endswith("_z") and n != "means_z"]
    raw_rhat = {n: float(np.nanmax(azs.rhat(posterior[n]).values)) for n in raw}
    print(
        f"{model}: fit {seconds:.1f} s; max R-hat {diag.max_rhat:.4f}, min bulk ESS "
        f"{diag.min_ess_bulk:.0f}, min tail ESS {diag.min_ess_tail:.0f}, divergences "
        f"{diag.n_divergences}, ok {diag.ok}; truth within {z:.2f} posterior sds; raw "
        + ", ".join(f"{n} R-hat {r:.3f}" for n, r in raw_rhat.items())
    )
    print(f"  verdict: {diag.verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="VEV,VVE,VEI")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--d", type=int, default=2)
    parser.add_argument("--draws", type=int, default=600)
    parser.add_argument("--tune", type=int, default=600)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    for model in args.models.split(","):
        run(model.strip(), args)


if __name__ == "__main__":
    main()
