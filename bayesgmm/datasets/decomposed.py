"""Two-component mixtures whose covariances follow one of mclust's fourteen models.

``Sigma_k = lambda_k D_k A_k D_k^T``: the model's letters (volume, shape, orientation; E
equal, V varying, I identity) decide which parts the two components share. Used to check
that a model is recovered where it is the truth (tests, ``benchmarks/bench_eigen_nuts.py``).
"""

from __future__ import annotations

import numpy as np

from bayesgmm.core.covariance import MCLUST_MODELS
from bayesgmm.core.validation import check_positive_int


def _rotation(n_features: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed rotation (QR of a Gaussian matrix, signs fixed by ``R``'s diagonal)."""
    Q, R = np.linalg.qr(rng.normal(size=(n_features, n_features)))
    return Q * np.sign(np.diag(R))


def decomposed_covariances(model: str, n_features: int, random_state: int = 0) -> np.ndarray:
    """Two covariances ``lambda_k D_k A_k D_k^T`` of mclust's ``model``, distinct where it may.

    Volumes 1 and 0.35 (V) or 1 and 1 (E); shapes ``exp(linspace(1, -1, d))`` and, when they
    vary, ``exp(linspace(-0.6, 0.6, d))`` (each of determinant 1); orientations the identity
    (I), one random rotation (E) or two (V).

    Parameters
    ----------
    model : str
        One of mclust's fourteen names (``"EEV"``, ``"VVI"``, ...).
    n_features : int
    random_state : int
        Seed of the rotations.

    Returns
    -------
    ndarray of shape (2, n_features, n_features)
    """
    if model not in MCLUST_MODELS:
        raise ValueError(f"model must be one of mclust's {MCLUST_MODELS}, got {model!r}")
    d = check_positive_int(n_features, "n_features")
    rng = np.random.default_rng(random_state)
    volumes = {"E": np.array([1.0, 1.0]), "V": np.array([1.0, 0.35])}[model[0]]
    first = np.exp(np.linspace(1.0, -1.0, d))  # decreasing, determinant 1
    second = np.exp(np.linspace(-0.6, 0.6, d))
    shapes = {"I": np.ones((2, d)), "E": np.stack([first, first]), "V": np.stack([first, second])}
    common = _rotation(d, rng)
    orientations = {
        "I": np.stack([np.eye(d)] * 2),
        "E": np.stack([common, common]),
        "V": np.stack([common, _rotation(d, rng)]),
    }
    D, A = orientations[model[2]], shapes[model[1]]
    return volumes[:, None, None] * np.einsum("kij,kj,klj->kil", D, A, D)


def make_decomposed_mixture(
    model: str, n_per_component: int, n_features: int, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a two-component mixture whose covariances follow mclust's ``model``.

    Means ``0`` and ``5`` in every coordinate; covariances :func:`decomposed_covariances`
    (seed ``random_state``); rows drawn with seed ``random_state + 1``, first component first.

    Parameters
    ----------
    model : str
        One of mclust's fourteen names.
    n_per_component, n_features : int
    random_state : int

    Returns
    -------
    X : ndarray of shape (2 * n_per_component, n_features)
    means : ndarray of shape (2, n_features)
    covariances : ndarray of shape (2, n_features, n_features)
    """
    n = check_positive_int(n_per_component, "n_per_component")
    covariances = decomposed_covariances(model, n_features, random_state)
    d = covariances.shape[-1]
    rng = np.random.default_rng(random_state + 1)
    means = np.array([np.zeros(d), np.full(d, 5.0)])
    X = np.concatenate(
        [rng.multivariate_normal(means[k], covariances[k], size=n) for k in range(2)]
    )
    return X, means, covariances
