"""Figures in data space: per-feature densities with their band, and component ellipses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from bayesgmm.reporting.plots._style import (
    MAP_COLOR,
    POSTERIOR_COLOR,
    _feature_label,
    _grid,
)


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


__all__ = [
    "plot_density",
    "plot_ellipses",
]
