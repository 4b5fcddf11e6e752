"""bayesgmm's EM against R's mclust: the 14 models x K = 1..9 BIC tables, in one run.

For each data set (Old Faithful, iris, MASS crabs (FL RW CL CW BD), MASS geyser) R's
``mclustBIC(X, G = 1:9)`` fills mclust's BIC table (all fourteen models; maximum likelihood,
and with ``--prior`` also ``prior = priorControl()``), timed in R, and bayesgmm fills the
same cells, timed here: by default (``--n-init table``) maximum likelihood through
:func:`bayesgmm.em.mclust_table.fit_table`, the whole table in one call (what
``compare(X, range(1, 10), "all", method="map")`` runs); ``--n-init 1`` or ``auto`` fits
one ``GaussianMixture(K, covariance_type=model, n_init=...)`` per cell instead. The prior
tables use ``GaussianMixture(..., prior="default", n_init=--prior-n-init)`` per cell. BIC
in mclust's sign convention, ``2 log L - p log n`` (higher is better). A cell counts as
"at least mclust's" when bayesgmm's BIC is no lower than mclust's minus 0.01; cells where
either side has no BIC (mclust's NA: a singular fit; bayesgmm: an error, a singular or a
degenerate fit) are counted apart. bayesgmm's prior is its own default
(``MixturePrior.default``, Fraley & Raftery's data-scaled values as mclust's, with exact
posterior modes: see ``bayesgmm.core.covariance.eigen``), so prior cells compare two
slightly different objectives.

R is found as ``Rscript`` with the packages mclust and MASS; without them the script says
so and exits with status 0. Writes the section "bayesgmm vs R's mclust" of
``reports/benchmarks.md`` and the BIC-by-model figure for crabs
(``reports/figures/mclust_bic_crabs.png``).

    python benchmarks/bench_mclust.py                 # maximum likelihood, fit_table
    python benchmarks/bench_mclust.py --n-init auto   # GaussianMixture's default per cell
    python benchmarks/bench_mclust.py --prior         # also the prior tables
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from bayesgmm import GaussianMixture, datasets
from bayesgmm.core.covariance import MCLUST_MODELS
from bayesgmm.em.agglomeration import hc_partitions
from bayesgmm.em.mclust_table import fit_table
from bayesgmm.reporting.plots import plot_bic_models
from bayesgmm.selection.compare import compare

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import REPORT, _write_section

HEADING = "## bayesgmm vs R's mclust"
FIGURE = REPORT.parent / "figures" / "mclust_bic_crabs.png"
DATA_SETS = ("faithful", "iris", "crabs", "geyser")
KS = range(1, 10)

R_SCRIPT = r"""
suppressMessages({library(mclust); library(MASS)})
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]
priors <- strsplit(args[3], ",")[[1]]
repeats <- as.integer(args[4])
data <- list(
  faithful = as.matrix(read.csv(args[2], header = FALSE)),
  iris = as.matrix(iris[, 1:4]),
  crabs = as.matrix(crabs[, c("FL", "RW", "CL", "CW", "BD")]),
  geyser = as.matrix(geyser[, c("waiting", "duration")])
)
cat("mclust", as.character(packageVersion("mclust")), "\n")
writeLines(paste(crabs$sp, crabs$sex, sep = "_"), file.path(out, "crabs_groups.csv"))
for (name in names(data)) {
  X <- data[[name]]
  write.table(X, file.path(out, paste0(name, ".csv")), sep = ",",
              row.names = FALSE, col.names = FALSE)
  cuts <- hclass(hc(X, modelName = "VVV", use = "SVD"), 1:9)
  write.table(cuts, file.path(out, paste0(name, "_hc.csv")), sep = ",",
              row.names = FALSE, col.names = FALSE)
  for (p in priors) {
    t <- Inf
    for (r in seq_len(repeats)) t <- min(t, system.time(
      b <- if (p == "none") mclustBIC(X, G = 1:9, verbose = FALSE)
           else mclustBIC(X, G = 1:9, prior = priorControl(), verbose = FALSE)
    )[["elapsed"]])
    m <- matrix(as.numeric(b), nrow = nrow(b), dimnames = dimnames(b))
    write.csv(m, file.path(out, sprintf("%s_%s.csv", name, p)))
    cat("time", name, p, t, "\n")
  }
}
"""


def r_available() -> str | None:
    """Why R's mclust cannot be used, or ``None`` when it can."""
    if shutil.which("Rscript") is None:
        return "Rscript not found (Debian: apt-get install r-cran-mclust)"
    done = subprocess.run(
        ["Rscript", "-e", "library(mclust); library(MASS)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        return "R's packages mclust and MASS are not installed (r-cran-mclust, r-cran-mass)"
    return None


def run_mclust(folder: Path, priors: list[str], repeats: int = 1) -> tuple:
    """mclust's tables ``{(data, prior): DataFrame (K x model)}``, times, the data, the
    crabs' four groups (species x sex) and mclust's hierarchical cuts ``{data: (n, 9)}``."""
    faithful = folder / "faithful_in.csv"
    np.savetxt(faithful, datasets.load_faithful(), delimiter=",", fmt="%.17g")
    script = folder / "bench.R"
    script.write_text(R_SCRIPT)
    out = subprocess.run(
        ["Rscript", str(script), str(folder), str(faithful), ",".join(priors), str(repeats)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    ).stdout
    version, times = "", {}
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "mclust":
            version = parts[1]
        elif parts[0] == "time":
            times[(parts[1], parts[2])] = float(parts[3])
    tables = {
        key: pd.read_csv(folder / f"{key[0]}_{key[1]}.csv", index_col=0).reindex(
            columns=list(MCLUST_MODELS)
        )
        for key in times
    }
    data = {name: np.loadtxt(folder / f"{name}.csv", delimiter=",", ndmin=2) for name in DATA_SETS}
    groups = np.loadtxt(folder / "crabs_groups.csv", dtype=str)
    cuts = {
        name: np.loadtxt(folder / f"{name}_hc.csv", delimiter=",", dtype=int, ndmin=2)
        for name in DATA_SETS
    }
    return version, tables, times, data, groups, cuts


def bayesgmm_bic(X: np.ndarray, k: int, model: str, prior: str | None, n_init) -> float:
    """bayesgmm's BIC in mclust's convention (NaN when the fit fails or degenerates)."""
    try:
        fit = GaussianMixture(
            k, covariance_type=model, prior=prior, n_init=n_init, random_state=0
        ).fit(X)
    except Exception:
        return np.nan
    if fit.degenerate_:
        return np.nan
    return -fit.bic(X)


def warm_up() -> None:
    """Load (or compile) the compiled kernels once, outside the timings."""
    rng = np.random.default_rng(0)
    fit_table(rng.normal(size=(40, 2)), [1, 2], random_state=0)


def run_bayesgmm(data: dict, priors: list[str], n_init, repeats: int = 1) -> tuple:
    """bayesgmm's tables and times: :func:`fit_table` for maximum likelihood (the fastest
    of ``repeats`` calls), one ``GaussianMixture`` per cell with the prior."""
    tables, times, fits = {}, {}, {}
    for name, X in data.items():
        for p in priors:
            if p == "none" and n_init == "table":
                seconds = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    result = fit_table(X, KS, random_state=0)
                    seconds.append(time.perf_counter() - t0)
                times[(name, p)] = min(seconds)
                tables[(name, p)] = result.bic.reindex(columns=list(MCLUST_MODELS))
                fits[name] = result
            else:
                t0 = time.perf_counter()
                prior = None if p == "none" else "default"
                table = pd.DataFrame(index=list(KS), columns=list(MCLUST_MODELS), dtype=float)
                for model in MCLUST_MODELS:
                    for k in KS:
                        table.loc[k, model] = bayesgmm_bic(X, k, model, prior, n_init)
                times[(name, p)] = time.perf_counter() - t0
                tables[(name, p)] = table
            print(f"bayesgmm {name} {p}: {times[(name, p)]:.2f} s", flush=True)
    return tables, times, fits


def summarise(ours: pd.DataFrame, theirs: pd.DataFrame) -> dict:
    a, b = ours.to_numpy(float), theirs.to_numpy(float)
    both = np.isfinite(a) & np.isfinite(b)
    diff = (a - b)[both]
    worst = np.unravel_index(np.nanargmin(np.where(both, a - b, np.inf)), a.shape)
    return {
        "cells": int(both.sum()),
        "at_least": int((diff >= -0.01).sum()),
        "better": int((diff > 0.01).sum()),
        "worse": int((diff < -0.01).sum()),
        "only_mclust": int((np.isfinite(b) & ~np.isfinite(a)).sum()),
        "only_bayesgmm": int((np.isfinite(a) & ~np.isfinite(b)).sum()),
        "median_gain": float(np.median(diff)) if diff.size else np.nan,
        "worst": (float((a - b)[worst]), ours.columns[worst[1]], int(ours.index[worst[0]])),
    }


def cell_table(ours: pd.DataFrame, theirs: pd.DataFrame) -> str:
    """Markdown: one row per model, ``bayesgmm - mclust`` BIC per K (mclust's in brackets)."""
    lines = ["| model | " + " | ".join(f"K={k}" for k in KS) + " |", "|---" * 10 + "|"]
    for model in MCLUST_MODELS:
        cells = []
        for k in KS:
            a, b = ours.loc[k, model], theirs.loc[k, model]
            if np.isfinite(a) and np.isfinite(b):
                cells.append(f"{a - b:+.2f} ({b:.1f})")
            else:
                cells.append(f"{a:.1f} / {b:.1f}".replace("nan", "NA"))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_cell(table: pd.DataFrame) -> tuple[str, int, float]:
    stacked = table.stack()
    k, model = stacked.idxmax()
    return str(model), int(k), float(stacked.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--n-init",
        default="table",
        help='maximum likelihood: "table" (fit_table, the default), or GaussianMixture per '
        'cell with n_init an int or "auto"',
    )
    parser.add_argument("--prior", action="store_true", help="also the priorControl() tables")
    parser.add_argument("--prior-n-init", default="1", help="n_init of the prior cells")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--repeats", type=int, default=2, help="maximum likelihood: best time of this many"
    )
    args = parser.parse_args()
    n_init = args.n_init if args.n_init in ("auto", "table") else int(args.n_init)
    prior_n_init = args.prior_n_init if args.prior_n_init == "auto" else int(args.prior_n_init)
    why = r_available()
    if why is not None:
        print(f"bench_mclust: {why}; nothing to compare against, exiting")
        return
    priors = ["none", "default"] if args.prior else ["none"]
    warnings.simplefilter("ignore")
    warm_up()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        version, theirs, r_times, data, groups, cuts = run_mclust(Path(tmp), priors, args.repeats)
    ours, times, fits = run_bayesgmm(data, ["none"], n_init, args.repeats)
    if args.prior:
        prior_tables, prior_times, _ = run_bayesgmm(data, ["default"], prior_n_init)
        ours.update(prior_tables)
        times.update(prior_times)
    load_after = os.getloadavg()

    rows, details, prior_rows = [], [], []
    for key in theirs:
        s = summarise(ours[key], theirs[key])
        worst = f"{s['worst'][0]:+.2f} ({s['worst'][1]}, K={s['worst'][2]})"
        shape = f"{len(data[key[0]])} x {data[key[0]].shape[1]}"
        if key[1] == "none":
            rows.append(
                f"| {key[0]} ({shape}) | {s['cells']} | {s['at_least']} | {s['better']} | "
                f"{s['worse']} | {s['only_mclust']} / {s['only_bayesgmm']} | "
                f"{s['median_gain']:+.2f} | {worst} | {r_times[key]:.2f} | {times[key]:.2f} | "
                f"{times[key] / max(r_times[key], 1e-9):.2f}x |"
            )
        else:
            prior_rows.append(
                f"| {key[0]} | {s['cells']} | {s['at_least']} | "
                f"{s['only_mclust']} / {s['only_bayesgmm']} | {s['median_gain']:+.2f} | "
                f"{r_times[key]:.2f} | {times[key]:.1f} |"
            )
        details.append(
            f"<details><summary>{key[0]}, {'maximum likelihood' if key[1] == 'none' else 'prior'}"
            f": bayesgmm - mclust (mclust's BIC)</summary>\n\n"
            f"{cell_table(ours[key], theirs[key])}\n\n</details>"
        )
    ml = [k for k in theirs if k[1] == "none"]
    total_r, total_ours = sum(r_times[k] for k in ml), sum(times[k] for k in ml)
    cells = [summarise(ours[k], theirs[k]) for k in ml]
    picks = []
    for name in data:
        model, k, value = best_cell(theirs[(name, "none")])
        best = fits[name].best() if name in fits else None
        ours_text = (
            f"{best.model} K={best.n_components} ({best.bic:.1f})" if best is not None else "-"
        )
        picks.append(f"| {name} | {model} K={k} ({value:.1f}) | {ours_text} |")
    same_cuts = {
        name: sum(
            adjusted_rand_score(cuts[name][:, k - 1], ours_cut) == 1.0
            for k, ours_cut in zip(KS, hc_partitions(X, max(KS)), strict=True)
        )
        for name, X in data.items()
    }
    cuts_note = (
        "\n\nThe hierarchical agglomeration (`bayesgmm.em.agglomeration.hc_partitions`, mclust's "
        '`hc(X, "VVV", use = "SVD")`) gives the same partition as mclust\'s `hclass` at '
        + ", ".join(f"{v} of 9 Ks on {name}" for name, v in same_cuts.items())
        + ". From the same start, bayesgmm's EM follows mclust's to the same optimum (up to "
        "the iterative M-steps of VEI, VEE, EVE, VVE, VEV, which are not mclust's); its second "
        "start, the best model's fit at the same K, and the restarts that keep nested models "
        'in order, find a higher optimum in the cells counted "better". On geyser, whose '
        "durations are often recorded as exactly 2 or 4 minutes, some higher cells hold a "
        "component on rows with one duration (a small variance, above mclust's singularity "
        "test, which both sides apply)."
    )
    crabs_note = ""
    if "crabs" in data:
        t0 = time.perf_counter()
        comparison = compare(data["crabs"], range(1, 10), "all", method="map", random_state=0)
        seconds = time.perf_counter() - t0
        print(comparison)
        chosen = comparison.best
        ari = adjusted_rand_score(groups, chosen.em.predict(data["crabs"]))
        theirs_model, theirs_k, _ = best_cell(theirs[("crabs", "none")])
        crabs_note = (
            f'\n\n`compare(crabs, range(1, 10), "all", method="map", random_state=0)` '
            f"(the same table through `compare`, {seconds:.2f} s with its criteria and "
            f"fitted estimators) recommends {chosen.name} (mclust: {theirs_model}, "
            f"K={theirs_k}); its classification against the four groups (species x sex) has "
            f"adjusted Rand index {ari:.3f}. The figure is "
            "`bayesgmm.reporting.plots.plot_bic_models(comparison)` (`bic_by_model.png` of "
            "`bayesgmm compare`): mclust's layout in the comparison table's sign, lower is "
            "better, so its best cell is the lowest point where mclust's is the highest."
        )
        if not args.no_write:
            FIGURE.parent.mkdir(parents=True, exist_ok=True)
            figure = plot_bic_models(comparison, title="crabs (MASS): BIC by model, bayesgmm")
            figure.savefig(FIGURE, dpi=110)
    method = (
        "`fit_table(X, range(1, 10), random_state=0)` (mclust's hierarchical start, then "
        "the best model at each K as a start for the others, compiled EM)"
        if n_init == "table"
        else f"`GaussianMixture(K, covariance_type=model, n_init={n_init}, random_state=0)`"
    )
    text = (
        f"{HEADING}: 14 models x K = 1..9 (bench_mclust.py)\n\n"
        f"`python benchmarks/bench_mclust.py --n-init {args.n_init}"
        f"{' --prior' if args.prior else ''}`; mclust {version} (`mclustBIC(X, G = 1:9)`, "
        f"its hierarchical start), bayesgmm {method}, in one run on a 2-core machine shared "
        f"with other jobs (load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
        "after; compiled kernels loaded before timing). BIC as mclust's, "
        '`2 log L - p log n` (higher is better); "at least": bayesgmm\'s '
        "BIC >= mclust's - 0.01; a cell one side leaves empty (NA: a singular fit) is "
        "counted apart. Times: the whole 14 x 9 table, the fastest of "
        f"{args.repeats} calls on each side (R's `system.time` of `mclustBIC`, Python's wall "
        "time of the call; the hierarchical tree included on both sides).\n\n"
        "| data | cells (both) | at least mclust | better | worse | filled only by "
        "mclust / bayesgmm | median gain | worst cell | mclust s | bayesgmm s | ratio |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nIn all: {sum(c['at_least'] for c in cells)} of {sum(c['cells'] for c in cells)} "
        f"cells at mclust's BIC or better; {total_r:.2f} s for mclust, {total_ours:.2f} s for "
        f"bayesgmm ({total_ours / max(total_r, 1e-9):.2f}x).\n\n"
        "Best cell by BIC:\n\n| data | mclust | bayesgmm |\n|---|---|---|\n"
        + "\n".join(picks)
        + cuts_note
        + crabs_note
        + (
            "\n\n![BIC by model for crabs, mclust's layout, lower is better]"
            f"(figures/{FIGURE.name})"
            if crabs_note
            else ""
        )
    )
    if prior_rows:
        text += (
            f"\n\nWith the default prior (bayesgmm `GaussianMixture(K, covariance_type=model, "
            f'prior="default", n_init={args.prior_n_init})` per cell against mclust\'s '
            "`priorControl()`):\n\n"
            "| data | cells (both) | at least mclust | filled only by mclust / bayesgmm | "
            "median gain | mclust s | bayesgmm s |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(prior_rows)
            + "\n\nmclust has no prior for VEE, EVE, VVE and EVV (its NA cells; bayesgmm fills "
            "them with `full`'s prior restricted to the model). The two sides maximise different "
            "posteriors (bayesgmm's exact modes of its Normal-Inverse-Wishart prior, mclust's "
            "per-model formulas, e.g. a different denominator for VII and EEE), so a lower BIC "
            "here need not be a poorer optimum of either; these cells are not fitted by "
            "`fit_table`, which is maximum likelihood only."
        )
    text += "\n\n" + "\n\n".join(details) + "\n"
    print(text)
    if not args.no_write:
        _write_section(REPORT, HEADING, text)


if __name__ == "__main__":
    main()
