"""``bayesgmm fit``: one model; the model folder (:mod:`bayesgmm.core.persistence`), the
posterior summary, the MAP-versus-posterior table and the sampler's verdict."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from bayesgmm.cli.data import SCALED_NOTE, Dataset, InputError, label_agreement_text, load_dataset
from bayesgmm.cli.options import parse_covariances, parse_ks, sampler_kwargs
from bayesgmm.cli.output import (
    EXIT_DIAGNOSTICS,
    FLOAT_FORMAT,
    Progress,
    verdict_text,
    wide_display,
    write_figure,
    write_json,
)
from bayesgmm.core.exceptions import UnreliablePosteriorWarning
from bayesgmm.core.io import atomic_directory, write_text_atomic


def _data_record(args: argparse.Namespace, data: Dataset) -> dict:
    """What the saved model and params.json record of the data: source, columns, rows, weights."""
    return {
        "source": args.data,
        "columns": data.feature_names,
        "n_samples": data.X.shape[0],
        "weights": data.weight_name,
    }


def _noise_record(bayes) -> dict | None:
    """The noise component of a fit for params.json (``None`` without one)."""
    if not bayes.noise:
        return None
    from bayesgmm.posterior.summaries import posterior_mean_noise_weight

    return {
        "volume": bayes.spec_.noise.volume,
        "map_weight": bayes.map_noise_weight_,
        "posterior_mean_weight": posterior_mean_noise_weight(bayes.idata_.posterior.to_dataset()),
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
    metadata = {"command": args.command, "data": _data_record(args, data)}
    write_model(bayes, folder, input_scaling=scaling, metadata=metadata)


#: Rows per call of ``assignment_summary`` for assignments.csv (memory: draws x rows x K).
ASSIGNMENT_BLOCK = 2000
#: Draws behind assignments.csv's probabilities and intervals (a seeded subset).
ASSIGNMENT_DRAWS = 1000


def _method_label(asked: str, ran: str) -> str:
    """The method in headings: ``"gibbs (auto)"`` when ``--method auto`` chose it."""
    return f"{ran} (auto)" if asked == "auto" else ran


def _assignments(bayes, X, ci_prob: float, method: str):
    """Each row's most probable component and its probabilities (assignments.csv): with their
    ``ci_prob`` intervals over the posterior draws; a MAP fit has no intervals."""
    import pandas as pd

    blocks = [
        bayes.assignment_summary(
            X[start : start + ASSIGNMENT_BLOCK],
            ci_prob=ci_prob,
            max_draws=ASSIGNMENT_DRAWS,
            random_state=0,  # the same draws for every block
        )
        for start in range(0, X.shape[0], ASSIGNMENT_BLOCK)
    ]
    table = pd.concat(blocks, ignore_index=True).rename_axis("row")
    if method == "map":
        table = table.drop(columns=[c for c in table.columns if c.endswith(("_lower", "_upper"))])
    return table


#: Posterior draws whose ellipses (or densities) the fit's figure shows.
FIGURE_DRAWS = 40


def _fit_figure(bayes, data: Dataset, ci_prob: float):
    """The fit at a glance: the data with the MAP's and posterior draws' 2-sd ellipses
    (clusters.png, two features or more), or the histogram with the MAP density and the
    posterior-predictive band (density.png, one feature)."""
    import numpy as np

    from bayesgmm.posterior.summaries import data_grid, marginal_density, marginal_density_band
    from bayesgmm.reporting.plots import plot_density, plot_ellipses

    posterior = bayes.idata_.posterior.to_dataset()
    point = bayes.map_
    X = data.X[~np.isnan(data.X).any(axis=1)]  # the complete rows
    if data.X.shape[1] == 1:
        grid = data_grid(X)
        full = point.full_covariances()
        return plot_density(
            X,
            grid,
            marginal_density(grid, point.weights, point.means, full),
            marginal_density_band(grid, posterior, ci_prob=ci_prob, max_draws=500),
            feature_names=data.feature_names,
            ci_prob=ci_prob,
        )
    stacked = posterior.stack(sample=("chain", "draw"))
    size = stacked.sizes["sample"]
    chosen = np.unique(np.linspace(0, size - 1, min(FIGURE_DRAWS, size)).astype(int))
    return plot_ellipses(
        X,
        point.means,
        point.full_covariances(),
        stacked["means"].transpose("sample", "component", "feature").to_numpy()[chosen],
        stacked["covariances"].transpose("sample", "component", ...).to_numpy()[chosen],
        feature_names=data.feature_names,
        map_weights=point.weights,
    )


SUMMARY_NAMES = {"w": "weights", "mu": "means", "Sigma": "covariances"}


def _bootstrap_table(bayes, bootstrap, data: Dataset, ci_prob: float):
    """A MAP fit's bootstrap (``--method map --bootstrap N``): per free parameter the MAP
    estimate, the bootstrap standard error and percentile interval, labelled as summary.csv."""
    import warnings

    from bayesgmm.posterior.summaries import map_vs_posterior

    with warnings.catch_warnings():  # the MAP "posterior" is one draw: no sd, no interval
        warnings.simplefilter("ignore", RuntimeWarning)
        table = map_vs_posterior(
            bayes.idata_.posterior.to_dataset(),
            bayes.map_,
            ci_prob=ci_prob,
            feature_names=data.feature_names,
            bootstrap=bootstrap,
        )
    return table[["kind", "parameter", "map", "boot_se", "boot_lower", "boot_upper"]]


def _summary_names(table):
    """``table`` with summary.csv's parameter names (``weights[0]``, ``means[0, x]``,
    ``covariances[0, x, y]``) for the MAP-versus-posterior table's ``w``, ``mu``, ``Sigma``."""
    table = table.copy()
    table["parameter"] = table["parameter"].str.replace(
        r"^(w|mu|Sigma)\[", lambda m: SUMMARY_NAMES[m.group(1)] + "[", regex=True
    )
    return table


def run(args: argparse.Namespace, progress: Progress) -> int:
    import numpy as np

    from bayesgmm.bayes.estimator import BayesianGaussianMixture
    from bayesgmm.posterior.summaries import map_vs_posterior, posterior_mean_params
    from bayesgmm.reporting.report import markdown_table, readable_summary, software_versions

    ks = parse_ks(args.k)
    if len(ks) != 1:
        raise InputError(f"fit needs one number of components, got --k {args.k!r}")
    k = ks[0]
    (cov,) = parse_covariances(args.covariance, args.method)
    if args.prior == "mle" and args.method != "map":
        raise InputError(
            f"--prior mle (flat, improper) only works with --method map, got --method "
            f"{args.method}: use --prior default for a posterior"
        )
    if args.prior == "hierarchical" and (cov != "full" or args.noise):
        raise InputError(
            f"--prior hierarchical (learned covariance scale, Malsiner-Walli et al. 2016) is "
            f"defined for --covariance full without --noise, got --covariance {cov}"
            + (" --noise" if args.noise else "")
            + ": use --prior default"
        )
    if args.bootstrap and args.noise:
        raise InputError(
            "--bootstrap cannot be combined with --noise yet (the bootstrap's replicates are "
            "weighted refits, which a noise component does not take): leave out one of them"
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
    if args.bootstrap and np.isnan(data.X).any():
        raise InputError(
            f"--bootstrap cannot be combined with the empty cells of {args.data!r} (--missing "
            "marginalize) yet: its replicates are weighted refits, which missing entries do not "
            "take; leave out --bootstrap, or drop the rows with empty cells"
        )
    written = ["model.json", "posterior.zarr", "params.json", "summary.csv", "summary.md"]
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        progress(
            f"fitting K={k} {cov} to {data.name} ({data.X.shape[0]} x {data.X.shape[1]}) "
            f"by {args.method}"
        )
        # the verdict is printed first and written to summary.md: no warning as well
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnreliablePosteriorWarning)
            bayes = BayesianGaussianMixture(
                k,
                covariance_type=cov,
                prior=None if args.prior == "mle" else args.prior,
                em_n_init=args.n_init,
                method=args.method,
                sampler=args.sampler,
                random_state=args.seed,
                progressbar=not args.quiet,
                noise=args.noise,
                missing=args.missing,
                max_draws=args.max_draws,
                **sampler_kwargs(args),
            ).fit(data.X, sample_weight=data.sample_weight)
        progress("writing results")
        method = bayes.method_  # --method auto: the method it chose
        _write_model(bayes, tmp, data, args)
        _assignments(bayes, data.X, args.ci_prob, method).to_csv(
            tmp / "assignments.csv", float_format=FLOAT_FORMAT
        )
        written.append("assignments.csv")
        figure = "clusters.png" if data.X.shape[1] >= 2 else "density.png"
        write_figure(tmp / figure, lambda: _fit_figure(bayes, data, args.ci_prob))
        if (tmp / figure).exists():
            written.append(figure)
        summary = bayes.summary(ci_prob=args.ci_prob, feature_names=data.feature_names)
        summary.to_csv(tmp / "summary.csv")
        shown = readable_summary(summary)
        diagnostics = bayes.diagnose() if method != "map" else None
        verdict = verdict_text(method, diagnostics)
        label = _method_label(args.method, method)
        text = [f"# {data.name}: K={k} {cov}, {label}", "", verdict, ""]
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
            written.append("labels_vs_clusters.csv")
        bootstrap = None
        if args.bootstrap:
            progress(f"bootstrapping the MAP-EM fit ({args.bootstrap} replicates)")
            bootstrap = bayes.em_.bootstrap(
                data.X,
                n_boot=args.bootstrap,
                random_state=args.seed,
                sample_weight=data.sample_weight,
            )
        if method == "map" and bootstrap is not None:
            written.append("bootstrap.csv")
            _summary_names(_bootstrap_table(bayes, bootstrap, data, args.ci_prob)).to_csv(
                tmp / "bootstrap.csv", index=False
            )
        if method != "map":
            written.append("map_vs_posterior.csv")
            table = map_vs_posterior(
                bayes.idata_.posterior.to_dataset(),
                bayes.map_,
                ci_prob=args.ci_prob,
                feature_names=data.feature_names,
                bootstrap=bootstrap,
                noise_weight=getattr(bayes, "map_noise_weight_", None),
            )
            _summary_names(table).to_csv(tmp / "map_vs_posterior.csv", index=False)
        write_text_atomic(tmp / "summary.md", "\n".join(text) + "\n")
        write_json(
            tmp / "params.json",
            {
                "command": args.command,
                "data": _data_record(args, data),
                "n_components": k,
                "covariance_type": cov,
                "method": method,
                **({"method_choice": bayes.method_choice_} if args.method == "auto" else {}),
                "scaling": data.scaling,
                "map": bayes.map_.to_dict(),
                "posterior_mean": posterior_mean_params(
                    bayes.idata_.posterior.to_dataset()
                ).to_dict(),
                "noise": _noise_record(bayes),
                "versions": software_versions(),
            },
        )
        print(verdict)
        if diagnostics is not None:
            print(f"\n{diagnostics}")
        heading = "MAP estimate" if method == "map" else f"Posterior summary ({label})"
        if data.scaling is not None:
            heading += f" ({SCALED_NOTE[:-1].lower()})"
        with wide_display():
            print(f"\n{heading}:\n{shown.drop(columns='kind').to_string()}")
            if agreement is not None:
                print(f"\n{agreement[0]}\n{agreement[1].to_string()}")
    progress(f"written to {args.out}/ ({', '.join(written)})")
    if args.strict and diagnostics is not None and not diagnostics.ok:
        print(
            f"bayesgmm: sampler checks failed (--strict): exit status {EXIT_DIAGNOSTICS}",
            file=sys.stderr,
        )
        return EXIT_DIAGNOSTICS
    return 0
