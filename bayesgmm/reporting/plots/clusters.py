"""Figure of the posterior of the number of clusters: draws a precomputed table.

The numbers come from :class:`bayesgmm.selection.sparse.ClusterCountPosterior`; nothing here
samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from bayesgmm.selection.sparse import ClusterCountPosterior


def plot_cluster_count(
    posterior: ClusterCountPosterior,
    ax: Axes | None = None,
    *,
    max_shown: int | None = None,
    color: str = "C0",
) -> Figure:
    """Bar chart of ``P(K+ = k | X)``, the mode highlighted.

    Parameters
    ----------
    posterior : ClusterCountPosterior
        From :func:`bayesgmm.selection.sparse.fit_sparse_mixture` (``fit.cluster_count``).
    ax : Axes, optional
        Draw into this axes (its figure is returned); by default a new Figure.
    max_shown : int, optional
        Largest ``k`` on the axis; by default the largest ``k`` with positive
        probability, at least the mode + 2 and at most ``K_max``.
    color : str, default="C0"

    Returns
    -------
    Figure
        One bar per ``k = 1..max_shown``, heights the probabilities; the mode's bar is
        outlined in black and labelled with its probability. The title is the one-line
        answer's model description.
    """
    probs = posterior.probabilities
    if max_shown is None:
        largest = int(probs.index[probs.to_numpy() > 0].max())
        max_shown = min(max(largest, posterior.mode + 2), posterior.max_components)
    shown = probs.loc[1:max_shown]
    if ax is None:
        fig = Figure(figsize=(6.0, 3.8), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    ks = shown.index.to_numpy()
    bars = ax.bar(ks, shown.to_numpy(), color=color, width=0.8)
    mode_bar = bars[int(np.flatnonzero(ks == posterior.mode)[0])]
    mode_bar.set_edgecolor("black")
    mode_bar.set_linewidth(1.5)
    ax.annotate(
        f"{posterior.mode_probability:.2f}",
        (posterior.mode, posterior.mode_probability),
        xytext=(0, 3),
        textcoords="offset points",
        ha="center",
        va="bottom",
    )
    ax.set_xticks(ks)
    ax.set_ylim(0.0, posterior.mode_probability * 1.15 + 0.02)
    ax.set(
        xlabel="number of clusters K+ (non-empty components)",
        ylabel="posterior probability",
        title=f"P(K+ | X): {posterior.prior_description}",
    )
    return fig


__all__ = ["plot_cluster_count"]
