"""Stacking of non-mixing chains: weights against known mixing proportions, LOO against IS."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from bayesgmm.stacking import chain_loo_log_densities, stacked_indices, stacking_weights


def _two_mode_log_lik(y, centres, rng, draws=200, spread=0.05):
    """Chains that each sample one mode exactly: theta ~ N(centre, spread), y ~ N(theta, 1)."""
    theta = np.stack([rng.normal(c, spread, size=draws) for c in centres])
    return norm.logpdf(y[None, None, :], loc=theta[:, :, None])


@pytest.mark.parametrize("mass", [0.3, 0.8])
def test_weights_recover_the_mode_masses(mass):
    # data from mass * N(-3, 1) + (1 - mass) * N(3, 1); chain k samples the mode at its
    # centre, so the stacked mixture is the truth at w = (mass, 1 - mass) per mode
    rng = np.random.default_rng(1)
    n = 600
    y = np.where(rng.random(n) < mass, rng.normal(-3, 1, n), rng.normal(3, 1, n))
    log_lik = _two_mode_log_lik(y, [-3.0, 3.0, -3.0, 3.0], rng)
    lpd, khat = chain_loo_log_densities(log_lik)
    weights = stacking_weights(lpd)
    assert weights.shape == (4,) and np.isclose(weights.sum(), 1.0) and (weights >= 0).all()
    assert khat.max() < 0.7
    se = np.sqrt(mass * (1 - mass) / n)
    assert abs(weights[[0, 2]].sum() - mass) < 4 * se
    # the weights maximise the log score: no point of a grid on the simplex does better
    grid = np.linspace(0.01, 0.99, 99)
    pooled = logsumexp(lpd[:, [0, 2]], axis=1) - np.log(2), logsumexp(lpd[:, [1, 3]], axis=1)
    best = np.max(
        [
            np.logaddexp(np.log(g) + pooled[0], np.log(1 - g) + pooled[1] - np.log(2)).sum()
            for g in grid
        ]
    )
    score = logsumexp(lpd + np.log(weights), axis=1).sum()
    assert score >= best - 1e-6


def test_loo_matches_the_exact_leave_one_out_predictive():
    # y ~ N(theta, 1), flat prior: the posterior is N(mean(y), 1/n) and the exact LOO
    # predictive of y_n is N(mean(y_-n), 1 + 1/(n - 1))
    rng = np.random.default_rng(2)
    n = 50
    y = rng.normal(size=n)
    theta = rng.normal(y.mean(), 1 / np.sqrt(n), size=(2, 2000))
    lpd, khat = chain_loo_log_densities(norm.logpdf(y[None, None, :], loc=theta[:, :, None]))
    loo_mean = (y.sum() - y) / (n - 1)
    exact = norm.logpdf(y, loo_mean, np.sqrt(1 + 1 / (n - 1)))
    np.testing.assert_allclose(lpd, np.column_stack([exact, exact]), atol=0.02)
    assert khat.max() < 0.5


def test_one_good_chain_takes_all_the_weight():
    rng = np.random.default_rng(3)
    y = rng.normal(3, 1, 300)
    weights = stacking_weights(chain_loo_log_densities(_two_mode_log_lik(y, [3.0, -3.0], rng))[0])
    assert weights[0] > 0.999


def test_resampled_indices_follow_the_weights():
    chain, draw = stacked_indices(np.array([0.25, 0.0, 0.75]), 100, 1000, np.random.default_rng(0))
    assert np.bincount(chain, minlength=3).tolist() == [250, 0, 750]
    assert draw.min() >= 0 and draw.max() < 100


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shape"):
        chain_loo_log_densities(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        stacking_weights(np.array([[0.0, np.nan]]))
