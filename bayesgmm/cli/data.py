"""The data of a command: read a CSV file or a bundled data set, pick its columns, take out
the ``--labels`` and ``--weights`` columns, validate (:class:`InputError` names the problem),
standardise on ``--scale`` or warn about very different column scales.

NumPy and pandas load inside the functions, so that ``bayesgmm --help`` stays fast.
"""

from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bayesgmm.cli.output import one_line

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

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
            raise InputError(f"cannot read {source!r} as CSV: {one_line(err)}") from None
        return frame, path.stem
    if source in BUNDLED:
        return getattr(datasets, f"load_{source}")(as_frame=True), source
    if path.exists():
        raise InputError(f"{source!r} is not a file")
    raise InputError(f"data file {source!r} not found (bundled data sets: {', '.join(BUNDLED)})")


#: Column names pandas gives a header-less column, typically an index saved by ``to_csv``.
INDEX_COLUMN = re.compile(r"^Unnamed: \d+$")
#: Headers of a saved row index or row identifier (R's ``write.csv`` writes ``""``, which pandas
#: reads as ``Unnamed: 0``; ``rownames`` comes from R data sets exported with their names).
INDEX_HEADERS = frozenset({"", "rownames", "row.names", "row_names", "index", "id", "row"})


def is_index_column(frame: pd.DataFrame, column, position: int) -> bool:
    """Whether ``column`` looks like a saved row index or identifier, not a measurement.

    Its header is one of :data:`INDEX_HEADERS` (any case) or pandas' ``Unnamed: N``, or it
    is the first column and holds the integers 1..N or 0..N-1 in order.
    """
    import numpy as np
    import pandas as pd

    name = str(column).strip()
    if INDEX_COLUMN.match(name) or name.lower() in INDEX_HEADERS:
        return True
    if position != 0 or frame.shape[0] < 3:
        return False
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    start = values[0]
    return bool(start in (0.0, 1.0) and np.array_equal(values, start + np.arange(frame.shape[0])))


def index_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that :func:`is_index_column` takes for a row index."""
    return [c for i, c in enumerate(frame.columns) if is_index_column(frame, c, i)]


def _select_columns(frame: pd.DataFrame, columns: str | None, source: str) -> pd.DataFrame:
    """The columns to fit: those named in ``--columns``, else all but index-like columns.

    A column that looks like a saved row index or identifier (:func:`is_index_column`:
    pandas' ``Unnamed: 0``, R's ``rownames``, ``id``, or a first column 1..N) is dropped with
    a warning unless ``--columns`` names it.
    """
    if not columns:
        dropped = index_columns(frame)
        if dropped:
            warnings.warn(
                f"dropping column(s) {list(map(str, dropped))} of {source!r}: they look like a "
                "saved row index or row identifier (header-less, rownames, index, id, or the "
                "row numbers 1..N); name them in --columns to use them as features",
                UserWarning,
                stacklevel=2,
            )
        return frame.drop(columns=dropped)
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
    import pandas as pd

    from bayesgmm.core.priors import check_default_prior_data
    from bayesgmm.core.validation import check_data

    frame, name = read_frame(source)
    if frame.shape[0] == 0:
        raise InputError(f"data {source!r} has a header but no data rows")
    _check_special_columns(frame, source, columns, labels=labels, weights=weights)
    known = None
    if labels is not None:
        known = frame[labels].to_numpy()
        empty = np.flatnonzero(pd.isna(frame[labels]).to_numpy())
        if empty.size:
            raise InputError(
                f"--labels column {labels!r} of {source!r} has {empty.size} empty cell(s) "
                f"(row(s) {empty[:10].tolist()}): give every row a class, or leave out --labels"
            )
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
        raise InputError(one_line(err)) from None
    if X.shape[0] < 2 * max_components:
        raise InputError(
            f"data {source!r} has {X.shape[0]} rows, too few for K={max_components} "
            f"(need at least {2 * max_components}): use fewer components"
        )
    names = [str(c) for c in frame.columns]
    try:  # on the complete rows: all of X unless --missing marginalize
        check_default_prior_data(X, covariance_types or [])
    except ValueError as err:
        raise InputError(f"data {source!r} (columns {names}): {one_line(err)}") from None
    scaling = None
    if scale:
        mean, sd = np.nanmean(X, axis=0), np.nanstd(X, axis=0, ddof=1)
        X = (X - mean) / sd
        scaling = {"mean": mean.tolist(), "sd": sd.tolist()}
    else:
        _warn_scales(X, names)
    _warn_ties(X, names)
    return Dataset(X, names, name, known, labels, scaling, sample_weight, weights)


def _check_special_columns(
    frame: pd.DataFrame,
    source: str,
    columns: str | None,
    *,
    labels: str | None,
    weights: str | None,
) -> None:
    """``--labels`` and ``--weights`` name distinct columns of the data, not features."""
    if labels is not None and labels == weights:
        raise InputError(
            f"--labels and --weights both name column {labels!r}: a column holds either known "
            "classes or frequency weights"
        )
    wanted = {c.strip() for c in (columns or "").split(",")}
    for option, column in (("--labels", labels), ("--weights", weights)):
        if column is None:
            continue
        if column not in frame.columns:
            raise InputError(
                f"{option} column {column!r} not in {source!r}; available: "
                f"{list(map(str, frame.columns))}"
            )
        if column in wanted:
            raise InputError(
                f"column {column!r} is named by both {option} and --columns: the {option} "
                "column is left out of the features; drop it from --columns"
            )


def _weight_column(frame: pd.DataFrame, column: str, source: str):
    """The validated ``--weights`` column and the frame without it."""
    import numpy as np
    import pandas as pd

    from bayesgmm.core.weights import check_sample_weight

    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    text = np.flatnonzero(np.isnan(values) & ~pd.isna(raw).to_numpy())
    if text.size:
        raise InputError(
            f"--weights column {column!r} of {source!r} is not numeric: row {int(text[0])} "
            f"holds {str(raw.iloc[text[0]])!r} ({text.size} non-numeric cell(s)); give a "
            "number per row"
        )
    try:
        weights = check_sample_weight(values, frame.shape[0])
    except ValueError as err:
        raise InputError(f"--weights column {column!r}: {one_line(err)}") from None
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


#: Share of the rows above which one repeated value marks a column as heavily rounded.
TIE_SHARE = 0.10


def _warn_ties(X: np.ndarray, names: list[str]) -> None:
    """Warn about columns whose values are heavily rounded: one value in 10% of the rows or more.

    A Gaussian component can collapse onto such ties (a near-zero variance on the repeated
    value), e.g. MASS geyser's durations, 53 of 299 exactly 4.0.
    """
    import numpy as np

    if X.shape[0] < 20:
        return
    for j, name in enumerate(names):
        column = X[:, j][~np.isnan(X[:, j])]
        if column.size == 0:
            continue
        values, counts = np.unique(column, return_counts=True)
        top = int(counts.argmax())
        if counts[top] >= TIE_SHARE * column.size and values.size > 2:
            print(
                f"bayesgmm: warning: column {name!r} is heavily rounded: {values[top]:g} occurs "
                f"{counts[top]} times ({counts[top] / column.size:.0%} of the rows); components "
                "can collapse onto such ties (check the clusters, or use fewer components)",
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
