"""mclust's BIC figure: one line per covariance model against the number of components.

The layout of ``plot(mclustBIC(X))`` in R: BIC in mclust's sign (``2 log L - p log n``,
higher is better) against K, one line per model with mclust's own symbol and colour
(``mclust.options("bicPlotSymbols")``, ``"bicPlotColors"``: EII grey, VII black, the
other twelve along a forest-green, royal-blue, red ramp), the models' names in a legend,
and empty cells (no non-singular fit) left as gaps. The best cell is circled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

from bayesgmm.core.covariance import MCLUST_ALIASES

#: mclust's fourteen models in its legend order.
MCLUST_ORDER: tuple[str, ...] = (
    "EII",
    "VII",
    "EEI",
    "EVI",
    "VEI",
    "VVI",
    "EEE",
    "VEE",
    "EVE",
    "VVE",
    "EEV",
    "VEV",
    "EVV",
    "VVV",
)
#: R's plotting symbol (``pch``) of each model, as ``(matplotlib marker, filled)``.
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
#: The classic structures' names in mclust's terms (the registry's aliases, inverted).
CLASSIC_NAMES: dict[str, str] = {name: alias for alias, name in MCLUST_ALIASES.items()}


def model_colors() -> dict[str, tuple]:
    """mclust's ``bicPlotColors``: grey, black, then a 12-step forest-green, royal-blue,
    red ramp, in :data:`MCLUST_ORDER`."""
    ramp = LinearSegmentedColormap.from_list("mclust", ["#228B22", "#4876FF", "#CD0000"])
    colors = {"EII": (0.5, 0.5, 0.5, 1.0), "VII": (0.0, 0.0, 0.0, 1.0)}
    for i, name in enumerate(MCLUST_ORDER[2:]):
        colors[name] = ramp(i / 11)
    return colors


def bic_by_model(table: pd.DataFrame) -> pd.DataFrame:
    """A comparison table as mclust's BIC table: index K, one column per model.

    Parameters
    ----------
    table : DataFrame
        :attr:`bayesgmm.selection.compare.ModelComparison.table` (columns ``n_components``,
        ``covariance_type`` and ``bic`` in scikit-learn's sign, lower is better), or already
        a K x model frame in mclust's sign (returned as it is).

    Returns
    -------
    DataFrame
        ``-bic`` (mclust's sign, higher is better), index K, columns the models.
    """
    if not {"n_components", "covariance_type", "bic"} <= set(table.columns):
        return table
    wide = table.pivot_table(
        index="n_components", columns="covariance_type", values="bic", aggfunc="first"
    )
    wide.index.name = "K"
    wide.columns.name = None
    return -wide


def plot_bic_models(bic, *, title: str | None = None) -> Figure:
    """mclust's BIC figure (see the module docstring).

    Parameters
    ----------
    bic : DataFrame or ModelComparison
        A K x model frame in mclust's sign (e.g. :attr:`bayesgmm.em.mclust_table.BICTable.bic`),
        a comparison table (:func:`bic_by_model` converts it) or the comparison itself.
        Models are named as mclust (``full`` is drawn as VVV, ``tied`` EEE, ``diag`` VVI,
        ``spherical`` VII); other names get the default colour cycle.
    title : str, optional

    Returns
    -------
    Figure
    """
    frame = bic_by_model(getattr(bic, "table", bic))
    if frame.empty or not np.isfinite(frame.to_numpy(float)).any():
        raise ValueError("the BIC table has no finite value to draw")
    colors = model_colors()
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.subplots()
    names = list(frame.columns)
    order = sorted(
        names,
        key=lambda c: (
            MCLUST_ORDER.index(CLASSIC_NAMES.get(c, c))
            if CLASSIC_NAMES.get(c, c) in MCLUST_ORDER
            else len(MCLUST_ORDER)
        ),
    )
    ks = np.asarray(frame.index, dtype=float)
    for i, name in enumerate(order):
        key = CLASSIC_NAMES.get(name, name)
        marker, filled = MARKERS.get(key, ("o", True))
        color = colors.get(key, f"C{i % 10}")
        values = frame[name].to_numpy(float)
        ax.plot(
            ks,
            values,
            color=color,
            lw=1.0,
            marker=marker,
            ms=7,
            mfc=color if filled else "none",
            mec=color,
            label=name if key == name else f"{name} ({key})",
        )
    stacked = frame.stack()
    best_k, best_model = stacked.idxmax()
    ax.plot(best_k, stacked.max(), "o", ms=16, mfc="none", mec="k", mew=1.2)
    ax.set_xticks(ks)
    ax.set(
        xlabel="Number of components",
        ylabel="BIC (2 log L - p log n, higher is better)",
        title=f"{title or 'BIC by model'}\nbest: {best_model}, K={best_k} (circled)",
    )
    ax.grid(alpha=0.3)
    ax.legend(ncols=2 if len(order) > 7 else 1, fontsize="small", loc="lower right", frameon=True)
    return fig


__all__ = [
    "CLASSIC_NAMES",
    "MARKERS",
    "MCLUST_ORDER",
    "bic_by_model",
    "model_colors",
    "plot_bic_models",
]
