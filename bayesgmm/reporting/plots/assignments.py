"""Figure of each observation's probability of belonging to its most probable component."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D


def plot_assignment(
    x: np.ndarray, assignment: pd.DataFrame, *, xlabel: str = "observation"
) -> Figure:
    """Probability that each observation belongs to its most probable component.

    Parameters
    ----------
    x : ndarray of shape (n_samples,)
        Horizontal position of each observation (the value itself in one dimension,
        else an index).
    assignment : DataFrame
        :func:`bayesgmm.posterior.summaries.assignment_summary`: one row per observation with
        ``component``, ``prob``, ``lower``, ``upper`` and ``uncertain``.
    xlabel : str

    Returns
    -------
    Figure
        Points with their credible intervals, coloured by component (legend: one entry
        per component, then the uncertain points, drawn larger with a black edge).
    """
    fig = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = fig.subplots()
    comp = assignment["component"].to_numpy()
    colors = np.asarray([f"C{int(k) % 10}" for k in comp])
    ax.vlines(x, assignment["lower"], assignment["upper"], color="0.6", lw=0.8, zorder=1)
    sure = ~assignment["uncertain"].to_numpy()
    ax.scatter(x[sure], assignment["prob"][sure], c=colors[sure], s=14, zorder=2)
    ax.scatter(
        x[~sure],
        assignment["prob"][~sure],
        c=colors[~sure],
        s=40,
        edgecolors="k",
        zorder=3,
        label=f"uncertain ({int((~sure).sum())})",
    )
    ax.axhline(0.5, color="0.4", lw=0.8, ls=":")
    ax.set(
        xlabel=xlabel,
        ylabel="P(most probable component)",
        ylim=(0, 1.05),
        title="Assignment probabilities with credible intervals",
    )
    handles = [
        Line2D([], [], ls="", marker="o", color=f"C{int(k) % 10}", label=f"component {int(k)}")
        for k in sorted(set(comp.tolist()))
    ]
    handles.append(
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            mfc="none",
            mec="k",
            ms=7,
            label=f"uncertain ({int((~sure).sum())})",
        )
    )
    ax.legend(handles=handles, frameon=False, fontsize="small", loc="lower right")
    return fig


__all__ = [
    "plot_assignment",
]
