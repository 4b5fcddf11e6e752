"""Simulation-based calibration of BayesianGaussianMixture's samplers (issue 26).

For each configuration (1-D K=2, 2-D K=2; a FIXED proper prior, not built from the data)
and method (``gibbs``, ``nuts``; optionally ``fullrank_advi``, the stored draws,
PSIS-corrected when the correction's k-hat is below 0.7, and ``fullrank_advi_q``, q's own
draws, the approximate method expected to fail), replicate ``s`` (seed ``s``) draws
parameters from the prior and data from the model, fits
``BayesianGaussianMixture(K, method=..., prior=PRIOR, random_state=s)`` and ranks the true
label-invariant quantities (:mod:`bayesgmm.posterior.sbc`: sorted weights, log-likelihood
of the replicate's data, log density at three fixed points, co-clustering of two fixed
row pairs) among 99 draws thinned evenly from the pooled chains.
Replicates run until ``--replicates`` or the method's time budget. The ranks go to
``reports/data/sbc_ranks.csv`` (one row per replicate and quantity, with its seed), the
ECDF and chi-square p-values per quantity to ``reports/calibration.md`` and the
ECDF-difference plots with their 95 % simultaneous bands to ``reports/figures/sbc_*.png``.

The prior is given on the user's scale; the estimator's standardisation maps it exactly to
its working scale, so the fitted posterior is the posterior under this prior.

Usage: ``.venv/bin/python benchmarks/bench_sbc.py [--replicates N] [--budget S]
[--methods gibbs,nuts] [--configs 1d,2d] [--report-only]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm import BayesianGaussianMixture, MixturePrior
from bayesgmm.posterior.sbc import (
    chisq_uniformity_test,
    draw_from_prior,
    ecdf_band,
    ecdf_uniformity_test,
    fractional_ranks,
    mixture_quantities,
    sbc_ranks,
    simulate_mixture,
    thinned,
)

ROOT = Path(__file__).resolve().parents[1]
RANKS = ROOT / "reports" / "data" / "sbc_ranks.csv"
REPORT = ROOT / "reports" / "calibration.md"
FIGURES = ROOT / "reports" / "figures"
N_RANK_DRAWS = 99

CONFIGS = {
    "1d": {
        "label": "1-D K=2, n=50",
        "k": 2,
        "n": 50,
        "prior": MixturePrior(
            weight_concentration=2.0,
            mean_prior=np.array([0.0]),
            mean_precision=0.2,
            degrees_of_freedom=5.0,
            covariance_prior=np.array([[4.0]]),
        ),
        "points": np.array([[-3.0], [0.0], [3.0]]),
    },
    "2d": {
        "label": "2-D K=2, n=80",
        "k": 2,
        "n": 80,
        "prior": MixturePrior(
            weight_concentration=2.0,
            mean_prior=np.array([0.0, 0.0]),
            mean_precision=0.2,
            degrees_of_freedom=6.0,
            covariance_prior=np.array([[3.0, 0.5], [0.5, 3.0]]),
        ),
        "points": np.array([[0.0, 0.0], [2.0, 2.0], [-2.0, 1.0]]),
    },
}
PAIRS = np.array([[0, 1], [2, 3]])
#: A method name ending in this: the VI fit's own draws of q (no PSIS correction).
Q_SUFFIX = "_q"
#: Settings of each method's fit (NUTS: fixed length, no extension).
FIT_SETTINGS = {
    "gibbs": {"draws": 500, "tune": 300, "chains": 2, "pointwise": False},
    "nuts": {"draws": 500, "chains": 2, "max_draws": 500, "pointwise": False},
    "fullrank_advi": {"draws": 1000, "pointwise": False},
}


#: What the committed run showed (written by hand from its table; update with the ranks).
FINDINGS = """## Findings of the committed run

- **Exact methods.** `gibbs` and `nuts` pass on both configurations: every quantity's ECDF
  p-value is above the Bonferroni level 0.05 / 8 = 0.00625. Every ECDF stays inside its
  (unadjusted) 95 % simultaneous band in the figures below but one, which touches it: the 1-D
  log density at point 1 for Gibbs (p 0.048; true values ranked low, i.e. the draws' density
  at 0 above the true one, more often than chance). NUTS leans the same way on the same
  seeds (p 0.111), and the Gibbs kernel alone on the same 1-D model (1500 replicates, seed
  21) gives p 0.28 for that quantity (smallest over the 8: 0.069), so it is read as a
  feature of these simulated data sets. The fractional ranks' means lie between 0.43
  and 0.55 (a Monte Carlo sd of about 0.03 at 100 replicates); the lowest, 0.43 for the log
  density at point 1 in 1-D, is the same for both methods because replicate ``s`` simulates
  the same data set for every method (shared seeds), so their ranks are correlated.
- **Honest history of the 2-D Gibbs row.** Its first 195 replicates (seeds 0-194) gave a
  smallest p of 0.004 (co-clustering of rows 2 and 3): a FAIL by the rule. The same run
  extended by seeds 200-361 (357 replicates) gives 0.023 (pass). An independent check of the
  Gibbs kernel alone on the same model and prior (random start, 300 burn-in and 2000 kept
  sweeps, 1500 replicates, seed 9) gives a smallest p of 0.13 over the 8 quantities; so the
  dip is read as chance (with 4 rows x 8 quantities, one p near 0.004 is not rare), not a
  bias of the sampler.
- **NUTS** had divergent transitions in a few replicates (column "divergent fits": 9 of 101
  in 1-D, 3 of 94 in 2-D) and is still calibrated on these quantities; its replicates are
  fewer (about 4 s per fit against 1-1.5 s for Gibbs on this shared machine, 2 cores shared
  with other jobs), so its test has less power.
- **Not run here (left for a longer run).** ADVI and full-rank ADVI, with and without the
  PSIS correction (one full-rank ADVI fit took 121 s on this machine, with its 16000-draw
  PSIS correction: 2 replicates in 220 s, too few to test, so they are not reported);
  `sampler="pymc"`; the sparse mixture's Gibbs sampler and K+; the MAP bootstrap; 2-D K=3;
  the relabelled parameters (only label-invariant quantities are ranked).
- **Fixed prior and standardisation.** The prior is a `MixturePrior` on the user's scale.
  `BayesianGaussianMixture` works on standardised data but maps the prior exactly to that
  scale (`Standardization.prior_to_working`), so the posterior it samples is the posterior
  under this fixed prior; only the start (MAP-EM) looks at the data. No
  `standardize=False` route is needed.
- **Suite test.** `tests/test_sbc.py` runs 100 replicates of a 1-D K=2 model (40 rows)
  through the Gibbs kernel in about 3 s: the real sampler passes, the same sampler fitted
  with a covariance prior scale four times too large fails (p = 0.0005 on six of the eight
  quantities), so the test can fail.
"""


def replicate(config: dict, method: str, seed: int) -> tuple[np.ndarray, list[str], dict]:
    """Ranks (n_quantities,) of one replicate, the quantities' names and what happened."""
    rng = np.random.default_rng(seed)
    truth = draw_from_prior(config["prior"], config["k"], rng)
    X, _ = simulate_mixture(*truth, config["n"], rng)
    began = time.perf_counter()
    uncorrected = method.endswith(Q_SUFFIX)
    fitted = method.removesuffix(Q_SUFFIX)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = BayesianGaussianMixture(
            config["k"],
            method=fitted,
            prior=config["prior"],
            random_state=seed,
            progressbar=False,
            **FIT_SETTINGS[fitted],
        ).fit(X)
        if uncorrected:  # the draws of q itself, without the PSIS correction
            post = fit.approximation_.sample(FIT_SETTINGS[fitted]["draws"], random_seed=seed)
            post = post["posterior"]
        else:
            post = fit.idata_.posterior
    seconds = time.perf_counter() - began
    d = X.shape[1]
    weights = post["weights"].values.reshape(-1, config["k"])
    means = post["means"].values.reshape(-1, config["k"], d)
    covs = post["covariances"].values.reshape(-1, config["k"], d, d)
    keep = thinned(np.arange(len(weights)), N_RANK_DRAWS)
    values, names = mixture_quantities(
        weights[keep], means[keep], covs[keep], X, config["points"], PAIRS
    )
    true_values, _ = mixture_quantities(*truth, X, config["points"], PAIRS)
    ranks = sbc_ranks(values, true_values, rng)
    info = {"seconds": seconds, "n_draws": len(keep)}
    if "sample_stats" in fit.idata_.children and "diverging" in fit.idata_["sample_stats"]:
        info["divergences"] = int(fit.idata_["sample_stats"]["diverging"].sum())
    return ranks, names, info


def run(
    configs: list[str], methods: list[str], replicates: int, budget: float, first_seed: int = 0
) -> pd.DataFrame:
    """Replicates (seeds ``first_seed, first_seed + 1, ...``) of every (config, method) until
    ``replicates`` or ``budget`` seconds each."""
    rows = []
    for key in configs:
        config = CONFIGS[key]
        for method in methods:
            began = time.perf_counter()
            tried = 0
            for seed in range(first_seed, first_seed + replicates):
                if time.perf_counter() - began > budget:
                    break
                tried += 1
                try:
                    ranks, names, info = replicate(config, method, seed)
                except Exception as error:  # recorded, counted in the report
                    rows.append(
                        {"config": key, "method": method, "seed": seed, "error": repr(error)}
                    )
                    continue
                for name, rank in zip(names, ranks, strict=True):
                    rows.append(
                        {
                            "config": key,
                            "method": method,
                            "seed": seed,
                            "quantity": name,
                            "rank": int(rank),
                            "n_draws": info["n_draws"],
                            "seconds": info["seconds"],
                            "divergences": info.get("divergences", 0),
                        }
                    )
            print(f"{key} {method}: {tried} replicates tried", flush=True)
    return pd.DataFrame(rows)


def _plot(frame: pd.DataFrame, key: str, method: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quantities = list(dict.fromkeys(frame["quantity"]))
    cols = 4
    rows = int(np.ceil(len(quantities) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes.ravel(), quantities, strict=False):
        sub = frame[frame["quantity"] == name]
        u = np.sort(fractional_ranks(sub["rank"].values, N_RANK_DRAWS, rng))
        z, lower, upper = ecdf_band(len(u), 0.05)
        ax.fill_between(z, lower, upper, color="0.85", label="95% simultaneous band")
        grid = np.linspace(0, 1, 201)
        ax.plot(grid, np.searchsorted(u, grid, side="right") / len(u) - grid, color="C0")
        ax.axhline(0, color="0.4", lw=0.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("fractional rank", fontsize=8)
    for ax in axes.ravel()[len(quantities) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("ECDF - uniform")
    fig.suptitle(f"SBC, {CONFIGS[key]['label']}, method={method} ({frame['seed'].nunique()} reps)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(frame: pd.DataFrame, command: str) -> str:
    """The Markdown of ``reports/calibration.md`` from the ranks."""
    lines = [
        "# Simulation-based calibration",
        "",
        "Issue 26. Reproduce with",
        f"`{command}` (ranks: `reports/data/sbc_ranks.csv`; "
        "`benchmarks/bench_sbc.py --report-only` rebuilds this page and the figures from them).",
        "",
        "Each replicate (seed `s`) draws the parameters from a fixed proper prior, data from "
        "the model, fits `BayesianGaussianMixture(K, method=..., prior=PRIOR, random_state=s)` "
        "and ranks the true label-invariant quantities among 99 draws thinned evenly from the "
        "pooled chains (`bayesgmm.posterior.sbc`). Settings per method: "
        + "; ".join(f"{m}: {s}" for m, s in FIT_SETTINGS.items())
        + ". p-values: the ECDF test of Säilynoja, Bürkner & Vehtari (2022) on fractional "
        "ranks (2000 simulated null samples, so the smallest p is 0.0005) and a Pearson "
        "chi-square test on equal bins. A method passes a configuration when every quantity's "
        "ECDF p-value exceeds 0.05 / (number of quantities) (Bonferroni).",
        "",
        "Priors (user scale, fixed): "
        + "; ".join(
            f"{c['label']}: a={c['prior'].weight_concentration}, "
            f"m0={c['prior'].mean_prior.tolist()}, kappa0={c['prior'].mean_precision}, "
            f"nu0={c['prior'].degrees_of_freedom}, Psi0={c['prior'].covariance_prior.tolist()}"
            for c in CONFIGS.values()
        )
        + ". The estimator's working-scale standardisation maps the prior exactly, so it "
        "does not make the prior data-dependent.",
        "",
        "| configuration | method | replicates (seeds) | failed fits | median fit (s) | "
        "divergent fits | min ECDF p | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    detail = ["", "## p-values per quantity (ECDF / chi-square)", ""]
    ok = frame[frame["quantity"].notna()] if "quantity" in frame else frame.iloc[0:0]
    errors = frame[frame["error"].notna()] if "error" in frame else frame.iloc[0:0]
    for (key, method), sub in ok.groupby(["config", "method"], sort=False):
        seeds = sub["seed"].unique()
        n_failed = int(((errors["config"] == key) & (errors["method"] == method)).sum())
        per_rep = sub.drop_duplicates("seed")
        p_values = {}
        rng = np.random.default_rng(0)
        for name, q in sub.groupby("quantity", sort=False):
            u = fractional_ranks(q["rank"].values, N_RANK_DRAWS, rng)
            p_values[name] = (ecdf_uniformity_test(u).p_value, chisq_uniformity_test(u).p_value)
        min_p = min(p for p, _ in p_values.values())
        verdict = "pass" if min_p > 0.05 / len(p_values) else "FAIL"
        lines.append(
            f"| {CONFIGS[key]['label']} | {method} | {len(seeds)} ({seeds.min()}-{seeds.max()}) "
            f"| {n_failed} | {per_rep['seconds'].median():.1f} | "
            f"{int((per_rep['divergences'] > 0).sum())} | {min_p:.4f} | {verdict} |"
        )
        detail.append(
            f"**{CONFIGS[key]['label']}, {method}**: "
            + ", ".join(f"{name} {p:.3f} / {c:.3f}" for name, (p, c) in p_values.items())
        )
        detail.append("")
        figure = FIGURES / f"sbc_{key}_{method}.png"
        _plot(sub, key, method, figure)
        detail.append(f"![SBC {key} {method}](figures/{figure.name})")
        detail.append("")
    return "\n".join([*lines, "", FINDINGS, *detail]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--budget", type=float, default=240.0, help="seconds per method/config")
    parser.add_argument("--methods", default="gibbs,nuts")
    parser.add_argument("--configs", default="1d,2d")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--append", action="store_true", help="add to the saved ranks")
    args = parser.parse_args()
    command = (
        f"benchmarks/bench_sbc.py --replicates {args.replicates} --budget {args.budget:g} "
        f"--methods {args.methods} --configs {args.configs}"
        + (f" --first-seed {args.first_seed}" if args.first_seed else "")
    )
    if args.report_only:
        frame = pd.read_csv(RANKS)
        command = (
            RANKS.with_suffix(".command").read_text().strip()
            if RANKS.with_suffix(".command").exists()
            else command
        )
    else:
        frame = run(
            args.configs.split(","),
            args.methods.split(","),
            args.replicates,
            args.budget,
            args.first_seed,
        )
        if args.append and RANKS.exists():
            frame = pd.concat([pd.read_csv(RANKS), frame], ignore_index=True)
            command = (
                RANKS.with_suffix(".command").read_text().strip()
                + "; then "
                + command
                + " --append"
            )
        RANKS.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(RANKS, index=False)
        RANKS.with_suffix(".command").write_text(command + "\n")
    FIGURES.mkdir(parents=True, exist_ok=True)
    text = report(frame, command)
    REPORT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
