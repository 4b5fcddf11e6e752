"""``bayesgmm compare``: candidate K and covariance structures ranked by LOO and
BIC/AIC/ICL (:func:`bayesgmm.selection.compare.compare`); ``report`` runs the same comparison."""

from __future__ import annotations

import argparse
import warnings

from bayesgmm.cli.data import Dataset, label_agreement_text, load_dataset
from bayesgmm.cli.options import max_k, parse_covariances, parse_ks, sampler_kwargs
from bayesgmm.cli.output import Progress, one_line, write_figure
from bayesgmm.core.exceptions import UnreliableLOOWarning
from bayesgmm.core.io import atomic_directory, write_text_atomic


def run_comparison(args: argparse.Namespace, data: Dataset, progress: Progress):
    from bayesgmm.selection.compare import compare

    settings = sampler_kwargs(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = compare(
            data.X,
            parse_ks(args.k),
            parse_covariances(args.covariance, args.method),
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
        if issubclass(warning.category, UnreliableLOOWarning):
            progress(f"warning: {one_line(warning.message)}")
    return result


def comparison_data(args: argparse.Namespace) -> Dataset:
    """The data of ``compare`` and ``report``: enough rows for the largest K, checked for
    every covariance structure asked for."""
    return load_dataset(
        args.data,
        args.columns,
        max_k(args.k),
        parse_covariances(args.covariance, args.method),
        labels=args.labels,
        scale=args.scale,
        weights=args.weights,
        missing=args.missing,
    )


def run(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.reporting import plots
    from bayesgmm.reporting.report import markdown_table

    data = comparison_data(args)
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        result = run_comparison(args, data, progress)
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
            *agreement_lines(data, result),
            "```",
            args.command,
            "```",
        ]
        write_text_atomic(tmp / "comparison.md", "\n".join(lines) + "\n")
        write_figure(
            tmp / "bic_by_model.png",
            lambda: plots.plot_bic_models(result, title=f"{data.name}: BIC by model"),
        )
        if result.method != "map":
            write_figure(
                tmp / "loo_comparison.png", lambda: plots.plot_loo_comparison(result.table)
            )
        print(result)
    progress(f"written to {args.out}/")
    return 0


def agreement_lines(data: Dataset, result) -> list[str]:
    from bayesgmm.reporting.report import markdown_table

    if data.labels is None:
        return []
    text, table = label_agreement_text(data, result.best.em.predict(data.X))
    print(f"{text}\n{table.to_string()}")
    return [f"{text} (EM fit of {result.recommended}.)", "", markdown_table(table), ""]
