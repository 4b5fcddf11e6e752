"""``bayesgmm report``: the comparison plus the chosen model's analysis as Markdown/HTML
(:func:`bayesgmm.reporting.report.build_report`)."""

from __future__ import annotations

import argparse

from bayesgmm.cli.commands.compare import comparison_data, run_comparison
from bayesgmm.cli.data import InputError, label_agreement_text
from bayesgmm.cli.output import Progress
from bayesgmm.core.io import atomic_directory


def run(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.reporting.report import build_report

    if args.method == "map":
        raise InputError("report needs a posterior: use --method nuts, advi or fullrank_advi")
    data = comparison_data(args)
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        result = run_comparison(args, data, progress)
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
