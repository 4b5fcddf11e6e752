"""BayesianGaussianMixture: starts, NUTS convergence, closed forms, relabelling, VI, predictions."""

import numpy as np
import pytest
from arviz_stats import mcse

from bayesgmm.datasets import make_mixture
from bayesgmm.inference import (
    EM_MAX_ITER,
    EM_TOL,
    BayesianGaussianMixture,
    jitter_points,
    log_joint_densities,
)
from bayesgmm.mixture import GaussianMixture
from bayesgmm.priors import MixturePrior


def _fit(X, k, seed=0, **kwargs):
    model = BayesianGaussianMixture(k, random_state=seed, progressbar=False)
    return model.fit(X, **kwargs)


@pytest.fixture(scope="module")
def galaxies_nuts(galaxies):
    return _fit(galaxies, 3)


@pytest.fixture(scope="module")
def faithful_nuts(faithful):
    return _fit(faithful, 2)


# ---------------------------------------------------------------- fast: wiring and errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"method": "gibbs"}, "method"), ({"sampler": "stan"}, "sampler")],
)
def test_bad_choices_name_the_value(galaxies, kwargs, match):
    with pytest.raises(ValueError, match=match):
        BayesianGaussianMixture(2).fit(galaxies, **kwargs)


def test_flat_prior_only_for_map(galaxies):
    with pytest.raises(ValueError, match="prior=None"):
        BayesianGaussianMixture(2, prior=None).fit(galaxies, method="nuts")


def test_prior_mismatch_is_rejected(faithful):
    prior = MixturePrior.default(faithful, 2, "diag")
    with pytest.raises(ValueError, match="diag"):
        BayesianGaussianMixture(2, prior=prior).fit(faithful, method="map")


def test_unfitted_model_says_so():
    with pytest.raises(ValueError, match="fit"):
        BayesianGaussianMixture(2).predict(np.zeros((3, 1)))


def test_jitter_points_are_seeded_and_bounded():
    point = {"a": np.zeros(3), "b": np.ones((2, 2))}
    first = jitter_points(point, 2, 0.1, np.random.default_rng(0))
    again = jitter_points(point, 2, 0.1, np.random.default_rng(0))
    assert all(np.array_equal(x["a"], y["a"]) for x, y in zip(first, again, strict=True))
    assert all(np.abs(p["b"] - 1).max() <= 0.1 for p in first)
    assert not np.array_equal(first[0]["a"], first[1]["a"])


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_map_method_matches_em_predictions(faithful, covariance_type):
    model = BayesianGaussianMixture(2, covariance_type=covariance_type, random_state=0)
    model.fit(faithful, method="map")
    em = GaussianMixture(
        2,
        covariance_type=covariance_type,
        prior="default",
        n_init=5,
        random_state=0,
        tol=EM_TOL,
        max_iter=EM_MAX_ITER,
    ).fit(faithful)
    np.testing.assert_allclose(
        model.predict_proba(faithful), em.predict_proba(faithful), atol=1e-10
    )
    np.testing.assert_allclose(
        model.score_samples(faithful), em.score_samples(faithful), atol=1e-10
    )
    loglik = model.idata_["log_likelihood"]["X"]
    assert loglik.dims == ("chain", "draw", "obs")
    np.testing.assert_allclose(loglik.values[0, 0], em.score_samples(faithful), atol=1e-8)
    with pytest.raises(ValueError, match="method='nuts'"):
        model.diagnose()


def test_log_joint_densities_match_em_responsibilities(faithful):
    em = GaussianMixture(2, prior="default", random_state=0).fit(faithful)
    p = em.params_
    out = log_joint_densities(faithful, p.weights[None], p.means[None], p.full_covariances()[None])
    log_resp = out[0] - np.logaddexp.reduce(out[0], axis=1, keepdims=True)
    np.testing.assert_allclose(log_resp, np.log(em.predict_proba(faithful)), atol=1e-8)
    np.testing.assert_allclose(
        np.logaddexp.reduce(out[0], axis=1), em.score_samples(faithful), atol=1e-8
    )


# ---------------------------------------------------------------- slow: sampling


@pytest.mark.slow
@pytest.mark.parametrize("data", ["galaxies_nuts", "faithful_nuts"])
def test_default_nuts_converges(data, request):
    model = request.getfixturevalue(data)
    diag = model.diagnose()
    assert diag.n_chains == 4 and diag.n_draws == 1000
    assert diag.max_rhat <= 1.01, diag
    assert diag.min_ess_bulk >= 400, diag
    assert diag.n_divergences == 0, diag
    assert diag.ok, diag


@pytest.mark.slow
def test_idata_layout(faithful_nuts):
    idata = faithful_nuts.idata_
    for group in (
        "posterior",
        "sample_stats",
        "log_likelihood",
        "posterior_predictive",
        "observed_data",
    ):
        assert group in idata.children
    post = idata["posterior"]
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert idata["log_likelihood"]["X"].dims == ("chain", "draw", "obs")
    assert "relabeling" in post.attrs
    # the posterior concentrates around the MAP (same labelling)
    np.testing.assert_allclose(
        post["means"].mean(("chain", "draw")), faithful_nuts.map_.means, rtol=0.02
    )


@pytest.mark.slow
def test_k1_nuts_matches_normal_inverse_wishart_posterior(faithful):
    X = faithful
    n, d = X.shape
    prior = MixturePrior(1.0, np.array([3.0, 65.0]), 2.0, d + 3.0, np.diag([0.5, 50.0]), "full")
    model = BayesianGaussianMixture(1, prior=prior, random_state=3, progressbar=False).fit(X)
    xbar = X.mean(0)
    scatter = (X - xbar).T @ (X - xbar)
    kappa_n, nu_n = prior.mean_precision + n, prior.degrees_of_freedom + n
    m_n = (prior.mean_precision * prior.mean_prior + n * xbar) / kappa_n
    diff = xbar - prior.mean_prior
    psi_n = (
        prior.covariance_prior + scatter + prior.mean_precision * n / kappa_n * np.outer(diff, diff)
    )
    a = nu_n - d
    sigma_mean = psi_n / (nu_n - d - 1)
    sigma_var = ((a + 1) * psi_n**2 + (a - 1) * np.outer(np.diag(psi_n), np.diag(psi_n))) / (
        a * (a - 1) ** 2 * (a - 3)
    )
    mu_sd = np.sqrt(np.diag(psi_n) / (kappa_n * (nu_n - d - 1)))
    post = model.idata_["posterior"]
    mu = post["means"].isel(component=0)
    sigma = post["covariances"].isel(component=0)
    for draws, ref_mean, ref_sd in ((mu, m_n, mu_sd), (sigma, sigma_mean, np.sqrt(sigma_var))):
        mean_err = mcse(draws, method="mean").values
        sd_err = mcse(draws, method="sd").values
        assert np.all(np.abs(draws.mean(("chain", "draw")).values - ref_mean) <= 4 * mean_err)
        assert np.all(np.abs(draws.std(("chain", "draw")).values - ref_sd) <= 4 * sd_err)


@pytest.mark.slow
def test_chains_started_in_permuted_labelings_are_relabelled(faithful):
    gm = BayesianGaussianMixture(2, random_state=5, progressbar=False)
    em_map = GaussianMixture(2, prior="default", n_init=5, random_state=5).fit(faithful).params_
    swapped = em_map.permuted([1, 0])
    gm.fit(faithful, draws=500, tune=500, start=[em_map, swapped, em_map, swapped])
    record = gm.relabeling_
    assert record.chains_disagree
    np.testing.assert_array_equal(record.permuted_per_chain, [0, 500, 0, 500])
    np.testing.assert_array_equal(record.chain_labelings, [[0, 1], [1, 0], [0, 1], [1, 0]])
    diag = gm.diagnose()
    assert "between chains" in diag.label_switching
    assert diag.max_rhat <= 1.01, diag


@pytest.mark.slow
def test_nutpie_starts_from_the_given_point(faithful):
    """Every nutpie chain starts in the (swapped) labelling it is given, and stays there."""
    gm = BayesianGaussianMixture(2, random_state=6, progressbar=False)
    em_map = GaussianMixture(2, prior="default", n_init=5, random_state=6).fit(faithful).params_
    gm.fit(faithful, sampler="nutpie", draws=200, tune=200, start=em_map.permuted([1, 0]))
    record = gm.relabeling_
    np.testing.assert_array_equal(record.permuted_per_chain, [200] * 4)
    np.testing.assert_array_equal(record.chain_labelings, [[1, 0]] * 4)
    assert gm.diagnose().max_rhat <= 1.02


@pytest.mark.slow
def test_same_seed_gives_identical_draws(galaxies):
    first = _fit(galaxies, 2, seed=11, draws=50, tune=50, chains=2)
    second = _fit(galaxies, 2, seed=11, draws=50, tune=50, chains=2)
    np.testing.assert_array_equal(
        first.idata_["posterior"]["means"].values, second.idata_["posterior"]["means"].values
    )


@pytest.mark.slow
def test_advi_means_agree_with_nuts(galaxies, galaxies_nuts):
    advi = _fit(galaxies, 3, method="advi", draws=2000)
    sd = galaxies.std()
    nuts_means = galaxies_nuts.idata_["posterior"]["means"].mean(("chain", "draw")).values
    advi_means = advi.idata_["posterior"]["means"].mean(("chain", "draw")).values
    assert np.all(np.abs(advi_means - nuts_means) <= 0.1 * sd), (advi_means, nuts_means)
    assert advi.idata_["log_likelihood"]["X"].dims == ("chain", "draw", "obs")


@pytest.mark.slow
def test_minibatch_advi_on_large_data_recovers_the_mixture():
    X, _, truth = make_mixture(30_000, 2, 2, separation=5.0, random_state=1)
    kwargs = dict(method="advi", draws=200, n=2000, batch_size=500, pointwise=False)
    fit = _fit(X, 2, **kwargs)
    assert fit.approximation_ is not None and "log_likelihood" not in fit.idata_
    means = fit.idata_["posterior"]["means"].mean(("chain", "draw")).values
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(means[order], truth.means, atol=0.1)
    # the stochastic optimiser agrees with the full-data MAP to a small fraction of an sd
    np.testing.assert_allclose(means, fit.map_.means, atol=0.06)
    again = _fit(X, 2, **kwargs)
    np.testing.assert_array_equal(
        again.idata_["posterior"]["means"].values, fit.idata_["posterior"]["means"].values
    )


@pytest.mark.slow
def test_lkj_covariance_prior_samples_near_the_map(faithful):
    fit = BayesianGaussianMixture(
        2, covariance_prior_family="lkj", random_state=0, progressbar=False
    ).fit(faithful, draws=300, tune=300, chains=2)
    post = fit.idata_["posterior"]
    mean = post["means"].mean(("chain", "draw")).values
    sd = post["means"].std(("chain", "draw")).values
    # a different covariance prior, but 272 points: the posterior sits on the MAP-EM fit
    assert np.all(np.abs(mean - fit.map_.means) < 3 * sd)
    assert fit.idata_["log_likelihood"]["X"].dims == ("chain", "draw", "obs")
    assert int(fit.idata_["sample_stats"]["diverging"].sum()) == 0


@pytest.mark.slow
def test_minibatch_advi_standard_deviations_leave_their_start():
    # PyMC scales a minibatch objective by a wrong constant (5e4 instead of 20 here), which
    # froze the standard deviations at their start (0.1 in the standardised space)
    X, _, _ = make_mixture(5_000, 2, 2, separation=5.0, random_state=1)
    fit = _fit(X, 2, method="advi", draws=200, n=5000, batch_size=250, pointwise=False)
    sd = fit.idata_["posterior"]["means"].std(("chain", "draw")).values
    start_sd = 0.1 * X.std(axis=0)  # START_SIGMA on the standardised scale, per feature
    assert np.all(sd < 0.5 * start_sd), sd / start_sd


@pytest.mark.slow
def test_posterior_predictions(galaxies, galaxies_nuts):
    model = galaxies_nuts
    resp = model.responsibilities()
    assert resp.dims == ("chain", "draw", "obs", "component")
    np.testing.assert_allclose(resp.sum("component"), 1.0)
    table = model.assignment_probabilities(ci_prob=0.89)
    assert len(table) == len(galaxies) * 3
    assert np.all(table["lower"] <= table["upper"])
    spread = resp.std(("chain", "draw")).values
    n, k = np.unravel_index(spread.argmax(), spread.shape)  # the most uncertain assignment
    draws = resp.values[:, :, n, k].ravel()
    low, high = table.loc[(n, k), ["lower", "upper"]]
    assert np.mean((draws >= low) & (draws <= high)) == pytest.approx(0.89, abs=0.01)
    assert table.loc[(n, k), "mean"] == pytest.approx(draws.mean())
    counts = model.component_counts()
    assert counts.dims == ("chain", "draw", "component")
    np.testing.assert_allclose(counts.sum("component"), len(galaxies))
    grid = np.linspace(0, 45, 2001)[:, None]
    dens = model.predictive_density(grid)
    assert np.trapezoid(dens["mean"].values, grid[:, 0]) == pytest.approx(1.0, abs=2e-3)
    assert np.all(dens["lower"] <= dens["upper"])
    np.testing.assert_allclose(np.exp(model.score_samples(grid)), dens["mean"], rtol=1e-10)
    assert model.score(galaxies) == pytest.approx(model.score_samples(galaxies).mean())
    np.testing.assert_array_equal(model.predict(galaxies), model.predict_proba(galaxies).argmax(1))
    X, labels = model.sample(5000, random_state=0)
    assert X.shape == (5000, 1) and set(np.unique(labels)) <= {0, 1, 2}
    assert X.mean() == pytest.approx(galaxies.mean(), abs=0.5)
    summary = model.summary()
    assert "weights[0]" in summary.index
