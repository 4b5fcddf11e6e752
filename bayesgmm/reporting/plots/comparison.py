"""Model-comparison figures: LOO elpd by model and a criterion by K."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bayesgmm.reporting.plots._style import FLAG_COLOR
from bayesgmm.reporting.plots.bic_models import (
    LOWER_IS_BETTER,
    criterion_by_model,
    criterion_label,
    plot_bic_models,
    plot_by_model,
)


def _loo_flags(row: pd.Series, high_k_share: float) -> list[str]:
    flags = []
    n_obs = sum(float(row.get(c, 0) or 0) for c in ("k_ok", "k_high", "k_very_high"))
    high = float(row.get("k_high", 0) or 0) + float(row.get("k_very_high", 0) or 0)
    if high and n_obs and high / n_obs > high_k_share:
        flags.append(f"{int(high)} high Pareto k")
    elif high:
        flags.append(f"{int(high)} high k")
    sampler_ok = row.get("sampler_ok")
    if sampler_ok is not None and not pd.isna(sampler_ok) and not bool(sampler_ok):
        flags.append("sampler checks failed")
    return flags


def plot_loo_comparison(table: pd.DataFrame, *, high_k_share: float = 0.05) -> Figure:
    """ELPD of every candidate with its standard error, flagged candidates marked.

    Parameters
    ----------
    table : DataFrame
        :attr:`bayesgmm.selection.compare.ModelComparison.table` (columns ``elpd_loo``, ``se``,
        ``elpd_diff``, ``dse``; optionally ``k_high``, ``k_very_high``, ``k_ok``,
        ``sampler_ok``), best first. A table with only ``elpd_diff`` and ``dse`` is
        drawn as differences.
    high_k_share : float, default=0.05
        Share of observations with high Pareto k above which the flag says so in full.

    Returns
    -------
    Figure
        One row per candidate (tick label: its name): the elpd with its SE (circle), the
        difference to the best with its SE (triangle, grey), a dashed line at the best.
        Candidates with high Pareto k or failed sampler checks are drawn in red with a
        hollow marker and the reason written beside them.
    """
    names = list(table.index)
    y = np.arange(len(names))[::-1]
    has_elpd = "elpd_loo" in table
    best = float(table["elpd_loo"].max()) if has_elpd else 0.0
    centre = table["elpd_loo"] if has_elpd else table["elpd_diff"]
    fig = Figure(figsize=(8, 1.4 + 0.5 * len(names)), layout="constrained")
    ax = fig.subplots()
    any_flag = False
    for yi, name in zip(y, names, strict=True):
        row = table.loc[name]
        flags = _loo_flags(row, high_k_share)
        color = FLAG_COLOR if flags else "k"
        if has_elpd:
            ax.errorbar(
                row["elpd_loo"],
                yi,
                xerr=row["se"],
                fmt="o",
                color=color,
                mfc="none" if flags else color,
                capsize=3,
            )
        if name != names[0] or not has_elpd:
            ax.errorbar(
                best + row["elpd_diff"],
                yi - 0.2,
                xerr=row["dse"],
                fmt="^",
                color="0.5",
                ms=5,
                capsize=2,
            )
        if flags:
            any_flag = True
            # written from the left end of the error bar, above it, so that the text
            # stays inside the axes even for the best candidate at the right edge
            left = float(centre.loc[name]) - float(row["se"] if has_elpd else row["dse"])
            ax.annotate(
                ", ".join(flags),
                (left, yi),
                xytext=(0, 7),
                textcoords="offset points",
                color=FLAG_COLOR,
                fontsize="small",
            )
    ax.axvline(best, color="0.6", ls="--", lw=0.8)
    ax.set_yticks(y, names)
    for tick, name in zip(ax.get_yticklabels(), names, strict=True):
        if _loo_flags(table.loc[name], high_k_share):
            tick.set_color(FLAG_COLOR)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set(ylabel="candidate model", xlabel="ELPD (PSIS-LOO, higher is better)")
    handles = [
        Line2D([], [], ls="", marker="o", color="k", label="elpd ± SE"),
        Line2D([], [], ls="", marker="^", color="0.5", label="difference to best ± SE"),
    ]
    if any_flag:
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="o",
                mfc="none",
                color=FLAG_COLOR,
                label="flagged (high Pareto k / failed checks)",
            )
        )
    fig.legend(
        handles=handles, frameon=False, fontsize="small", loc="outside lower center", ncols=3
    )
    ax.set_title("LOO comparison: ELPD and difference to the best, with SE")
    return fig


def plot_criterion_by_k(
    table: pd.DataFrame, criterion: str = "bic", *, title: str | None = None
) -> Figure:
    """An information criterion or the elpd against K, one line per covariance structure.

    The layout of :func:`~bayesgmm.reporting.plots.bic_models.plot_bic_models` (mclust's:
    one style per model, legend outside the axes, the best cell circled); with
    ``criterion="bic"`` it is that figure.

    Parameters
    ----------
    table : DataFrame
        :attr:`bayesgmm.selection.compare.ModelComparison.table` (columns ``n_components``,
        ``covariance_type`` and ``criterion``).
    criterion : str, default="bic"
        Column drawn, in the table's sign: ``bic``, ``aic``, ``icl`` (lower is better) or
        ``elpd_loo`` (higher is better).
    title : str, optional
        First line of the title (default "<criterion> by model").

    Returns
    -------
    Figure
    """
    if criterion == "bic":
        return plot_bic_models(table, title=title)
    lower = criterion in LOWER_IS_BETTER
    name = criterion.upper() if lower else criterion
    return plot_by_model(
        criterion_by_model(table, criterion),
        label=criterion_label(criterion),
        lower_is_better=lower,
        best_label=f"{'lowest' if lower else 'highest'} {name}",
        title=title or f"{name} by model",
    )


__all__ = [
    "plot_criterion_by_k",
    "plot_loo_comparison",
]
