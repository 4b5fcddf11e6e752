"""Relabelling of posterior draws: KL costs, Hungarian assignment, switching records."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from bayesgmm.core.params import MixtureParams
from bayesgmm.posterior.relabel import (
    ProjectionOrder,
    align_point_estimate,
    apply_permutations,
    best_permutations,
    gaussian_kl_cost,
    identity_record,
    projection_order,
    relabel_to_reference,
)


def _reference():
    return MixtureParams(
        np.array([0.2, 0.3, 0.5]),
        np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]),
        np.array([np.eye(2), 2 * np.eye(2), [[1.0, 0.5], [0.5, 1.0]]]),
    )


def test_kl_cost_matches_closed_form_in_one_dimension():
    rng = np.random.default_rng(0)
    m0, m1 = rng.normal(size=(4, 2, 1)), rng.normal(size=(2, 1))
    v0, v1 = rng.uniform(0.5, 2, size=(4, 2)), rng.uniform(0.5, 2, size=2)
    cost = gaussian_kl_cost(m0, v0[..., None, None], m1, v1[:, None, None])
    expected = 0.5 * (
        v0[:, :, None] / v1
        + (m1[None, None, :, 0] - m0[..., None, 0]) ** 2 / v1
        - 1
        + np.log(v1 / v0[:, :, None])
    )
    np.testing.assert_allclose(cost, expected, rtol=1e-12)


def test_best_permutations_undo_known_permutations():
    ref = _reference()
    rng = np.random.default_rng(1)
    truth = np.array([rng.permutation(3) for _ in range(50)])
    inverse = np.argsort(truth, axis=1)
    means = ref.means[inverse] + 0.05 * rng.normal(size=(50, 3, 2))
    covs = ref.full_covariances()[inverse]
    perms = best_permutations(gaussian_kl_cost(means, covs, ref.means, ref.full_covariances()))
    np.testing.assert_array_equal(
        apply_permutations(inverse, perms), np.tile(np.arange(3), (50, 1))
    )


def test_apply_permutations_moves_trailing_axes_together():
    values = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    perms = np.array([[2, 0, 1], [0, 1, 2]])
    out = apply_permutations(values, perms)
    np.testing.assert_array_equal(out[0], values[0, [2, 0, 1]])
    np.testing.assert_array_equal(out[1], values[1])


def test_relabel_detects_chains_in_other_labelings_and_switches():
    ref = _reference()
    rng = np.random.default_rng(2)
    n_chains, n_draws = 3, 40
    order = np.tile(np.arange(3), (n_chains, n_draws, 1))
    order[1] = [1, 0, 2]  # chain 1 sits in another labelling
    order[2, 20:] = [2, 1, 0]  # chain 2 switches half-way
    means = ref.means[order] + 0.05 * rng.normal(size=(n_chains, n_draws, 3, 2))
    covs = ref.full_covariances()[order]
    perms, record = relabel_to_reference(means, covs, ref)
    aligned = apply_permutations(means, perms)
    np.testing.assert_allclose(aligned.mean(axis=(0, 1)), ref.means, atol=0.05)
    np.testing.assert_array_equal(record.permuted_per_chain, [0, n_draws, 20])
    np.testing.assert_array_equal(record.chain_labelings[1], [1, 0, 2])
    assert record.chains_disagree
    assert record.switching_within_chains
    np.testing.assert_array_equal(record.switches_per_chain, [0, 0, 1])
    assert "between chains and within chains" in record.verdict
    assert record.to_dict()["permuted_per_chain"] == [0, n_draws, 20]


def test_aligned_sample_reports_no_switching():
    ref = _reference()
    means = np.broadcast_to(ref.means, (2, 5, 3, 2))
    covs = np.broadcast_to(ref.full_covariances(), (2, 5, 3, 2, 2))
    _, record = relabel_to_reference(means, covs, ref)
    assert not record.relabelled and not record.chains_disagree
    assert record.verdict == "no label switching"


@pytest.mark.parametrize("method", ["ordered", "none"])
def test_identity_record(method):
    record = identity_record(method, 4, 10, 3)
    assert not record.relabelled
    assert method in record.verdict


@pytest.mark.parametrize("order", [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1]])
def test_align_point_estimate_recovers_a_permuted_estimate(order):
    ref = _reference()
    shuffled = ref.permuted(np.array(order))
    aligned = align_point_estimate(shuffled, ref.means + 0.1, ref.full_covariances() * 1.1)
    np.testing.assert_array_equal(aligned.means, ref.means)
    np.testing.assert_array_equal(aligned.weights, ref.weights)
    np.testing.assert_array_equal(aligned.full_covariances(), ref.full_covariances())


def test_align_point_estimate_uses_covariances_when_means_coincide():
    covs = np.array([np.eye(2), 9 * np.eye(2)])
    ref = MixtureParams(np.array([0.5, 0.5]), np.zeros((2, 2)), covs)
    aligned = align_point_estimate(ref.permuted(np.array([1, 0])), ref.means, ref.covariances)
    np.testing.assert_array_equal(aligned.covariances, ref.covariances)


def test_align_point_estimate_refuses_another_shape():
    ref = _reference()
    with pytest.raises(ValueError, match="same K"):
        align_point_estimate(ref, ref.means[:2], ref.full_covariances()[:2])


def _scaled_means_order(params, ref_means, ref_covariances):
    """The former rule of report.align_to_posterior: Hungarian on scaled squared distances."""
    scale = np.sqrt(np.diagonal(ref_covariances, axis1=-2, axis2=-1).mean(axis=0))
    cost = (((params.means[:, None, :] - ref_means[None, :, :]) / scale) ** 2).sum(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty_like(rows)
    order[cols] = rows
    return order


def test_align_point_estimate_agrees_with_the_former_rule_when_well_separated():
    ref = _reference()
    rng = np.random.default_rng(3)
    for _ in range(50):
        order = rng.permutation(3)
        noisy = MixtureParams(
            ref.weights[order],
            ref.means[order] + 0.3 * rng.normal(size=(3, 2)),
            ref.full_covariances()[order] * rng.uniform(0.7, 1.4, size=(3, 1, 1)),
        )
        former = _scaled_means_order(noisy, ref.means, ref.full_covariances())
        np.testing.assert_array_equal(np.argsort(order), former)
        aligned = align_point_estimate(noisy, ref.means, ref.full_covariances())
        np.testing.assert_array_equal(aligned.means, noisy.permuted(former).means)


def test_projection_order_finds_the_separating_direction_and_its_separation():
    """Two components apart along x only: Fisher's direction is x; z is the closed form."""
    means = np.array([[3.0, 1.0], [0.0, 1.0], [0.0, 9.0]])
    covariances = np.array([np.diag([1.0, 4.0]), np.diag([1.0, 4.0]), np.eye(2)])
    weights = np.array([0.25, 0.25, 0.5])
    n = 100
    order = projection_order(means, covariances, weights, n)
    # every candidate direction is scored; the best one separates all three components
    v = order.direction
    assert np.linalg.norm(v) == pytest.approx(1.0)
    projected = means @ v
    assert np.all(np.diff(projected[order.order]) > 0)
    spread = np.einsum("i,kij,j->k", v, covariances / (weights * n)[:, None, None], v)
    gaps = np.diff(projected[order.order]) / np.sqrt(
        spread[order.order][1:] + spread[order.order][:-1]
    )
    assert order.separation == pytest.approx(gaps.min())
    # the pair (0, 1) alone, seen along x: gap 3 over sqrt(1/25 + 1/25)
    pair = projection_order(means[:2], covariances[:2], np.array([0.5, 0.5]), 50)
    np.testing.assert_allclose(np.abs(pair.direction), [1.0, 0.0], atol=1e-12)
    assert pair.separation == pytest.approx(3.0 / np.sqrt(2 / 25))
    np.testing.assert_array_equal(pair.order, [1, 0])


def test_projection_basis_is_orthogonal_with_the_direction_first():
    rng = np.random.default_rng(4)
    for d in (2, 3, 5):
        v = rng.normal(size=d)
        order = ProjectionOrder(v / np.linalg.norm(v), np.arange(2), 1.0)
        basis = order.basis()
        np.testing.assert_allclose(basis.T @ basis, np.eye(d), atol=1e-12)
        np.testing.assert_allclose(basis[:, 0], order.direction, atol=1e-12)
    np.testing.assert_array_equal(
        ProjectionOrder(np.eye(3)[0], np.arange(2), 1.0).basis(), np.eye(3)
    )
