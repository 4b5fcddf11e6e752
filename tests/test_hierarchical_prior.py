"""The hierarchical covariance-scale prior (``prior="hierarchical"``, ``HierarchicalPrior``).

Malsiner-Walli, Frühwirth-Schnatter & Grün (2016): ``Psi ~ Wishart(nu_g, G0^-1)``,
``Sigma_k | Psi ~ InvWishart(nu0, Psi)``. Fast tests: the hyper-parameters, the scope, the
closed-form scale update against a numerical maximisation, ECM's monotone ascent and fixed
point, the Wishart full conditional of the Gibbs kernel against the analytic moments (K=1,
known Sigma), Gibbs' log prior, the saved format, the sparse mixture and the command line.
Slow tests: PyMC's ``find_MAP`` equals ECM's MAP; NUTS and Gibbs agree within Monte Carlo
error.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from map_reference import find_map
from scipy import optimize, stats

from bayesgmm import BayesianGaussianMixture, GaussianMixture, UnreliablePosteriorWarning
from bayesgmm.bayes.gibbs import log_hierarchical_prior_draws
from bayesgmm.core import persistence
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import HierarchicalPrior, MixturePrior
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.em.hierarchical import run_ecm
from bayesgmm.em.steps import m_step
from bayesgmm.posterior.gibbs_kernels import _draw_wishart_scale
from bayesgmm.selection.sparse import fit_sparse_mixture


def _random_params(rng, k, d):
    a = rng.normal(size=(k, d, d))
    covs = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)
    return MixtureParams(rng.dirichlet(np.ones(k)), rng.normal(size=(k, d)), covs)


def test_hyperparameters_are_the_papers(faithful):
    prior = HierarchicalPrior.from_data(faithful)
    d = 2
    c0, g0 = 2.5 + (d - 1) / 2, 0.5 + (d - 1) / 2
    ranges = np.ptp(faithful, axis=0)
    assert prior.degrees_of_freedom == 2 * c0 == d + 4
    assert prior.scale_degrees_of_freedom == 2 * g0 == d
    np.testing.assert_allclose(prior.scale_rate, np.diag(100 * g0 / c0 / ranges**2))
    np.testing.assert_allclose(prior.mean_prior, faithful.mean(axis=0))
    # the prior is the same model on the working scale: G0 scales as a precision
    scaling = Standardization.from_data(faithful, prior.structure)
    working = scaling.prior_to_working(prior)
    assert isinstance(working, HierarchicalPrior)
    np.testing.assert_allclose(
        working.scale_rate, HierarchicalPrior.from_data(scaling.to_working(faithful)).scale_rate
    )


@pytest.mark.parametrize("covariance_type", ["diag", "tied", "spherical"])
def test_other_structures_are_refused_by_name(faithful, covariance_type):
    with pytest.raises(ValueError, match="covariance_type='full' only"):
        MixtureSpec.from_data(faithful, 2, covariance_type, "hierarchical")
    with pytest.raises(ValueError, match="full"):
        BayesianGaussianMixture(2, covariance_type=covariance_type, prior="hierarchical").fit(
            faithful
        )


def test_scale_update_is_the_closed_form_mode():
    """The ECM's C0 step against a numerical maximisation of log p(Sigma | Psi) + log p(Psi)."""
    rng = np.random.default_rng(0)
    d, k = 3, 4
    X = rng.normal(size=(50, d)) * [1.0, 3.0, 0.2]
    prior = HierarchicalPrior.from_data(X)
    params = _random_params(rng, k, d)
    tril = np.tril_indices(d)

    def unpack(theta):
        low = np.zeros((d, d))
        low[tril] = theta
        low[np.diag_indices(d)] = np.exp(np.diag(low))
        return low @ low.T

    def negative(theta):
        return -prior.log_density(params, unpack(theta))

    start = np.zeros(len(tril[0]))
    found = optimize.minimize(negative, start, method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(prior.scale_mode(params.covariances), unpack(found.x), rtol=1e-5)
    # the profile density is the joint density at the mode, and above it elsewhere
    mode = prior.scale_mode(params.covariances)
    assert prior.log_density(params) == pytest.approx(prior.log_density(params, mode))
    assert prior.log_density(params) > prior.log_density(params, 1.1 * mode)


def test_scale_log_density_is_scipys_wishart():
    rng = np.random.default_rng(1)
    prior = HierarchicalPrior.from_data(rng.normal(size=(30, 3)))
    psi = _random_params(rng, 1, 3).covariances[0]
    want = stats.wishart.logpdf(
        psi, df=prior.scale_degrees_of_freedom, scale=np.linalg.inv(prior.scale_rate)
    )
    assert prior.scale_log_density(psi) == pytest.approx(want, rel=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_ecm_ascends_the_map_objective_monotonically(faithful):
    scaling = Standardization.from_data(faithful, HierarchicalPrior.from_data(faithful).structure)
    Z = scaling.to_working(faithful)
    prior = scaling.prior_to_working(HierarchicalPrior.from_data(faithful))
    em = GaussianMixture(3, prior="default", n_init=1, max_iter=3, random_state=0).fit(Z)
    result = run_ecm(Z, em.params_, prior, reg_covar=0.0, tol=1e-13, max_iter=2000)
    steps = np.diff(result.trace)
    assert len(steps) > 10 and result.converged
    assert steps.min() > -1e-12 * np.abs(result.trace).max(), steps.min()
    assert result.trace[-1] > result.trace[0] + 1e-3
    # at the fixed point: Psi at its conditional mode and the M-step given it changes nothing
    scale = prior.scale_mode(result.params.covariances)
    from bayesgmm.em.steps import e_step

    resp = np.exp(e_step(Z, result.params)[0])
    again = m_step(Z, resp, "full", prior.conditional(scale), 0.0)
    np.testing.assert_allclose(again.covariances, result.params.covariances, rtol=1e-5)
    np.testing.assert_allclose(again.means, result.params.means, atol=1e-6)


def test_map_em_reports_the_profile_objective_and_keeps_scale_invariance(faithful):
    fit = GaussianMixture(2, prior="hierarchical", random_state=0).fit(faithful)
    assert isinstance(fit.prior_, HierarchicalPrior)
    loglik = fit.score(faithful)
    prior_term = fit.prior_.log_density(fit.params_) / len(faithful)
    assert fit.lower_bound_ == pytest.approx(loglik + prior_term, abs=1e-6)
    scaled = GaussianMixture(2, prior="hierarchical", random_state=0).fit(faithful * 10.0)
    np.testing.assert_allclose(np.sort(scaled.weights_), np.sort(fit.weights_), atol=1e-6)
    # the hierarchical MAP differs from the default prior's (the scale is learned)
    default = GaussianMixture(2, prior="default", random_state=0).fit(faithful)
    assert not np.allclose(np.sort(default.weights_), np.sort(fit.weights_), atol=1e-4)


def test_gibbs_wishart_conditional_matches_the_analytic_wishart():
    """K=1, Sigma known: the kernel's C0 draws have the Wishart(nu_g + nu0, (G0 +
    Sigma^-1)^-1) mean and variance (and their scipy counterparts)."""
    d = 2
    sigma = np.array([[2.0, 0.6], [0.6, 0.5]])
    rate = np.array([[1.5, 0.2], [0.2, 3.0]])
    nu0, nu_g = 6.0, 2.0
    chols = np.linalg.cholesky(sigma)[None]
    n = 40_000
    draws = np.empty((n, d, d))
    psi = np.eye(d)
    kernel_rng = np.random.default_rng(4)
    for i in range(n):
        _draw_wishart_scale(chols, nu0, nu_g, rate, psi, kernel_rng)
        draws[i] = psi
    dof = nu_g + nu0
    scale = np.linalg.inv(rate + np.linalg.inv(sigma))
    mean = dof * scale
    var = dof * (scale**2 + np.outer(np.diag(scale), np.diag(scale)))
    z = np.abs(draws.mean(axis=0) - mean) / np.sqrt(var / n)
    assert z.max() < 4.5, z
    np.testing.assert_allclose(draws.var(axis=0), var, rtol=0.05)
    np.testing.assert_allclose(stats.wishart(df=dof, scale=scale).mean(), mean)


def test_gibbs_log_prior_is_the_priors_log_density():
    rng = np.random.default_rng(5)
    prior = HierarchicalPrior.from_data(rng.normal(size=(40, 2)))
    params = [_random_params(rng, 3, 2) for _ in range(4)]
    scales = np.stack([_random_params(rng, 1, 2).covariances[0] for _ in range(4)])
    got = log_hierarchical_prior_draws(
        np.stack([p.weights for p in params]),
        np.stack([p.means for p in params]),
        np.stack([p.covariances for p in params]),
        scales,
        prior,
    )
    want = [prior.log_density(p, s) for p, s in zip(params, scales, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_prior_survives_the_saved_format(faithful):
    prior = HierarchicalPrior.from_data(faithful)
    back = persistence.decode(persistence.encode(prior))
    assert isinstance(back, HierarchicalPrior)
    np.testing.assert_array_equal(back.scale_rate, prior.scale_rate)
    assert back.scale_degrees_of_freedom == prior.scale_degrees_of_freedom


def test_conditional_prior_is_a_plain_mixture_prior(faithful):
    prior = HierarchicalPrior.from_data(faithful)
    given = prior.conditional(2.0 * np.eye(2))
    assert type(given) is MixturePrior
    np.testing.assert_array_equal(given.covariance_prior, 2.0 * np.eye(2))
    assert given.degrees_of_freedom == prior.degrees_of_freedom


def test_sparse_mixture_learns_the_scale(three_blobs):
    X, _ = three_blobs
    fit = fit_sparse_mixture(X, 6, prior="hierarchical", draws=300, burn=200, random_state=0)
    scale = fit.idata["posterior"]["covariance_scale"].values
    assert scale.shape == (2, 300, 2, 2)
    assert np.all(np.linalg.eigvalsh(scale.reshape(-1, 2, 2)) > 0)
    assert fit.cluster_count.mode == 3
    assert "learned" in fit.settings["prior"]


def test_gibbs_fit_stores_the_scale(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliablePosteriorWarning)
        fit = BayesianGaussianMixture(
            2, prior="hierarchical", method="gibbs", draws=200, tune=50, chains=2, random_state=0
        ).fit(faithful)
    scale = fit.idata_.posterior["covariance_scale_z"].values
    assert scale.shape == (2, 200, 2, 2)
    assert np.isfinite(fit.idata_.sample_stats["lp"].values).all()
    assert isinstance(fit.spec_.prior, HierarchicalPrior)


def test_cli_refuses_other_structures(tmp_path, capsys):
    from bayesgmm.cli import main

    code = main(
        [
            "fit",
            "faithful",
            "--k",
            "2",
            "--covariance",
            "diag",
            "--prior",
            "hierarchical",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    assert code == 2
    assert "--prior hierarchical" in capsys.readouterr().err


# ------------------------------------------------------------------------- slow


def _ecm_map(X, k):
    prior = HierarchicalPrior.from_data(X)
    em = GaussianMixture(
        k, prior=prior, reg_covar=0.0, tol=1e-12, max_iter=5000, random_state=0
    ).fit(X)
    return em, prior


@pytest.mark.slow
def test_find_map_equals_the_ecm_map(faithful):
    from bayesgmm.bayes.model import build_model, initial_point
    from bayesgmm.bayes.structures import SCALE_NAME

    em, prior = _ecm_map(faithful, 2)
    spec = MixtureSpec.from_data(faithful, 2, "full", prior)
    model = build_model(faithful, spec)
    start = initial_point(
        MixtureParams(
            0.8 * em.weights_ + 0.1,
            em.means_ + 0.1 * em.means_.std(axis=0),
            em.covariances_ * 1.3,
        ),
        model,
        spec,
    )
    value = find_map(model, start, names=None)
    np.testing.assert_allclose(value["weights"], em.weights_, rtol=1e-4)
    np.testing.assert_allclose(value["means"], em.means_, rtol=1e-4)
    covs = em.covariances_
    np.testing.assert_allclose(value["covariances"], covs, rtol=1e-4, atol=1e-4 * covs.max())
    scale = spec.standardization.scale
    psi_user = value[SCALE_NAME] * np.outer(scale, scale)
    np.testing.assert_allclose(psi_user, prior.scale_mode(covs), rtol=1e-3)


@pytest.mark.slow
def test_nuts_and_gibbs_agree_within_monte_carlo_error(faithful):
    import arviz_stats as azs

    settings = {"prior": "hierarchical", "random_state": 11, "progressbar": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliablePosteriorWarning)
        gibbs = BayesianGaussianMixture(
            2, method="gibbs", draws=2000, tune=500, chains=4, **settings
        ).fit(faithful)
        nuts = BayesianGaussianMixture(2, method="nuts", draws=1000, **settings).fit(faithful)
    for name in ("weights", "means", "covariances", "covariance_scale_z"):
        values = []
        for fit in (gibbs, nuts):
            post = fit.idata_.posterior[name]
            flat = post.values.reshape(post.shape[0], post.shape[1], -1)
            ess = np.asarray(azs.ess(flat, method="bulk"), dtype=float).reshape(-1)
            values.append((flat.mean(axis=(0, 1)), flat.std(axis=(0, 1)), ess))
        (m1, s1, e1), (m2, s2, e2) = values
        se = np.sqrt(s1**2 / e1 + s2**2 / e2)
        z = np.abs(m1 - m2) / se
        assert z.max() < 5.0, (name, z)
        np.testing.assert_allclose(s1, s2, rtol=0.2, err_msg=name)


def test_empty_components_let_the_scale_collapse_and_are_not_modes(faithful):
    """From a start with two empty components (K=3, d=2) Psi and their covariances shrink
    together and the objective climbs without settling; MAP-EM keeps only optima where every
    component holds a point."""
    prior_user = HierarchicalPrior.from_data(faithful)
    scaling = Standardization.from_data(faithful, prior_user.structure)
    Z = scaling.to_working(faithful)
    prior = scaling.prior_to_working(prior_user)
    one = GaussianMixture(1, prior="default").fit(Z).params_
    start = MixtureParams(
        np.array([1.0 - 2e-12, 1e-12, 1e-12]),
        np.repeat(one.means, 3, axis=0),
        np.repeat(one.covariances, 3, axis=0),
    )
    try:
        result = run_ecm(Z, start, prior, tol=1e-10, max_iter=200)
    except ValueError:  # Psi no longer positive definite: collapsed
        pass
    else:
        assert not result.converged
        scale = prior.scale_mode(result.params.covariances)
        assert (
            np.linalg.eigvalsh(scale).min()
            < 1e-3 * np.linalg.eigvalsh(prior.covariance_prior).min()
        )
    fit = GaussianMixture(3, prior="hierarchical", random_state=0).fit(faithful)
    for params, _ in fit.optima_:
        assert params.weights.min() * len(faithful) >= 1.0
