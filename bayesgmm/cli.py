"""Command line: ``bayesgmm fit | compare | report | predict | demo``.

``DATA`` is a CSV file (one row per observation, a header row; pick columns with
``--columns``) or the name of a bundled data set (``faithful``, ``galaxies``,
``enzyme``, ``acidity``, ``low_dim_gauss_mix``); an existing file wins over a name.

Every command writes its outputs into a temporary sibling of ``--out`` and moves them
into place only when everything succeeded (:func:`bayesgmm._io.atomic_directory`), so
a failed or interrupted run leaves no half-written file. Bad input (missing file,
non-numeric column, too few rows for K, bad option values, unwritable output folder)
ends with one line ``bayesgmm: error: ...`` on stderr and exit status 2; anything else
is a bug and shows its traceback. Progress goes to stderr. ``fit`` prints its verdict
first (did the sampler checks pass, and if not, what to change), then the diagnostics
and the summary; with ``--strict`` failed checks give exit status 3.

Only the standard library is imported at module level: NumPy, pandas, scikit-learn and PyMC
load inside the command that needs them, so ``bayesgmm --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bayesgmm._io import atomic_directory, check_output_folder, write_text_atomic
from bayesgmm._methods import METHODS, SAMPLERS
from bayesgmm.covariance import covariance_types

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Exit status of ``fit --strict`` when the sampler checks fail (outputs are still written).
EXIT_DIAGNOSTICS = 3
BUNDLED: tuple[str, ...] = ("faithful", "galaxies", "enzyme", "acidity", "low_dim_gauss_mix")


class InputError(ValueError):
    """Bad input from the user: reported in one line, exit status 2."""


@dataclass(frozen=True)
class Dataset:
    """Validated data from the command line.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
    feature_names : list of str
    name : str
        File stem or bundled name.
    labels : ndarray of shape (n_samples,), optional
        Known classes (``--labels COLUMN``), not among the features.
    label_name : str, optional
    scaling : dict, optional
        ``{"mean": [...], "sd": [...]}`` when ``--scale`` standardised the columns.
    """

    X: np.ndarray
    feature_names: list[str]
    name: str
    labels: np.ndarray | None = None
    label_name: str | None = None
    scaling: dict[str, list[float]] | None = None


def read_frame(source: str) -> tuple[pd.DataFrame, str]:
    """Read ``source`` (a CSV path or a bundled name) as a DataFrame; also return its name."""
    import pandas as pd

    from bayesgmm import datasets

    path = Path(source)
    if path.is_file():
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read {source!r} as CSV: {_one_line(err)}") from None
        return frame, path.stem
    if source in BUNDLED:
        return getattr(datasets, f"load_{source}")(as_frame=True), source
    if path.exists():
        raise InputError(f"{source!r} is not a file")
    raise InputError(f"data file {source!r} not found (bundled data sets: {', '.join(BUNDLED)})")


def load_dataset(
    source: str,
    columns: str | None,
    max_components: int,
    *,
    labels: str | None = None,
    scale: bool = False,
) -> Dataset:
    """Read, select columns and validate (enough rows for ``max_components``).

    ``labels`` names a column of known classes, taken out of the features; ``scale``
    standardises every feature (mean 0, sd 1). Without it, a warning on stderr suggests
    ``--scale`` when the columns' sds differ by more than :data:`SCALE_RATIO`.
    """
    from bayesgmm._validation import check_data

    frame, name = read_frame(source)
    known = None
    if labels is not None:
        if labels not in frame.columns:
            raise InputError(
                f"--labels column {labels!r} not in {source!r}; available: "
                f"{list(map(str, frame.columns))}"
            )
        known = frame[labels].to_numpy()
        frame = frame.drop(columns=[labels])
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise InputError(
                f"column(s) {missing} not in {source!r}; available: {list(map(str, frame.columns))}"
            )
        frame = frame[wanted]
    try:
        X = check_data(frame, name=f"data {source!r}", n_components=max_components)
    except (TypeError, ValueError) as err:
        raise InputError(_one_line(err)) from None
    if X.shape[0] < 2 * max_components:
        raise InputError(
            f"data {source!r} has {X.shape[0]} rows, too few for K={max_components} "
            f"(need at least {2 * max_components}): use fewer components"
        )
    names = [str(c) for c in frame.columns]
    scaling = None
    if scale:
        mean, sd = X.mean(axis=0), X.std(axis=0, ddof=1)
        X = (X - mean) / sd
        scaling = {"mean": mean.tolist(), "sd": sd.tolist()}
    else:
        _warn_scales(X, names)
    return Dataset(X, names, name, known, labels, scaling)


SCALED_NOTE = "Columns standardised by --scale: estimates are in sd units of each column."
#: Ratio of the largest to the smallest column sd above which ``--scale`` is suggested.
SCALE_RATIO = 100.0


def _warn_scales(X: np.ndarray, names: list[str]) -> None:
    sd = X.std(axis=0, ddof=1)
    if X.shape[1] < 2 or sd.min() <= 0:
        return
    big, small = int(sd.argmax()), int(sd.argmin())
    if sd[big] / sd[small] > SCALE_RATIO:
        print(
            f"bayesgmm: warning: column scales differ by a factor of {sd[big] / sd[small]:.0f} "
            f"({names[big]!r} sd {sd[big]:.3g}, {names[small]!r} sd {sd[small]:.3g}); the "
            "default prior and the figures suit comparable scales: consider --scale",
            file=sys.stderr,
        )


def label_agreement_text(data: Dataset, clusters: np.ndarray) -> tuple[str, pd.DataFrame]:
    """Cross-tabulation of known classes against clusters, and a sentence with the ARI."""
    from bayesgmm.analysis import label_agreement

    table, ari = label_agreement(data.labels, clusters)
    table.index.name = data.label_name
    text = (
        f"Known classes ({data.label_name!r}, not used in the fit) against the clusters: "
        f"adjusted Rand index {ari:.3f} (1: identical partitions, 0: chance agreement)."
    )
    return text, table


def parse_ks(text: str) -> list[int]:
    """``"3"``, ``"1-6"`` or ``"1-3,5"`` -> sorted list of distinct positive ints."""
    ks: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            ks.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise InputError(f"--k must look like 3, 1-6 or 1-3,5; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise InputError(f"--k needs positive numbers of components, got {text!r}")
    return sorted(ks)


def parse_covariances(text: str) -> list[str]:
    """``"full,diag"`` -> list of covariance types (validated)."""
    types = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in types if t not in covariance_types()]
    if bad or not types:
        raise InputError(
            f"--covariance must be a comma-separated subset of {', '.join(covariance_types())}; "
            f"got {text!r}"
        )
    return types


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


class Progress:
    """Timestamped progress messages on stderr (silent when ``quiet``)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(
                f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True
            )


def _sampler_kwargs(args: argparse.Namespace) -> dict:
    return {"draws": args.draws, "tune": args.tune, "chains": args.chains}


def _write_json(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, default=float) + "\n")


def _posterior_mean_params(bayes):
    from bayesgmm.params import MixtureParams

    post = bayes.idata_.posterior.to_dataset().mean(("chain", "draw"))
    return MixtureParams(
        post["weights"].to_numpy(), post["means"].to_numpy(), post["covariances"].to_numpy()
    )


def _fit(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.analysis import map_vs_posterior
    from bayesgmm.inference import BayesianGaussianMixture
    from bayesgmm.report import markdown_table, readable_summary, software_versions

    ks = parse_ks(args.k)
    if len(ks) != 1:
        raise InputError(f"fit needs one number of components, got --k {args.k!r}")
    k = ks[0]
    (cov,) = parse_covariances(args.covariance)
    if args.prior == "mle" and args.method != "map":
        raise InputError(
            f"--prior mle (flat, improper) only works with --method map, got --method "
            f"{args.method}: use --prior default for a posterior"
        )
    data = load_dataset(args.data, args.columns, k, labels=args.labels, scale=args.scale)
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        progress(
            f"fitting K={k} {cov} to {data.name} ({data.X.shape[0]} x {data.X.shape[1]}) "
            f"by {args.method}"
        )
        bayes = BayesianGaussianMixture(
            k,
            covariance_type=cov,
            prior=None if args.prior == "mle" else "default",
            em_n_init=args.n_init,
            method=args.method,
            sampler=args.sampler,
            random_state=args.seed,
            progressbar=not args.quiet,
            **_sampler_kwargs(args),
        ).fit(data.X)
        progress("writing results")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            bayes.idata_.to_zarr(tmp / "posterior.zarr", mode="w")
        summary = bayes.summary(ci_prob=args.ci_prob, feature_names=data.feature_names)
        summary.to_csv(tmp / "summary.csv")
        shown = readable_summary(summary)
        diagnostics = bayes.diagnose() if args.method == "nuts" else None
        verdict = _verdict(args.method, diagnostics)
        text = [f"# {data.name}: K={k} {cov}, {args.method}", "", verdict, ""]
        if data.scaling is not None:
            text += [SCALED_NOTE, ""]
        if diagnostics is not None:
            text += ["```", str(diagnostics), "```", ""]
        text.append(markdown_table(shown))
        agreement = None
        if data.labels is not None:
            agreement = label_agreement_text(data, bayes.predict(data.X))
            text += ["", agreement[0], "", markdown_table(agreement[1])]
            agreement[1].to_csv(tmp / "labels_vs_clusters.csv")
        if args.method != "map":
            table = map_vs_posterior(
                bayes.idata_.posterior.to_dataset(),
                bayes.map_,
                ci_prob=args.ci_prob,
                feature_names=data.feature_names,
            )
            table.to_csv(tmp / "map_vs_posterior.csv", index=False)
        write_text_atomic(tmp / "summary.md", "\n".join(text) + "\n")
        _write_json(
            tmp / "params.json",
            {
                "command": args.command,
                "data": {
                    "source": args.data,
                    "columns": data.feature_names,
                    "n_samples": data.X.shape[0],
                },
                "n_components": k,
                "covariance_type": cov,
                "method": args.method,
                "scaling": data.scaling,
                "map": bayes.map_.to_dict(),
                "posterior_mean": _posterior_mean_params(bayes).to_dict(),
                "versions": software_versions(),
            },
        )
        print(verdict)
        if diagnostics is not None:
            print(f"\n{diagnostics}")
        heading = "MAP estimate" if args.method == "map" else f"Posterior summary ({args.method})"
        if data.scaling is not None:
            heading += f" ({SCALED_NOTE[:-1].lower()})"
        with _wide_display():
            print(f"\n{heading}:\n{shown.drop(columns='kind').to_string()}")
            if agreement is not None:
                print(f"\n{agreement[0]}\n{agreement[1].to_string()}")
    progress(f"written to {args.out}/ (posterior.zarr, params.json, summary.csv, summary.md)")
    if args.strict and diagnostics is not None and not diagnostics.ok:
        print(
            f"bayesgmm: sampler checks failed (--strict): exit status {EXIT_DIAGNOSTICS}",
            file=sys.stderr,
        )
        return EXIT_DIAGNOSTICS
    return 0


def _verdict(method: str, diagnostics) -> str:
    """The first thing ``fit`` prints: whether the result can be trusted, and what to do."""
    if diagnostics is not None:
        return diagnostics.verdict
    if method == "map":
        return (
            "Verdict: MAP point estimate only (no posterior, no uncertainty, no sampler "
            "checks); use --method nuts for credible intervals."
        )
    return (
        f"Verdict: variational approximation ({method}): no sampler checks exist, and "
        "intervals are usually too narrow; confirm with --method nuts before relying on them."
    )


def _wide_display():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 20)


def _run_comparison(args: argparse.Namespace, data: Dataset, progress: Progress):
    from bayesgmm.compare import compare

    method = None if args.method == "map" else args.method
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = compare(
            data.X,
            parse_ks(args.k),
            parse_covariances(args.covariance),
            method,
            **_sampler_kwargs(args),
            bayes_kwargs={"sampler": args.sampler},
            em_prior=None if args.prior == "mle" else "default",
            em_n_init=args.n_init,
            n_jobs=args.jobs,
            random_state=args.seed,
            progress=progress,
        )
    for warning in caught:
        if "PSIS-LOO is unreliable" in str(warning.message):
            progress(f"warning: {_one_line(warning.message)}")
    return result


def _compare(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.plots import plot_criterion_by_k, plot_loo_comparison
    from bayesgmm.report import markdown_table

    data = load_dataset(
        args.data, args.columns, max(parse_ks(args.k)), labels=args.labels, scale=args.scale
    )
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        result = _run_comparison(args, data, progress)
        result.table.to_csv(tmp / "comparison.csv")
        lines = [
            f"# Model comparison: {data.name}",
            "",
            markdown_table(result.table.round(2), digits=8),
            "",
            result.sign_convention,
            "",
            f"**Recommended: {result.recommended}.** {result.reason}",
            "",
            *_agreement_lines(data, result),
            "```",
            args.command,
            "```",
        ]
        write_text_atomic(tmp / "comparison.md", "\n".join(lines) + "\n")
        _write_figure(tmp / "bic_by_model.png", lambda: plot_criterion_by_k(result.table))
        if result.method is not None:
            _write_figure(tmp / "loo_comparison.png", lambda: plot_loo_comparison(result.table))
        print(result)
    progress(f"written to {args.out}/")
    return 0


def _write_figure(path: Path, draw) -> None:
    """Write ``draw()`` as PNG; a figure that fails is warned about, the tables still written."""
    from bayesgmm.report import figure_png

    try:
        path.write_bytes(figure_png(draw()))
    except Exception as err:  # any failure of one figure: keep the tables
        print(
            f"bayesgmm: warning: figure {path.name} not written: {_one_line(err)}", file=sys.stderr
        )


def _agreement_lines(data: Dataset, result) -> list[str]:
    from bayesgmm.report import markdown_table

    if data.labels is None:
        return []
    text, table = label_agreement_text(data, result.best.em.predict(data.X))
    print(f"{text}\n{table.to_string()}")
    return [f"{text} (EM fit of {result.recommended}.)", "", markdown_table(table), ""]


def _predict(args: argparse.Namespace, progress: Progress) -> int:
    import numpy as np
    import pandas as pd
    import xarray as xr

    from bayesgmm._validation import check_data
    from bayesgmm.posterior import equal_tailed_interval, responsibilities, stack_draws

    model_dir = Path(args.model)
    if not (model_dir / "params.json").is_file() or not (model_dir / "posterior.zarr").exists():
        raise InputError(
            f"{args.model!r} is not a folder written by 'bayesgmm fit' (it needs params.json "
            "and posterior.zarr)"
        )
    params = json.loads((model_dir / "params.json").read_text())
    columns = params["data"]["columns"]
    frame, name = read_frame(args.data)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"column(s) {missing} of the fitted model not in {args.data!r}")
    try:
        X = check_data(
            frame[columns], name=f"data {args.data!r}", min_samples=1, check_constant=False
        )
    except (TypeError, ValueError) as err:
        raise InputError(_one_line(err)) from None
    if params.get("scaling"):
        X = (X - np.asarray(params["scaling"]["mean"])) / np.asarray(params["scaling"]["sd"])
    progress(f"assigning {X.shape[0]} rows of {name} with the posterior in {args.model}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        tree = xr.open_datatree(model_dir / "posterior.zarr", engine="zarr")
    draws = stack_draws(tree["posterior"].to_dataset(), max_draws=args.max_draws)
    resp = responsibilities(X, *draws)
    mean = resp.mean(axis=0)
    lower, upper = equal_tailed_interval(resp, args.ci_prob)
    component = mean.argmax(axis=1)
    rows = np.arange(X.shape[0])
    table = pd.DataFrame(
        {
            "component": component,
            "prob": mean[rows, component],
            "prob_lower": lower[rows, component],
            "prob_upper": upper[rows, component],
        }
    )
    for k in range(mean.shape[1]):
        table[f"p{k}"] = mean[:, k]
        table[f"p{k}_lower"] = lower[:, k]
        table[f"p{k}_upper"] = upper[:, k]
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        table.to_csv(tmp / "predictions.csv", index_label="row")
    counts = table["component"].value_counts().sort_index()
    uncertain = int((table["prob_lower"] < 0.5).sum())
    per_component = ", ".join(f"component {k}: {n}" for k, n in counts.items())
    print(
        f"{X.shape[0]} rows assigned ({per_component}); "
        f"{uncertain} uncertain (the {args.ci_prob:.0%} interval of their probability reaches "
        "below 0.5)"
    )
    progress(f"written to {args.out}/predictions.csv")
    return 0


def _report(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.report import build_report

    if args.method == "map":
        raise InputError("report needs a posterior: use --method nuts, advi or fullrank_advi")
    data = load_dataset(
        args.data, args.columns, max(parse_ks(args.k)), labels=args.labels, scale=args.scale
    )
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        result = _run_comparison(args, data, progress)
        progress(f"analysing {result.recommended} and drawing figures")
        report = build_report(
            data.X,
            result,
            feature_names=data.feature_names,
            data_name=data.name,
            command=args.command,
            ci_prob=args.ci_prob,
            known_classes=(
                None
                if data.labels is None
                else label_agreement_text(data, result.best.bayes.predict(data.X))
            ),
        )
        report.write(tmp)
        result.table.to_csv(tmp / "comparison.csv")
        print(result)
    progress(f"written to {args.out}/ (report.md, report.html, figures/)")
    return 0


def _demo(args: argparse.Namespace, progress: Progress) -> int:
    import numpy as np

    from bayesgmm import GaussianMixture, datasets
    from bayesgmm.report import Report

    frame = datasets.load_faithful(as_frame=True)
    X = frame.to_numpy()
    names = [str(c) for c in frame.columns]
    model = GaussianMixture(2, prior="default", random_state=args.seed).fit(X)
    print(f"Old Faithful, K=2, MAP-EM: converged={model.converged_} in {model.n_iter_} iterations")
    for k in np.argsort(model.means_[:, 0]):
        print(
            f"  component {k}: weight {model.weights_[k]:.3f}, mean "
            f"({model.means_[k, 0]:.3f}, {model.means_[k, 1]:.2f})"
        )
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        fig = _demo_figure(X, model.predict(X))
        fig.savefig(tmp / "demo.png", dpi=100)
        if not args.no_posterior:
            from bayesgmm.inference import BayesianGaussianMixture
            from bayesgmm.report import add_posterior_analysis

            progress("sampling the posterior by NUTS (2 chains x 500 draws)")
            bayes = BayesianGaussianMixture(
                2, draws=500, tune=500, chains=2, random_state=args.seed, progressbar=False
            ).fit(X)
            report = Report("bayesgmm demo: Old Faithful, K=2")
            table = add_posterior_analysis(report, X, bayes, feature_names=names)
            report.write(tmp, stem="demo")
            print("\nMAP (EM) versus posterior, 89% equal-tailed intervals:")
            print(table.drop(columns="kind").round(3).to_string(index=False))
    print(f"figure written to {Path(args.out) / 'demo.png'}")
    if not args.no_posterior:
        print(f"MAP-versus-posterior report written to {Path(args.out) / 'demo.html'}")
    return 0


def _demo_figure(X: np.ndarray, labels: np.ndarray):
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    for k in np.unique(labels):
        members = labels == k
        ax.scatter(
            X[members, 0],
            X[members, 1],
            s=12,
            color=f"C{int(k) % 10}",
            label=f"component {int(k)} ({int(members.sum())} points)",
        )
    ax.legend(frameon=False, fontsize="small", title="MAP-EM cluster")
    ax.set(
        xlabel="eruption duration (min)",
        ylabel="waiting time (min)",
        title="Old Faithful: MAP-EM clusters",
    )
    return fig


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with every option's default, except None/False and defaults already stated."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "(default" in text:
            return text
        return super()._get_help_string(action)


def _add_data_options(parser: argparse.ArgumentParser, k_help: str) -> None:
    parser.add_argument("data", metavar="DATA", help=f"CSV file or one of {', '.join(BUNDLED)}")
    parser.add_argument("--k", required=True, help=k_help)
    parser.add_argument("--columns", help="comma-separated columns to use (default: all)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--draws", type=int, default=1000, help="posterior draws per chain")
    parser.add_argument("--tune", type=int, default=1000, help="tuning steps per chain")
    parser.add_argument("--chains", type=int, default=4, help="NUTS chains (run in parallel)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="pymc", help="NUTS implementation")
    parser.add_argument(
        "--ci-prob",
        type=float,
        default=0.89,
        help="credible interval probability (equal-tailed; default 0.89)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="standardise every column (mean 0, sd 1) before fitting; results are then on "
        "the standardised scale",
    )
    parser.add_argument(
        "--labels",
        metavar="COLUMN",
        help="column of known classes: left out of the features, cross-tabulated against "
        "the clusters with the adjusted Rand index",
    )
    _add_overwrite_option(parser)


def _add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty --out folder that bayesgmm did not write "
        "(a folder written by bayesgmm is always replaced whole)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesgmm`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="bayesgmm",
        description="Bayesian Gaussian mixtures: fit, compare, report, predict.",
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="name", required=True)
    fit = sub.add_parser(
        "fit",
        help="fit one model; write posterior, point estimates, summary",
        formatter_class=HelpFormatter,
    )
    _add_data_options(fit, "number of components, e.g. 3")
    fit.add_argument(
        "--covariance", default="full", choices=covariance_types(), help="covariance structure"
    )
    fit.add_argument(
        "--method",
        default="nuts",
        choices=METHODS,
        help="NUTS, variational (advi, fullrank_advi) or the MAP point estimate only",
    )
    fit.add_argument(
        "--prior",
        choices=("default", "mle"),
        default="default",
        help="prior of the fit: default (weakly informative), or mle (flat: maximum "
        "likelihood, --method map only)",
    )
    fit.add_argument(
        "--n-init", type=int, default=5, help="EM restarts of the MAP start (best one kept)"
    )
    fit.add_argument(
        "--strict",
        action="store_true",
        help=f"exit with status {EXIT_DIAGNOSTICS} when the NUTS sampler checks fail "
        "(outputs are still written)",
    )
    fit.set_defaults(func=_fit)
    for name, func, text in (
        (
            "compare",
            _compare,
            "compare K and covariance types by LOO and BIC/AIC/ICL; writes the table, "
            "bic_by_model.png and (with a posterior) loo_comparison.png",
        ),
        ("report", _report, "comparison plus the chosen model's analysis as Markdown/HTML"),
    ):
        cmd = sub.add_parser(name, help=text, formatter_class=HelpFormatter)
        _add_data_options(cmd, "numbers of components, e.g. 1-6 or 1-3,5")
        cmd.add_argument(
            "--covariance", default="full", help="comma-separated covariance types, e.g. full,diag"
        )
        cmd.add_argument(
            "--method",
            default="nuts",
            choices=METHODS,
            help="posterior method (map: EM criteria only)",
        )
        cmd.add_argument("--jobs", type=int, default=1, help="candidates fitted in parallel")
        cmd.add_argument(
            "--prior",
            choices=("mle", "default"),
            default="mle",
            help="prior of the EM fits behind BIC/AIC/ICL: mle (their textbook definition) "
            "or default (MAP-EM)",
        )
        cmd.add_argument(
            "--n-init", type=int, default=5, help="EM restarts per candidate (best one kept)"
        )
        cmd.set_defaults(func=func)
    demo = sub.add_parser(
        "demo",
        help="fit the bundled Old Faithful data and write figures",
        formatter_class=HelpFormatter,
    )
    demo.add_argument("--out", default="bayesgmm-demo", help="output folder")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--no-posterior", action="store_true", help="MAP-EM only (no NUTS)")
    demo.add_argument("--quiet", action="store_true", help="no progress messages")
    _add_overwrite_option(demo)
    demo.set_defaults(func=_demo)
    predict = sub.add_parser(
        "predict",
        help="assign new rows with a saved fit: probabilities with credible intervals",
        formatter_class=HelpFormatter,
    )
    predict.add_argument("model", metavar="MODEL_DIR", help="folder written by 'bayesgmm fit'")
    predict.add_argument(
        "data", metavar="DATA", help="CSV file or bundled data set with the model's columns"
    )
    predict.add_argument("--out", required=True, help="output folder (predictions.csv)")
    predict.add_argument(
        "--ci-prob", type=float, default=0.89, help="credible interval probability (equal-tailed)"
    )
    predict.add_argument(
        "--max-draws", type=int, default=1000, help="posterior draws used (a seeded subset)"
    )
    predict.add_argument("--quiet", action="store_true", help="no progress messages")
    _add_overwrite_option(predict)
    predict.set_defaults(func=_predict)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that it unwinds (and cleans up) like Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesgmm`` command; returns the exit status.

    0 on success; 2 with one line ``bayesgmm: error: ...`` for bad input or an output
    folder that cannot be written; 3 (:data:`EXIT_DIAGNOSTICS`) from ``fit --strict`` when
    the NUTS sampler checks fail (everything is written all the same); 130 after Ctrl-C
    (SIGINT) and 143 after SIGTERM, with one line and nothing written.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signal handling to the caller
        previous = None
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        args.command = shlex.join(["bayesgmm", *argv])
        progress = Progress(args.quiet)
        check_output_folder(args.out, overwrite=args.overwrite)
        return args.func(args, progress)
    except (InputError, OSError) as err:
        print(f"bayesgmm: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        name = "terminated" if isinstance(err, Terminated) else "interrupted"
        print(f"bayesgmm: {name}; nothing written", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
