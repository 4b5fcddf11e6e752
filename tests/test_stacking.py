"""Stacking of non-mixing chains: weights against known mixing proportions, LOO against IS."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from bayesgmm.posterior.stacking import (
    PSIS_MIN_DRAWS,
    chain_loo_log_densities,
    stack_chains,
    stacked_indices,
    stacking_weights,
)


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


@pytest.mark.parametrize("mass", [0.3, 0.8])
def test_stacked_modes_recover_their_masses_and_beat_pooling(mass):
    # the diagnose() path: chains grouped by mode (0,2 and 1,3), each group stacked as one
    # unit; the mode masses come back within Monte Carlo error and the gain over pooling
    # (each mode 0.5) is far above the 1 nat that one free weight gains by chance
    rng = np.random.default_rng(4)
    n = 600
    y = np.where(rng.random(n) < mass, rng.normal(-3, 1, n), rng.normal(3, 1, n))
    result = stack_chains(_two_mode_log_lik(y, [-3.0, 3.0, -3.0, 3.0], rng), [(0, 2), (1, 3)])
    assert result.significant and result.penalty == 1.0
    weights = result.weights
    assert weights[0] == weights[2] and np.isclose(weights.sum(), 1.0)
    assert abs(weights[[0, 2]].sum() - mass) < 4 * np.sqrt(mass * (1 - mass) / n)
    # the gain is the log score difference against the mixture with equal mode weights
    exact = np.log(mass * norm.pdf(y, -3) + (1 - mass) * norm.pdf(y, 3)).sum()
    pooled = np.log(0.5 * norm.pdf(y, -3) + 0.5 * norm.pdf(y, 3)).sum()
    assert result.gain == pytest.approx(exact - pooled, abs=3.0)


def test_chains_that_predict_alike_are_pooled():
    # four chains of one posterior (a normal mean): their LOO densities differ by Monte
    # Carlo noise only, so stacking gains less than its 3 free weights do by chance
    rng = np.random.default_rng(5)
    n = 80
    y = rng.normal(size=n)
    theta = rng.normal(y.mean(), 1 / np.sqrt(n), size=(4, 500))
    result = stack_chains(
        norm.logpdf(y[None, None, :], loc=theta[:, :, None]), [(0,), (1,), (2,), (3,)]
    )
    assert result.penalty == 3.0 and result.gain < 1.0 and not result.significant
    np.testing.assert_array_equal(result.weights, np.full(4, 0.25))
    assert np.isclose(result.stacked.sum(), 1.0)


def test_resampled_indices_follow_the_weights():
    chain, draw = stacked_indices(np.array([0.25, 0.0, 0.75]), 100, 1000, np.random.default_rng(0))
    assert np.bincount(chain, minlength=3).tolist() == [250, 0, 750]
    assert draw.min() >= 0 and draw.max() < 100


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="shape"):
        chain_loo_log_densities(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        stacking_weights(np.array([[0.0, np.nan]]))


def test_too_few_draws_for_psis_are_refused_by_name():
    # ArviZ's own error ("n_draws_tail must be at least 5") reached the command line
    log_lik = _two_mode_log_lik(np.zeros(5), [0.0, 1.0], np.random.default_rng(0), draws=24)
    with pytest.raises(ValueError, match=f"at least {PSIS_MIN_DRAWS} finite draws"):
        chain_loo_log_densities(log_lik)
    enough = _two_mode_log_lik(np.zeros(5), [0.0, 1.0], np.random.default_rng(0), draws=25)
    assert np.all(np.isfinite(chain_loo_log_densities(enough)[0]))


def test_a_short_run_is_pooled_not_stacked_and_told_to_draw_more(faithful):
    from bayesgmm import BayesianGaussianMixture

    settings = dict(method="gibbs", draws=20, tune=20, chains=2, em_n_init=1, random_state=0)
    with pytest.warns(UserWarning, match=f"needs at least {PSIS_MIN_DRAWS} draws per chain"):
        fit = BayesianGaussianMixture(2, combine_chains="stack", **settings).fit(faithful)
    assert fit.idata_["posterior"].attrs["chain_combination"] == "pooled"
    assert fit.idata_["posterior"].sizes["chain"] == 2
    # 2 x 20 draws cannot reach 400 effective draws: more of them, not "the chains barely move"
    remedies = fit.diagnose().remedies
    assert not any("not more draws" in r for r in remedies), remedies
    assert any("more draws and tuning (e.g. draws=400, tune=400" in r for r in remedies), remedies
