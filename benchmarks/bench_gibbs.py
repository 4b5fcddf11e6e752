"""ESS per second: ``method="gibbs"`` (conjugate Gibbs) against ``method="nuts"``, one process.

Both fit the same model (full covariances, the default data-scaled prior) with
:class:`~bayesgmm.BayesianGaussianMixture`, same seed, chains and draws per chain
(``max_draws=draws``: no extension), each method's default ``tune`` (Gibbs: discarded
sweeps) unless ``--tune`` sets both. Each method first fits the data set once with few draws
(compilation: numba's kernel for Gibbs, the structure's compiled model for NUTS), then the
timed fit: whole ``fit`` calls, so the EM start, the post-processing (relabelling, pointwise
log-likelihood) and the fit's own diagnostics count for both. Reported: wall time, the load
average (1 min) before and after the timed fit, sampling time (Gibbs: the kernel alone), the
smallest bulk and tail ESS over the identified (relabelled) weights, means and covariance
entries (:meth:`~bayesgmm.BayesianGaussianMixture.diagnose`), max R-hat, min bulk ESS per
second of wall time and the verdict. ``--cap S`` runs each fit in a child process stopped
after S seconds (the row then says so). Writes the section "Gibbs vs NUTS: ESS per second"
of ``reports/benchmarks.md`` in place.

Usage: ``.venv/bin/python benchmarks/bench_gibbs.py [--draws N] [--chains C] [--tune T]
[--sets faithful,iris,...] [--methods gibbs,nuts] [--cap S] [--append]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn import datasets as sk_datasets

from bayesgmm import BayesianGaussianMixture, UnreliablePosteriorWarning, datasets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import REPORT

HEADING = "## Gibbs vs NUTS: ESS per second"
ROWS = Path(__file__).resolve().parents[1] / "reports" / "data" / "bench_gibbs.json"


def _standardised(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(axis=0)) / X.std(axis=0)


def data_sets() -> dict[str, tuple[np.ndarray, int]]:
    """Key -> (X, K): galaxies (d=1, K=3), Old Faithful (d=2), iris (d=4, K=2 and K=3), wine
    (d=13), breast cancer (d=30); wine and breast cancer standardised."""
    return {
        "galaxies": (datasets.load_galaxies(), 3),
        "faithful": (datasets.load_faithful(), 2),
        "iris": (sk_datasets.load_iris().data, 2),
        "iris3": (sk_datasets.load_iris().data, 3),
        "wine": (_standardised(sk_datasets.load_wine().data), 3),
        "cancer": (_standardised(sk_datasets.load_breast_cancer().data), 2),
    }


def _fit(X, k, method, draws, seed, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliablePosteriorWarning)
        began, cpu = time.perf_counter(), time.process_time()
        fit = BayesianGaussianMixture(
            k, method=method, draws=draws, max_draws=draws, random_state=seed, **settings
        ).fit(X)
        return fit, time.perf_counter() - began, time.process_time() - cpu


def _settings(name: str, method: str, draws: int, tune: int | None, chains: int) -> dict:
    X, k = data_sets()[name]
    return {
        "data": f"{name} (n={X.shape[0]}, d={X.shape[1]}, K={k})",
        "method": method,
        "draws": draws,
        "chains": chains,
        "tune_setting": tune if tune is not None else "default",
    }


def run(name: str, method: str, draws: int, tune: int | None = None, chains: int = 4) -> dict:
    """One warm-up fit (compilation: 1 chain, 20 draws after 20 tuning steps) and one timed
    fit (``tune=None``: the method's default); the row of the table."""
    X, k = data_sets()[name]
    _fit(X, k, method, 20, seed=0, tune=20, chains=1)
    load = os.getloadavg()[0]
    tuning = {} if tune is None else {"tune": tune}
    fit, seconds, cpu = _fit(X, k, method, draws, seed=1, chains=chains, **tuning)
    load_after = os.getloadavg()[0]
    diag = fit.diagnose()
    stats = fit.idata_["sample_stats"].attrs if "sample_stats" in fit.idata_.children else {}
    sampling = stats.get("sampling_time", fit.idata_.posterior.attrs.get("sampling_time"))
    return {
        **_settings(name, method, draws, tune, chains),
        "method": method if method != "auto" else f"auto ({fit.method_})",
        "tune": fit.tune,
        "verdict": diag.verdict,
        "wall_s": seconds,
        "cpu_s": cpu,
        "load": load,
        "load_after": load_after,
        "sampling_s": float(sampling) if sampling is not None else float("nan"),
        "ess_bulk": diag.min_ess_bulk,
        "ess_tail": diag.min_ess_tail,
        "rhat": diag.max_rhat,
        "ess_per_s": diag.min_ess_bulk / seconds,
    }


def _child(results, *args) -> None:
    results.put(run(*args))


def capped_run(
    name: str, method: str, draws: int, tune: int | None, chains: int, cap: float
) -> dict:
    """:func:`run` in a child process, stopped after ``cap`` seconds (warm-up included):
    then a row that says it did not finish, with the load before and at the stop."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    load = os.getloadavg()[0]
    child = context.Process(target=_child, args=(results, name, method, draws, tune, chains))
    began = time.perf_counter()
    child.start()
    try:
        return results.get(timeout=cap)
    except queue.Empty:
        return {
            **_settings(name, method, draws, tune, chains),
            "tune": tune if tune is not None else "default",
            "unfinished_s": time.perf_counter() - began,
            "load": load,
            "load_after": os.getloadavg()[0],
            "verdict": f"stopped after {time.perf_counter() - began:.0f} s (warm-up included)",
        }
    finally:
        if child.is_alive():
            child.terminate()
        child.join()


def _key(row: dict) -> tuple[str, int, int, object]:
    """Rows compared with each other: the same data, chains, draws and tuning setting."""
    return row["data"], row.get("chains", 4), row.get("draws", 1000), row.get("tune_setting")


def _number(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(rows: list[dict]) -> str:
    lines = [
        "| data | chains x draws (tune) | method | wall (s) | CPU (s) | load before / after "
        "| sampling (s) | min bulk ESS | min tail ESS | max R-hat | bulk ESS/s | gibbs/nuts |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    nuts = {_key(r): r["ess_per_s"] for r in rows if r["method"] == "nuts" and "ess_per_s" in r}
    for r in rows:
        key = _key(r)
        load = f"{_number(r.get('load'))} / {_number(r.get('load_after'))}"
        setting = f"{key[1]} x {key[2]} ({r.get('tune', key[3])})"
        if "unfinished_s" in r:
            lines.append(
                f"| {r['data']} | {setting} | {r['method']} | > {r['unfinished_s']:.0f} "
                f"(stopped) | - | {load} | - | - | - | - | - | |"
            )
            continue
        gibbs = r["method"] == "gibbs" or "(gibbs)" in r["method"]
        ratio = r["ess_per_s"] / nuts[key] if key in nuts else float("nan")
        shown = _ratio(ratio) if gibbs and np.isfinite(ratio) else ""
        sampling = f"{r['sampling_s']:.1f}" if np.isfinite(r["sampling_s"]) else "-"
        lines.append(
            f"| {r['data']} | {setting} | {r['method']} | {r['wall_s']:.1f} | "
            f"{_number(r.get('cpu_s'))} | {load} | {sampling} | "
            f"{r['ess_bulk']:.0f} | {r['ess_tail']:.0f} | {r['rhat']:.3f} | "
            f"{r['ess_per_s']:.2f} | {shown} |"
        )
    return "\n".join(lines)


def _ratio(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.2g}x"


def _verdicts(rows: list[dict]) -> str:
    """Each row's verdict, one bullet per row."""
    return "\n".join(
        f"- {r['data']}, {r['method']}, {_key(r)[1]} x {_key(r)[2]}: "
        + " ".join(str(r.get("verdict", "-")).split())
        for r in rows
    )


NOTE = (
    "Reading the table (run of 2026-12-06 10:28-10:58 UTC, load 2-5). d=2 and d=4 (4 x 1000, "
    "both samplers pass every check): Gibbs gives 1.1x (Old Faithful) and 4.2x (iris K=2) "
    "NUTS's min bulk ESS per second of a whole fit; both fits take 1-4 s, most of it the "
    "shared EM start and post-processing. Wine d=13, K=3 (2 x 500 after 500): Gibbs passes "
    "(R-hat 1.008, bulk ESS 637) in 2.2 s; NUTS's two chains sit in different modes (R-hat "
    "1.83, bulk ESS 3) after 56 s, so the ratio there measures a failure, not speed. Breast "
    "cancer d=30, K=2 (990 parameters): NUTS is measured on a short run, 2 chains x 200 "
    "draws after 200 tuning steps, beside Gibbs with the same settings: min bulk ESS per "
    "second over the identified parameters 0.022 for NUTS (357 s; bulk ESS 8, R-hat 1.20) "
    "against 2.6 for Gibbs (5.6 s; ESS 14, R-hat 1.10), about 120x; neither short run passes "
    "its checks, so both ESS are rough (a few effective draws), and they describe different "
    "states: NUTS's chains left component 1 empty in most draws (the issue's 43-minute "
    "fit ended the same way), Gibbs's kept both occupied. A longer NUTS run, 2 x 500 "
    "after 300, was stopped at its 900 s cap (warm-up fit included) at load 2-5; Gibbs with "
    "those settings: 5.4 s, bulk ESS 54, 10 ESS/s. Earlier stops: 4 x (250 + 250) NUTS draws "
    'did not finish in 25 min at load 8-10. Breast cancer with `method="auto"` (4 x 1000, '
    "Gibbs): 28.2 s wall at load 4.8 (target < 60 s), verdict: the chains disagree (R-hat "
    "1.022, bulk ESS 215): more draws. That fit took 39.4 s at load 1.5 at the last stop, "
    "of which 21 s was the drifting-chains check run twice; it is now computed once per fit "
    "and its R-hat is vectorised (posterior/rhat.py: arviz-stats' numbers, all columns at "
    "once), which also computes diagnose()'s max R-hat. The same fit before and after "
    "that change, alternated on this machine (11:00 UTC, load 2.3-3.7, a warm-up fit first): "
    "43.6 and 34.9 s wall (34.7 s CPU) before, 20.3 and 20.7 s (20.2 s CPU) after, the "
    "same verdict."
)


def _section(rows: list[dict], commands: list[str]) -> str:
    """The report section: the commands, the settings, the table and the note."""
    command = "`, then `".join(commands)
    return (
        f"{HEADING}\n\n"
        f"`{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs shared "
        "with other jobs: the load average (1 min) before and after each timed fit is in the "
        "table). Chains x draws per chain after the tuning steps (Gibbs: discarded sweeps) in "
        "brackets, no extension; warm fits: compilation excluded (a 1-chain fit of the same "
        "model first), EM start, post-processing and the fit's diagnostics included. ESS: the "
        "smallest over the identified (relabelled) weights, means and covariance entries. "
        "bulk ESS/s: that smallest bulk ESS per second of the fit's wall time. gibbs/nuts: "
        "ratio of bulk ESS per second between the two rows of the same data and settings, "
        'measured one after the other; auto: `method="auto"`, the method it ran in '
        "brackets.\n\n"
        f"{_table(rows)}\n\nVerdicts (`diagnose()`):\n\n{_verdicts(rows)}\n\n{NOTE}\n"
    )


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace the section ``heading`` of the report where it stands (append it if absent),
    leaving the other sections as they are; atomically."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    start = old.find(f"\n{heading}\n")
    if start < 0:
        new = old.rstrip() + "\n\n" + text
    else:
        end = old.find("\n## ", start + 1)
        new = old[: start + 1] + text.rstrip() + "\n" + (old[end:] if end >= 0 else "")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--tune", type=int, default=None, help="default: each method's")
    parser.add_argument("--sets", default="faithful,iris,wine")
    parser.add_argument("--methods", default="gibbs,nuts")
    parser.add_argument(
        "--cap", type=float, default=None, help="seconds per fit, each in a child process"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--append", action="store_true", help="add the rows to those of earlier runs"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the section from the saved rows"
    )
    args = parser.parse_args()
    rows, commands = [], []
    if (args.append or args.report_only) and ROWS.exists():
        saved = json.loads(ROWS.read_text())
        rows, commands = saved["rows"], saved["commands"]
    if args.report_only:
        write_section(REPORT, HEADING, _section(rows, commands))
        return
    for name in args.sets.split(","):
        for method in args.methods.split(","):
            if args.cap is None:
                row = run(name, method, args.draws, args.tune, args.chains)
            else:
                row = capped_run(name, method, args.draws, args.tune, args.chains, args.cap)
            print(row, flush=True)
            rows.append(row)
    print(_table(rows))
    if args.no_write:
        return
    commands.append(
        f"benchmarks/bench_gibbs.py --draws {args.draws} --chains {args.chains} "
        f"--sets {args.sets}"
        + (f" --tune {args.tune}" if args.tune is not None else "")
        + (f" --methods {args.methods}" if args.methods != "gibbs,nuts" else "")
        + (f" --cap {args.cap:g}" if args.cap is not None else "")
        + (" --append" if args.append else "")
    )
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    ROWS.write_text(json.dumps({"rows": rows, "commands": commands}, indent=1) + "\n")
    write_section(REPORT, HEADING, _section(rows, commands))


if __name__ == "__main__":
    main()
