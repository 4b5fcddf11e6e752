"""Sparse finite mixtures: the Gibbs kernel against closed forms, then K+ recovery."""

import math

import numpy as np
import pytest
from scipy import integrate, special
from sklearn.metrics import adjusted_rand_score

from bayesgmm import datasets
from bayesgmm.core.priors import MixturePrior
from bayesgmm.posterior.partitions import salso, similarity_matrix
from bayesgmm.reporting.plots import plot_cluster_count
from bayesgmm.selection.sparse import (
    ClusterCountPosterior,
    _run_chain,
    cluster_count_diagnostics,
    default_sparse_prior,
    draw_weights,
    fit_sparse_mixture,
)

# ------------------------------------------------------------------ references


def niw_posterior_moments(X, prior):
    """Closed-form E[mu], Cov[mu], E[Sigma], Var[Sigma_ij] of the NIW posterior."""
    n, d = X.shape
    xbar = X.mean(axis=0)
    S = (X - xbar).T @ (X - xbar)
    k0, nu0, m0, psi0 = (
        prior.mean_precision,
        prior.degrees_of_freedom,
        prior.mean_prior,
        prior.covariance_prior,
    )
    kn, nun = k0 + n, nu0 + n
    mn = (k0 * m0 + n * xbar) / kn
    psin = psi0 + S + k0 * n / kn * np.outer(xbar - m0, xbar - m0)
    p = nun - d - 1
    e_sigma = psin / p
    # Var of an inverse-Wishart entry (e.g. Press 1982; Wikipedia "Inverse-Wishart")
    dg = np.diag(psin)
    var_sigma = ((p + 2) * psin**2 + p * np.outer(dg, dg)) / (p * p * (p + 1) * (p - 2))
    return mn, e_sigma / kn, e_sigma, var_sigma


def run_fixed_allocation(
    X, z, k_max, prior, *, e0=1.0, sample_e0=False, a_e=1.0, b_e=1.0, draws=4000, seed=3
):
    """The sampler's own chain with the allocations held at ``z``."""
    return _run_chain(
        np.ascontiguousarray(X, dtype=np.float64),
        np.asarray(z, np.int64),
        k_max,
        np.asarray(prior.mean_prior, np.float64),
        float(prior.mean_precision),
        float(prior.degrees_of_freedom),
        np.asarray(prior.covariance_prior, np.float64),
        e0,
        sample_e0,
        a_e,
        b_e,
        200,
        draws,
        1,
        False,
        np.random.default_rng(seed),
    )


def assert_within_mc(draws, expected, sd, n_eff, z_max=4.5):
    """|mean(draws) - expected| < z_max Monte Carlo standard errors, elementwise."""
    err = np.abs(np.mean(draws, axis=0) - expected) / (np.asarray(sd) / np.sqrt(n_eff))
    assert np.all(err < z_max), err


@pytest.fixture(scope="module")
def small_data():
    rng = np.random.default_rng(11)
    return rng.multivariate_normal([1.0, -2.0], [[2.0, 0.6], [0.6, 1.0]], size=25)


@pytest.fixture(scope="module")
def test_prior():
    # nu0 = d + 6 so that the inverse-Wishart draws have finite fourth moments
    # kappa0 and m0 far from the data mean make the shrinkage term of Psi_n matter
    return MixturePrior(1.0, np.array([3.0, 1.0]), 5.0, 8.0, np.array([[1.5, 0.3], [0.3, 0.8]]))


@pytest.fixture(scope="module")
def three_clusters():
    X, labels, _ = datasets.make_mixture(300, 3, 2, separation=6.0, random_state=0)
    return X, labels


@pytest.fixture(scope="module")
def three_fit(three_clusters):
    return fit_sparse_mixture(three_clusters[0], 10, e0=0.01, draws=1000, burn=500, random_state=0)


# ------------------------------------------------------- conditional updates


def test_niw_draws_match_closed_form_posterior(small_data, test_prior):
    n_draws = 4000
    _, means, covs, *_ = run_fixed_allocation(
        small_data, np.zeros(25), 1, test_prior, draws=n_draws
    )
    mn, cov_mu, e_sigma, var_sigma = niw_posterior_moments(small_data, test_prior)
    assert_within_mc(means[:, 0], mn, np.sqrt(np.diag(cov_mu)), n_draws)
    assert_within_mc(covs[:, 0], e_sigma, np.sqrt(var_sigma), n_draws)
    # the posterior covariance of mu is E[Sigma] / kappa_n
    np.testing.assert_allclose(np.cov(means[:, 0], rowvar=False), cov_mu, rtol=0.08)


def test_empty_component_draws_from_the_prior(small_data, test_prior):
    n_draws = 4000
    _, means, covs, *_ = run_fixed_allocation(
        small_data, np.zeros(25), 2, test_prior, draws=n_draws, seed=5
    )
    mn, cov_mu, e_sigma, var_sigma = _prior_moments(test_prior)
    assert_within_mc(means[:, 1], mn, np.sqrt(np.diag(cov_mu)), n_draws)
    assert_within_mc(covs[:, 1], e_sigma, np.sqrt(var_sigma), n_draws)


def _prior_moments(prior):
    d = prior.n_features
    p = prior.degrees_of_freedom - d - 1
    psi = prior.covariance_prior
    dg = np.diag(psi)
    var_sigma = ((p + 2) * psi**2 + p * np.outer(dg, dg)) / (p * p * (p + 1) * (p - 2))
    return prior.mean_prior, psi / p / prior.mean_precision, psi / p, var_sigma


def test_weight_draws_match_dirichlet_moments():
    counts = np.array([40.0, 7.0, 0.0, 0.0, 3.0])
    e0, n_draws = 0.01, 20000
    w = draw_weights(counts, e0, n_draws, random_state=2)
    alpha = counts + e0
    a0 = alpha.sum()
    mean = alpha / a0
    sd = np.sqrt(mean * (1 - mean) / (a0 + 1))
    assert_within_mc(w, mean, sd, n_draws)
    # the sd of an empty component's weight is too heavy-tailed to estimate; its log is not
    filled = counts > 0
    np.testing.assert_allclose(w.std(axis=0)[filled], sd[filled], rtol=0.05)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    # E[log w_k] = digamma(alpha_k) - digamma(a0), finite even for the empty components
    log_w = draw_weights(counts, e0, n_draws, random_state=2, log=True)
    np.testing.assert_allclose(np.exp(log_w), w)
    sd_log = np.sqrt(special.polygamma(1, alpha) - special.polygamma(1, a0))
    assert_within_mc(log_w, special.digamma(alpha) - special.digamma(a0), sd_log, n_draws)


def test_e0_metropolis_step_targets_its_conditional(test_prior, small_data):
    z = np.repeat([0, 1, 2], [15, 7, 3])
    k_max, a_e, b_e = 6, 10.0, 60.0
    *_, e0_draws, _, _, _ = run_fixed_allocation(
        small_data,
        z,
        k_max,
        test_prior,
        e0=0.2,
        sample_e0=True,
        a_e=a_e,
        b_e=b_e,
        draws=20000,
        seed=9,
    )
    counts = np.bincount(z, minlength=k_max)

    def density(e0):
        return math.exp(
            (a_e - 1) * math.log(e0)
            - b_e * e0
            + math.lgamma(k_max * e0)
            - math.lgamma(len(z) + k_max * e0)
            + sum(math.lgamma(c + e0) - math.lgamma(e0) for c in counts)
            + 20.0
        )

    norm = integrate.quad(density, 0, 5, points=[0.1, 0.3])[0]
    mean = integrate.quad(lambda e: e * density(e), 0, 5, points=[0.1, 0.3])[0] / norm
    second = integrate.quad(lambda e: e * e * density(e), 0, 5, points=[0.1, 0.3])[0] / norm
    sd = math.sqrt(second - mean**2)
    # Metropolis draws are correlated: a conservative effective sample size
    assert abs(e0_draws.mean() - mean) < 4.5 * sd / math.sqrt(20000 / 10)
    assert abs(e0_draws.std() - sd) < 0.1 * sd


# ----------------------------------------------------------------- recovery


def test_single_gaussian_has_one_cluster():
    X = np.random.default_rng(0).standard_normal((300, 2))
    fit = fit_sparse_mixture(X, 10, e0=0.01, draws=1000, burn=500, random_state=1)
    assert fit.cluster_count.probabilities[1] > 0.8


def test_three_separated_clusters(three_fit, three_clusters):
    cc = three_fit.cluster_count
    assert cc.mode == 3 and cc.probabilities[3] > 0.9
    assert cc.answer().startswith(f"K+ = 3 with posterior probability {cc.probabilities[3]:.2f}")
    result = salso(three_fit.allocations[::4], random_state=0)
    assert adjusted_rand_score(three_clusters[1], result.labels) == 1.0
    psm = similarity_matrix(three_fit.allocations[::8])
    same = three_clusters[1][:, None] == three_clusters[1][None, :]
    assert psm[same].min() > 0.9 and psm[~same].max() < 0.1


def test_stable_to_max_components(three_fit, three_clusters):
    wide = fit_sparse_mixture(three_clusters[0], 20, e0=0.01, draws=1000, burn=500, random_state=1)
    p10, p20 = three_fit.cluster_count.probabilities[3], wide.cluster_count.probabilities[3]
    # two chains of 1000 correlated draws: allow 4 binomial sds on an ESS of 500 each
    sd = math.sqrt(p10 * (1 - p10) / 500 + p20 * (1 - p20) / 500)
    assert abs(p10 - p20) < max(4 * sd, 0.02)


def test_gamma_hyperprior_finds_three_clusters(three_clusters):
    fit = fit_sparse_mixture(three_clusters[0], 10, e0=None, draws=600, burn=400, random_state=4)
    assert fit.cluster_count.mode == 3
    assert fit.sparsity.shape == 10 and fit.sparsity.rate == 100
    e0 = fit.idata["posterior"]["e0"]
    assert float(e0.std()) > 0 and 0.02 < float(e0.mean()) < 0.3
    assert np.all((fit.e0_acceptance > 0.2) & (fit.e0_acceptance < 0.7))
    diag = cluster_count_diagnostics(fit)
    assert list(diag.index) == ["n_clusters", "e0", "log_likelihood_total"]
    assert diag.loc["log_likelihood_total", "rhat"] < 1.05
    assert diag.loc["e0", "ess_bulk"] > 100


# ----------------------------------------------------------- results, seeds


def test_reproducible_for_a_seed(three_clusters):
    kw = dict(draws=50, burn=20, chains=2, random_state=123)
    a = fit_sparse_mixture(three_clusters[0], 6, **kw)
    b = fit_sparse_mixture(three_clusters[0], 6, **kw)
    c = fit_sparse_mixture(three_clusters[0], 6, **{**kw, "random_state": 124})
    post_a, post_b = a.idata["posterior"].to_dataset(), b.idata["posterior"].to_dataset()
    for name in ("weights", "means", "covariances", "e0", "n_clusters"):
        np.testing.assert_array_equal(post_a[name].values, post_b[name].values)
    np.testing.assert_array_equal(a.allocations, b.allocations)
    assert not np.array_equal(post_a["means"].values, c.idata["posterior"]["means"].values)
    # chains differ from each other
    assert not np.array_equal(post_a["means"].values[0], post_a["means"].values[1])


def test_datatree_layout(three_fit):
    post = three_fit.idata["posterior"]
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert post["e0"].dims == post["n_clusters"].dims == ("chain", "draw")
    assert three_fit.idata["allocations"]["z"].dims == ("chain", "draw", "obs")
    assert three_fit.allocations.shape == (2000, 300)
    z = three_fit.idata["allocations"]["z"].values
    k_plus = np.array([[len(np.unique(row)) for row in chain] for chain in z])
    np.testing.assert_array_equal(k_plus, post["n_clusters"].values)
    np.testing.assert_allclose(post["weights"].sum("component"), 1.0)


def test_cluster_count_record_and_figure():
    cc = ClusterCountPosterior.from_counts(np.array([[3, 3, 4, 3], [3, 2, 3, 3]]), 5, "test")
    np.testing.assert_allclose(cc.probabilities.to_numpy(), [0, 0.125, 0.75, 0.125, 0])
    assert cc.mode == 3 and cc.mean == pytest.approx(3.0)
    assert cc.answer() == "K+ = 3 with posterior probability 0.75 (test)"
    frame = cc.to_frame()
    assert list(frame.columns) == ["probability", "cumulative"]
    assert frame["cumulative"].iloc[-1] == pytest.approx(1.0)
    fig = plot_cluster_count(cc)
    ax = fig.axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, [0, 0.125, 0.75, 0.125, 0])
    assert ax.get_xlabel() and ax.get_ylabel() and "test" in ax.get_title()


def test_default_prior_does_not_depend_on_max_components(three_clusters):
    prior = default_sparse_prior(three_clusters[0])
    np.testing.assert_allclose(prior.covariance_prior, np.cov(three_clusters[0], rowvar=False))
    assert prior.degrees_of_freedom == 4 and prior.mean_precision == 0.01


def test_one_dimensional_input_and_errors():
    X = datasets.load_galaxies()[:, 0]
    fit = fit_sparse_mixture(X, 5, draws=30, burn=10, chains=2, random_state=0)
    assert fit.idata["posterior"]["covariances"].shape == (2, 30, 5, 1, 1)
    with pytest.raises(ValueError, match="max_components"):
        fit_sparse_mixture(X[:4], 5)
    with pytest.raises(ValueError, match="e0"):
        fit_sparse_mixture(X, 5, e0=-1.0)
    with pytest.raises(ValueError, match="full"):
        fit_sparse_mixture(X, 5, prior=MixturePrior.default(X[:, None], 5, "diag"))


@pytest.mark.slow
def test_gibbs_sampler_agrees_with_nuts_where_both_mix(faithful):
    """Same model and priors (K=2, Dirichlet(1), NIW): Gibbs and NUTS posteriors agree."""
    from bayesgmm import BayesianGaussianMixture

    prior = MixturePrior.default(faithful, 2, "full")
    gibbs = fit_sparse_mixture(
        faithful, 2, prior=prior, e0=1.0, draws=2000, burn=500, random_state=0
    )
    nuts = BayesianGaussianMixture(
        2, prior=prior, draws=300, tune=300, chains=2, random_state=0, progressbar=False
    ).fit(faithful)

    def sorted_draws(posterior):
        means = posterior["means"].values.reshape(-1, 2, 2)
        weights = posterior["weights"].values.reshape(-1, 2)
        order = np.argsort(means[:, :, 0], axis=1)  # label by eruption duration
        rows = np.arange(len(means))[:, None]
        return weights[rows, order], means[rows, order]

    w_g, m_g = sorted_draws(gibbs.idata["posterior"])
    w_n, m_n = sorted_draws(nuts.idata_["posterior"])
    # posterior means agree within a fifth of a posterior sd (Monte Carlo error is smaller)
    np.testing.assert_array_less(np.abs(w_g.mean(0) - w_n.mean(0)), 0.2 * w_n.std(0))
    np.testing.assert_array_less(np.abs(m_g.mean(0) - m_n.mean(0)), 0.2 * m_n.std(0))
    # and so do the posterior sds, within 25%
    np.testing.assert_allclose(m_g.std(0), m_n.std(0), rtol=0.25)
