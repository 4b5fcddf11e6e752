"""Figures that set the MAP against the posterior: parameter forest and log-density of draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayesgmm.reporting.plots._style import (
    MAP_COLOR,
    MAX_FOREST_ROWS,
    POSTERIOR_COLOR,
)


def plot_map_vs_posterior(table: pd.DataFrame, *, max_rows: int = MAX_FOREST_ROWS) -> Figure:
    """Forest plot of the MAP against the posterior, each parameter in its posterior-sd units.

    Every row is shifted by its posterior median and divided by its posterior sd, so
    parameters of different scales share one axis: the line is the credible interval,
    the dot the median (0), the cross the MAP; a cross outside its line is a MAP outside
    the interval.

    Parameters
    ----------
    table : DataFrame
        :func:`bayesgmm.posterior.summaries.map_vs_posterior`.

    max_rows : int, default=30
        Rows shown per kind; with more, those whose MAP lies furthest from the median
        (in sd units), and the panel title says so.

    Returns
    -------
    Figure
        One panel per parameter kind (weights, means, covariances).
    """
    attrs, shown, totals = dict(table.attrs), [], {}
    for kind, rows in table.groupby("kind", sort=False):
        totals[kind] = len(rows)
        if len(rows) > max_rows:
            sd = rows["sd"].where(rows["sd"] > 0, 1.0)
            distance = ((rows["map"] - rows["median"]) / sd).abs()
            rows = rows.loc[distance.sort_values(ascending=False).index[:max_rows]].sort_index()
        shown.append(rows)
    table = pd.concat(shown)
    table.attrs = attrs
    kinds = list(dict.fromkeys(table["kind"]))
    heights = [max(1.2, 0.3 * int((table["kind"] == k).sum())) for k in kinds]
    fig = Figure(figsize=(6.5, sum(heights) + 1.2), layout="constrained")
    axes = fig.subplots(
        len(kinds), 1, squeeze=False, sharex=True, gridspec_kw={"height_ratios": heights}
    )
    for kind, ax in zip(kinds, axes[:, 0], strict=True):
        rows = table[table["kind"] == kind]
        sd = rows["sd"].where(rows["sd"] > 0, 1.0)
        y = np.arange(len(rows))[::-1]
        ax.hlines(
            y,
            (rows["lower"] - rows["median"]) / sd,
            (rows["upper"] - rows["median"]) / sd,
            color=POSTERIOR_COLOR,
            lw=2,
        )
        ax.plot(np.zeros(len(rows)), y, "o", color=POSTERIOR_COLOR, label="posterior median")
        ax.plot(
            (rows["map"] - rows["median"]) / sd,
            y,
            "x",
            color=MAP_COLOR,
            ms=8,
            mew=2,
            label="MAP (EM)",
        )
        ax.axvline(0, color="0.8", lw=0.8, zorder=0)
        ax.set_yticks(y, rows["parameter"], fontsize="small")
        ax.set_ylabel("parameter")
        note = (
            f" ({len(rows)} of {totals[kind]}: MAP furthest from the median)"
            if len(rows) < totals[kind]
            else ""
        )
        ax.set_title(f"{kind}{note}", fontsize="medium", loc="left")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles, labels, frameon=False, fontsize="small", loc="outside lower center", ncols=2
    )
    axes[-1, 0].set_xlabel("(value - posterior median) / posterior sd")
    fig.suptitle(
        f"MAP versus posterior ({table.attrs.get('ci_prob', 0.89):.0%} "
        f"{table.attrs.get('interval', 'equal-tailed')} intervals)"
    )
    return fig


def plot_log_density_vs_map(
    log_density: np.ndarray,
    check: dict,
    *,
    chain_weights: np.ndarray | None = None,
) -> Figure:
    """The draws' log posterior density, chain by chain, against the MAP's.

    Parameters
    ----------
    log_density : ndarray of shape (n_chains, n_draws)
        The MAP-EM objective at every draw
        (:meth:`BayesianGaussianMixture.log_posterior_density`).
    check : dict
        :func:`bayesgmm.posterior.summaries.map_log_density_check` (``map``, ``expected_gap``,
        ``gap_limit``).
    chain_weights : ndarray of shape (n_chains,), optional
        Stacking weights, shown in the legend.

    Returns
    -------
    Figure
        One histogram per chain; the MAP's value (red line) and the range where draws
        from the MAP's own mode lie (shaded: down to the chi-square 99.9% bound, dashed:
        its expected value ``p / 2`` below the MAP).
    """
    log_density = np.atleast_2d(np.asarray(log_density, dtype=float))
    fig = Figure(figsize=(7.0, 3.6), layout="constrained")
    ax = fig.subplots()
    top = check["map"]
    ax.axvspan(
        top - check["gap_limit"],
        top,
        color=MAP_COLOR,
        alpha=0.08,
        label="where draws of the MAP's mode lie",
    )
    low = min(float(np.quantile(log_density, 0.005)), top - check["gap_limit"])
    high = max(float(log_density.max()), top) + 1.0
    bins = np.linspace(low, high, 60)
    colors = [f"C{k}" for k in range(10) if f"C{k}" != MAP_COLOR]
    for c, values in enumerate(log_density):
        weight = "" if chain_weights is None else f" (stacking weight {chain_weights[c]:.2f})"
        ax.hist(
            np.clip(values, low, None),
            bins=bins,
            histtype="step",
            lw=1.5,
            color=colors[c % len(colors)],
            label=f"chain {c}{weight}",
        )
    ax.axvline(top, color=MAP_COLOR, lw=2, label=f"MAP ({top:.1f})")
    ax.axvline(
        top - check["expected_gap"],
        color=MAP_COLOR,
        lw=1,
        ls="--",
        label=f"MAP - p/2 ({top - check['expected_gap']:.1f})",
    )
    ax.set_xlabel("log posterior density (log-likelihood + log prior)")
    ax.set_ylabel("draws")
    fig.legend(frameon=False, fontsize="small", loc="outside lower center", ncols=2)
    ax.set_title("Log posterior density of the draws versus the MAP", loc="left")
    return fig


__all__ = [
    "plot_log_density_vs_map",
    "plot_map_vs_posterior",
]
