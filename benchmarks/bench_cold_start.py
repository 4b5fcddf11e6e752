"""Cold start (issue 25): the README's set-up job, then a first fit or a first ``compare``, with
empty caches, this tree beside issue 25's base in the same run.

"A fresh virtual environment with empty caches" is reproduced without reinstalling: the
installed packages are those a fresh ``pip install -e ".[dev]"`` gives (the same venv), and
every cache the package's first runs fill starts empty: Numba's (``NUMBA_CACHE_DIR``),
PyTensor's (``PYTENSOR_FLAGS=base_compiledir=...``) and Matplotlib's (``MPLCONFIGDIR``), a new
folder of each per tree. Each tree is imported through ``PYTHONPATH`` (this checkout, and
:data:`BASE_COMMIT` unpacked by ``git archive``). For each tree:

1. **set-up**: the README's set-up command after its ``pip install``: ``bayesgmm demo --out
   <tmp>`` in a new process (``python -m bayesgmm.cli``);
2. the caches it left are copied twice, so the two next steps each start from set-up only:
   **first fit**: a new process runs ``BayesianGaussianMixture(2).fit(faithful)`` (defaults:
   NUTS, 4 chains x 1000 draws, the import included in the process's wall time); **first
   compare**: a new process runs ``bayesgmm compare penguins.csv --k 1-5 --scale --seed 0``
   (:file:`benchmarks/data/penguins.csv`: the 342 complete rows, 4 measurements).

Reported per step: wall time of the process, its CPU time (user + system, children included:
less sensitive to other jobs on the machine), the load average before it, and what it
compiled: the Numba functions newly written to the cache (``*.nbi`` index files) and the
PyTensor functions newly written to its compile directory (C modules, and its Numba
backend's functions). Writes the section "Cold start" of
``reports/benchmarks.md`` and the raw rows to ``reports/data/bench_cold_start.json``.

Usage: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_cold_start.py [--trees today,base]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import REPORT, _write_section

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Cold start: set-up, then a first fit or compare (bench_cold_start.py)"
ROWS = ROOT / "reports" / "data" / "bench_cold_start.json"
PENGUINS = ROOT / "benchmarks" / "data" / "penguins.csv"
#: Issue 25's base: the common ancestor of every commit made for it (the end of the stop
#: before, whose cold-start figures the issue quotes).
BASE_COMMIT = "5aa035ac9608f7574b284ed6df2ec2ec9f72cca5"
#: Issue 25's targets (seconds).
TARGETS = {"first fit": 20.0, "first compare": 90.0}

FIT_SCRIPT = """
import json, time, warnings
began = time.perf_counter()
import bayesgmm
from bayesgmm import BayesianGaussianMixture, datasets
X = datasets.load_faithful()
imported = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit = BayesianGaussianMixture(2, random_state=0).fit(X)
fitted = time.perf_counter()
try:
    verdict = str(fit.diagnose()).splitlines()[0]
except Exception as error:  # the base may lack a piece of the record
    verdict = repr(error)
print("RESULT " + json.dumps({"import_s": imported - began, "fit_s": fitted - imported,
      "package": bayesgmm.__file__, "method": getattr(fit, "method_", "?"), "verdict": verdict}))
"""


def base_tree(path: Path) -> Path:
    """:data:`BASE_COMMIT`'s files under ``path`` (``git archive``; reused when there)."""
    if not (path / "bayesgmm" / "__init__.py").exists():
        path.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BASE_COMMIT, "bayesgmm"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
    return path


def cache_env(tree: Path, caches: Path) -> dict[str, str]:
    """The environment of a process of ``tree`` with its caches under ``caches``."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(tree),
        NUMBA_CACHE_DIR=str(caches / "numba"),
        PYTENSOR_FLAGS=f"base_compiledir={caches / 'pytensor'}",
        MPLCONFIGDIR=str(caches / "matplotlib"),
    )
    return env


def _snapshot(caches: Path) -> tuple[set[str], set[str]]:
    numba = {p.name for p in (caches / "numba").rglob("*.nbi")}
    # C modules (a key.pkl each) and the numba backend's functions (``numba/*.nbi``)
    pytensor = {str(p.parent) for p in (caches / "pytensor").rglob("key.pkl")}
    pytensor |= {str(p) for p in (caches / "pytensor").rglob("*.nbi")}
    return numba, pytensor


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(step: str, command: list[str], env: dict, caches: Path, cwd: Path) -> dict:
    """Run ``command`` in a new process; its wall and CPU time, load and what it compiled."""
    numba_before, pytensor_before = _snapshot(caches)
    load = os.getloadavg()[0]
    cpu = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - began
    numba_after, pytensor_after = _snapshot(caches)
    result = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    new = sorted(numba_after - numba_before)
    return {
        "step": step,
        "command": " ".join(command),
        "rc": done.returncode,
        "wall_s": wall,
        "cpu_s": _children_cpu() - cpu,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "numba_compiled": len(new),
        "numba_functions": [name.split(".py")[0] for name in new],
        "pytensor_modules": len(pytensor_after - pytensor_before),
        "result": result,
        "stderr_tail": done.stderr[-3000:],
        "stdout_tail": done.stdout[-1500:],
    }


def run_tree(label: str, tree: Path, work: Path) -> list[dict]:
    """Set-up, then the first fit and the first compare from copies of set-up's caches."""
    began = time.time()
    python = sys.executable
    cli = [python, "-m", "bayesgmm.cli"]
    setup = work / "setup"
    setup.mkdir(parents=True)
    rows = [
        timed(
            "set-up (bayesgmm demo)",
            [*cli, "demo", "--out", str(work / "demo")],
            cache_env(tree, setup),
            setup,
            work,
        )
    ]
    steps = {
        "first fit": [python, "-c", FIT_SCRIPT],
        "first compare": [
            *cli,
            "compare",
            str(PENGUINS),
            "--k",
            "1-5",
            "--scale",
            "--seed",
            "0",
            "--out",
            str(work / "compare"),
        ],
    }
    for step, command in steps.items():
        caches = work / step.replace(" ", "_")
        shutil.copytree(setup, caches, symlinks=True)
        rows.append(timed(step, command, cache_env(tree, caches), caches, work))
    for row in rows:
        row["tree"] = label
        row["when"] = time.strftime("%Y-%m-%d %H:%M UTC run", time.gmtime(began))
        print(json.dumps({k: v for k, v in row.items() if "tail" not in k}), flush=True)
    return rows


def _label(tree: str) -> str:
    return "base" if tree.startswith("base") else "today"


def _count(value) -> str:
    return "?" if value is None else str(value)


def _table(rows: list[dict]) -> str:
    by = {(_label(r["tree"]), r["step"]): r for r in rows}
    lines = [
        "| step | base: wall (s) | base: CPU (s) | today: wall (s) | today: CPU (s) "
        "| base/today (wall) | target | Numba / PyTensor functions compiled (base; today) "
        "| load before (base, today) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for step in ("set-up (bayesgmm demo)", "first fit", "first compare"):
        base, today = by.get(("base", step)), by.get(("today", step))

        def cell(row, key):
            if row is None:
                return "-"
            flag = "" if row["rc"] == 0 else f" (exit {row['rc']})"
            return f"{row[key]:.1f}{flag}"

        ratio = f"{base['wall_s'] / today['wall_s']:.1f}x" if base and today else "-"
        target = f"< {TARGETS[step]:.0f} s" if step in TARGETS else "-"
        compiled = "; ".join(
            f"{r['numba_compiled']} / {_count(r['pytensor_modules'])}" if r else "-"
            for r in (base, today)
        )
        loads = ", ".join(f"{r['load_before']:.1f}" if r else "-" for r in (base, today))
        lines.append(
            f"| {step} | {cell(base, 'wall_s')} | {cell(base, 'cpu_s')} | "
            f"{cell(today, 'wall_s')} | {cell(today, 'cpu_s')} | {ratio} | {target} | "
            f"{compiled} | {loads} |"
        )
    return "\n".join(lines)


def _section(rows: list[dict], command: str, note: str) -> str:
    today = {r["step"]: r for r in rows if _label(r["tree"]) == "today"}
    fit = today.get("first fit", {}).get("result", {})
    details = []
    if fit:
        details.append(
            f"Today's first fit: import {fit['import_s']:.1f} s, fit {fit['fit_s']:.1f} s "
            f"(method {fit['method']}); its verdict: {fit['verdict']}"
        )
    for step, row in today.items():
        if row["numba_functions"] and not step.startswith("set-up"):
            details.append(
                f"Numba functions today's {step} compiled: {', '.join(row['numba_functions'])}"
            )
    whens = {_label(r["tree"]): r.get("when", "?") for r in rows}
    details.insert(
        0, f"Measured: base in the {whens.get('base', '-')}, today in the {whens.get('today', '-')}"
    )
    listed = "".join(f"- {line}\n" for line in details)
    return (
        f"{HEADING}\n\n"
        f"`{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs shared "
        "with other jobs: the load average (1 min) before each step is in the table). Base: "
        f"issue 25's base {BASE_COMMIT[:7]}; today: this tree. Same virtual environment "
        'for both (the packages a fresh `pip install -e ".[dev]"` installs), empty Numba, '
        "PyTensor and Matplotlib caches per tree; set-up = the README's set-up command "
        "after its install (`bayesgmm demo`), then the first fit and the first compare each "
        "in a new process from a copy of set-up's caches. First fit: "
        "`BayesianGaussianMixture(2).fit(faithful)` with its defaults, the process's wall "
        "time (imports included); first compare: `bayesgmm compare penguins.csv --k 1-5 "
        "--scale --seed 0` (342 x 4; full covariances, the default). CPU: user + system "
        "time of the process.\n\n"
        f"{_table(rows)}\n\n{listed}\n{note}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default="base,today", help="base, today or both")
    parser.add_argument("--base-tree", default=f"/tmp/bayesgmm-base-{BASE_COMMIT[:7]}")
    parser.add_argument(
        "--today-tree",
        default=str(ROOT),
        help="the tree of 'today' (default: this checkout; a copy keeps edits made during the "
        "run out of it)",
    )
    parser.add_argument("--note", default="", help="text after the table")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    command = "benchmarks/bench_cold_start.py" + (
        f" --trees {args.trees}" if args.trees != "base,today" else ""
    )
    if args.report_only:
        saved = json.loads(ROWS.read_text())
        _write_section(REPORT, HEADING, _section(saved["rows"], saved["command"], args.note))
        return
    rows = []
    trees = args.trees.split(",")
    if "base" not in trees and ROWS.exists():  # keep the base's rows of an earlier run
        saved = json.loads(ROWS.read_text())
        rows = [r for r in saved["rows"] if _label(r["tree"]) == "base"]
        base_command = saved.get("base_command", saved["command"])
        command += f" (base rows: {base_command}, {rows[0]['when'] if rows else '-'})"
    with tempfile.TemporaryDirectory(prefix="bayesgmm-cold-") as tmp:
        for label in trees:
            tree = Path(args.today_tree) if label == "today" else base_tree(Path(args.base_tree))
            rows += run_tree(f"{label} ({tree})", tree, Path(tmp) / label)
    print(_table(rows))
    if args.no_write:
        return
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    record = {"rows": rows, "command": command}
    if "base" in trees:
        record["base_command"] = command
    elif ROWS.exists():
        record["base_command"] = json.loads(ROWS.read_text()).get("base_command", command)
    ROWS.write_text(json.dumps(record, indent=1) + "\n")
    _write_section(REPORT, HEADING, _section(rows, command, args.note))


if __name__ == "__main__":
    main()
