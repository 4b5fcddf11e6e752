"""``bayesgmm predict``: assign new rows with a saved fit (:func:`bayesgmm.load`); the
estimator gives the assignment probabilities and their credible intervals."""

from __future__ import annotations

import argparse

from bayesgmm.cli.data import InputError, read_frame
from bayesgmm.cli.output import Progress, one_line
from bayesgmm.core.io import atomic_directory


def run(args: argparse.Namespace, progress: Progress) -> int:
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
        raise InputError(one_line(err)) from None
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
