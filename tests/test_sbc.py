"""Simulation-based calibration (posterior/sbc.py) of the conjugate Gibbs kernel.

The suite test runs 100 replicates of a 1-D two-component mixture with a fixed proper prior:
parameters from the prior, 40 rows from the model, a Gibbs chain, the ranks of the true
label-invariant quantities among 99 thinned draws. The real sampler must pass the ECDF
uniformity test of every quantity; the same sampler fitted under a prior other than the
one that simulated the data (Psi0 four times too large: the posterior of the covariances
is biased) must fail it, which shows that the test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import MixturePrior
from bayesgmm.posterior.gibbs_kernels import gibbs_chain
from bayesgmm.posterior.sbc import (
    aligned_to_reference,
    chisq_uniformity_test,
    draw_from_prior,
    ecdf_band,
    ecdf_uniformity_test,
    fractional_ranks,
    mixture_quantities,
    parameter_quantities,
    rank_shape,
    sbc_ranks,
    simulate_mixture,
    thinned,
)

PRIOR = MixturePrior(
    weight_concentration=2.0,
    mean_prior=np.array([0.0]),
    mean_precision=0.2,
    degrees_of_freedom=5.0,
    covariance_prior=np.array([[4.0]]),
)
N_REPLICATES = 100
N_ROWS = 40
N_RANK_DRAWS = 99


def _sbc_fractional_ranks(fit_prior: MixturePrior, seed: int) -> tuple[np.ndarray, list[str]]:
    """Fractional ranks (replicates, quantities) of Gibbs fits under ``fit_prior``."""
    rng = np.random.default_rng(seed)
    k = 2
    points = np.array([[-3.0], [0.0], [3.0]])
    pairs = np.array([[0, 1], [2, 3]])
    out = []
    for _ in range(N_REPLICATES):
        truth = draw_from_prior(PRIOR, k, rng)
        X, _ = simulate_mixture(*truth, N_ROWS, rng)
        z0 = rng.integers(0, k, size=N_ROWS)
        log_w, means, covs, _, _ = gibbs_chain(
            X,
            z0,
            fit_prior.concentration(k),
            fit_prior.mean_prior,
            fit_prior.mean_precision,
            fit_prior.degrees_of_freedom,
            fit_prior.covariance_prior,
            200,
            1000,
            rng,
        )
        draws = thinned(np.arange(len(log_w)), N_RANK_DRAWS)
        values, names = mixture_quantities(
            np.exp(log_w[draws]), means[draws], covs[draws], X, points, pairs
        )
        true_values, _ = mixture_quantities(*truth, X, points, pairs)
        ranks = sbc_ranks(values, true_values, rng)
        out.append(fractional_ranks(ranks, N_RANK_DRAWS, rng))
    return np.array(out), names


def _p_values(u: np.ndarray) -> np.ndarray:
    return np.array([ecdf_uniformity_test(u[:, q]).p_value for q in range(u.shape[1])])


def test_gibbs_is_calibrated_and_a_wrong_prior_is_caught():
    u, names = _sbc_fractional_ranks(PRIOR, seed=2026)
    p = _p_values(u)
    # Bonferroni over the quantities at level 0.05
    assert p.min() > 0.05 / len(p), dict(zip(names, p.round(4), strict=True))
    wrong = MixturePrior(
        weight_concentration=2.0,
        mean_prior=np.array([0.0]),
        mean_precision=0.2,
        degrees_of_freedom=5.0,
        covariance_prior=np.array([[16.0]]),
    )
    u_wrong, _ = _sbc_fractional_ranks(wrong, seed=2026)
    p_wrong = _p_values(u_wrong)
    assert p_wrong.min() < 0.001, dict(zip(names, p_wrong.round(4), strict=True))


def test_uniformity_tests_accept_uniform_and_reject_skewed_samples():
    rng = np.random.default_rng(0)
    uniform = rng.random(200)
    skewed = rng.random(200) ** 1.6
    assert ecdf_uniformity_test(uniform).p_value > 0.05
    assert ecdf_uniformity_test(skewed).p_value < 0.001
    assert chisq_uniformity_test(uniform).p_value > 0.05
    assert chisq_uniformity_test(skewed).p_value < 0.001


def test_ecdf_band_holds_about_the_nominal_share_of_uniform_samples():
    rng = np.random.default_rng(1)
    z, lower, upper = ecdf_band(50, alpha=0.1, seed=2)
    inside = []
    for _ in range(300):
        u = rng.random(50)
        diff = (u[:, None] <= z).mean(0) - z
        inside.append(bool(np.all((diff >= lower - 1e-12) & (diff <= upper + 1e-12))))
    assert 0.82 <= np.mean(inside) <= 0.97


def test_ranks_break_ties_and_quantities_ignore_labels():
    rng = np.random.default_rng(3)
    draws = np.array([[0.0], [1.0], [1.0], [2.0]])
    ranks = [int(sbc_ranks(draws, np.array([1.0]), rng)[0]) for _ in range(200)]
    assert set(ranks) == {1, 2, 3}
    weights, means, covs = draw_from_prior(PRIOR, 2, rng)
    X, _ = simulate_mixture(weights, means, covs, 10, rng)
    pairs = np.array([[0, 1]])
    values, _ = mixture_quantities(weights, means, covs, X, X[:2], pairs)
    swapped, _ = mixture_quantities(weights[::-1], means[::-1], covs[::-1], X, X[:2], pairs)
    np.testing.assert_allclose(values, swapped)


@pytest.mark.parametrize("n_features", [1, 3])
def test_prior_draws_have_the_prior_moments(n_features):
    prior = MixturePrior(
        weight_concentration=1.0,
        mean_prior=np.arange(n_features, dtype=float),
        mean_precision=1.0,
        degrees_of_freedom=n_features + 6.0,
        covariance_prior=np.eye(n_features) * 2.0,
    )
    rng = np.random.default_rng(4)
    draws = [draw_from_prior(prior, 2, rng) for _ in range(3000)]
    covs = np.concatenate([d[2] for d in draws])
    means = np.concatenate([d[1] for d in draws])
    expected_cov = 2.0 * np.eye(n_features) / (prior.degrees_of_freedom - n_features - 1)
    np.testing.assert_allclose(covs.mean(0), expected_cov, atol=0.03)
    np.testing.assert_allclose(means.mean(0), prior.mean_prior, atol=0.05)


def _normal_sbc(rng, n_replicates, shift=0.0, sd_factor=1.0):
    """Fractional ranks of a conjugate normal model, posterior optionally distorted.

    ``theta ~ N(0, 1)``, ``x_1..10 | theta ~ N(theta, 1)``: the posterior is
    ``N(sum(x) / 11, 1 / 11)``; its draws are shifted by ``shift`` posterior sds and
    scaled by ``sd_factor``.
    """
    u = []
    for _ in range(n_replicates):
        theta = rng.standard_normal()
        x = theta + rng.standard_normal(10)
        mean, sd = x.sum() / 11, np.sqrt(1 / 11)
        draws = mean + sd * (shift + sd_factor * rng.standard_normal((N_RANK_DRAWS, 1)))
        rank = sbc_ranks(draws, np.array([theta]), rng)
        u.append(fractional_ranks(rank, N_RANK_DRAWS, rng)[0])
    return np.array(u)


def test_rank_shape_says_which_way_a_posterior_is_wrong():
    rng = np.random.default_rng(5)
    exact = rank_shape(_normal_sbc(rng, 400))
    assert exact.describe() == "", exact
    narrow = rank_shape(_normal_sbc(rng, 400, sd_factor=0.5))
    assert narrow.describe().startswith("too narrow (U:"), narrow
    assert narrow.tails > 0.3
    wide = rank_shape(_normal_sbc(rng, 400, sd_factor=2.0))
    assert wide.describe().startswith("too wide (hump:"), wide
    high = rank_shape(_normal_sbc(rng, 400, shift=1.0))
    assert "overestimates" in high.describe() and high.mean < 0.4, high
    low = rank_shape(_normal_sbc(rng, 400, shift=-1.0))
    assert "underestimates" in low.describe() and low.mean > 0.6, low
    with pytest.raises(ValueError, match="tail"):
        rank_shape(np.array([0.5]), tail=0.6)


def test_aligned_to_reference_sorts_in_1d_and_follows_the_reference_in_2d():
    rng = np.random.default_rng(6)
    # 1-D: every draw sorted by mean, whatever its labels
    weights = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    means = np.array([[[2.0], [-1.0], [0.5]], [[0.0], [3.0], [-2.0]]])
    covs = np.arange(1.0, 7.0).reshape(2, 3, 1, 1)
    w, m, c = aligned_to_reference(weights, means, covs, None, None)
    np.testing.assert_array_equal(m[..., 0], [[-1.0, 0.5, 2.0], [-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(w, [[0.5, 0.3, 0.2], [0.3, 0.6, 0.1]])
    np.testing.assert_array_equal(c[..., 0, 0], [[2.0, 3.0, 1.0], [6.0, 4.0, 5.0]])
    # 2-D: permuted, jittered copies of the reference come back in its labels
    ref_means = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    ref_covs = np.stack([np.eye(2), 2 * np.eye(2), np.diag([1.0, 3.0])])
    perms = np.array([rng.permutation(3) for _ in range(20)])
    rows = np.arange(20)[:, None]
    jitter = 0.1 * rng.standard_normal((20, 3, 2))
    w, m, c = aligned_to_reference(
        np.tile([0.2, 0.3, 0.5], (20, 1))[rows, perms],
        (ref_means + jitter)[rows, perms],
        np.broadcast_to(ref_covs, (20, 3, 2, 2))[rows, perms],
        ref_means,
        ref_covs,
    )
    np.testing.assert_allclose(m, ref_means + jitter)
    np.testing.assert_array_equal(w, np.tile([0.2, 0.3, 0.5], (20, 1)))
    np.testing.assert_array_equal(c, np.broadcast_to(ref_covs, (20, 3, 2, 2)))
    values, names = parameter_quantities(w, m, c)
    assert values.shape == (20, 3 * (1 + 2 * 2))
    assert names[:4] == ["weight 1", "weight 2", "weight 3", "mean 1[0]"]
    assert names[-1] == "variance 3[1]"
    np.testing.assert_allclose(values[:, -1], 3.0)
