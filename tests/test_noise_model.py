"""The noise component in the PyMC model and BayesianGaussianMixture."""

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.bayes.model import build_model, initial_point
from bayesgmm.bayes.start import EM_MAX_ITER, EM_TOL
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.em.noise import NoisyParams, noise_log_prior
from bayesgmm.posterior.summaries import map_vs_posterior


def _data(seed=0, n_cluster=110, n_background=12):
    """Two tight 2-D clusters plus uniform background (true noise fraction 12 / 122)."""
    rng = np.random.default_rng(seed)
    clusters = np.vstack(
        [
            rng.normal([0.0, 0.0], 0.6, (n_cluster // 2, 2)),
            rng.normal([4.0, 2.0], 0.6, (n_cluster - n_cluster // 2, 2)),
        ]
    )
    background = rng.uniform([-6.0, -6.0], [10.0, 8.0], (n_background, 2))
    return np.vstack([clusters, background])


def _point(model, spec, params, noise_weight):
    point = initial_point(params, model, spec, noise_weight=noise_weight)
    return pm.initial_point.make_initial_point_fn(
        model=model, overrides=point, jitter_rvs=set(), return_transformed=True
    )(0)


def _scipy_log_posterior(X, params, noise_weight, prior, volume):
    """log p(theta) + sum_n log p(x_n | theta), the prior a Dirichlet over K + 1 weights.

    Written as the model writes it: Beta(a0, K a0) on the noise weight times a Dirichlet on
    the Gaussians' conditional weights (the same distribution, by aggregation).
    """
    k = params.n_components
    a0 = float(prior.weight_concentration)
    cov = params.full_covariances()
    logp = stats.beta.logpdf(noise_weight, a0, k * a0)
    logp += stats.dirichlet.logpdf(params.weights, np.full(k, a0))
    logp += sum(
        stats.invwishart.logpdf(c, df=prior.degrees_of_freedom, scale=prior.covariance_prior)
        for c in cov
    )
    logp += sum(
        stats.multivariate_normal.logpdf(m, prior.mean_prior, c / prior.mean_precision)
        for m, c in zip(params.means, cov, strict=True)
    )
    dens = sum(
        (1 - noise_weight) * w * stats.multivariate_normal.pdf(X, m, c)
        for w, m, c in zip(params.weights, params.means, cov, strict=True)
    )
    return logp + np.log(dens + noise_weight / volume).sum()


def test_model_logp_matches_scipy():
    X = _data()
    prior = MixturePrior.default(X, 2, "full", weight_concentration=2.0)
    spec = MixtureSpec.from_data(X, 2, "full", prior, standardize=False, noise=True)
    model = build_model(X, spec)
    params = MixtureParams([0.4, 0.6], [[0.1, 0.0], [4.0, 2.1]], [np.eye(2) * 0.4] * 2)
    logp = model.compile_logp(jacobian=False, mode="FAST_COMPILE")(
        _point(model, spec, params, 0.08)
    )
    volume = np.prod(X.max(axis=0) - X.min(axis=0))
    expected = _scipy_log_posterior(X, params, 0.08, prior, volume)
    assert logp == pytest.approx(expected, abs=1e-8)
    assert {"noise_weight", "component_weights"} <= {rv.name for rv in model.free_RVs}


def test_model_density_is_the_map_em_objective_times_the_weights_jacobian():
    # MAP-EM maximises the Dirichlet density of the absolute weights (w_1, ..., w_K, w_0);
    # the model's density is over (w_0, conditional weights): the change of variables has
    # Jacobian (1 - w_0)^(K - 1), so the two agree up to that factor, at the EM optimum too
    X = _data(seed=2)
    prior = MixturePrior.default(X, 3, "full", weight_concentration=2.0)
    em = GaussianMixture(3, noise=True, prior=prior, n_init=2, random_state=0).fit(X)
    spec = MixtureSpec.from_data(X, 3, "full", prior, standardize=False, noise=True)
    model = build_model(X, spec)
    logp = model.compile_logp(jacobian=False, mode="FAST_COMPILE")(
        _point(model, spec, em.params_, em.noise_weight_)
    )
    objective = em.score_samples(X).sum() + noise_log_prior(
        prior, NoisyParams(em.params_, em.noise_weight_)
    )
    assert logp == pytest.approx(objective + 2 * np.log1p(-em.noise_weight_), abs=1e-7)
    assert em.lower_bound_ * len(X) == pytest.approx(objective, abs=1e-5)


def test_pointwise_log_likelihood_is_one_term_per_row_on_the_user_scale():
    X = _data() * [100.0, 0.1]
    spec = MixtureSpec.from_data(X, 2, "full", "default", noise=True, noise_volume=50.0)
    model = build_model(X, spec)
    params = MixtureParams([0.5, 0.5], [[0.0, 0.0], [400.0, 0.2]], [np.diag([40.0, 4e-3])] * 2)
    elementwise = model.compile_fn(
        model.logp(vars=[model["X"]], sum=False)[0], mode="FAST_COMPILE"
    )(_point(model, spec, params, 0.1))
    dens = sum(
        0.9 * w * stats.multivariate_normal.pdf(X, m, c)
        for w, m, c in zip(params.weights, params.means, params.covariances, strict=True)
    )
    assert elementwise.shape == (len(X),)
    np.testing.assert_allclose(elementwise, np.log(dens + 0.1 / 50.0), rtol=1e-10)


def test_map_method_matches_em_and_reports_the_noise_weight():
    X = _data()
    bayes = BayesianGaussianMixture(
        2, noise=True, method="map", pointwise=True, random_state=0, progressbar=False
    ).fit(X)
    em = GaussianMixture(
        2,
        noise=True,
        prior="default",
        n_init="auto",
        tol=EM_TOL,
        max_iter=EM_MAX_ITER,
        random_state=0,
    ).fit(X)
    assert bayes.map_noise_weight_ == pytest.approx(em.noise_weight_, abs=1e-6)
    log_lik = bayes.idata_.log_likelihood["X"].values.reshape(-1)
    np.testing.assert_allclose(log_lik, em.score_samples(X), atol=1e-6)
    summary = bayes.summary()
    assert summary.loc["noise_weight", "estimate"] == pytest.approx(em.noise_weight_, abs=1e-6)
    assert summary.loc["weights[0]":"noise_weight", "estimate"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(bayes.noise_probability(X)["mean"], em.noise_proba(X), atol=1e-6)
    np.testing.assert_array_equal(bayes.predict(X) == -1, em.predict(X) == -1)
    density = bayes.predictive_density(X[:5])["mean"].to_numpy()
    np.testing.assert_allclose(np.log(density), em.score_samples(X[:5]), atol=1e-6)
    draws, labels = bayes.sample(3000, random_state=0)
    assert abs(np.mean(labels == -1) - em.noise_weight_) < 0.02
    assert np.all(draws[labels == -1] >= X.min(axis=0) - 1e-12)


def test_report_table_shows_the_noise_weight(tmp_path):
    from types import SimpleNamespace

    import xarray as xr

    from bayesgmm.reporting.report import Report, add_posterior_analysis

    rng = np.random.default_rng(3)
    X = _data()
    centres = np.array([[0.0, 0.0], [4.0, 2.0]])
    chains, draws = 2, 30
    noise = rng.uniform(0.08, 0.12, (chains, draws))
    conditional = rng.dirichlet([50, 50], (chains, draws))
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), (1 - noise[..., None]) * conditional),
            "noise_weight": (("chain", "draw"), noise),
            "means": (
                ("chain", "draw", "component", "feature"),
                centres + rng.normal(scale=0.05, size=(chains, draws, 2, 2)),
            ),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                np.broadcast_to(0.36 * np.eye(2), (chains, draws, 2, 2, 2)).copy(),
            ),
        }
    )
    bayes = SimpleNamespace(
        idata_=xr.DataTree.from_dict({"posterior": posterior}),
        map_=MixtureParams([0.5, 0.5], centres, np.full(2, 0.36), "spherical"),
        map_noise_weight_=0.1,
        method_="advi",
    )
    table = add_posterior_analysis(Report("noise"), X, bayes, feature_names=["a", "b"])
    row = table.set_index("parameter").loc["noise_weight"]
    assert row["map"] == 0.1 and row["mean"] == pytest.approx(noise.mean())
    weights = table[table["kind"] == "weights"]
    assert weights["map"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"noise": "yes"}, r"noise='yes'.*True or False"),
        ({"noise": True, "noise_volume": -1.0}, r"noise_volume=-1\.0.*positive finite"),
        ({"noise": True, "noise_volume": float("nan")}, r"noise_volume=nan"),
        ({"noise": True, "noise_init": np.zeros(5)}, r"shape \(n_samples,\) = \(122,\)"),
    ],
)
def test_bad_noise_settings_are_clear_errors(settings, match):
    with pytest.raises(ValueError, match=match):
        BayesianGaussianMixture(2, method="map", **settings).fit(_data())


def test_noise_probability_needs_a_noise_component():
    bayes = BayesianGaussianMixture(2, method="map", pointwise=False, progressbar=False)
    bayes.fit(_data())
    with pytest.raises(ValueError, match="noise=True"):
        bayes.noise_probability()


@pytest.mark.slow
def test_nuts_noise_weight_covers_the_true_fraction():
    X = _data(seed=1)
    true_fraction = 12 / len(X)
    bayes = BayesianGaussianMixture(
        2,
        noise=True,
        draws=200,
        tune=200,
        chains=2,
        pointwise=False,
        sampler_kwargs={"cores": 1},
        random_state=2,
        progressbar=False,
    ).fit(X)
    noise = bayes.idata_.posterior["noise_weight"].values.ravel()
    lower, upper = np.quantile(noise, [0.005, 0.995])
    assert lower < true_fraction < upper
    # the posterior weights are absolute: with the noise weight they sum to one
    total = (
        bayes.idata_.posterior["weights"].sum("component") + bayes.idata_.posterior["noise_weight"]
    )
    np.testing.assert_allclose(total.values, 1.0, atol=1e-12)
    # the far background points are noise; the cluster points are not
    p_noise = bayes.noise_probability()["mean"].to_numpy()
    far = np.min(np.linalg.norm(X[:, None] - [[0.0, 0.0], [4.0, 2.0]], axis=-1), axis=1) > 3.0
    assert np.mean(p_noise[far] > 0.5) > 0.8
    assert np.mean(p_noise[:110] > 0.5) < 0.03
    np.testing.assert_allclose(bayes.predict_proba(X).sum(axis=1) + p_noise, 1.0, atol=1e-12)
    table = map_vs_posterior(
        bayes.idata_.posterior.to_dataset(), bayes.map_, noise_weight=bayes.map_noise_weight_
    )
    row = table.set_index("parameter").loc["noise_weight"]
    assert row["map_in_interval"] and row["mean"] == pytest.approx(noise.mean())
    assert bayes.diagnose().n_divergences == 0
