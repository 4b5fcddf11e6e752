"""Partition summaries against brute force: enumeration, plain-Python contingency tables."""

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from bayesgmm import GaussianMixture, datasets
from bayesgmm.core.params import MixtureParams
from bayesgmm.em.steps import estimate_weighted_log_prob
from bayesgmm.posterior.partitions import (
    allocation_draws,
    binder_loss,
    canonical_labels,
    coclustering_certainty,
    credible_ball,
    expected_vi,
    partition_distances,
    salso,
    similarity_matrix,
    summarize_partitions,
    vi_lower_bound,
)
from bayesgmm.reporting.plots import BOUNDARY_GID, plot_similarity_matrix

# ------------------------------------------------------------------ plain references


def set_partitions(items):
    """Every set partition of ``items`` (Bell(n) of them), as lists of blocks."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in set_partitions(rest):
        for b in range(len(smaller)):
            yield [*smaller[:b], [first, *smaller[b]], *smaller[b + 1 :]]
        yield [[first], *smaller]


def as_labels(blocks, n):
    labels = [0] * n
    for k, block in enumerate(blocks):
        for i in block:
            labels[i] = k
    return labels


def entropy_bits(counts, n):
    return -sum(c / n * math.log2(c / n) for c in counts if c)


def vi_plain(a, b):
    """Meilă's VI in bits from the contingency table: 2 H(a, b) - H(a) - H(b)."""
    n = len(a)
    joint = Counter(zip(a, b, strict=True))
    return (
        2 * entropy_bits(joint.values(), n)
        - entropy_bits(Counter(a).values(), n)
        - entropy_bits(Counter(b).values(), n)
    )


def binder_plain(a, b):
    n = len(a)
    return sum((a[i] == a[j]) != (b[i] == b[j]) for i in range(n) for j in range(i + 1, n))


def mcclust_vi_lb(c, psm):
    """R's ``mcclust.ext::VI.lb``, transcribed loop by loop."""
    n = len(c)
    total = 0.0
    for i in range(n):
        ind = [c[j] == c[i] for j in range(n)]
        total += (
            math.log2(sum(ind))
            + math.log2(sum(psm[i]))
            - 2 * math.log2(sum(ind[j] * psm[i, j] for j in range(n)))
        ) / n
    return total


def random_posterior(rng, n_draws, n, k):
    """Allocation draws that cluster around a random partition, plus noise."""
    centre = rng.integers(0, k, n)
    z = np.where(rng.random((n_draws, n)) < 0.3, rng.integers(0, k, (n_draws, n)), centre)
    return z


def permute_within_draws(z, rng):
    k = z.max() + 1
    perms = np.array([rng.permutation(k) for _ in range(len(z))])
    return np.take_along_axis(perms, z, axis=1)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def separated():
    X, labels, _ = datasets.make_mixture(300, 3, 2, separation=6.0, random_state=0)
    gm = GaussianMixture(3, prior="default", random_state=0).fit(X)
    log_joint = estimate_weighted_log_prob(X, gm.params_)
    log_joint = np.broadcast_to(log_joint, (200, *log_joint.shape))
    z = allocation_draws(log_joint, np.random.default_rng(1))
    return labels, z, log_joint


@pytest.fixture(scope="module")
def overlapping():
    """Pseudo-posterior of an overlapping fit: perturbed, label-permuted parameters."""
    X, _, _ = datasets.make_mixture(240, 4, 2, separation=2.5, random_state=3)
    gm = GaussianMixture(4, prior="default", random_state=0).fit(X)
    rng = np.random.default_rng(2)
    p = gm.params_
    log_joint = np.empty((300, len(X), 4))
    for s in range(len(log_joint)):
        perm = rng.permutation(4)
        means = p.means + 0.25 * rng.standard_normal(p.means.shape)
        draw = MixtureParams(p.weights[perm], means[perm], p.full_covariances()[perm], "full")
        log_joint[s] = estimate_weighted_log_prob(X, draw)
    return gm.predict(X), allocation_draws(log_joint, rng), log_joint


# ----------------------------------------------------------------- labels and draws


def test_canonical_labels_first_appearance():
    np.testing.assert_array_equal(canonical_labels([7, 7, -2, 9, -2]), [0, 0, 1, 2, 1])
    np.testing.assert_array_equal(canonical_labels([[2, 0, 2], [0, 1, 1]]), [[0, 1, 0], [0, 1, 1]])


def test_allocation_draws_follow_responsibilities():
    rng = np.random.default_rng(0)
    with np.errstate(divide="ignore"):
        log_joint = np.log([[0.2, 0.5, 0.3], [0.0, 0.9, 0.1]]) + np.array([[1.0], [-40.0]])
        draws = np.broadcast_to(log_joint, (20000, 2, 3))
    z = allocation_draws(draws, rng, chunk_draws=3000)
    freq = np.stack([np.bincount(z[:, n], minlength=3) / len(z) for n in range(2)])
    expected = np.array([[0.2, 0.5, 0.3], [0.0, 0.9, 0.1]])
    se = np.sqrt(expected * (1 - expected) / len(z))
    assert np.all(np.abs(freq - expected) <= 4 * se + 1e-12)
    assert np.all(z[:, 1] != 0)


def test_psm_from_responsibilities_equals_enumerated_expectation():
    rng = np.random.default_rng(1)
    resp = rng.dirichlet(np.ones(3), size=(2, 4))
    expected = np.zeros((4, 4))
    for s in range(2):
        for z in itertools.product(range(3), repeat=4):
            prob = np.prod([resp[s, n, z[n]] for n in range(4)])
            same = np.equal.outer(z, z)
            expected += prob * same / 2
    np.testing.assert_allclose(similarity_matrix(resp), expected, atol=1e-12)


def test_psm_from_allocations_counts_pairs():
    z = np.array([[0, 0, 1], [1, 0, 0], [2, 2, 2], [0, 1, 2]])
    expected = np.array([[1, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 1]])
    np.testing.assert_allclose(similarity_matrix(z), expected)


def test_psm_from_allocations_converges_to_responsibility_psm(overlapping):
    _, z, log_joint = overlapping
    resp = np.exp(log_joint - log_joint.max(-1, keepdims=True))
    resp /= resp.sum(-1, keepdims=True)
    diff = similarity_matrix(z) - similarity_matrix(resp)
    assert np.abs(diff).max() < 5 * 0.5 / np.sqrt(len(z))


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("n", [4, 5, 6])
def test_losses_equal_brute_force(n):
    rng = np.random.default_rng(n)
    z = rng.integers(0, 3, size=(7, n))
    psm = similarity_matrix(z)
    for blocks in set_partitions(list(range(n))):
        c = as_labels(blocks, n)
        vi = np.mean([vi_plain(c, list(zs)) for zs in z])
        binder = np.mean([binder_plain(c, list(zs)) for zs in z])
        assert expected_vi(c, z) == pytest.approx(vi, abs=1e-12)
        assert expected_vi(c, z, base=math.e) == pytest.approx(vi * math.log(2), abs=1e-12)
        assert binder_loss(c, psm) == pytest.approx(binder, abs=1e-12)
        assert partition_distances(c, z, "binder").mean() == pytest.approx(binder)
        assert vi_lower_bound(c, psm, z_draws=z) <= vi + 1e-12
        assert vi_lower_bound(c, psm) == pytest.approx(mcclust_vi_lb(c, psm), abs=1e-12)


def test_identical_partitions_are_at_distance_zero():
    rng = np.random.default_rng(4)
    c = rng.integers(0, 5, 50)
    relabelled = (c * 3 + 1) % 5
    for loss in ("vi", "binder"):
        assert partition_distances(c, relabelled[None, :], loss)[0] == 0.0


def test_losses_and_psm_invariant_to_relabelling_within_draws():
    rng = np.random.default_rng(5)
    z = random_posterior(rng, 40, 30, 4)
    zp = permute_within_draws(z, rng)
    c = rng.integers(0, 3, 30)
    np.testing.assert_allclose(similarity_matrix(zp), similarity_matrix(z))
    assert expected_vi(c, zp) == pytest.approx(expected_vi(c, z), abs=1e-12)
    assert binder_loss(c, similarity_matrix(zp)) == pytest.approx(
        binder_loss(c, similarity_matrix(z))
    )
    assert expected_vi((c + 1) % 3, z) == pytest.approx(expected_vi(c, z), abs=1e-12)

    resp = rng.dirichlet(np.ones(4), size=(6, 30))
    resp_p = np.stack([r[:, rng.permutation(4)] for r in resp])
    np.testing.assert_allclose(similarity_matrix(resp_p), similarity_matrix(resp))

    for loss in ("vi", "binder"):
        a = salso(z, loss, random_state=3)
        b = salso(zp, loss, random_state=3)
        np.testing.assert_array_equal(a.labels, b.labels)
        ball_a = credible_ball(a.labels, z, loss=loss)
        ball_b = credible_ball(a.labels, zp, loss=loss)
        assert ball_a.radius == pytest.approx(ball_b.radius)
        np.testing.assert_array_equal(ball_a.horizontal, ball_b.horizontal)


# ---------------------------------------------------------------------------- SALSO


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("loss", ["vi", "binder"])
def test_salso_finds_exact_minimiser(seed, loss):
    rng = np.random.default_rng(seed)
    n = 5
    z = random_posterior(rng, 9, n, 3)
    losses = []
    for blocks in set_partitions(list(range(n))):
        c = as_labels(blocks, n)
        zs = [list(r) for r in z]
        losses.append(
            np.mean([vi_plain(c, r) for r in zs])
            if loss == "vi"
            else np.mean([binder_plain(c, r) for r in zs])
        )
    result = salso(z, loss, random_state=seed)
    assert result.loss_value == pytest.approx(min(losses), abs=1e-12)
    assert result.labels[0] == 0
    assert set(result.labels) == set(range(result.n_clusters))


def test_salso_respects_max_clusters():
    rng = np.random.default_rng(7)
    z = random_posterior(rng, 50, 60, 6)
    assert salso(z, "vi", max_clusters=2, random_state=0).n_clusters <= 2
    assert salso(z, "binder", max_clusters=2, random_state=0).n_clusters <= 2


def test_salso_recovers_well_separated_truth(separated):
    labels, z, _ = separated
    for loss in ("vi", "binder"):
        result = salso(z, loss, random_state=0)
        assert adjusted_rand_score(labels, result.labels) == 1.0


def test_salso_vi_no_worse_than_map_em(overlapping):
    map_labels, z, _ = overlapping
    result = salso(z, "vi", random_state=0)
    assert result.loss_value <= expected_vi(map_labels, z) + 1e-12
    assert result.loss_value == pytest.approx(expected_vi(result.labels, z))
    psm = similarity_matrix(z)
    binder = salso(z, "binder", psm=psm, random_state=0)
    assert binder.loss_value <= binder_loss(map_labels, psm) + 1e-9


def test_salso_reproducible(overlapping):
    _, z, _ = overlapping
    a, b = salso(z, random_state=11), salso(z, random_state=11)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.loss_value == b.loss_value


# --------------------------------------------------------------------- credible ball


def test_credible_ball_radius_and_bounds(overlapping):
    _, z, _ = overlapping
    point = salso(z, random_state=0).labels
    d = np.array([vi_plain(list(point), list(r)) for r in z])
    radii = [credible_ball(point, z, p).radius for p in (0.5, 0.8, 0.9, 0.95, 1.0)]
    assert np.all(np.diff(radii) >= 0)
    assert radii[-1] == pytest.approx(d.max())
    ball = credible_ball(point, z, 0.9)
    assert np.mean(d <= ball.radius + 1e-12) >= 0.9
    assert np.mean(d < ball.radius - 1e-12) < 0.9
    inside = np.flatnonzero(d <= ball.radius + 1e-12)
    k = np.array([len(set(r)) for r in z])
    fewest = inside[k[inside] == k[inside].min()]
    most = inside[k[inside] == k[inside].max()]
    assert ball.distances[0] == pytest.approx(d[inside].max())
    assert ball.distances[1] == pytest.approx(d[fewest].max())
    assert ball.distances[2] == pytest.approx(d[most].max())
    assert ball.upper_vertical.max() + 1 == k[inside].min()
    assert ball.lower_vertical.max() + 1 == k[inside].max()
    assert vi_plain(list(point), list(ball.horizontal)) == pytest.approx(ball.radius)
    assert "radius" in str(ball)


def test_credible_ball_of_a_draw_contains_itself():
    rng = np.random.default_rng(8)
    z = random_posterior(rng, 30, 20, 3)
    for loss in ("vi", "binder"):
        assert partition_distances(z[4], z, loss)[4] == 0.0
        assert credible_ball(z[4], z, 1 / 30, loss).radius == 0.0


# ------------------------------------------------------------------------- summary


def test_summary_on_separated_data(separated):
    labels, _, log_joint = separated
    summary = summarize_partitions(log_joint, random_state=0)
    assert adjusted_rand_score(labels, summary.partition) == 1.0
    assert summary.n_clusters == 3
    frame = summary.to_frame()
    assert list(frame.columns) == ["cluster", "certainty"]
    assert len(frame) == 300
    resp = np.exp(log_joint - log_joint.max(-1, keepdims=True))
    psm = similarity_matrix(resp / resp.sum(-1, keepdims=True))
    np.testing.assert_allclose(summary.certainty, coclustering_certainty(summary.partition, psm))
    assert "3 clusters" in str(summary)

    sub = summarize_partitions(log_joint, max_points=80, random_state=0)
    assert sub.subsampled and sub.psm.shape == (80, 80)
    assert adjusted_rand_score(labels, sub.partition) == 1.0
    assert np.all(sub.certainty > 0.9)


def test_certainty_is_mean_within_cluster_similarity():
    psm = np.array(
        [[1.0, 0.8, 0.1, 0.0], [0.8, 1.0, 0.2, 0.0], [0.1, 0.2, 1.0, 0.3], [0.0, 0.0, 0.3, 1.0]]
    )
    certainty = coclustering_certainty([0, 0, 0, 1], psm)
    np.testing.assert_allclose(certainty[:3], [0.45, 0.5, 0.15])
    assert np.isnan(certainty[3])


def test_summary_reproducible(overlapping):
    _, _, log_joint = overlapping
    a = summarize_partitions(log_joint, random_state=5)
    b = summarize_partitions(log_joint, random_state=5)
    np.testing.assert_array_equal(a.partition, b.partition)
    assert a.loss_value == b.loss_value
    assert a.credible_ball.radius == b.credible_ball.radius


def test_bad_arguments_name_the_remedy():
    z = np.zeros((3, 4), dtype=int)
    with pytest.raises(ValueError, match="loss must be one of"):
        salso(z, "rand")
    with pytest.raises(ValueError, match="shape"):
        expected_vi([0, 1, 0], z)
    with pytest.raises(ValueError, match="prob"):
        credible_ball([0, 0, 0, 0], z, ci_prob=0.0)


# -------------------------------------------------------------------------- figure


def test_plot_similarity_matrix_draws_ordered_blocks():
    partition = np.array([1, 0, 1, 2, 0, 1, 2])
    psm = np.equal.outer(partition, partition) * 0.8 + 0.1
    np.fill_diagonal(psm, 1.0)
    psm[0, 2] = psm[2, 0] = 0.5
    fig = plot_similarity_matrix(psm, partition)
    ax = fig.axes[0]
    image = ax.images[0].get_array()
    assert image.shape == (7, 7)
    labels = canonical_labels(partition)
    ordered = np.sort(labels)
    expected_blocks = np.where(np.equal.outer(ordered, ordered), 0.9, 0.1)
    off_diagonal = ~np.eye(7, dtype=bool) & (image != 0.5)
    np.testing.assert_allclose(np.asarray(image)[off_diagonal], expected_blocks[off_diagonal])
    assert np.asarray(image)[0, 0] == 1.0
    assert np.asarray(image)[1, 2] == 0.5  # the two least certain points come last
    boundaries = [line for line in ax.lines if line.get_gid() == BOUNDARY_GID]
    assert len(boundaries) == 2 * (3 - 1)
    assert ax.get_xlabel().startswith("observation") and ax.get_ylabel()
    assert "3 clusters" in ax.get_title()
    assert len(fig.axes) == 2
    assert fig.axes[1].get_ylabel() == "P(same cluster | X)"


@pytest.mark.parametrize("loss", ["vi", "binder"])
def test_salso_result_is_a_local_minimum_under_single_moves(loss):
    """Sweetening stops only when no single point improves by moving (new cluster included)."""
    rng = np.random.default_rng(9)
    z = random_posterior(rng, 25, 40, 5)
    z = np.where(rng.random(z.shape) < 0.3, rng.integers(0, 5, z.shape), z)
    psm = similarity_matrix(z)

    def value(c):
        return expected_vi(c, z) if loss == "vi" else binder_loss(c, psm)

    labels = salso(z, loss, n_runs=1, random_state=0).labels
    best = value(labels)
    for i in range(len(labels)):
        for k in range(labels.max() + 2):
            moved = labels.copy()
            moved[i] = k
            assert value(moved) >= best - 1e-12
