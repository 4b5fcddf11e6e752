"""Figures of a mixture fit: every function draws precomputed numbers and returns a Figure.

The numbers come from :mod:`bayesgmm.posterior.summaries` (densities, bands, assignment
probabilities, the MAP-versus-posterior table, per-parameter draws and their summary)
and :mod:`bayesgmm.selection.compare`; rank plots are drawn by :mod:`arviz_plots`. Nothing here
fits or summarises, so every figure can be redrawn from saved results.

Every figure stays readable for any number of components K and features d: panels
wrap into a grid, and where one panel per parameter would not fit (a full 13-feature
model has hundreds of parameters) a figure shows a capped selection and says which
(the worst-mixing parameters, the most separating features).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse

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
        posterior draws (see :func:`bayesgmm.posterior.summaries.marginal_density_band`).
    feature_names : sequence of str, optional
    ci_prob : float
        Probability of the band, for the legend.

    Returns
    -------
    Figure
    """
    d = X.shape[1]
    fig, axes = _grid(d, 4.5, 3.4)
    for j, ax in enumerate(axes):
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
    # below the panels: inside one it covered a peak of the density (Old Faithful)
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        frameon=False,
        fontsize="small",
        loc="outside lower center",
        ncols=4,
    )
    fig.suptitle("Data, MAP density and posterior-predictive density")
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


def _ellipse(mean: np.ndarray, cov: np.ndarray, n_std: float, **kwargs) -> Ellipse:
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    width, height = 2 * n_std * np.sqrt(values[::-1])
    return Ellipse(tuple(mean), width, height, angle=angle, fill=False, **kwargs)


def _ellipse_pairs(
    features: tuple[int, int] | Sequence[tuple[int, int]] | None,
    map_params: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    n_features: int,
) -> list[tuple[int, int]]:
    if features is not None:
        if len(features) == 2 and all(isinstance(f, int | np.integer) for f in features):
            return [(int(features[0]), int(features[1]))]
        return [(int(a), int(b)) for a, b in features]
    if n_features == 2:
        return [(0, 1)]
    from bayesgmm.posterior.summaries import separating_features

    means, covariances, weights = map_params
    best = separating_features(means, covariances, weights, n_features=min(3, n_features))
    return [(best[a], best[b]) for a in range(len(best)) for b in range(a + 1, len(best))]


def plot_ellipses(
    X: np.ndarray,
    map_means: np.ndarray,
    map_covariances: np.ndarray,
    draw_means: np.ndarray,
    draw_covariances: np.ndarray,
    *,
    features: tuple[int, int] | Sequence[tuple[int, int]] | None = None,
    feature_names: Sequence[str] | None = None,
    n_std: float = 2.0,
    map_weights: np.ndarray | None = None,
) -> Figure:
    """Scatter of feature pairs with component ellipses from the MAP and from posterior draws.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    map_means : ndarray of shape (n_components, n_features)
    map_covariances : ndarray of shape (n_components, n_features, n_features)
    draw_means : ndarray of shape (n_draws, n_components, n_features)
    draw_covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
    features : (int, int), sequence of (int, int) or None, default=None
        The pair (one panel) or pairs (one panel each) shown. ``None``: the two features
        if ``d = 2``, else every pair of the three features that separate the MAP
        components most (:func:`bayesgmm.posterior.summaries.separating_features`).
    feature_names : sequence of str, optional
    n_std : float
        Ellipses at ``n_std`` standard deviations (2: about 86% of a 2-D Gaussian's mass).
    map_weights : ndarray of shape (n_components,), optional
        Weights of the MAP components for choosing features (equal by default).

    Returns
    -------
    Figure
        One panel per pair; each has ``K`` MAP ellipses and ``K * n_draws`` posterior
        ones, axis limits covering the data.
    """
    n_components = map_means.shape[0]
    weights = np.full(n_components, 1 / n_components) if map_weights is None else map_weights
    pairs = _ellipse_pairs(features, (map_means, map_covariances, weights), X.shape[1])
    fig, axes = _grid(len(pairs), 5.0, 4.2)
    for (a, b), ax in zip(pairs, axes, strict=True):
        idx = np.array([a, b])
        sub = np.ix_(idx, idx)
        ax.scatter(X[:, a], X[:, b], s=8, color="0.5", label="data")
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
        for k in range(n_components):
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
        ax.autoscale_view()
        ax.set(xlabel=_feature_label(feature_names, a), ylabel=_feature_label(feature_names, b))
    axes[0].legend(frameon=False, fontsize="small")
    chosen = "" if features is not None or X.shape[1] <= 2 else ", most separating features"
    fig.suptitle(
        f"Component ellipses ({n_std:g} sd): MAP and {draw_means.shape[0]} posterior draws{chosen}"
    )
    return fig


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


def plot_criterion_by_k(table: pd.DataFrame, criterion: str = "bic") -> Figure:
    """mclust-style plot of an information criterion against K, one line per covariance.

    Parameters
    ----------
    table : DataFrame
        :attr:`bayesgmm.selection.compare.ModelComparison.table` (columns ``n_components``,
        ``covariance_type`` and ``criterion``).
    criterion : str, default="bic"
        Column drawn: ``bic``, ``aic``, ``icl`` (lower is better) or ``elpd_loo``
        (higher is better).

    Returns
    -------
    Figure
        One line with markers per covariance structure (legend), the best candidate
        circled.
    """
    lower_better = criterion != "elpd_loo"
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for i, (cov, rows) in enumerate(table.groupby("covariance_type", sort=False)):
        rows = rows.sort_values("n_components")
        ax.plot(rows["n_components"], rows[criterion], marker="o", color=f"C{i}", label=cov)
    best = table[criterion].idxmin() if lower_better else table[criterion].idxmax()
    ax.plot(
        table.loc[best, "n_components"],
        table.loc[best, criterion],
        "o",
        ms=14,
        mfc="none",
        mec="k",
        label=f"best: {best}",
    )
    ax.set_xticks(sorted(table["n_components"].unique()))
    direction = "lower" if lower_better else "higher"
    ax.set(
        xlabel="number of components K",
        ylabel=f"{criterion.upper() if lower_better else criterion} ({direction} is better)",
        title=f"{criterion.upper() if lower_better else criterion} by model",
    )
    ax.legend(title="covariance", frameon=False, fontsize="small")
    return fig


__all__ = [
    "component_legend",
    "plot_assignment",
    "plot_criterion_by_k",
    "plot_density",
    "plot_ellipses",
    "plot_log_density_vs_map",
    "plot_loo_comparison",
    "plot_map_vs_posterior",
    "plot_rank",
    "plot_trace",
]
