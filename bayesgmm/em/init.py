"""Initial responsibilities for EM (dispatch table of pure functions).

Every method returns a responsibility matrix; the first M-step turns it into means
and covariances, and the weights start at ``alpha_k = 1 / K`` (the notes' starting
point; scikit-learn starts from the initial clusters' proportions instead). Centre-based
methods (``kmeans``, ``k-means++``, ``random_from_data``) assign every sample to its
nearest centre, so each component starts with a covariance estimated from a cluster
rather than from a single point.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus


def _one_hot(labels: np.ndarray, n_components: int) -> np.ndarray:
    resp = np.zeros((labels.shape[0], n_components))
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


def _nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    sq_dist = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)
    return np.argmin(sq_dist, axis=1)


def _kmeans(X: np.ndarray, n_components: int, rng: np.random.Generator) -> np.ndarray:
    seed = int(rng.integers(np.iinfo(np.int32).max))
    labels = KMeans(n_clusters=n_components, n_init=1, random_state=seed).fit(X).labels_
    return _one_hot(labels, n_components)


def _kmeans_plusplus(X: np.ndarray, n_components: int, rng: np.random.Generator) -> np.ndarray:
    seed = int(rng.integers(np.iinfo(np.int32).max))
    centers, _ = kmeans_plusplus(X, n_components, random_state=seed)
    return _one_hot(_nearest(X, centers), n_components)


def _random(X: np.ndarray, n_components: int, rng: np.random.Generator) -> np.ndarray:
    resp = rng.uniform(size=(X.shape[0], n_components))
    return resp / resp.sum(axis=1, keepdims=True)


def _random_from_data(X: np.ndarray, n_components: int, rng: np.random.Generator) -> np.ndarray:
    centers = X[rng.choice(X.shape[0], size=n_components, replace=False)]
    return _one_hot(_nearest(X, centers), n_components)


INITIALIZERS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "kmeans": _kmeans,
    "k-means++": _kmeans_plusplus,
    "random": _random,
    "random_from_data": _random_from_data,
}


def initial_responsibilities(
    X: np.ndarray, n_components: int, method: str, rng: np.random.Generator
) -> np.ndarray:
    """Starting responsibilities from one of :data:`INITIALIZERS`.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    method : {"kmeans", "k-means++", "random", "random_from_data"}
    rng : numpy.random.Generator

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
    resp = init(X, n_components, rng)
    resp = resp + 1e-6 * (resp.sum(axis=0) < 1.0)[None, :]
    return resp / resp.sum(axis=1, keepdims=True)


__all__ = ["INITIALIZERS", "initial_responsibilities"]
