"""VI against NUTS: q's own draws and the PSIS-corrected draws that a VI fit returns.

For Old Faithful (K=2, full) and galaxies (K=3): a NUTS reference pooled over several seeds
(4 x 1000 + 1000 tuning from the MAP per seed, keeping the chains that stay in the MAP's
mode), then for each method and fit seed: ``fit_vi``; the k-hat of q (4000 draws, check seed
fit + 2) with q's sd ratios from 4000 draws; the k-hat of the correction
(``psis_khat(proposal="defensive")`` with ``inference.PSIS_DRAWS`` draws, seed fit + 3) and
the mean error, sd ratios and interquartile-range ratios of its 1000 resampled draws
(``psis_posterior``, what ``BayesianGaussianMixture(method=...)`` returns with its default
``draws``). Mean error: largest |VI - NUTS| posterior mean of the component means in data sds;
ratios: VI / NUTS over weights, means and covariances. NUTS's own spread: the range of one
1000-draw chain's sd over the pooled sd. ``--write`` puts the table into
``reports/benchmarks.md`` (section "VI against NUTS").

Usage::

    .venv/bin/python benchmarks/bench_vi_correction.py galaxies faithful --write
    .venv/bin/python benchmarks/bench_vi_correction.py galaxies --methods fullrank_advi \\
        --seeds 2 --fit-kwargs '{"tol": 1e-5}'
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import time

import numpy as np
import pymc as pm

from bayesgmm import datasets
from bayesgmm.bayes.model import build_model, initial_point
from bayesgmm.bayes.sampling import PSIS_DRAWS
from bayesgmm.bayes.vi import fit_vi, psis_khat, psis_posterior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em.estimator import fit_map

VARS = ("weights", "means", "covariances")
REPORT = pathlib.Path(__file__).resolve().parents[1] / "reports" / "benchmarks.md"
SECTION = "## VI against NUTS (bench_vi_correction.py)"
#: Scalars whose sd is a heavy-tail statistic (as tests/test_vi.py.HEAVY_TAILED): galaxies'
#: 3-galaxy component, its mean (#5) and variance (#8).
HEAVY_TAILED = {"faithful": (), "galaxies": (5, 8)}


def problem(name: str):
    """Data, model and MAP start of ``name`` (as in tests/test_vi.py)."""
    X, K = (datasets.load_faithful(), 2) if name == "faithful" else (datasets.load_galaxies(), 3)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    spec = MixtureSpec.from_data(X, K, "full", "default")
    model = build_model(X, spec)
    params = fit_map(X, spec, tol=1e-6, max_iter=1000, n_init=5, random_state=0).params_
    if X.shape[1] == 1:
        params = params.sorted_by_mean()
    return X, spec, model, initial_point(params, model, spec)


def _flat(posterior, chains) -> np.ndarray:
    """Draws of weights, means and covariances, flattened: shape (n_draws, n_scalars)."""
    out = []
    for v in VARS:
        a = posterior[v].values[chains]
        out.append(a.reshape(-1, int(np.prod(a.shape[2:]))))
    return np.concatenate(out, axis=1)


def nuts_reference(X, spec, model, start, seeds) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pooled NUTS draws in the MAP's mode (flattened) and each kept chain's draws."""
    std = spec.standardization
    start_means = std.location + std.scale * start["means_z"]
    chains = []
    for seed in seeds:
        with model:
            idata = pm.sample(
                draws=1000,
                tune=1000,
                chains=4,
                cores=1,
                initvals=start,
                random_seed=seed,
                nuts_sampler="pymc",
                progressbar=False,
                compute_convergence_checks=False,
            )
        chain_means = idata.posterior["means"].mean("draw").values
        stayed = np.all(np.abs(chain_means - start_means) < 0.5 * X.std(0), axis=(1, 2))
        print(f"NUTS seed {seed}: chains kept {stayed.tolist()}", flush=True)
        chains += [_flat(idata.posterior, [c]) for c in np.flatnonzero(stayed)]
    return np.concatenate(chains), chains


def _iqr(a: np.ndarray) -> np.ndarray:
    q1, q3 = np.quantile(a, [0.25, 0.75], axis=0)
    return q3 - q1


def _range(r: np.ndarray) -> str:
    return f"{r.min():.2f}-{r.max():.2f}"


def run(name, methods, seeds, nuts_seeds, extra) -> list[str]:
    """Benchmark rows (Markdown) for one data set."""
    X, spec, model, start = problem(name)
    t0 = time.perf_counter()
    gold, chains = nuts_reference(X, spec, model, start, nuts_seeds)
    sd, iqr = gold.std(0), _iqr(gold)
    n_means = len(np.ravel(start["means_z"]))
    n_weights = len(start["means_z"])
    means = slice(n_weights, n_weights + n_means)
    chain_sd = np.array([c.std(0) / sd for c in chains])
    heavy = np.zeros(chain_sd.shape[1], dtype=bool)
    heavy[list(HEAVY_TAILED[name])] = True
    chain_iqr = np.array([_iqr(c) / iqr for c in chains])
    nuts_cells = [
        f"| {name}",
        f"NUTS: one chain of 1000 / pooled ({len(chains)} chains, "
        f"{time.perf_counter() - t0:.0f} s)",
        *[""] * 3,
        _range(chain_sd[:, ~heavy]),
        *[""] * 3,
        ", ".join(_range(chain_sd[:, i]) for i in np.flatnonzero(heavy)) or "-",
        _range(chain_iqr),
    ]
    rows = [" | ".join(nuts_cells) + " |"]
    for method in methods:
        for seed in seeds:
            t0 = time.perf_counter()
            fit = fit_vi(model, start, method, random_seed=seed, **extra)
            seconds = time.perf_counter() - t0
            approx = fit.approximation
            post = approx.sample(4000, random_seed=seed + 1).posterior
            q_sd = _flat(post, [0]).std(0) / sd
            q = psis_khat(model, approx, random_seed=seed + 2)
            t0 = time.perf_counter()
            corr = psis_khat(
                model, approx, n_draws=PSIS_DRAWS, random_seed=seed + 3, proposal="defensive"
            )
            seconds_corr = time.perf_counter() - t0
            cells = ["-"] * 4
            if corr.reliable:
                idata = psis_posterior(model, approx, corr, 1000, random_seed=seed)
                c = _flat(idata.posterior, [0])
                scale = np.tile(X.std(0), n_means // X.shape[1])
                err = np.max(np.abs(c.mean(0)[means] - gold.mean(0)[means]) / scale)
                ratio = c.std(0) / sd
                cells = [
                    f"{err:.3f}",
                    _range(ratio[~heavy]),
                    ", ".join(f"{r:.2f}" for r in ratio[heavy]) or "-",
                    _range(_iqr(c) / iqr),
                ]
            row = (
                " | ".join(
                    [
                        f"| {name}",
                        f"{method} seed {seed}",
                        f"{fit.n_iter} ({seconds:.0f} s)",
                        f"{q.khat:.2f}",
                        _range(q_sd),
                        "",
                        f"{corr.khat:.2f} ({corr.ess:.0f}, {seconds_corr:.0f} s)",
                        *cells,
                    ]
                )
                + " |"
            )
            print(row, flush=True)
            rows.append(row)
    return rows


HEADER = [
    "| data | fit | iterations (time) | q k-hat | q sd ratio | NUTS chain sd ratio | "
    "correction k-hat (ESS, time) | corrected mean err (data sd) | corrected sd ratio | "
    "corrected sd ratio, heavy-tailed | corrected IQR ratio |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]


def write_section(rows: list[str], note: str) -> None:
    """Replace (or append) the VI section of reports/benchmarks.md."""
    text = REPORT.read_text()
    body = "\n".join([SECTION, "", note, "", *HEADER, *rows, ""]) + "\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body + (text[nxt + 1 :] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    REPORT.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", choices=["faithful", "galaxies"])
    parser.add_argument("--methods", nargs="+", default=["fullrank_advi", "advi"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--nuts-seeds", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--fit-kwargs", default="{}", help="JSON: further fit_vi settings")
    parser.add_argument("--write", action="store_true", help="update reports/benchmarks.md")
    args = parser.parse_args()
    logging.getLogger("pymc").setLevel(logging.ERROR)
    extra = json.loads(args.fit_kwargs)
    rows = []
    for name in args.data:
        rows += run(name, args.methods, args.seeds, args.nuts_seeds, extra)
    note = (
        f"`PYTHONPATH=. python benchmarks/bench_vi_correction.py {' '.join(args.data)} --write` "
        f"(fit seeds {args.seeds}, NUTS seeds {args.nuts_seeds}, 4 x 1000 each, pooled over the "
        "chains in the MAP's mode; wall times on the shared 2-core machine). Ratios are VI / "
        "NUTS over every scalar of weights, means and covariances (galaxies: #2 = weight of "
        "the 3-galaxy component, #5 its mean, #8 its variance: their sd is a heavy-tail statistic, "
        "reported apart, see reports/vi.md). Corrected: the 1000 draws a fit "
        "returns (PSIS resampling of the adapted defensive proposal). Details: reports/vi.md."
    )
    if args.write:
        write_section(rows, note)


if __name__ == "__main__":
    main()
