"""Figures of the posterior over partitions: draws precomputed numbers, returns a Figure.

The numbers come from :mod:`bayesgmm.posterior.partitions` (similarity matrix, point estimate,
co-clustering certainty); nothing here fits or searches.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bayesgmm.posterior.partitions import canonical_labels, coclustering_certainty

BOUNDARY_GID = "cluster-boundary"


def similarity_order(partition: np.ndarray, certainty: np.ndarray) -> np.ndarray:
    """Order points by cluster, and within a cluster by decreasing certainty.

    Parameters
    ----------
    partition : ndarray of int, shape (n_samples,)
        Clusters ``0..C-1``.
    certainty : ndarray of shape (n_samples,)
        ``nan`` (singletons) sorts last within its cluster.

    Returns
    -------
    ndarray of int, shape (n_samples,)
        Permutation of ``range(n_samples)``.
    """
    score = np.nan_to_num(np.asarray(certainty, dtype=np.float64), nan=-np.inf)
    return np.lexsort((-score, partition))


def plot_similarity_matrix(
    psm: np.ndarray,
    partition: np.ndarray,
    ax: Axes | None = None,
    *,
    certainty: np.ndarray | None = None,
    cmap: str = "viridis",
) -> Figure:
    """Heat map of the posterior similarity matrix, grouped by the point estimate.

    Parameters
    ----------
    psm : ndarray of shape (n_samples, n_samples)
        ``P(z_i = z_j | X)`` (:func:`bayesgmm.posterior.partitions.similarity_matrix`).
    partition : array-like of int, shape (n_samples,)
        Point estimate (e.g. :func:`bayesgmm.posterior.partitions.salso`), relabelled ``0..C-1``
        in order of first appearance.
    ax : Axes, optional
        Draw into this axes (its figure is returned); by default a new Figure.
    certainty : ndarray of shape (n_samples,), optional
        Orders points within a cluster (most certain first); by default
        :func:`bayesgmm.posterior.partitions.coclustering_certainty`.
    cmap : str, default="viridis"

    Returns
    -------
    Figure
        Rows and columns ordered by cluster; white lines (gid ``"cluster-boundary"``)
        separate clusters, one horizontal and one vertical per boundary, ``2 (C - 1)``
        in all; a colour bar labelled with the probability.
    """
    psm = np.asarray(psm, dtype=np.float64)
    labels = canonical_labels(partition)
    if psm.ndim != 2 or psm.shape != (len(labels), len(labels)):
        raise ValueError(
            f"psm must have shape {(len(labels), len(labels))} to match the partition, "
            f"got {psm.shape}"
        )
    if certainty is None:
        certainty = coclustering_certainty(labels, psm)
    order = similarity_order(labels, certainty)
    if ax is None:
        fig = Figure(figsize=(6.0, 5.2), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    n = len(labels)
    image = ax.imshow(
        psm[np.ix_(order, order)],
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        extent=(-0.5, n - 0.5, n - 0.5, -0.5),
    )
    for edge in np.cumsum(np.bincount(labels))[:-1] - 0.5:
        ax.axhline(edge, color="white", lw=1.0, gid=BOUNDARY_GID)
        ax.axvline(edge, color="white", lw=1.0, gid=BOUNDARY_GID)
    n_clusters = int(labels.max()) + 1
    ax.set(
        xlabel="observation (ordered by cluster, then certainty)",
        ylabel="observation (ordered by cluster, then certainty)",
        title=f"Posterior similarity matrix, {n_clusters} clusters",
    )
    fig.colorbar(image, ax=ax, label="P(same cluster | X)")
    return fig


__all__ = ["BOUNDARY_GID", "plot_similarity_matrix", "similarity_order"]
