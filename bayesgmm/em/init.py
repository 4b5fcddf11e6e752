"""Initial responsibilities for EM (dispatch table of pure functions).

Every method returns a responsibility matrix; the first M-step turns it into means
and covariances, and the weights start at ``alpha_k = 1 / K`` (the notes' starting
point; scikit-learn starts from the initial clusters' proportions instead). Centre-based
methods (``kmeans``, ``k-means++``, ``random_from_data``) assign every sample to its
nearest centre, so each component starts with a covariance estimated from a cluster
rather than from a single point.

``hierarchical`` is mclust's default start (Fraley 1998; Scrucca & Raftery 2015): a
model-based agglomerative hierarchical clustering cut at K clusters. The merge criterion
is the classification likelihood of the spherical, equal-volume model (``EII``: Ward's
sum of squares) on standardised features (mclust's ``hcUse = "STD"``), so the start does
not depend on the units. (mclust's default, the ``VVV`` criterion on scaled principal
components, is costlier; Ward on whitened principal components, tried first, split
well-separated clusters: adjusted Rand 0.47-0.72 against 0.84-1.0 for standardised
features on 4 clusters in 3-D.) It uses no random numbers; on more than
:data:`HIERARCHICAL_SUBSET` rows it clusters a seeded random subset (as mclust does) and
assigns every row to the nearest subset cluster's mean.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from bayesgmm.core.weights import has_unequal


def _one_hot(labels: np.ndarray, n_components: int) -> np.ndarray:
    resp = np.zeros((labels.shape[0], n_components))
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


def _nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    sq_dist = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)
    return np.argmin(sq_dist, axis=1)


def _kmeans(
    X: np.ndarray, n_components: int, rng: np.random.Generator, sample_weight=None
) -> np.ndarray:
    seed = int(rng.integers(np.iinfo(np.int32).max))
    kmeans = KMeans(n_clusters=n_components, n_init=1, random_state=seed)
    labels = kmeans.fit(X, sample_weight=sample_weight).labels_
    return _one_hot(labels, n_components)


def _kmeans_plusplus(
    X: np.ndarray, n_components: int, rng: np.random.Generator, sample_weight=None
) -> np.ndarray:
    seed = int(rng.integers(np.iinfo(np.int32).max))
    centers, _ = kmeans_plusplus(X, n_components, random_state=seed, sample_weight=sample_weight)
    return _one_hot(_nearest(X, centers), n_components)


def _random(
    X: np.ndarray, n_components: int, rng: np.random.Generator, sample_weight=None
) -> np.ndarray:
    resp = rng.uniform(size=(X.shape[0], n_components))
    return resp / resp.sum(axis=1, keepdims=True)


def _random_from_data(
    X: np.ndarray, n_components: int, rng: np.random.Generator, sample_weight=None
) -> np.ndarray:
    centers = X[rng.choice(X.shape[0], size=n_components, replace=False, p=_probs(sample_weight))]
    return _one_hot(_nearest(X, centers), n_components)


def _probs(sample_weight) -> np.ndarray | None:
    """Row-drawing probabilities proportional to the weights (``None``: uniform)."""
    return None if sample_weight is None else sample_weight / sample_weight.sum()


#: Rows the hierarchical agglomeration works on (mclust's ``subset`` option); the pairwise
#: distances take ``8 n^2 / 2`` bytes (16 MB here).
HIERARCHICAL_SUBSET = 2000


def _standardised(X: np.ndarray, sample_weight=None) -> np.ndarray:
    """``X`` centred and scaled to unit (weighted) variance per feature (constant kept)."""
    X = np.asarray(X, dtype=np.float64)
    mean = np.average(X, axis=0, weights=sample_weight)
    sd = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=sample_weight))
    return (X - mean) / np.where(sd > 0, sd, 1.0)


def _hierarchical(
    X: np.ndarray, n_components: int, rng: np.random.Generator, sample_weight=None
) -> np.ndarray:
    """Ward on standardised features; with weights, the subset is drawn in proportion to
    them (and the weights enter the first M-step)."""
    from scipy.cluster.hierarchy import fcluster, ward

    Z = _standardised(X, sample_weight)
    n_samples = Z.shape[0]
    if n_components == 1:
        return np.ones((n_samples, 1))
    rows = np.arange(n_samples)
    if n_samples > HIERARCHICAL_SUBSET:
        p = _probs(sample_weight)
        size = HIERARCHICAL_SUBSET if p is None else min(HIERARCHICAL_SUBSET, np.count_nonzero(p))
        rows = np.sort(rng.choice(n_samples, size, replace=False, p=p))
    tree = ward(Z[rows])
    labels = fcluster(tree, n_components, criterion="maxclust") - 1
    if rows.size == n_samples:
        return _one_hot(labels, n_components)
    present = np.unique(labels)
    centers = np.stack([Z[rows][labels == k].mean(axis=0) for k in present])
    return _one_hot(present[_nearest(Z, centers)], n_components)


#: ``init(X, n_components, rng, sample_weight=None) -> responsibilities``: with frequency
#: weights, centres are drawn in proportion to the weights (k-means++, random rows, the
#: hierarchical subset) and k-means is weighted; the first M-step weights the rows.
INITIALIZERS: dict[str, Callable[..., np.ndarray]] = {
    "kmeans": _kmeans,
    "k-means++": _kmeans_plusplus,
    "random": _random,
    "random_from_data": _random_from_data,
    "hierarchical": _hierarchical,
}


#: Methods of the second and later starts, in turn, when the first one is deterministic.
_LATER_STARTS = {"hierarchical": ("random_from_data", "k-means++", "random")}


def later_starts(method: str, attempt: int) -> str:
    """Initialisation of start ``attempt`` (1, 2, ...) after a first start by ``method``.

    After the deterministic ``hierarchical`` start (repeating it would repeat the fit),
    random rows, ``k-means++`` and random responsibilities take turns: measured on the
    bundled data sets, random rows find the best optimum more often than k-means++ at
    K = 4..6, and random responsibilities (each row's shares drawn uniformly) reached it
    in 44 of 200 starts on Old Faithful, diag, K = 6, where the others did in 3-5
    (``benchmarks/bench_em_defaults.py``). Any other method is simply repeated.
    """
    cycle = _LATER_STARTS.get(method, (method,))
    return cycle[(attempt - 1) % len(cycle)]


def initial_responsibilities(
    X: np.ndarray,
    n_components: int,
    method: str,
    rng: np.random.Generator,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Starting responsibilities from one of :data:`INITIALIZERS`.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    method : {"kmeans", "k-means++", "random", "random_from_data", "hierarchical"}
    rng : numpy.random.Generator
    sample_weight : ndarray of shape (n_samples,), optional
        Positive frequency weights; equal weights give the unweighted start.

    Returns
    -------
    ndarray of shape (n_samples, n_components)
        Rows sum to one. An empty hard cluster gets a tiny share of every sample so that
        no component starts with no data.
    """
    try:
        init = INITIALIZERS[method]
    except KeyError:
        raise ValueError(
            f"init_params must be one of {sorted(INITIALIZERS)}, got {method!r}"
        ) from None
    if has_unequal(sample_weight):
        resp = init(X, n_components, rng, sample_weight=sample_weight)
    else:
        resp = init(X, n_components, rng)
    resp = resp + 1e-6 * (resp.sum(axis=0) < 1.0)[None, :]
    return resp / resp.sum(axis=1, keepdims=True)


__all__ = ["HIERARCHICAL_SUBSET", "INITIALIZERS", "initial_responsibilities", "later_starts"]
