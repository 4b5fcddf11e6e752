"""``bayesgmm predict``: assign new rows with a saved fit (:func:`bayesgmm.load`); the
estimator gives the assignment probabilities and their credible intervals."""

from __future__ import annotations

import argparse

from bayesgmm.cli.data import InputError, is_index_column, read_frame
from bayesgmm.cli.output import FLOAT_FORMAT, Progress, one_line
from bayesgmm.core.io import atomic_directory


def identifier_columns(frame, features: list[str], taken) -> list[str]:
    """The input's columns that identify its rows (kept in predictions.csv, in front).

    Columns that are not features and either look like a row index or identifier
    (:func:`bayesgmm.cli.data.is_index_column`) or hold text (names, labels); none whose
    name the predictions use.
    """
    from pandas.api.types import is_numeric_dtype

    return [
        c
        for i, c in enumerate(frame.columns)
        if c not in features
        and str(c) not in taken
        and str(c) != "row"
        and (is_index_column(frame, c, i) or not is_numeric_dtype(frame[c]))
    ]


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
    if frame.shape[0] == 0:
        raise InputError(f"data {args.data!r} has a header but no data rows")
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
    kept = identifier_columns(frame, columns, table.columns)
    written = pd.concat([frame[kept].set_axis(table.index), table], axis=1)
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        written.to_csv(tmp / "predictions.csv", index_label="row", float_format=FLOAT_FORMAT)
    counts = table["component"].value_counts().sort_index()
    per_component = ", ".join(f"component {k}: {n}" for k, n in counts.items())
    if getattr(model, "method", None) == "map":  # one point, no draws: intervals of width 0
        doubt = int((table["prob"] < 0.9).sum())
        detail = (
            f"{doubt} with a probability below 0.9 (a MAP fit: point probabilities, no "
            "intervals; fit with --method nuts for them)"
        )
    else:
        uncertain = int((table["prob_lower"] < 0.5).sum())
        detail = (
            f"{uncertain} uncertain (the {args.ci_prob:.0%} interval of their probability "
            "reaches below 0.5)"
        )
    print(f"{X.shape[0]} rows assigned ({per_component}); {detail}")
    progress(f"written to {args.out}/predictions.csv")
    return 0
