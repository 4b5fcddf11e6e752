"""mclust's model-based hierarchical agglomeration (bayesgmm.em.agglomeration)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from bayesgmm.em.agglomeration import classification_criterion, hc_partitions, svd_transform


def reference_term(rows: np.ndarray, alpha: float) -> float:
    """mclust's criterion of one cluster, written from its definition in plain NumPy."""
    n, d = rows.shape
    centred = rows - rows.mean(axis=0)
    W = centred.T @ centred
    trace = np.trace(W)
    if n <= d:
        return n * np.log((trace + alpha) / n)
    if trace == 0:
        return n * np.log(alpha / n)
    return n * np.log(np.linalg.det(W / n) + (trace + alpha) / n)


def reference_greedy(Z: np.ndarray, alpha: float) -> dict[int, list[frozenset]]:
    """Brute-force agglomeration: at each step, the merge that lowers the total most."""
    clusters = [frozenset([i]) for i in range(len(Z))]
    out = {len(clusters): list(clusters)}
    while len(clusters) > 1:
        best = None
        for a, b in itertools.combinations(range(len(clusters)), 2):
            cost = (
                reference_term(Z[sorted(clusters[a] | clusters[b])], alpha)
                - reference_term(Z[sorted(clusters[a])], alpha)
                - reference_term(Z[sorted(clusters[b])], alpha)
            )
            if best is None or cost < best[0]:
                best = (cost, a, b)
        _, a, b = best
        merged = clusters[a] | clusters[b]
        clusters = [c for i, c in enumerate(clusters) if i not in (a, b)] + [merged]
        out[len(clusters)] = list(clusters)
    return out


def as_sets(labels: np.ndarray) -> set[frozenset]:
    return {frozenset(np.flatnonzero(labels == g).tolist()) for g in np.unique(labels)}


def test_svd_transform_whitens_the_standardised_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 4.0]])
    Z = svd_transform(X)
    # columns orthogonal, each with sum of squares equal to its singular value
    gram = Z.T @ Z
    assert np.allclose(gram, np.diag(np.diag(gram)), atol=1e-10)
    scaled = (X - X.mean(0)) / X.std(0, ddof=1)
    assert np.allclose(np.diag(gram), np.linalg.svd(scaled, compute_uv=False))


def test_agglomeration_matches_a_brute_force_reference():
    rng = np.random.default_rng(3)
    Z = np.vstack([rng.normal(c, 0.6, size=(5, 2)) for c in ((0, 0), (4, 0), (0, 4))])
    alpha = float(np.sum((Z - Z.mean(0)) ** 2)) / Z.size
    reference = reference_greedy(Z, alpha)
    labels = hc_partitions(Z, len(Z), transform=False)
    for k in range(1, len(Z) + 1):
        assert as_sets(labels[k - 1]) == set(reference[k]), k


def test_cuts_are_nested_and_have_k_clusters():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    labels = hc_partitions(X, 9)
    for k in range(1, 10):
        assert len(np.unique(labels[k - 1])) == k
        assert labels[k - 1].min() == 0 and labels[k - 1].max() == k - 1
    for k in range(1, 9):
        coarse, fine = labels[k - 1], labels[k]
        for g in np.unique(fine):
            assert len(np.unique(coarse[fine == g])) == 1


def test_recovers_separated_clusters_and_beats_random_partitions():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]])
    truth = np.repeat(np.arange(4), 30)
    X = centres[truth] + rng.normal(size=(120, 3)) @ np.diag([1.0, 0.5, 0.8])
    labels = hc_partitions(X, 6)
    assert adjusted_rand_score(truth, labels[3]) == 1.0
    Z = svd_transform(X)
    alpha = float(np.sum((Z - Z.mean(0)) ** 2)) / Z.size
    ours = classification_criterion(Z, labels[3], alpha)
    for _ in range(20):
        assert ours < classification_criterion(Z, rng.permutation(labels[3]), alpha)


def test_duplicated_rows_stay_together():
    rng = np.random.default_rng(4)
    base = rng.normal(size=(30, 2))
    X = np.vstack([base, base[:10], base[:5]])
    labels = hc_partitions(X, 9)
    for k in range(1, 10):
        for i in range(10):
            assert labels[k - 1][i] == labels[k - 1][30 + i]
        for i in range(5):
            assert labels[k - 1][i] == labels[k - 1][40 + i]


def test_more_clusters_than_rows_gives_singletons():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    labels = hc_partitions(X, 5)
    assert all(len(np.unique(labels[k])) == 3 for k in range(2, 5))
    with pytest.raises(ValueError, match="k_max"):
        hc_partitions(X, 0)
