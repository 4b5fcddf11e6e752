"""The hierarchical covariance-scale prior against the default prior: fits passing, groups found.

For each case (data set, K; full covariances), prior (``default``: Fraley & Raftery's
data-scaled conjugate prior; ``hierarchical``: Malsiner-Walli, Frühwirth-Schnatter & Grün
2016, the Inverse-Wishart scale learned, :class:`bayesgmm.HierarchicalPrior`) and seed, one
``BayesianGaussianMixture(K, prior=...)`` fit with default settings (NUTS, 4 chains x 1000
draws, extended up to 4x), and records

* whether the strict checks pass (``diagnose().ok``) and the verdict's cause;
* the adjusted Rand index against the known groups of the posterior's labels
  (``predict``) and of the MAP's (where the data have known groups);
* the smallest posterior-mean component weight.

Then the external references under both priors: galaxies K=3 and posteriordb's
``low_dim_gauss_mix`` K=2 (1-D): posterior means and sds of the weights, means and sds of
the components, and the shift of each posterior mean between the priors in units of the
default prior's posterior sd.

Data: iris (scikit-learn; species), MASS crabs (FL RW CL CW BD, through ``Rscript``;
groups species x sex), Palmer penguins (bill length and depth, flipper length, body mass,
complete rows, through ``Rscript``'s palmerpenguins; species), Old Faithful (no known
groups). Writes the section "Hierarchical covariance-scale prior" of
``reports/benchmarks.md``.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_hierarchical_prior.py --seeds 0,1,2 \
        --rows /tmp/hier_rows.jsonl   # rows are appended as they finish; a rerun skips them
"""

from __future__ import annotations

import argparse
import json
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

from bayesgmm import BayesianGaussianMixture, UnreliablePosteriorWarning, datasets
from bayesgmm.reporting.report import markdown_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import REPORT, _write_section

HEADING = "## Hierarchical covariance-scale prior (bench_hierarchical_prior.py)"
PRIORS = ("default", "hierarchical")
CASES = ("iris:3", "crabs:4", "penguins:3", "faithful:3")
REFERENCES = ("galaxies:3", "low_dim_gauss_mix:2")

READING = (
    "The rule for the default (issue 25): the hierarchical prior becomes the Bayesian "
    "estimator's default only if it passes more fits and recovers more groups without moving "
    "an external reference. Measured (seeds 0-2, 2-core machine shared with other jobs, so "
    "the times are indicative): it passes 8 of 12 fits against 7 of 12 and recovers the iris "
    "species (ARI 0.90-0.92 against 0.56), ties on crabs and penguins, passes none of the Old "
    "Faithful K=3 fits (default: 1 of 3), leaves posteriordb's low_dim_gauss_mix in place but "
    "moves the galaxies K=3 reference (the first component's sd by about 1.5 posterior sds), "
    "and runs without a hand-written kernel (1.5-3x the time per fit here). Decision: an "
    "option (`prior='hierarchical'`), not the default. The first crabs default fit (seed 0) "
    "ran before the ECM start fix, which does not touch the default prior's path. Command: "
    "`PYTHONPATH=. .venv/bin/python benchmarks/bench_hierarchical_prior.py --seeds 0,1,2 "
    "--rows /tmp/hier/rows.jsonl`."
)

R_SCRIPT = r"""
suppressMessages({library(MASS); library(palmerpenguins)})
out <- commandArgs(trailingOnly = TRUE)[1]
crabs$group <- paste(crabs$sp, crabs$sex)
write.csv(crabs[, c("FL", "RW", "CL", "CW", "BD", "group")], file.path(out, "crabs.csv"),
          row.names = FALSE)
p <- as.data.frame(penguins)
p <- p[complete.cases(p[, c("bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                            "body_mass_g")]), ]
write.csv(p[, c("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
                "species")], file.path(out, "penguins.csv"), row.names = FALSE)
"""


def _r_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MASS crabs and Palmer penguins through Rscript (empty when R or a package is missing)."""
    if shutil.which("Rscript") is None:
        return {}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "data.R"
        script.write_text(R_SCRIPT)
        done = subprocess.run(
            ["Rscript", str(script), folder], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print("R data not available:", done.stderr.strip()[-300:], flush=True)
            return {}
        out = {}
        for name in ("crabs", "penguins"):
            frame = pd.read_csv(Path(folder) / f"{name}.csv")
            labels = frame.iloc[:, -1].astype(str).to_numpy()
            out[name] = (frame.iloc[:, :-1].to_numpy(dtype=np.float64), labels)
        return out


def load_data() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Data set name -> (X, known groups or None)."""
    from sklearn import datasets as sk

    iris = sk.load_iris()
    data = {
        "iris": (iris.data, iris.target),
        "faithful": (datasets.load_faithful(), None),
        "galaxies": (datasets.load_galaxies(), None),
        "low_dim_gauss_mix": (datasets.load_low_dim_gauss_mix(), None),
    }
    data.update(_r_data())
    return data


def _cause(verdict: str) -> str:
    """The first clause of a verdict, short enough for a table cell."""
    text = verdict.split(":", 1)[-1].strip()
    return text[:90] + ("..." if len(text) > 90 else "")


def run_fit(X, labels, k: int, prior: str, seed: int) -> tuple[dict, BayesianGaussianMixture]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliablePosteriorWarning)
        fit = BayesianGaussianMixture(k, prior=prior, random_state=seed, progressbar=False).fit(X)
    wall = time.perf_counter() - start
    diag = fit.diagnose()
    weights = fit.idata_.posterior["weights"].values.reshape(-1, k).mean(axis=0)
    row = {
        "prior": prior,
        "seed": seed,
        "ok": bool(diag.ok),
        "max_rhat": round(float(diag.max_rhat), 3),
        "min_ess_bulk": round(float(diag.min_ess_bulk)),
        "draws_per_chain": int(fit.n_draws_),
        "min_weight": round(float(weights.min()), 3),
        "cause": "" if diag.ok else _cause(diag.verdict),
        "wall_s": round(wall, 1),
    }
    if labels is not None:
        row["ari"] = round(float(adjusted_rand_score(labels, fit.predict(X))), 3)
        map_labels = fit.em_.predict(X)
        row["ari_map"] = round(float(adjusted_rand_score(labels, map_labels)), 3)
    return row, fit


def reference_summary(fit: BayesianGaussianMixture) -> pd.DataFrame:
    """Posterior mean and sd of the weights, means and sds of a 1-D fit (ordered means)."""
    post = fit.idata_.posterior
    k = post.sizes["component"]
    values = {
        "weight": post["weights"].values.reshape(-1, k),
        "mean": post["means"].values.reshape(-1, k),
        "sd": np.sqrt(post["covariances"].values.reshape(-1, k)),
    }
    rows = []
    for name, draws in values.items():
        for j in range(k):
            rows.append(
                {"quantity": f"{name}[{j}]", "mean": draws[:, j].mean(), "sd": draws[:, j].std()}
            )
    return pd.DataFrame(rows).set_index("quantity")


def _done(rows_path: Path | None) -> list[dict]:
    if rows_path is None or not rows_path.exists():
        return []
    return [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]


def _append(rows_path: Path | None, row: dict) -> None:
    print(json.dumps(row), flush=True)
    if rows_path is not None:
        with rows_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--references", nargs="*", default=list(REFERENCES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--priors", default=",".join(PRIORS))
    parser.add_argument("--rows", type=Path, help="JSON lines of finished fits (resumable)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    priors = args.priors.split(",")
    data = load_data()
    rows = _done(args.rows)
    seen = {(r["kind"], r["data"], r["K"], r["prior"], r.get("seed")) for r in rows}
    missing = []
    for case in args.cases:
        name, k = case.split(":")
        if name not in data:
            missing.append(name)
            continue
        X, labels = data[name]
        for seed in seeds:
            for prior in priors:
                if ("fit", name, int(k), prior, seed) in seen:
                    continue
                row, _ = run_fit(X, labels, int(k), prior, seed)
                row = {"kind": "fit", "data": name, "K": int(k), **row}
                rows.append(row)
                _append(args.rows, row)
    for case in args.references:
        name, k = case.split(":")
        X, _ = data[name]
        for prior in priors:
            if ("reference", name, int(k), prior, 0) in seen:
                continue
            row, fit = run_fit(X, None, int(k), prior, 0)
            summary = reference_summary(fit)
            row = {
                "kind": "reference",
                "data": name,
                "K": int(k),
                **row,
                "summary": summary.reset_index().to_dict(orient="records"),
            }
            rows.append(row)
            _append(args.rows, row)
    text = render(rows, missing)
    print(text)
    if not args.no_write:
        _write_section(REPORT, HEADING, text)


def render(rows: list[dict], missing: list[str]) -> str:
    fits = pd.DataFrame([r for r in rows if r["kind"] == "fit"])
    lines = [HEADING, ""]
    lines.append(
        "`BayesianGaussianMixture(K, prior=...)` with default settings (NUTS, 4 chains x 1000 "
        "draws, extended up to 4x), full covariances. `hierarchical`: the Inverse-Wishart scale "
        "learned (`Psi ~ Wishart(d, G0^-1)`, `G0 = 100 g0/c0 diag(1/R^2)`, `nu0 = d + 4`; "
        "Malsiner-Walli, Frühwirth-Schnatter & Grün 2016). ARI: adjusted Rand index of the "
        "posterior labels (`predict`) and of the MAP-EM labels against the known groups "
        "(iris: species; crabs: species x sex; penguins: species; Old Faithful: none)."
    )
    lines.append("")
    if not fits.empty:
        summary = (
            fits.groupby(["data", "K", "prior"], sort=False)
            .agg(
                fits=("ok", "size"),
                passing=("ok", "sum"),
                ari_mean=("ari", "mean") if "ari" in fits else ("ok", "size"),
                ari_map_mean=("ari_map", "mean") if "ari_map" in fits else ("ok", "size"),
                min_weight=("min_weight", "mean"),
                wall_s=("wall_s", "mean"),
            )
            .reset_index()
        )
        summary["ari_mean"] = summary["ari_mean"].round(3)
        summary["ari_map_mean"] = summary["ari_map_mean"].round(3)
        lines.append("Per case and prior (means over seeds):")
        lines.append("")
        lines.append(markdown_table(summary))
        lines.append("")
        lines.append("Every fit:")
        lines.append("")
        columns = [
            c
            for c in (
                "data",
                "K",
                "prior",
                "seed",
                "ok",
                "max_rhat",
                "min_ess_bulk",
                "draws_per_chain",
                "ari",
                "ari_map",
                "min_weight",
                "wall_s",
                "cause",
            )
            if c in fits
        ]
        lines.append(markdown_table(fits[columns]))
        lines.append("")
    if missing:
        lines.append(f"Not run (data not available here): {', '.join(missing)}.")
        lines.append("")
    refs = [r for r in rows if r["kind"] == "reference"]
    for name in dict.fromkeys(r["data"] for r in refs):
        by_prior = {r["prior"]: r for r in refs if r["data"] == name}
        if "default" not in by_prior:
            continue
        base = pd.DataFrame(by_prior["default"]["summary"]).set_index("quantity")
        table = base.rename(columns={"mean": "default_mean", "sd": "default_sd"})
        for prior, row in by_prior.items():
            if prior == "default":
                continue
            other = pd.DataFrame(row["summary"]).set_index("quantity")
            table[f"{prior}_mean"] = other["mean"]
            table[f"{prior}_sd"] = other["sd"]
            table[f"shift_in_sd_{prior}"] = (other["mean"] - base["mean"]) / base["sd"]
        checks = ", ".join(
            f"{p}: {'passes' if r['ok'] else 'fails (' + r['cause'] + ')'}"
            for p, r in by_prior.items()
        )
        lines.append(f"Reference {name} K={by_prior['default']['K']} (seed 0; {checks}):")
        lines.append("")
        lines.append(markdown_table(table.round(4).reset_index()))
        lines.append("")
    lines.append(READING)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
