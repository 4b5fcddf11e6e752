"""Figures of a mixture fit: every function draws precomputed numbers and returns a Figure.

The numbers come from :mod:`bayesgmm.analysis` (densities, bands, assignment
probabilities, the MAP-versus-posterior table) and :mod:`bayesgmm.compare`; trace,
rank and LOO-comparison plots are drawn by :mod:`arviz_plots`. Nothing here fits or
summarises, so every figure can be redrawn from saved results.
"""

from __future__ import annotations

from collections.abc import Sequence

import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

MAP_COLOR = "C3"
POSTERIOR_COLOR = "C0"


def _feature_label(names: Sequence[str] | None, j: int) -> str:
    return names[j] if names is not None else f"feature {j}"


def plot_density(
    X: np.ndarray,
    grid: np.ndarray,
    map_density: np.ndarray,
    band: dict[str, np.ndarray],
    *,
    feature_names: Sequence[str] | None = None,
    ci_prob: float = 0.89,
) -> Figure:
    """Histogram of each feature with the MAP density and the posterior-predictive band.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    grid : ndarray of shape (n_grid, n_features)
        Evaluation points, one column per feature.
    map_density : ndarray of shape (n_grid, n_features)
        Marginal density of each feature under the MAP (EM) mixture.
    band : dict of str to ndarray of shape (n_grid, n_features)
        ``mean``, ``lower`` and ``upper`` of the marginal predictive density over
        posterior draws (see :func:`bayesgmm.analysis.marginal_density_band`).
    feature_names : sequence of str, optional
    ci_prob : float
        Probability of the band, for the legend.

    Returns
    -------
    Figure
    """
    d = X.shape[1]
    fig = Figure(figsize=(5.5 * d, 3.8))
    axes = fig.subplots(1, d, squeeze=False)
    for j, ax in enumerate(axes[0]):
        ax.hist(X[:, j], bins="auto", density=True, color="0.85", edgecolor="0.6", label="data")
        ax.fill_between(
            grid[:, j],
            band["lower"][:, j],
            band["upper"][:, j],
            color=POSTERIOR_COLOR,
            alpha=0.3,
            label=f"posterior {ci_prob:.0%} band",
        )
        ax.plot(grid[:, j], band["mean"][:, j], color=POSTERIOR_COLOR, label="posterior mean")
        ax.plot(grid[:, j], map_density[:, j], color=MAP_COLOR, ls="--", label="MAP (EM)")
        ax.set(xlabel=_feature_label(feature_names, j), ylabel="density")
    axes[0, 0].legend(frameon=False, fontsize="small")
    fig.suptitle("Data, MAP density and posterior-predictive density")
    fig.tight_layout()
    return fig


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
        :func:`bayesgmm.analysis.assignment_summary`: one row per observation with
        ``component``, ``prob``, ``lower``, ``upper`` and ``uncertain``.
    xlabel : str

    Returns
    -------
    Figure
        Points with their credible intervals, coloured by component; uncertain points
        are drawn larger with a black edge.
    """
    fig = Figure(figsize=(7.5, 3.8))
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
    ax.legend(frameon=False, fontsize="small", loc="lower right")
    fig.tight_layout()
    return fig


def plot_map_vs_posterior(table: pd.DataFrame) -> Figure:
    """Forest plot of the MAP against the posterior, each parameter in its posterior-sd units.

    Every row is shifted by its posterior median and divided by its posterior sd, so
    parameters of different scales share one axis: the line is the credible interval,
    the dot the median (0), the cross the MAP; a cross outside its line is a MAP outside
    the interval.

    Parameters
    ----------
    table : DataFrame
        :func:`bayesgmm.analysis.map_vs_posterior`.

    Returns
    -------
    Figure
        One panel per parameter kind (weights, means, covariances).
    """
    kinds = list(dict.fromkeys(table["kind"]))
    heights = [max(1.2, 0.3 * int((table["kind"] == k).sum())) for k in kinds]
    fig = Figure(figsize=(6.5, sum(heights) + 1.2))
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
        ax.set_title(kind, fontsize="medium", loc="left")
    axes[0, 0].legend(frameon=False, fontsize="small")
    axes[-1, 0].set_xlabel("(value - posterior median) / posterior sd")
    fig.suptitle(
        f"MAP versus posterior ({table.attrs.get('ci_prob', 0.89):.0%} "
        f"{table.attrs.get('interval', 'equal-tailed')} intervals)"
    )
    fig.tight_layout()
    return fig


def _ellipse(mean: np.ndarray, cov: np.ndarray, n_std: float, **kwargs) -> Ellipse:
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    width, height = 2 * n_std * np.sqrt(values[::-1])
    return Ellipse(tuple(mean), width, height, angle=angle, fill=False, **kwargs)


def plot_ellipses(
    X: np.ndarray,
    map_means: np.ndarray,
    map_covariances: np.ndarray,
    draw_means: np.ndarray,
    draw_covariances: np.ndarray,
    *,
    features: tuple[int, int] = (0, 1),
    feature_names: Sequence[str] | None = None,
    n_std: float = 2.0,
) -> Figure:
    """Scatter of two features with component ellipses from the MAP and from posterior draws.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    map_means : ndarray of shape (n_components, n_features)
    map_covariances : ndarray of shape (n_components, n_features, n_features)
    draw_means : ndarray of shape (n_draws, n_components, n_features)
    draw_covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
    features : (int, int)
        The two features shown.
    feature_names : sequence of str, optional
    n_std : float
        Ellipses at ``n_std`` standard deviations (2: about 86% of a 2-D Gaussian's mass).

    Returns
    -------
    Figure
    """
    idx = np.asarray(features)
    sub = np.ix_(idx, idx)
    fig = Figure(figsize=(6.5, 5))
    ax = fig.subplots()
    ax.scatter(X[:, idx[0]], X[:, idx[1]], s=8, color="0.5", label="data")
    for s in range(draw_means.shape[0]):
        for k in range(draw_means.shape[1]):
            ax.add_patch(
                _ellipse(
                    draw_means[s, k, idx],
                    draw_covariances[s, k][sub],
                    n_std,
                    color=POSTERIOR_COLOR,
                    alpha=0.12,
                    lw=0.8,
                )
            )
    for k in range(map_means.shape[0]):
        ax.add_patch(
            _ellipse(
                map_means[k, idx],
                map_covariances[k][sub],
                n_std,
                color=MAP_COLOR,
                lw=2,
                label="MAP (EM)" if k == 0 else None,
            )
        )
    ax.plot([], [], color=POSTERIOR_COLOR, alpha=0.5, label="posterior draws")
    ax.set(
        xlabel=_feature_label(feature_names, idx[0]),
        ylabel=_feature_label(feature_names, idx[1]),
        title=f"Component ellipses ({n_std:g} sd): MAP and {draw_means.shape[0]} posterior draws",
    )
    ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def plot_trace(idata: xr.DataTree, var_names: Sequence[str] = ("weights", "means")) -> Figure:
    """Trace and marginal densities per chain (:func:`arviz_plots.plot_trace_dist`)."""
    pc = azp.plot_trace_dist(idata, var_names=list(var_names), backend="matplotlib")
    return pc.get_viz("figure")


def plot_rank(idata: xr.DataTree, var_names: Sequence[str] = ("weights", "means")) -> Figure:
    """Fractional rank ECDF per chain (:func:`arviz_plots.plot_rank`); flat means mixed."""
    pc = azp.plot_rank(idata, var_names=list(var_names), backend="matplotlib")
    return pc.get_viz("figure")


def plot_loo_comparison(table: pd.DataFrame) -> Figure:
    """ELPD difference to the best candidate with its standard error.

    Parameters
    ----------
    table : DataFrame
        :attr:`bayesgmm.compare.ModelComparison.table` (columns ``elpd_diff``, ``dse``),
        best first.

    Returns
    -------
    Figure
    """
    pc = azp.plot_compare(
        table[["elpd_diff", "dse"]],
        backend="matplotlib",
        figure_kwargs={"figsize": (7, 1.2 + 0.45 * len(table)), "figsize_units": "inches"},
    )
    fig = pc.get_viz("figure")
    plt.close(fig)  # arviz-plots registers the figure with pyplot; the caller owns it
    for ax in fig.axes:
        ax.set_ylabel("candidate model")
        if not ax.get_xlabel():
            ax.set_xlabel("ELPD (PSIS-LOO, higher is better)")
    fig.axes[0].set_title("LOO comparison: ELPD difference to the best, with SE")
    fig.tight_layout()
    return fig


__all__ = [
    "plot_assignment",
    "plot_density",
    "plot_ellipses",
    "plot_loo_comparison",
    "plot_map_vs_posterior",
    "plot_rank",
    "plot_trace",
]
