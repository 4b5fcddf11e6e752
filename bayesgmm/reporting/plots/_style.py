"""Colours, caps and layout helpers shared by the figures of :mod:`bayesgmm.reporting.plots`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

MAP_COLOR = "C3"
POSTERIOR_COLOR = "C0"
FLAG_COLOR = "C3"
#: Panels per row of a wrapped grid.
MAX_COLUMNS = 4
#: Parameters shown by :func:`plot_rank` and per group by :func:`plot_trace`.
MAX_RANK_PARAMETERS = 12
MAX_TRACE_PER_GROUP = 4
#: Rows per parameter kind in :func:`plot_map_vs_posterior`.
MAX_FOREST_ROWS = 30


def _grid(n_panels: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure with ``n_panels`` axes wrapped into rows; extra axes hidden."""
    ncols = min(n_panels, MAX_COLUMNS)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.remove()
    return fig, axes[:n_panels]


def component_legend(ax, components: Sequence[int], **kwargs) -> None:
    """A legend with one coloured marker per component (colour ``C<k>``)."""
    handles = [
        Line2D([], [], ls="", marker="o", color=f"C{int(k) % 10}", label=f"component {int(k)}")
        for k in components
    ]
    ax.legend(handles=handles, frameon=False, fontsize="small", **kwargs)


def _feature_label(names: Sequence[str] | None, j: int) -> str:
    return names[j] if names is not None else f"feature {j}"


__all__ = ["component_legend"]
