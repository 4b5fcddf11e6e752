"""Sampler diagnostics figures: trace and rank plots of a capped selection of parameters."""

from __future__ import annotations

import textwrap

import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from bayesgmm.reporting.plots._style import (
    MAX_RANK_PARAMETERS,
    MAX_TRACE_PER_GROUP,
)


def _trace_selection(
    draws: xr.DataArray, summary: pd.DataFrame | None, max_per_group: int
) -> dict[str, list[str]]:
    from bayesgmm.posterior.summaries import worst_mixing

    groups: dict[str, list[str]] = {}
    kinds = draws["kind"].to_numpy()
    labels = draws["parameter"].to_numpy()
    for kind in dict.fromkeys(kinds):
        members = [str(label) for label in labels[kinds == kind]]
        if summary is not None:
            members = worst_mixing(summary.loc[members], max_per_group)
        groups[str(kind)] = members[:max_per_group]
    return groups


def plot_trace(
    draws: xr.DataArray,
    summary: pd.DataFrame | None = None,
    *,
    max_per_group: int = MAX_TRACE_PER_GROUP,
) -> Figure:
    """Traces and per-chain densities, one row of two axes per parameter group.

    Parameters
    ----------
    draws : DataArray of dims (chain, draw, parameter)
        :func:`bayesgmm.posterior.summaries.parameter_draws` (coordinate ``kind`` groups the
        parameters: weights, means, covariances).
    summary : DataFrame, optional
        :func:`bayesgmm.posterior.summaries.posterior_summary` of ``draws``: each group shows its
        worst-mixing parameters (highest R-hat); without it, the first ones.
    max_per_group : int, default=4
        Parameters drawn per group.

    Returns
    -------
    Figure
        Left: every chain's trace of each shown parameter, standardised by its pooled
        mean and sd so that parameters of different scales share the axis; right: their
        densities (histograms per chain). Colours are parameters (legend), line styles
        chains.
    """
    groups = _trace_selection(draws, summary, max_per_group)
    fig = Figure(figsize=(11, 2.6 * len(groups) + 0.6), layout="constrained")
    axes = fig.subplots(len(groups), 2, squeeze=False, width_ratios=[3, 1])
    styles = ["-", "--", ":", "-."]
    for (kind, members), (trace_ax, dens_ax) in zip(groups.items(), axes, strict=True):
        for i, label in enumerate(members):
            values = draws.sel(parameter=label).transpose("chain", "draw").to_numpy()
            sd = values.std() or 1.0
            z = (values - values.mean()) / sd
            for c, chain in enumerate(z):
                style = styles[c % len(styles)]
                trace_ax.plot(
                    chain,
                    color=f"C{i}",
                    ls=style,
                    lw=0.6,
                    alpha=0.8,
                    label=label if c == 0 else None,
                )
                dens_ax.hist(chain, bins=30, density=True, histtype="step", color=f"C{i}", ls=style)
        total = int((draws["kind"] == kind).sum())
        shown = f"{len(members)} of {total}, worst R-hat" if len(members) < total else "all"
        trace_ax.set(xlabel="draw", ylabel="(value - mean) / sd")
        trace_ax.set_title(f"{kind} ({shown})", loc="left", fontsize="medium")
        dens_ax.set(xlabel="(value - mean) / sd", ylabel="density")
        trace_ax.legend(frameon=False, fontsize="x-small", ncol=min(2, len(members)))
    fig.suptitle(f"Traces by parameter group ({draws.sizes['chain']} chains: line styles)")
    return fig


def plot_rank(
    draws: xr.DataArray,
    summary: pd.DataFrame | None = None,
    *,
    max_parameters: int = MAX_RANK_PARAMETERS,
) -> Figure:
    """Fractional rank ECDF per chain (:func:`arviz_plots.plot_rank`) of the worst mixers.

    Parameters
    ----------
    draws : DataArray of dims (chain, draw, parameter)
        :func:`bayesgmm.posterior.summaries.parameter_draws`.
    summary : DataFrame, optional
        :func:`bayesgmm.posterior.summaries.posterior_summary` of ``draws``; the parameters with the
        highest R-hat (then lowest bulk ESS) are shown. Without it, the first ones.
    max_parameters : int, default=12
        Panels at most, whatever ``K`` and ``d`` (matplotlib refuses more than 40).

    Returns
    -------
    Figure
        One panel per shown parameter, titled with its label; flat curves mean mixed.
    """
    from bayesgmm.posterior.summaries import worst_mixing

    labels = [str(p) for p in draws["parameter"].to_numpy()]
    chosen = labels[:max_parameters] if summary is None else worst_mixing(summary, max_parameters)
    # a DataTree refuses "/" in variable names (wine's "od280/od315..." column): the
    # division slash looks the same in the panel titles
    dataset = xr.Dataset(
        {
            label.replace("/", "\u2215"): draws.sel(parameter=label).drop_vars(
                ["parameter", "kind"]
            )
            for label in chosen
        }
    )
    dataset = dataset.assign_coords(
        chain=np.arange(dataset.sizes["chain"]), draw=np.arange(dataset.sizes["draw"])
    )
    pc = azp.plot_rank(xr.DataTree.from_dict({"posterior": dataset}), backend="matplotlib")
    fig = pc.get_viz("figure")
    plt.close(fig)  # arviz-plots registers the figure with pyplot; the caller owns it
    for ax in fig.axes:
        if ax.get_title():  # long labels wrap instead of running into the neighbours
            title = textwrap.fill(ax.get_title(), 32)
            # the uniformity test's p-value, written inside the panel by arviz-plots,
            # covers the curves: it goes into the title instead
            for text in list(ax.texts):
                if text.get_text().startswith("p="):
                    title += f"  ({text.get_text().strip()})"
                    text.remove()
            ax.set_title(title, fontsize="small")
    fig.set_layout_engine("constrained")
    which = "worst R-hat first" if summary is not None else "first"
    fig.suptitle(
        f"Rank plots of {len(chosen)} of {len(labels)} parameters ({which}); flat means mixed"
    )
    return fig


__all__ = [
    "plot_rank",
    "plot_trace",
]
