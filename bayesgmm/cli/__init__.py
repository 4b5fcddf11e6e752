"""Command line: ``bayesgmm fit | compare | report | clusters | predict | demo``.

``DATA`` is a CSV file (one row per observation, a header row; pick columns with
``--columns``) or the name of a bundled data set (``faithful``, ``galaxies``,
``enzyme``, ``acidity``, ``low_dim_gauss_mix``); an existing file wins over a name.

Every command writes its outputs into a temporary sibling of ``--out`` and moves them
into place only when everything succeeded (:func:`bayesgmm.core.io.atomic_directory`), so
a failed or interrupted run leaves no half-written file. Every option is validated
before any work starts. Bad input (missing file, non-numeric or degenerate columns, too
few rows for K, bad option values, unwritable output folder) and data the models cannot
fit end with one line ``bayesgmm: error: ...`` on stderr and exit status 2; anything
else is a bug, reported in one line with exit status 1. ``--debug`` adds the traceback.
Warnings are one line ``bayesgmm: warning: ...``; progress goes to stderr.
``fit`` writes the model as :meth:`BayesianGaussianMixture.save` does (``model.json`` and
``posterior.zarr``, :mod:`bayesgmm.core.persistence`; the ``--scale`` standardisation and the
columns go into its metadata) beside human-readable extras (``params.json``, ``summary.csv``,
``summary.md``, ...); ``predict`` reads it with :func:`bayesgmm.load` and asks the
estimator for the assignment probabilities.
``fit`` prints its verdict first (did the sampler checks pass, and if not, what to
change), then the diagnostics and the summary; with ``--strict`` failed checks give
exit status 3.

Options that the library also has carry its names and defaults (``--n-init auto``,
``--missing``, ``--noise``, ``--weights``, ``--target-accept``, ``--combine-chains``,
``--ci-prob``; ``tests/test_cli_api_parity.py`` compares them by introspection).
``--seed`` left out draws a fresh seed, as ``random_state=None`` does, and adds it to the
command line recorded with the outputs, so every run can be repeated.

Only the standard library is imported at module level: NumPy, pandas, scikit-learn and PyMC
load inside the command that needs them, so ``bayesgmm --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import secrets
import shlex
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bayesgmm.core.covariance import covariance_types
from bayesgmm.core.io import (
    atomic_directory,
    cancel_output,
    check_output_folder,
    reset_output,
    write_text_atomic,
)
from bayesgmm.core.methods import METHODS, SAMPLERS, TUNE

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
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (``--weights COLUMN``), not among the features.
    weight_name : str, optional
    """

    X: np.ndarray
    feature_names: list[str]
    name: str
    labels: np.ndarray | None = None
    label_name: str | None = None
    scaling: dict[str, list[float]] | None = None
    sample_weight: np.ndarray | None = None
    weight_name: str | None = None


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


#: Column names pandas gives a header-less column, typically an index saved by ``to_csv``.
INDEX_COLUMN = re.compile(r"^Unnamed: \d+$")

#: Most components any --k may ask for before the data are read (the data cap it further).
MAX_COMPONENTS = 100_000


def _select_columns(frame: pd.DataFrame, columns: str | None, source: str) -> pd.DataFrame:
    """The columns to fit: those named in ``--columns``, else all but unnamed index columns.

    A column pandas calls ``Unnamed: 0`` (an index written by ``DataFrame.to_csv`` without
    a header) is dropped with a warning unless ``--columns`` names it.
    """
    if not columns:
        unnamed = [str(c) for c in frame.columns if INDEX_COLUMN.match(str(c))]
        if unnamed:
            warnings.warn(
                f"dropping column(s) {unnamed} of {source!r}: header-less columns are taken "
                "for a saved row index; name them in --columns to use them as features",
                UserWarning,
                stacklevel=2,
            )
        return frame.drop(columns=unnamed)
    wanted = [c.strip() for c in columns.split(",") if c.strip()]
    if not wanted:
        raise InputError(f"--columns names no column: {columns!r}")
    repeated = sorted({c for c in wanted if wanted.count(c) > 1})
    if repeated:
        raise InputError(
            f"--columns names {repeated} more than once: a repeated column is perfectly "
            "collinear with itself; list each column once"
        )
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise InputError(
            f"column(s) {missing} not in {source!r}; available: {list(map(str, frame.columns))}"
        )
    return frame[wanted]


def load_dataset(
    source: str,
    columns: str | None,
    max_components: int,
    covariance_types: list[str] | None = None,
    *,
    labels: str | None = None,
    scale: bool = False,
    weights: str | None = None,
    missing: str = "error",
) -> Dataset:
    """Read, select columns and validate (enough rows for ``max_components``).

    Parameters
    ----------
    source : str
        CSV path or bundled data set name.
    columns : str or None
        ``--columns``.
    max_components : int
        Largest K asked for: the data need at least two rows per component.
    covariance_types : list of str, optional
        The structures to be fitted: data on which their default prior is improper
        (constant, collinear or duplicated columns, fewer rows than columns, values too
        large or too small for float64) are refused with the cause named.
    labels : str, optional
        A column of known classes, taken out of the features.
    scale : bool
        Standardise every feature (mean 0, sd 1). Without it, a warning on stderr suggests
        ``--scale`` when the columns' sds differ by more than :data:`SCALE_RATIO`.
    weights : str, optional
        A column of frequency weights (:mod:`bayesgmm.core.weights`), taken out of the features.
    missing : {"error", "marginalize"}
        ``--missing``: ``"marginalize"`` keeps empty cells (NaN) for a fit that
        marginalises them; the structures' checks then read the complete rows.
    """
    import numpy as np

    from bayesgmm.core.covariance import get_structure
    from bayesgmm.core.priors import _check_data_covariance, sample_moments
    from bayesgmm.core.validation import check_data

    frame, name = read_frame(source)
    if frame.shape[0] == 0:
        raise InputError(f"data {source!r} has a header but no data rows")
    known = None
    if labels is not None:
        if labels not in frame.columns:
            raise InputError(
                f"--labels column {labels!r} not in {source!r}; available: "
                f"{list(map(str, frame.columns))}"
            )
        known = frame[labels].to_numpy()
        frame = frame.drop(columns=[labels])
    sample_weight = None
    if weights is not None:
        sample_weight, frame = _weight_column(frame, weights, source)
    frame = _select_columns(frame, columns, source)
    try:
        X = check_data(
            frame,
            name=f"data {source!r}",
            n_components=max_components,
            allow_nan=missing == "marginalize",
        )
    except (TypeError, ValueError) as err:
        raise InputError(_one_line(err)) from None
    if X.shape[0] < 2 * max_components:
        raise InputError(
            f"data {source!r} has {X.shape[0]} rows, too few for K={max_components} "
            f"(need at least {2 * max_components}): use fewer components"
        )
    names = [str(c) for c in frame.columns]
    complete = X[np.isfinite(X).all(axis=1)]  # all of X unless --missing marginalize
    with np.errstate(all="ignore"):
        cov = sample_moments(complete)[1] if len(complete) >= 2 else None
    for covariance_type in (covariance_types or []) if cov is not None else []:
        try:
            _check_data_covariance(cov, get_structure(covariance_type), complete)
        except ValueError as err:
            raise InputError(f"data {source!r} (columns {names}): {_one_line(err)}") from None
    scaling = None
    if scale:
        mean, sd = np.nanmean(X, axis=0), np.nanstd(X, axis=0, ddof=1)
        X = (X - mean) / sd
        scaling = {"mean": mean.tolist(), "sd": sd.tolist()}
    else:
        _warn_scales(X, names)
    return Dataset(X, names, name, known, labels, scaling, sample_weight, weights)


def _weight_column(frame: pd.DataFrame, column: str, source: str):
    """The validated ``--weights`` column and the frame without it."""
    import pandas as pd

    from bayesgmm.core.weights import check_sample_weight

    if column not in frame.columns:
        raise InputError(
            f"--weights column {column!r} not in {source!r}; available: "
            f"{list(map(str, frame.columns))}"
        )
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    try:
        weights = check_sample_weight(values, frame.shape[0])
    except ValueError as err:
        raise InputError(f"--weights column {column!r}: {_one_line(err)}") from None
    return weights, frame.drop(columns=[column])


SCALED_NOTE = "Columns standardised by --scale: estimates are in sd units of each column."
#: Ratio of the largest to the smallest column sd above which ``--scale`` is suggested.
SCALE_RATIO = 100.0


def _warn_scales(X: np.ndarray, names: list[str]) -> None:
    import numpy as np

    sd = np.nanstd(X, axis=0, ddof=1)
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
    from bayesgmm.posterior.summaries import label_agreement

    table, ari = label_agreement(data.labels, clusters)
    table.index.name = data.label_name
    text = (
        f"Known classes ({data.label_name!r}, not used in the fit) against the clusters: "
        f"adjusted Rand index {ari:.3f} (1: identical partitions, 0: chance agreement)."
    )
    return text, table


def _k_ranges(text: str) -> list[tuple[int, int]]:
    """``"1-3,5"`` -> ``[(1, 3), (5, 5)]``, checked but not expanded."""
    ranges = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            ranges.append((int(lo), int(hi or lo)))
    except ValueError:
        raise InputError(f"--k must look like 3, 1-6 or 1-3,5; got {text!r}") from None
    if not ranges or min(lo for lo, _ in ranges) < 1:
        raise InputError(f"--k needs positive numbers of components, got {text!r}")
    for lo, hi in ranges:
        if hi < lo:
            raise InputError(f"--k range {lo}-{hi} goes down: write it low-high, {hi}-{lo}")
    return ranges


def max_k(text: str) -> int:
    """The largest K of a ``--k`` text, without expanding its ranges."""
    return max(hi for _, hi in _k_ranges(text))


def parse_ks(text: str, max_components: int = MAX_COMPONENTS) -> list[int]:
    """``"3"``, ``"1-6"`` or ``"1-3,5"`` -> sorted list of distinct positive ints.

    Raises :class:`InputError` for bad syntax, a decreasing range, or a K above
    ``max_components`` (checked before any range is expanded).
    """
    ranges = _k_ranges(text)
    top = max(hi for _, hi in ranges)
    if top > max_components:
        raise InputError(
            f"--k {text} asks for K={top}, more than the {max_components} components allowed"
        )
    ks: set[int] = set()
    for lo, hi in ranges:
        ks.update(range(lo, hi + 1))
    return sorted(ks)


def parse_covariances(text: str) -> list[str]:
    """``"full,diag"`` -> list of covariance types (validated); ``"all"``: every one."""
    if text.strip() == "all":
        return list(covariance_types())
    types = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in types if t not in covariance_types()]
    if bad or not types:
        raise InputError(
            f"--covariance must be a comma-separated subset of {', '.join(covariance_types())} "
            f"or 'all'; got {text!r}"
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
    """The settings of :class:`BayesianGaussianMixture` that fit, compare and report share."""
    return {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "target_accept": args.target_accept,
        "combine_chains": args.combine_chains,
    }


def _write_json(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, default=float) + "\n")


def _posterior_mean_params(bayes):
    """Posterior means as MixtureParams (with noise: the Gaussians' conditional weights)."""
    from bayesgmm.core.params import MixtureParams

    post = bayes.idata_.posterior.to_dataset().mean(("chain", "draw"))
    weights = post["weights"].to_numpy()
    if "noise_weight" in post:
        weights = weights / weights.sum()
    return MixtureParams(weights, post["means"].to_numpy(), post["covariances"].to_numpy())


def _noise_record(bayes) -> dict | None:
    """The noise component of a fit for params.json (``None`` without one)."""
    if not bayes.noise:
        return None
    post = bayes.idata_.posterior
    return {
        "volume": bayes.spec_.noise.volume,
        "map_weight": bayes.map_noise_weight_,
        "posterior_mean_weight": float(post["noise_weight"].mean()),
        "weights": "map and posterior_mean hold the Gaussians' weights given 'not noise'",
    }


def _write_model(bayes, folder: Path, data: Dataset, args: argparse.Namespace) -> None:
    """The model files of ``BayesianGaussianMixture.save`` (model.json, posterior.zarr), with
    the ``--scale`` standardisation and the command's data as the model's metadata."""
    import numpy as np

    from bayesgmm.core.persistence import write_model
    from bayesgmm.core.spec import Standardization

    scaling = None
    if data.scaling is not None:
        scaling = Standardization(np.asarray(data.scaling["mean"]), np.asarray(data.scaling["sd"]))
    metadata = {
        "command": args.command,
        "data": {
            "source": args.data,
            "columns": data.feature_names,
            "n_samples": data.X.shape[0],
            "weights": data.weight_name,
        },
    }
    write_model(bayes, folder, input_scaling=scaling, metadata=metadata)


def _fit(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.bayes.estimator import BayesianGaussianMixture
    from bayesgmm.posterior.summaries import map_vs_posterior
    from bayesgmm.reporting.report import markdown_table, readable_summary, software_versions

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
    data = load_dataset(
        args.data,
        args.columns,
        k,
        [cov],
        labels=args.labels,
        scale=args.scale,
        weights=args.weights,
        missing=args.missing,
    )
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
            noise=args.noise,
            missing=args.missing,
            max_draws=args.max_draws,
            **_sampler_kwargs(args),
        ).fit(data.X, sample_weight=data.sample_weight)
        progress("writing results")
        _write_model(bayes, tmp, data, args)
        summary = bayes.summary(ci_prob=args.ci_prob, feature_names=data.feature_names)
        summary.to_csv(tmp / "summary.csv")
        shown = readable_summary(summary)
        diagnostics = bayes.diagnose() if args.method != "map" else None
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
            bootstrap = None
            if args.bootstrap:
                progress(f"bootstrapping the MAP-EM fit ({args.bootstrap} replicates)")
                bootstrap = bayes.em_.bootstrap(
                    data.X,
                    n_boot=args.bootstrap,
                    random_state=args.seed,
                    sample_weight=data.sample_weight,
                )
            table = map_vs_posterior(
                bayes.idata_.posterior.to_dataset(),
                bayes.map_,
                ci_prob=args.ci_prob,
                feature_names=data.feature_names,
                bootstrap=bootstrap,
                noise_weight=getattr(bayes, "map_noise_weight_", None),
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
                    "weights": data.weight_name,
                },
                "n_components": k,
                "covariance_type": cov,
                "method": args.method,
                "scaling": data.scaling,
                "map": bayes.map_.to_dict(),
                "posterior_mean": _posterior_mean_params(bayes).to_dict(),
                "noise": _noise_record(bayes),
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
    progress(
        f"written to {args.out}/ (model.json, posterior.zarr, params.json, summary.csv, summary.md)"
    )
    if args.strict and diagnostics is not None and not diagnostics.ok:
        print(
            f"bayesgmm: sampler checks failed (--strict): exit status {EXIT_DIAGNOSTICS}",
            file=sys.stderr,
        )
        return EXIT_DIAGNOSTICS
    return 0


def _verdict(method: str, diagnostics) -> str:
    """The first thing ``fit`` prints: whether the result can be trusted, and what to do."""
    if method not in ("map", "nuts") and diagnostics is not None:
        checked = "PSIS-corrected draws" if diagnostics.posterior == "psis" else "draws of q"
        if diagnostics.ok:
            return (
                f"Verdict: variational approximation ({method}) passed its checks (ELBO "
                f"converged, PSIS k-hat of the {checked} below 0.7); intervals are usable, "
                "confirm with --method nuts for final results."
            )
        return (
            f"Verdict: variational approximation ({method}) failed its checks (see below): "
            "do not rely on its intervals; use --method nuts."
        )
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
    from bayesgmm.selection.compare import compare

    settings = _sampler_kwargs(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = compare(
            data.X,
            parse_ks(args.k),
            parse_covariances(args.covariance),
            method=args.method,
            draws=settings.pop("draws"),
            tune=settings.pop("tune"),
            chains=settings.pop("chains"),
            bayes_kwargs={"sampler": args.sampler, "max_draws": args.max_draws, **settings},
            em_prior=None if args.prior == "mle" else "default",
            em_n_init=args.n_init,
            sample_weight=data.sample_weight,
            noise=args.noise,
            missing=args.missing,
            n_jobs=args.jobs,
            random_state=args.seed,
            progressbar=progress,
        )
    for warning in caught:
        if "PSIS-LOO is unreliable" in str(warning.message):
            progress(f"warning: {_one_line(warning.message)}")
    return result


def _comparison_data(args: argparse.Namespace) -> Dataset:
    """The data of ``compare`` and ``report``: enough rows for the largest K, checked for
    every covariance structure asked for."""
    return load_dataset(
        args.data,
        args.columns,
        max_k(args.k),
        parse_covariances(args.covariance),
        labels=args.labels,
        scale=args.scale,
        weights=args.weights,
        missing=args.missing,
    )


def _compare(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.reporting.plots import plot_criterion_by_k, plot_loo_comparison
    from bayesgmm.reporting.report import markdown_table

    data = _comparison_data(args)
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
        if result.method != "map":
            _write_figure(tmp / "loo_comparison.png", lambda: plot_loo_comparison(result.table))
        print(result)
    progress(f"written to {args.out}/")
    return 0


def _write_figure(path: Path, draw) -> None:
    """Write ``draw()`` as PNG; a figure that fails is warned about, the tables still written."""
    from bayesgmm.reporting.report import figure_png

    try:
        path.write_bytes(figure_png(draw()))
    except Exception as err:  # any failure of one figure: keep the tables
        print(
            f"bayesgmm: warning: figure {path.name} not written: {_one_line(err)}", file=sys.stderr
        )


def _agreement_lines(data: Dataset, result) -> list[str]:
    from bayesgmm.reporting.report import markdown_table

    if data.labels is None:
        return []
    text, table = label_agreement_text(data, result.best.em.predict(data.X))
    print(f"{text}\n{table.to_string()}")
    return [f"{text} (EM fit of {result.recommended}.)", "", markdown_table(table), ""]


def _predict(args: argparse.Namespace, progress: Progress) -> int:
    import pandas as pd

    from bayesgmm import load
    from bayesgmm.core.validation import check_data

    model, saved = load(args.model, return_info=True)
    if not hasattr(model, "assignment_summary"):
        raise InputError(
            f"{args.model!r} holds a {saved.estimator}, which has no posterior: predict needs a "
            "model written by 'bayesgmm fit' or BayesianGaussianMixture.save"
        )
    recorded = saved.metadata.get("data")  # what 'bayesgmm fit' stores
    columns = (recorded.get("columns") if isinstance(recorded, dict) else None) or (
        saved.feature_names
    )
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        raise InputError(
            f"{str(saved.model_file)!r}: the model has no column names (fit it on a DataFrame "
            "with named columns, or with 'bayesgmm fit')"
        )
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
    if saved.input_scaling is not None:  # the fit's --scale
        X = saved.input_scaling.to_working(X)
    if hasattr(model, "feature_names_in_"):
        X = pd.DataFrame(X, columns=columns)
    progress(f"assigning {X.shape[0]} rows of {name} with the posterior in {args.model}")
    table = model.assignment_summary(X, ci_prob=args.ci_prob, max_draws=args.max_draws)
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
    from bayesgmm.reporting.report import build_report

    if args.method == "map":
        raise InputError("report needs a posterior: use --method nuts, advi or fullrank_advi")
    data = _comparison_data(args)
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
            n_boot=args.bootstrap,
            random_state=args.seed,
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


def parse_e0(text: str) -> float | None:
    """``--e0``: a positive number (fixed), or ``gamma`` for the Gamma hyperprior (None)."""
    if text.strip().lower() == "gamma":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise InputError(f"--e0 must be a positive number or 'gamma', got {text!r}")
    return value


def _positive(value: int, option: str, minimum: int = 1) -> int:
    if value < minimum:
        raise InputError(f"{option} must be at least {minimum}, got {value}")
    return value


def _clusters(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.reporting.plots import plot_cluster_count, plot_similarity_matrix
    from bayesgmm.reporting.report import figure_png, markdown_table
    from bayesgmm.selection.clusters import how_many_clusters

    k_max = _positive(args.max_components, "--max-components")
    e0 = parse_e0(args.e0)
    draws = _positive(args.draws, "--draws")
    burn = _positive(args.burn, "--burn", minimum=0)
    chains = _positive(args.chains, "--chains")
    data = load_dataset(args.data, args.columns, 1, scale=args.scale)
    if data.X.shape[0] < k_max:
        raise InputError(
            f"data {args.data!r} has {data.X.shape[0]} rows, too few for "
            f"--max-components {k_max}: use at most {data.X.shape[0]}"
        )
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        progress(
            f"sampling the sparse finite mixture (K_max={k_max}) on {data.name} "
            f"({data.X.shape[0]} x {data.X.shape[1]}): {chains} chains x {draws} draws"
        )
        result = how_many_clusters(
            data.X,
            k_max,
            e0=e0,
            draws=draws,
            burn=burn,
            chains=chains,
            thin=args.thin,
            loss=args.loss,
            ci_prob=args.ci_prob,
            random_state=args.seed,
        )
        print(result)
        progress("writing results")
        result.to_frame().to_csv(tmp / "cluster_count.csv")
        result.partition_frame().to_csv(tmp / "partition.csv")
        part = result.partitions
        (tmp / "similarity.png").write_bytes(
            figure_png(plot_similarity_matrix(part.psm, part.partition[part.psm_index]))
        )
        (tmp / "cluster_count.png").write_bytes(
            figure_png(plot_cluster_count(result.cluster_count))
        )
        ball = part.credible_ball
        lines = [
            f"# How many clusters: {data.name}",
            "",
            *([SCALED_NOTE, ""] if data.scaling is not None else []),
            f"**{result.answer()}.**",
            "",
            f"Model and priors: {result.priors()}.",
            "",
            "## Posterior of the number of occupied clusters K+",
            "",
            markdown_table(result.to_frame(), digits=3),
            "",
            "## Point partition",
            "",
            f"SALSO estimate under the {part.loss.upper()} loss: {part.n_clusters} clusters, "
            f"expected loss {part.loss_value:.3g}. Its {ball.ci_prob:.0%} credible ball has "
            f"radius {ball.radius:.3g} ({ball.n_in_ball} of {ball.n_draws} draws inside); "
            "its bounds:",
            "",
            markdown_table(ball.bounds_frame(), digits=3),
            "",
            markdown_table(part.cluster_frame(), digits=3),
            "",
            "`partition.csv`: one row per observation, its cluster and its certainty (mean "
            "posterior probability of sharing a cluster with the other members of its cluster).",
            "",
            "## Diagnostics of K+ (label-invariant)",
            "",
            markdown_table(result.diagnostics, digits=3),
            "",
            "```",
            args.command,
            "```",
        ]
        if not result.converged:
            lines[4:4] = [
                f"Warning: R-hat of K+ is {result.diagnostics.loc['n_clusters', 'rhat']:.3f}; "
                "the chains disagree, so run more draws or chains.",
                "",
            ]
        write_text_atomic(tmp / "summary.md", "\n".join(lines) + "\n")
    progress(
        f"written to {args.out}/ (cluster_count.csv, partition.csv, similarity.png, "
        "cluster_count.png, summary.md)"
    )
    return 0


def _demo(args: argparse.Namespace, progress: Progress) -> int:
    import numpy as np

    from bayesgmm import GaussianMixture, datasets
    from bayesgmm.reporting.report import Report

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
            from bayesgmm.bayes.estimator import BayesianGaussianMixture
            from bayesgmm.reporting.report import add_posterior_analysis

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


def _integer(text: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0)


def seed(text: str) -> int:
    """argparse type: a seed, an integer from 0 to 2**32 - 1."""
    return _integer(text, 0, 2**32 - 1)


def n_init(text: str) -> int | str:
    """argparse type: ``auto`` or a number of EM restarts >= 1 (``GaussianMixture.n_init``)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _integer(text, 1)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected auto or a positive integer, got {text!r}"
        ) from None


def jobs(text: str) -> int:
    """argparse type: a number of parallel jobs, >= 1, or -1 for one per core."""
    value = _integer(text, -1)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1, or -1 for one job per core; got 0")
    return value


def probability(text: str) -> float:
    """argparse type: a probability strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise argparse.ArgumentTypeError(f"must be a probability in (0, 1), got {text}")
    return value


def k_spec(text: str) -> str:
    """argparse type: a ``--k`` text, checked (syntax, order) without expanding ranges."""
    try:
        _k_ranges(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with every option's default, except None/False and defaults already stated."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "(default" in text:
            return text
        return super()._get_help_string(action)


def _add_data_options(parser: argparse.ArgumentParser, k_help: str) -> None:
    parser.add_argument("data", metavar="DATA", help=f"CSV file or one of {', '.join(BUNDLED)}")
    parser.add_argument("--k", required=True, type=k_spec, help=k_help)
    parser.add_argument("--columns", help="comma-separated columns to use (default: all)")
    parser.add_argument("--out", required=True, help="output folder")
    _add_seed_option(parser)
    parser.add_argument(
        "--draws", type=positive_int, default=1000, help="posterior draws per chain"
    )
    parser.add_argument(
        "--max-draws",
        type=positive_int,
        default=None,
        help="go on to 2x, 4x ... draws, at most this many, while R-hat or ESS miss their "
        "thresholds (default: 4 x draws, for runs of at least 1600 draws in all)",
    )
    parser.add_argument(
        "--tune", type=non_negative_int, default=TUNE, help="tuning steps per chain"
    )
    parser.add_argument(
        "--chains", type=positive_int, default=4, help="NUTS chains (run in parallel)"
    )
    parser.add_argument("--sampler", choices=SAMPLERS, default="nutpie", help="NUTS implementation")
    parser.add_argument(
        "--target-accept",
        type=probability,
        default=0.9,
        help="target acceptance rate of NUTS (raise to 0.95 or 0.99 against divergences)",
    )
    parser.add_argument(
        "--combine-chains",
        choices=("auto", "pool", "stack"),
        default="auto",
        help="how the NUTS chains make one posterior: pool every draw, stack them (Bayesian "
        "stacking of chains in different modes), or auto (stack when they sit in different "
        "modes or drift)",
    )
    parser.add_argument(
        "--ci-prob",
        type=probability,
        default=0.89,
        help="credible interval probability (equal-tailed)",
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
    _add_model_options(parser)
    _add_overwrite_option(parser)
    _add_debug_option(parser, argparse.SUPPRESS)


def _add_seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed",
        type=seed,
        default=None,
        help="random seed (default: None, a fresh seed for each run, written into the "
        "command line recorded with the outputs, so the run can be repeated)",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """Settings of the estimators that every fitting command shares, with their defaults."""
    parser.add_argument(
        "--n-init",
        type=n_init,
        default="auto",
        help="EM restarts per fit (best kept): a positive integer, or auto (60 starts and "
        "split-and-merge moves on small data, as GaussianMixture(n_init='auto'))",
    )
    parser.add_argument(
        "--weights",
        metavar="COLUMN",
        help="column of frequency weights (row n counts w_n times, e.g. counts of binned or "
        "deduplicated data), left out of the features",
    )
    parser.add_argument(
        "--noise",
        action="store_true",
        help="add a uniform background component for outliers over the data's bounding box "
        "(mclust's Vinv); its weight is the summary's noise_weight row",
    )
    parser.add_argument(
        "--missing",
        choices=("error", "marginalize"),
        default="error",
        help="empty cells (NaN): error refuses them; marginalize treats them as missing at "
        "random and fits the observed entries of every row",
    )


def _add_debug_option(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="on an error, also print the traceback",
    )


def _add_bootstrap_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="add N nonparametric bootstrap replicates of the MAP-EM fit to the "
        "MAP-versus-posterior table (standard errors, percentile intervals); 0: none",
    )


def _add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty --out folder that bayesgmm did not write "
        "(a folder written by bayesgmm is always replaced whole)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesgmm`` argument parser."""
    parser = OneLineParser(
        prog="bayesgmm",
        description="Bayesian Gaussian mixtures: fit, compare, report, clusters, predict.",
        formatter_class=HelpFormatter,
    )
    _add_debug_option(parser, False)
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
    _add_bootstrap_option(fit)
    fit.add_argument(
        "--strict",
        action="store_true",
        help=f"exit with status {EXIT_DIAGNOSTICS} when the sampler checks fail "
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
            "--covariance",
            default="full",
            help=f"comma-separated covariance types out of {', '.join(covariance_types())}, "
            "e.g. full,diag, or all",
        )
        cmd.add_argument(
            "--method",
            default="nuts",
            choices=METHODS,
            help="posterior method (map: EM criteria only)",
        )
        cmd.add_argument(
            "--jobs", type=jobs, default=1, help="candidates fitted in parallel (-1: all cores)"
        )
        cmd.add_argument(
            "--prior",
            choices=("mle", "default"),
            default="mle",
            help="prior of the EM fits behind BIC/AIC/ICL: mle (their textbook definition) "
            "or default (MAP-EM)",
        )
        if name == "report":
            _add_bootstrap_option(cmd)
        cmd.set_defaults(func=func)
    clusters = sub.add_parser(
        "clusters",
        help="how many clusters (sparse finite mixture) and which points belong together",
        formatter_class=HelpFormatter,
    )
    clusters.add_argument("data", metavar="DATA", help=f"CSV file or one of {', '.join(BUNDLED)}")
    clusters.add_argument("--out", required=True, help="output folder")
    clusters.add_argument(
        "--max-components", type=positive_int, default=10, help="K_max, the most clusters"
    )
    clusters.add_argument(
        "--e0",
        default="0.01",
        help="Dirichlet parameter of the weights, fixed, or 'gamma' for e0 ~ Gamma(10, 10 K_max)",
    )
    clusters.add_argument("--draws", type=positive_int, default=2000, help="kept draws per chain")
    clusters.add_argument(
        "--burn", type=non_negative_int, default=1000, help="burn-in sweeps per chain"
    )
    clusters.add_argument("--chains", type=positive_int, default=2, help="Gibbs chains")
    clusters.add_argument("--thin", type=positive_int, default=1, help="Gibbs sweeps per kept draw")
    clusters.add_argument(
        "--loss",
        choices=("vi", "binder"),
        default="vi",
        help="loss of the point partition and distance of its credible ball",
    )
    clusters.add_argument(
        "--ci-prob",
        type=probability,
        default=0.95,
        help="probability of the partition's credible ball",
    )
    _add_seed_option(clusters)
    clusters.add_argument("--columns", help="comma-separated columns to use (default: all)")
    clusters.add_argument(
        "--scale",
        action="store_true",
        help="standardise every column (mean 0, sd 1) before fitting",
    )
    clusters.add_argument("--quiet", action="store_true", help="no progress messages")
    _add_overwrite_option(clusters)
    _add_debug_option(clusters, argparse.SUPPRESS)
    clusters.set_defaults(func=_clusters)
    demo = sub.add_parser(
        "demo",
        help="fit the bundled Old Faithful data and write figures",
        formatter_class=HelpFormatter,
    )
    demo.add_argument("--out", default="bayesgmm-demo", help="output folder")
    _add_seed_option(demo)
    demo.add_argument("--no-posterior", action="store_true", help="MAP-EM only (no NUTS)")
    demo.add_argument("--quiet", action="store_true", help="no progress messages")
    _add_overwrite_option(demo)
    _add_debug_option(demo, argparse.SUPPRESS)
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
        "--ci-prob", type=probability, default=0.89, help="credible interval probability"
    )
    predict.add_argument(
        "--max-draws", type=positive_int, default=1000, help="posterior draws used (a subset)"
    )
    predict.add_argument("--quiet", action="store_true", help="no progress messages")
    _add_overwrite_option(predict)
    _add_debug_option(predict, argparse.SUPPRESS)
    predict.set_defaults(func=_predict)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that it unwinds (and cleans up) like Ctrl-C."""


#: Signals received during this command. A library may catch the interrupt and raise its
#: own ``KeyboardInterrupt`` (a sampler cut short), or swallow it inside a C callback: the
#: record still decides the exit status, and :func:`cancel_output` keeps the output unchanged.
_SIGNALS: list[int] = []


def _on_signal(signum, frame) -> None:
    _SIGNALS.append(signum)
    cancel_output()
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line ``bayesgmm: error: ...``, exit 2."""

    def error(self, message: str):
        """Print the one-line error (pointing at ``--help``) and exit with status 2."""
        print(
            f"bayesgmm: error: {' '.join(message.split())} (see {self.prog} --help)",
            file=sys.stderr,
        )
        raise SystemExit(2)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"bayesgmm: warning: {_one_line(message)}", file=sys.stderr, flush=True)


def _fail(err: BaseException, debug: bool, prefix: str = "error") -> None:
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    print(f"bayesgmm: {prefix}: {_one_line(err)}", file=sys.stderr)


def _interrupted(err: BaseException) -> int:
    """One line and the exit status of an interrupt: 143 after SIGTERM, else 130."""
    terminated = isinstance(err, Terminated) or signal.SIGTERM in _SIGNALS
    name = "terminated" if terminated else "interrupted"
    print(f"bayesgmm: {name}; nothing written", file=sys.stderr)
    return 143 if terminated else 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesgmm`` command; returns the exit status.

    0 on success; 2 with one line ``bayesgmm: error: ...`` for bad options, bad input,
    data the models cannot fit (the library's ``ValueError``/``TypeError``, e.g.
    :class:`~bayesgmm.core.exceptions.SingularCovarianceError`) or an output folder that cannot
    be written (:class:`~bayesgmm.core.io.OutputFolderError`); 130 after Ctrl-C (SIGINT) and
    143 after SIGTERM, with one line and nothing written; 1 with one line for an
    unexpected error (a bug). ``--debug`` prints the traceback before the line.
    0 on success; 2 with one line ``bayesgmm: error: ...`` for bad input or an output
    folder that cannot be written; 3 (:data:`EXIT_DIAGNOSTICS`) from ``fit --strict`` when
    the NUTS sampler checks fail (everything is written all the same); 130 after Ctrl-C
    (SIGINT) and 143 after SIGTERM, with one line and nothing written.
    """
    _SIGNALS.clear()
    reset_output()
    try:
        previous = {
            signum: signal.signal(signum, _on_signal) for signum in (signal.SIGTERM, signal.SIGINT)
        }
    except ValueError:  # not the main thread: leave signal handling to the caller
        previous = {}
    debug = False
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            argv = sys.argv[1:] if argv is None else list(argv)
            args = build_parser().parse_args(argv)
            debug = args.debug
            if "seed" in args and args.seed is None:  # fresh entropy, made repeatable
                args.seed = secrets.randbits(32)
                argv = [*argv, "--seed", str(args.seed)]
            args.command = shlex.join(["bayesgmm", *argv])
            progress = Progress(args.quiet)
            check_output_folder(args.out, overwrite=args.overwrite)
            return args.func(args, progress)
    except (InputError, OSError, ValueError, TypeError) as err:
        if _SIGNALS:  # raised while unwinding from a signal: report the interrupt
            return _interrupted(err)
        _fail(err, debug)
        return 2
    except SystemExit as exit_:  # argparse: --help (0) or a usage error, already reported
        return exit_.code if isinstance(exit_.code, int) else 2
    except KeyboardInterrupt as err:
        return _interrupted(err)
    except Exception as err:  # a bug: still one line, the traceback behind --debug
        if _SIGNALS:  # e.g. compiled code that fails when a signal handler raises inside it
            return _interrupted(err)
        _fail(err, debug, "internal error (run with --debug for the traceback)")
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
