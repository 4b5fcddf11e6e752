"""The fused EM kernels (:mod:`bayesgmm.em.kernels`) against scikit-learn, in the same run.

Same data, same start, the same fixed number of iterations (tol=0) for

* fused: one fused kernel pass + :func:`~bayesgmm.em.steps.m_step_from_statistics` per
  iteration (:func:`fused_em` below);
* scikit-learn: ``sklearn.mixture.GaussianMixture(max_iter, tol=0, *_init=...)``;
* bayesgmm: the current ``bayesgmm.GaussianMixture`` (same start).

Reports seconds per iteration, the ratio to scikit-learn, the largest parameter difference
from scikit-learn, peak memory, and the ratio to a "floor": a compiled loop making the same
number of ``exp`` and ``log`` calls (N K exp + N log, on the kernel's own arguments), with
the same threads. Also the first-call latency of the kernels in a fresh process (cold and
warm cache) and a figure of time per iteration against N, K and d.

Writes the section "EM: fused kernels vs scikit-learn" of ``reports/benchmarks.md`` and
``reports/figures/em_scaling.png``.

Usage: ``.venv/bin/python benchmarks/bench_em_kernels.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

# On a machine shared with other jobs, the OpenMP layer's barrier waits for a descheduled
# thread (3-12 ms per parallel call measured here); the workqueue layer does not.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

import numba
import numpy as np
import sklearn
import threadpoolctl
from matplotlib.figure import Figure
from numba import prange
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import bayesgmm
from bayesgmm import GaussianMixture, datasets
from bayesgmm.core.params import MixtureParams
from bayesgmm.em.fused import fused_log_resp, fused_statistics
from bayesgmm.em.kernels import BLOCK_SIZE
from bayesgmm.em.steps import m_step_from_statistics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import _write_section

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "benchmarks.md"
FIGURE = ROOT / "reports" / "figures" / "em_scaling.png"
N_ITER = 10


def fused_em(X, params: MixtureParams, n_iter: int, reg_covar: float = 1e-6):
    """``n_iter`` EM iterations: one fused pass + the shared M-step each."""
    lower_bound = -np.inf
    for _ in range(n_iter):
        stats = fused_statistics(
            X, params.weights, params.means, params.precisions_cholesky, params.covariance_type
        )
        lower_bound = stats.log_lik_sum / stats.weight_sum
        params = m_step_from_statistics(
            stats.sufficient_statistics(), params.covariance_type, reg_covar=reg_covar
        )
    return params, lower_bound


@numba.njit(parallel=True, nogil=True, fastmath=False)
def _floor(centred, block_size):
    """``sum_n log sum_k exp(c_nk)``: N K exp + N log calls, blocked like the kernels."""
    n = centred.shape[0]
    n_blocks = (n + block_size - 1) // block_size
    partial = np.zeros(n_blocks)
    for b in prange(n_blocks):
        s = 0.0
        for i in range(b * block_size, min(n, (b + 1) * block_size)):
            t = 0.0
            for k in range(centred.shape[1]):
                t += np.exp(centred[i, k])
            s += np.log(t)
        partial[b] = s
    return partial.sum()


def _start(X, k, covariance_type):
    """The start of ``benchmarks/bench_em.py``: random rows, the data's precision."""
    rng = np.random.default_rng(0)
    means = X[rng.choice(len(X), k, replace=False)]
    d = X.shape[1]
    cov = np.atleast_2d(np.cov(X, rowvar=False))
    prec = np.linalg.inv(cov)
    precisions = {
        "full": np.stack([prec] * k),
        "tied": prec,
        "diag": np.tile(np.diag(prec), (k, 1)),
        "spherical": np.full(k, d / np.trace(cov)),
    }[covariance_type]
    return dict(weights_init=np.full(k, 1 / k), means_init=means, precisions_init=precisions)


def _params(start, covariance_type) -> MixtureParams:
    prec = start["precisions_init"]
    covariances = np.linalg.inv(prec) if covariance_type in ("full", "tied") else 1.0 / prec
    return MixtureParams(start["weights_init"], start["means_init"], covariances, covariance_type)


def _best(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _sklearn_iteration(X, k, covariance_type, start, n_iter):
    """Seconds per iteration of scikit-learn's own EM loop body (E-step, M-step, bound),
    without its initialisation and final E-step."""
    model = SkGaussianMixture(k, covariance_type=covariance_type, max_iter=1, tol=0.0, **start)
    model.fit(X[: 10 * k])  # sets up the estimator; the loop below runs on all of X
    model._initialize(X, None)

    def loop():
        for _ in range(n_iter):
            log_prob_norm, log_resp = model._e_step(X)
            model._m_step(X, log_resp)
            model._compute_lower_bound(log_resp, log_prob_norm)

    return loop


def _peak_memory(fn) -> tuple[float, float]:
    """(tracemalloc peak, peak RSS increase) in MiB. Numba's own allocations are invisible
    to tracemalloc; the RSS high-water mark sees everything (reset through clear_refs)."""
    status = Path("/proc/self/status")
    rss_ok = status.exists()
    if rss_ok:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            rss_ok = False
    before = _status_kib("VmRSS") if rss_ok else 0
    tracemalloc.start()
    fn()
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rss = (_status_kib("VmHWM") - before) / 2**10 if rss_ok else float("nan")
    return traced, rss


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _max_rel_diff(params: MixtureParams, ref: SkGaussianMixture) -> float:
    """Largest ``max|ours - sklearn| / max|sklearn|`` over weights, means, covariances."""
    pairs = [
        (params.weights, ref.weights_),
        (params.means, ref.means_),
        (params.covariances, ref.covariances_),
    ]
    return max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in pairs)


def _centred_log_prob(X, params: MixtureParams) -> np.ndarray:
    """``a_nk - max_k a_nk``: the arguments the kernel's exp calls actually get."""
    log_resp, log_lik = fused_log_resp(
        X, params.weights, params.means, params.precisions_cholesky, params.covariance_type
    )
    log_prob = log_resp + log_lik[:, None]
    return log_prob - log_prob.max(axis=1, keepdims=True)


def run_case(n, d, k, covariance_type, repeats):
    X, _, _ = datasets.make_mixture(n, k, d, random_state=0)
    start = _start(X, k, covariance_type)
    params0 = _params(start, covariance_type)
    fused_em(X[:1000], params0, 1)  # compile or load from cache, outside the timing

    # Interleaved, best of ``repeats`` each: load from other jobs hits both alike.
    sk_loop = _sklearn_iteration(X, k, covariance_type, start, N_ITER)
    t_fused = t_sk = np.inf
    for _ in range(repeats):
        t_fused = min(t_fused, _best(lambda: fused_em(X, params0, N_ITER), 1) / N_ITER)
        t_sk = min(t_sk, _best(sk_loop, 1) / N_ITER)
    sk_kw = dict(covariance_type=covariance_type, max_iter=N_ITER, tol=0.0, **start)
    t0 = time.perf_counter()
    ref = SkGaussianMixture(k, **sk_kw).fit(X)
    t_sk_fit = (time.perf_counter() - t0) / N_ITER
    t0 = time.perf_counter()
    GaussianMixture(k, n_init=1, **sk_kw).fit(X)
    t_ours_fit = (time.perf_counter() - t0) / N_ITER
    params, lower_bound = fused_em(X, params0, N_ITER)
    diff = max(_max_rel_diff(params, ref), abs(lower_bound / ref.lower_bound_ - 1.0))

    centred = _centred_log_prob(X, params0)
    _floor(centred[:1000], BLOCK_SIZE)
    t_floor = _best(lambda: _floor(centred, BLOCK_SIZE), repeats)

    mem_fused = _peak_memory(lambda: fused_em(X, params0, 2))
    mem_sk = _peak_memory(lambda: SkGaussianMixture(k, **dict(sk_kw, max_iter=2)).fit(X))
    return dict(
        n=n,
        d=d,
        k=k,
        covariance_type=covariance_type,
        fused=t_fused,
        sklearn=t_sk,
        sklearn_fit=t_sk_fit,
        bayesgmm_fit=t_ours_fit,
        floor=t_floor,
        diff=diff,
        mem_fused=mem_fused,
        mem_sklearn=mem_sk,
    )


def _scaling_point(n, d, k, with_sklearn, repeats):
    X, _, _ = datasets.make_mixture(n, k, d, random_state=0)
    start = _start(X, k, "full")
    params0 = _params(start, "full")
    n_iter = 3
    t_fused = _best(lambda: fused_em(X, params0, n_iter), repeats) / n_iter
    t_sk = np.nan
    if with_sklearn:
        t_sk = _best(_sklearn_iteration(X, k, "full", start, n_iter), repeats) / n_iter
    return t_fused, t_sk


def scaling(quick: bool):
    """Time per iteration (full covariances) against N, K and d."""
    sizes = [10**e for e in range(3, 7 if quick else 8)]
    sk_max_n = 10**5 if quick else 10**6
    curves = {}
    rows = [_scaling_point(n, 2, 3, n <= sk_max_n, 3 if n <= 10**5 else 1) for n in sizes]
    curves["N"] = (sizes, rows, "N (rows), d=2, K=3")
    ks = [1, 2, 4, 8, 16]
    rows = [_scaling_point(10**5, 2, k, True, 2) for k in ks]
    curves["K"] = (ks, rows, "K (components), N=1e5, d=2")
    ds = [1, 2, 5, 10, 20]
    rows = [_scaling_point(10**5, d, 3, True, 2) for d in ds]
    curves["d"] = (ds, rows, "d (features), N=1e5, K=3")
    return curves, sk_max_n


def plot_scaling(curves, sk_max_n) -> None:
    fig = Figure(figsize=(13, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (name, (xs, rows, label)) in zip(axes, curves.items(), strict=True):
        fused = [r[0] for r in rows]
        sk = [r[1] for r in rows]
        ax.loglog(xs, fused, "o-", label="bayesgmm fused kernel")
        ax.loglog(xs, sk, "s--", label="scikit-learn")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds per EM iteration")
        ax.set_title(f"time per iteration vs {name}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"EM iteration time, full covariances, {numba.get_num_threads()} threads "
        f"(scikit-learn up to N={sk_max_n:.0e})"
    )
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=110)


_LATENCY_SNIPPET = """
import json, time
t0 = time.perf_counter()
import numpy as np
from bayesgmm.em.fused import fused_statistics
t1 = time.perf_counter()
X = np.random.default_rng(0).normal(size=(1000, 2))
fused_statistics(X, np.full(3, 1 / 3), X[:3].copy(), np.stack([np.eye(2)] * 3), "full")
t2 = time.perf_counter()
fused_statistics(X, np.full(3, 1 / 3), X[:3].copy(), np.stack([np.eye(2)] * 3), "full")
t3 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, first_call_s=t2 - t1, second_call_s=t3 - t2)))
"""


def first_call_latency() -> dict[str, dict[str, float]]:
    """A fresh process calling the full kernel once: cold (empty cache dir) and warm."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        for label in ("cold cache", "warm cache"):
            result = subprocess.run(
                [sys.executable, "-c", _LATENCY_SNIPPET],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            out[label] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def _blas_line() -> str:
    infos = threadpoolctl.threadpool_info()
    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
        f"{i.get('num_threads')} threads)"
        for i in infos
        if i.get("user_api") == "blas"
    ]
    coretype = os.environ.get("OPENBLAS_CORETYPE", "unset")
    return f"BLAS: {'; '.join(blas)}; OPENBLAS_CORETYPE={coretype}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--no-scaling", action="store_true", help="skip the figure")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    scale = 10 if args.quick else 1
    cases = [
        (1_000_000 // scale, 2, 3, "full"),
        (200_000 // scale, 10, 5, "full"),
        (1_000_000 // scale, 2, 3, "diag"),
        (1_000_000 // scale, 2, 3, "tied"),
        (1_000_000 // scale, 2, 3, "spherical"),
    ]
    results = []
    for n, d, k, ct in cases:
        r = run_case(n, d, k, ct, repeats=3)
        results.append(r)
        print(
            f"N={n:>9,} d={d:>2} K={k} {ct:9s} fused {r['fused'] * 1e3:8.2f} ms/it  "
            f"sklearn {r['sklearn'] * 1e3:8.1f} ms/it (x{r['sklearn'] / r['fused']:5.1f})  "
            f"bayesgmm {r['bayesgmm_fit'] * 1e3:8.1f}  floor x{r['fused'] / r['floor']:4.2f}  "
            f"diff {r['diff']:.1e}",
            flush=True,
        )
    latency = first_call_latency()
    print(json.dumps(latency, indent=1))
    if not args.no_scaling:
        curves, sk_max_n = scaling(args.quick)
        plot_scaling(curves, sk_max_n)
        print(f"figure written to {FIGURE}")

    lines = [
        "## EM: fused kernels vs scikit-learn",
        "",
        f"Generated by `python benchmarks/bench_em_kernels.py{' --quick' if args.quick else ''}`"
        f" on {platform.processor() or platform.machine()} ({os.cpu_count()} CPUs visible, "
        f"shared with other jobs: timings are noisy, ratios are from the same run), "
        f"Python {platform.python_version()}, bayesgmm {bayesgmm.__version__}, "
        f"scikit-learn {sklearn.__version__}, NumPy {np.__version__}, Numba "
        f"{numba.__version__} ({numba.get_num_threads()} threads, threading layer "
        f"{numba.threading_layer()}, block of {BLOCK_SIZE} rows). "
        f"{_blas_line()}.",
        "",
        f"Same data (`datasets.make_mixture`, seed 0), same start (random rows, the data's "
        f"precision), {N_ITER} iterations, tol=0. *fused*: kernel pass + "
        "`m_step_from_statistics`. *scikit-learn*: its EM loop body "
        "(`_e_step`, `_m_step`, `_compute_lower_bound`), without initialisation and the final "
        "E-step; these two are timed alternately, best of 3 each. *sklearn fit* and "
        "*bayesgmm fit*: the whole `fit(X)` divided by the iterations, once (scikit-learn's "
        "includes the k-means it runs even when every `*_init` is given). *floor*: a compiled "
        "loop with N K `exp` + N `log` calls on the kernel's "
        "own arguments, same threads and blocks. *diff*: largest `max|ours - sklearn| / "
        "max|sklearn|` over weights, means, covariances and the lower bound. Memory: peak "
        "for 2 iterations, tracemalloc / RSS high-water mark increase (Numba's allocations "
        "are only seen by RSS).",
        "",
        "| N | d | K | covariance | fused (ms/it) | scikit-learn (ms/it) | speed-up | "
        "sklearn fit (ms/it) | bayesgmm fit (ms/it) | fused / floor | diff | "
        "memory fused (MiB) | memory sklearn (MiB) |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['n']:,} | {r['d']} | {r['k']} | {r['covariance_type']} | "
            f"{r['fused'] * 1e3:.2f} | {r['sklearn'] * 1e3:.1f} | "
            f"{r['sklearn'] / r['fused']:.1f}x | {r['sklearn_fit'] * 1e3:.1f} | "
            f"{r['bayesgmm_fit'] * 1e3:.1f} | {r['fused'] / r['floor']:.2f} | "
            f"{r['diff']:.1e} | {r['mem_fused'][0]:.1f} / {r['mem_fused'][1]:.1f} | "
            f"{r['mem_sklearn'][0]:.1f} / {r['mem_sklearn'][1]:.1f} |"
        )
    lines += ["", "First call of the full kernel in a fresh process (N=1,000, d=2, K=3):", ""]
    lines += ["| cache | import (s) | first call (s) | second call (s) |", "|---|---:|---:|---:|"]
    for label, t in latency.items():
        lines.append(
            f"| {label} | {t['import_s']:.2f} | {t['first_call_s']:.2f} | "
            f"{t['second_call_s'] * 1e3:.1f} ms |"
        )
    if not args.no_scaling:
        lines += [
            "",
            f"![EM iteration time against N, K and d](figures/{FIGURE.name}) "
            f"(scikit-learn only up to N={sk_max_n:,}: above it one iteration takes seconds "
            "and gigabytes; the fused kernel runs to N=1e7 in O(block) extra memory.)",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    _write_section(REPORT, "## EM: fused kernels vs scikit-learn", text)
    print(f"written to {REPORT}")


if __name__ == "__main__":
    main()
