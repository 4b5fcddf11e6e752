"""BIC by model: one line per covariance model against the number of components K.

The one BIC-by-model figure of bayesgmm: ``bayesgmm compare`` writes it as
``bic_by_model.png``, ``bayesgmm report`` embeds it, and :func:`plot_bic_models` draws it from
Python (``plot_bic_models(compare(X, range(1, 10), "all", method="map"))``).

Layout: mclust's ``plot(mclustBIC(X))`` -- one line per model against K with mclust's
plotting symbol (``mclust.options("bicPlotSymbols")``), empty cells (no non-singular fit)
left as gaps -- but with fourteen clearly different colours (:data:`MODEL_COLORS`: EII grey
and VII black as in mclust, the other twelve from a qualitative palette instead of mclust's
green-blue-red ramp, whose neighbours are hard to tell apart) and a line style per
orientation: dotted for the spherical models (EII, VII), dashed for the diagonal ones
(``**I``), dash-dot for equal orientation (``**E``), solid for varying orientation (``**V``).
The legend sits outside the axes, the chosen cell is circled, and where the poor models
stretch the axis (as EII and the diagonal models on crabs) a second panel zooms on the cells
near the best.

Sign: BIC as in :attr:`bayesgmm.selection.compare.ModelComparison.table` and the table that
``compare`` prints, scikit-learn's ``-2 log L + p log n``: **lower is better**. mclust plots
the same numbers with the opposite sign (``2 log L - p log n``, higher is better), so this
figure is mclust's upside down: its best cell is the lowest point, not the highest.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayesgmm.core.covariance import MCLUST_ALIASES

#: R's plotting symbol (``pch``) of each model, as ``(matplotlib marker, filled)``, in mclust's
#: legend order (:data:`MCLUST_ORDER`).
MARKERS: dict[str, tuple[str, bool]] = {
    "EII": ("^", True),  # 17
    "VII": ("^", False),  # 2
    "EEI": ("o", True),  # 16
    "EVI": ("$\u2295$", False),  # 10: circle plus
    "VEI": ("$\u2297$", False),  # 13: circle times
    "VVI": ("o", False),  # 1
    "EEE": ("s", True),  # 15
    "VEE": ("*", True),  # 8
    "EVE": ("D", False),  # 5
    "VVE": ("P", False),  # 9: diamond plus
    "EEV": ("$\u229e$", False),  # 12: square plus
    "VEV": ("$\u22a0$", False),  # 7: square times
    "EVV": ("X", False),  # 14: square and triangle
    "VVV": ("s", False),  # 0
}
#: mclust's fourteen models in its legend order (``bicPlotColors``; EVI before VEI, unlike
#: the registry's :data:`~bayesgmm.core.covariance.MCLUST_MODELS`).
MCLUST_ORDER: tuple[str, ...] = tuple(MARKERS)
#: Line style by orientation: spherical, diagonal (``I``), equal (``E``), varying (``V``).
ORIENTATION_LINESTYLES: dict[str, str] = {
    "spherical": ":",
    "I": "--",
    "E": "-.",
    "V": "-",
}
#: The classic structures' names in mclust's terms (the registry's aliases, inverted).
CLASSIC_NAMES: dict[str, str] = {name: alias for alias, name in MCLUST_ALIASES.items()}
#: Criteria for which lower is better (the others, ``elpd_loo``: higher is better).
LOWER_IS_BETTER: tuple[str, ...] = ("bic", "aic", "icl")
#: The y-axis label of the BIC figure: the sign of the comparison table.
BIC_LABEL = "BIC = -2 log L + p log n (lower is better)"
_FALLBACK_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">")
_FALLBACK_LINESTYLES = ("-", "--", "-.", ":")


#: Each model's colour: EII grey and VII black (mclust's), then one colour per model, chosen
#: so that the models sharing a line style (:data:`ORIENTATION_LINESTYLES`) differ most.
MODEL_COLORS: dict[str, str] = {
    "EII": "#808080",
    "VII": "#000000",
    "EEI": "#1f77b4",
    "EVI": "#ff7f0e",
    "VEI": "#2ca02c",
    "VVI": "#9467bd",
    "EEE": "#8c564b",
    "VEE": "#e377c2",
    "EVE": "#bcbd22",
    "VVE": "#17becf",
    "EEV": "#000080",
    "VEV": "#b8860b",
    "EVV": "#006400",
    "VVV": "#d62728",
}
#: Share of the BIC range above the best cell that the zoom panel shows.
ZOOM_SHARE = 0.15
#: The zoom panel is drawn when at least this share of the cells lies outside it and at
#: least this many models have a cell inside it (fewer lines are told apart without it).
ZOOM_WHEN_OUTSIDE = 0.25
ZOOM_MIN_MODELS = 5


def model_colors() -> dict[str, str]:
    """The colour of each of mclust's models (:data:`MODEL_COLORS`), in :data:`MCLUST_ORDER`."""
    return {name: MODEL_COLORS[name] for name in MCLUST_ORDER}


def _mclust_name(name: str) -> str:
    return CLASSIC_NAMES.get(name, name)


def model_styles(names) -> dict[str, dict]:
    """Line styles of the models ``names``, one distinct style each.

    Parameters
    ----------
    names : iterable of str
        Covariance structures, by mclust's name or the classic one (``full`` is VVV,
        ``tied`` EEE, ``diag`` VVI, ``spherical`` VII).

    Returns
    -------
    dict of str to dict
        Keyword arguments of ``Axes.plot`` (``color``, ``marker``, ``ls``, ``mfc``, ``mec``)
        by name: :data:`MODEL_COLORS`, mclust's symbol and a line style by orientation
        (:data:`ORIENTATION_LINESTYLES`); a name outside mclust's fourteen gets the default
        colour cycle with a marker and line style of its own.
    """
    colors = model_colors()
    styles: dict[str, dict] = {}
    others = 0
    for name in names:
        key = _mclust_name(name)
        if key in MARKERS:
            color = colors[key]
            marker, filled = MARKERS[key]
            orientation = "spherical" if key[1] == "I" else key[2]
            ls = ORIENTATION_LINESTYLES[orientation]
        else:
            color = f"C{others % 10}"
            marker, filled = _FALLBACK_MARKERS[others % len(_FALLBACK_MARKERS)], True
            ls = _FALLBACK_LINESTYLES[(others // 10) % len(_FALLBACK_LINESTYLES)]
            others += 1
        styles[name] = {
            "color": color,
            "marker": marker,
            "ls": ls,
            "mfc": color if filled else "none",
            "mec": color,
        }
    return styles


def _model_order(names) -> list[str]:
    """``names`` in mclust's legend order; other names after them, as given."""

    def position(name: str) -> int:
        key = _mclust_name(name)
        return MCLUST_ORDER.index(key) if key in MCLUST_ORDER else len(MCLUST_ORDER)

    return sorted(names, key=position)


def bic_by_model(table: pd.DataFrame, *, mclust_sign: bool = False) -> pd.DataFrame:
    """A comparison table as mclust's BIC table: index K, one column per model.

    Parameters
    ----------
    table : DataFrame
        :attr:`bayesgmm.selection.compare.ModelComparison.table` (columns ``n_components``,
        ``covariance_type`` and ``bic``; scikit-learn's sign, lower is better).
    mclust_sign : bool, default=False
        Return mclust's sign, ``-bic`` (``2 log L - p log n``, higher is better), to set
        beside R's ``mclustBIC``; by default the table's own sign.

    Returns
    -------
    DataFrame
        The BIC, index K (named ``K``), columns the models in the table's order; NaN where
        the table has no row.
    """
    wide = criterion_by_model(table, "bic")
    return -wide if mclust_sign else wide


def criterion_by_model(table: pd.DataFrame, criterion: str) -> pd.DataFrame:
    """The column ``criterion`` of a comparison table as a K x model frame.

    Parameters
    ----------
    table : DataFrame
        :attr:`bayesgmm.selection.compare.ModelComparison.table`.
    criterion : str
        Its column to spread (``bic``, ``aic``, ``icl``, ``elpd_loo``).

    Returns
    -------
    DataFrame
        Index K (named ``K``), columns the models in the table's order; NaN where the
        table has no row or no value.
    """
    missing = {"n_components", "covariance_type", criterion} - set(table.columns)
    if missing:
        raise ValueError(
            f"the comparison table lacks the column(s) {sorted(missing)}; pass "
            f"ModelComparison.table (columns n_components, covariance_type, {criterion})"
        )
    wide = table.pivot_table(
        index="n_components",
        columns="covariance_type",
        values=criterion,
        aggfunc="first",
        dropna=False,
    )
    wide = wide.reindex(columns=list(dict.fromkeys(table["covariance_type"])))
    wide.index.name = "K"
    wide.columns.name = None
    return wide.astype(float)


def _chosen_cell(chosen, table: pd.DataFrame | None) -> tuple[int, str]:
    """``chosen`` (a row label ``"K=<k> <model>"`` or a pair ``(k, model)``) as ``(k, model)``."""
    if isinstance(chosen, tuple):
        k, model = chosen
        return int(k), str(model)
    if table is not None and chosen in table.index:
        row = table.loc[chosen]
        return int(row["n_components"]), str(row["covariance_type"])
    match = re.fullmatch(r"K=(\d+) (\S+)", str(chosen))
    if match is None:
        raise ValueError(
            f"chosen={chosen!r} is neither a row of the table nor 'K=<k> <model>' nor (k, model)"
        )
    return int(match[1]), match[2]


def plot_by_model(
    wide: pd.DataFrame,
    *,
    label: str,
    lower_is_better: bool = True,
    chosen: tuple[int, str] | None = None,
    chosen_label: str = "chosen",
    best_label: str = "best",
    title: str | None = None,
) -> Figure:
    """A criterion against K, one line per model, in mclust's layout (see the module docstring).

    Parameters
    ----------
    wide : DataFrame
        Index K, one column per model (see :func:`bic_by_model`); NaN cells are gaps.
    label : str
        The y-axis label; it should say which way is better.
    lower_is_better : bool, default=True
        Which cell is the best: the lowest (BIC, AIC, ICL) or the highest (elpd).
    chosen : (int, str), optional
        The cell ``(K, model)`` a comparison chose, circled; by default the best cell. When
        it is not the best cell, the best one is marked by a square as well.
    chosen_label : str, default="chosen"
        What the circle stands for, in the legend and the title.
    best_label : str, default="best"
        What the best cell's mark stands for.
    title : str, optional
        First line of the title; the second names the chosen cell.

    Returns
    -------
    Figure
        Lines with :func:`model_styles`, legend outside the axes on the right; a second
        panel, the same lines zoomed on the cells near the best, where many models crowd
        there and other cells stretch the axis (see :func:`_zoom_limits`).
    """
    values = wide.to_numpy(float)
    if wide.empty or not np.isfinite(values).any():
        raise ValueError("the table has no finite value to draw")
    stacked = wide.stack()
    best = stacked.idxmin() if lower_is_better else stacked.idxmax()
    best = (int(best[0]), str(best[1]))
    if chosen is None:
        chosen, chosen_label = best, best_label
    chosen = (int(chosen[0]), str(chosen[1]))
    if chosen[1] not in wide.columns or chosen[0] not in wide.index:
        raise ValueError(f"the chosen cell K={chosen[0]} {chosen[1]} is not in the table")
    order = _model_order(list(wide.columns))
    styles = model_styles(order)
    zoom = _zoom_limits(values, lower_is_better)
    fig = Figure(figsize=(9.0 if zoom is None else 14.0, 5.6), layout="constrained")
    axes = fig.subplots(1, 1 if zoom is None else 2, squeeze=False)[0]
    marks = [(chosen, "o", chosen_label)]
    if best != chosen:
        marks.append((best, "s", best_label))
    ks = np.asarray(wide.index, dtype=float)
    for ax in axes:
        for name in order:
            key = _mclust_name(name)
            ax.plot(
                ks,
                wide[name].to_numpy(float),
                lw=1.3,
                ms=7,
                label=name if key == name else f"{name} ({key})",
                **styles[name],
            )
        for (k, model), marker, what in marks:
            value = float(wide.loc[k, model])
            ax.plot(k, value, marker, ms=18, mfc="none", mec="k", mew=1.5, label="_" + what)
        ax.set_xticks(ks)
        ax.set(xlabel="number of components K", ylabel=label)
        ax.grid(alpha=0.3)
    (k, model), what = chosen, marks[0][2]
    key = _mclust_name(model)
    named = model if key == model else f"{model} ({key})"
    axes[0].set_title(f"{title or 'BIC by model'}\n{what}: {named}, K={k} (circled)")
    if zoom is not None:
        axes[1].set_ylim(*zoom)
        axes[1].set_title(
            f"zoom: the cells within {abs(zoom[1] - zoom[0]) / 1.05:.3g} of the "
            f"{'lowest' if lower_is_better else 'highest'}"
        )
    handles = [
        Line2D([], [], ls="", marker=marker, ms=12, mfc="none", mec="k", mew=1.5, label=what)
        for _, marker, what in marks
    ]
    model_handles, _ = axes[0].get_legend_handles_labels()
    fig.legend(
        handles=[*model_handles, *handles],
        loc="outside right upper",
        fontsize="small",
        frameon=False,
        title="model",
    )
    return fig


def _zoom_limits(values: np.ndarray, lower_is_better: bool) -> tuple[float, float] | None:
    """y-limits of a zoom on the cells within :data:`ZOOM_SHARE` of the range from the best.

    Parameters
    ----------
    values : ndarray of shape (n_k, n_models)
    lower_is_better : bool

    Returns
    -------
    (float, float) or None
        None unless the zoom helps: at least :data:`ZOOM_WHEN_OUTSIDE` of the cells lie
        outside it and at least :data:`ZOOM_MIN_MODELS` models have a cell inside it.
    """
    signed = values if lower_is_better else -values
    finite = signed[np.isfinite(signed)]
    low, span = finite.min(), np.ptp(finite)
    window = ZOOM_SHARE * span
    with np.errstate(invalid="ignore"):
        near = signed <= low + window
    models_near = int(near.any(axis=0).sum())
    if span == 0 or np.mean(finite > low + window) < ZOOM_WHEN_OUTSIDE:
        return None
    if models_near < ZOOM_MIN_MODELS:
        return None
    pad = 0.05 * window
    limits = (low - pad, low + window)
    return limits if lower_is_better else (-limits[1], -limits[0])


def _as_bic_table(bic, mclust_sign: bool | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``bic`` (see :func:`plot_bic_models`) as a K x model frame in the table's sign."""
    if hasattr(bic, "sklearn_bic"):  # mclust_table.BICTable
        return bic.sklearn_bic(), None
    table = getattr(bic, "table", bic)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            "plot_bic_models takes a ModelComparison, its table, a BICTable or a K x model "
            f"DataFrame, got {type(bic).__name__}"
        )
    if {"n_components", "covariance_type", "bic"} <= set(table.columns):
        return bic_by_model(table), table
    if mclust_sign is None:
        raise ValueError(
            "a K x model BIC frame does not say its sign: pass mclust_sign=True for mclust's "
            "(2 log L - p log n, higher is better, e.g. BICTable.bic) or mclust_sign=False for "
            "scikit-learn's (lower is better), or pass the BICTable or the comparison itself"
        )
    return (-table if mclust_sign else table), None


def plot_bic_models(
    bic,
    *,
    title: str | None = None,
    chosen: str | tuple[int, str] | None = None,
    mclust_sign: bool | None = None,
) -> Figure:
    """BIC against K, one line per covariance model, lower is better (see the module docstring).

    The figure of ``bayesgmm compare`` (``bic_by_model.png``) and of the report. Its values
    are the comparison table's ``bic`` column, in the table's sign (scikit-learn's,
    ``-2 log L + p log n``, lower is better); mclust's own plot shows their negatives
    (higher is better), so the best cell is the lowest point here and the highest there.

    Parameters
    ----------
    bic : ModelComparison, DataFrame or BICTable
        The result of :func:`bayesgmm.selection.compare.compare` (its recommended candidate is
        circled), its ``table``, a :class:`bayesgmm.em.mclust_table.BICTable`, or a K x model
        frame (then ``mclust_sign`` must say its sign). Models are named as mclust (``full``
        is drawn as VVV, ``tied`` EEE, ``diag`` VVI, ``spherical`` VII); other names get the
        default colour cycle.
    title : str, optional
        First line of the title (default "BIC by model").
    chosen : str or (int, str), optional
        The candidate to circle, a row label (``"K=4 EEV"``) or ``(K, model)``; by default
        the comparison's recommended candidate, or the lowest BIC. A chosen cell that is not
        the lowest BIC (a LOO pick) gets the lowest BIC squared beside it.
    mclust_sign : bool, optional
        Only for a K x model frame: True if it holds mclust's BIC (``BICTable.bic``), which
        is negated before drawing, False if it holds scikit-learn's.

    Returns
    -------
    Figure
    """
    wide, table = _as_bic_table(bic, mclust_sign)
    chosen_label = "chosen"
    if chosen is None and hasattr(bic, "recommended"):
        chosen, chosen_label = bic.recommended, "recommended"
    cell = None if chosen is None else _chosen_cell(chosen, table)
    return plot_by_model(
        wide,
        label=BIC_LABEL,
        chosen=cell,
        chosen_label=chosen_label,
        best_label="lowest BIC",
        title=title,
    )


def criterion_label(criterion: str) -> str:
    """The y-axis label of ``criterion``, saying which way is better."""
    if criterion == "bic":
        return BIC_LABEL
    if criterion in LOWER_IS_BETTER:
        return f"{criterion.upper()} (lower is better)"
    return f"{criterion} (higher is better)"


__all__ = [
    "BIC_LABEL",
    "CLASSIC_NAMES",
    "MARKERS",
    "MCLUST_ORDER",
    "MODEL_COLORS",
    "ORIENTATION_LINESTYLES",
    "bic_by_model",
    "criterion_by_model",
    "criterion_label",
    "model_colors",
    "model_styles",
    "plot_bic_models",
    "plot_by_model",
]
