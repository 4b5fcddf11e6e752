"""``bayesgmm fit``: one model; the model folder (:mod:`bayesgmm.core.persistence`), the
posterior summary, the MAP-versus-posterior table and the sampler's verdict."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bayesgmm.cli.data import SCALED_NOTE, Dataset, InputError, label_agreement_text, load_dataset
from bayesgmm.cli.options import parse_covariances, parse_ks, sampler_kwargs
from bayesgmm.cli.output import (
    EXIT_DIAGNOSTICS,
    Progress,
    verdict_text,
    wide_display,
    write_json,
)
from bayesgmm.core.io import atomic_directory, write_text_atomic


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


def run(args: argparse.Namespace, progress: Progress) -> int:
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
            **sampler_kwargs(args),
        ).fit(data.X, sample_weight=data.sample_weight)
        progress("writing results")
        _write_model(bayes, tmp, data, args)
        summary = bayes.summary(ci_prob=args.ci_prob, feature_names=data.feature_names)
        summary.to_csv(tmp / "summary.csv")
        shown = readable_summary(summary)
        diagnostics = bayes.diagnose() if args.method != "map" else None
        verdict = verdict_text(args.method, diagnostics)
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
        write_json(
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
        heading = "MAP estimate" if args.method == "map" else f"Posterior summary ({args.method})"
        if data.scaling is not None:
            heading += f" ({SCALED_NOTE[:-1].lower()})"
        with wide_display():
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
