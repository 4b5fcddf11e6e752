"""The PyMC model: densities against SciPy, transforms, and find_MAP against MAP-EM."""

import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from scipy import stats
from scipy.special import logsumexp

from bayesgmm.mixture import GaussianMixture
from bayesgmm.model import (
    OrderedComponents,
    SPDCholeskyTransform,
    build_model,
    initial_point,
)
from bayesgmm.params import MixtureParams
from bayesgmm.priors import MixturePrior
from bayesgmm.spec import MixtureSpec

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _params(X, covariance_type, k=2):
    em = GaussianMixture(k, covariance_type=covariance_type, prior="default", random_state=0)
    return em.fit(X).params_


def _build(X, k, covariance_type, prior="default", *, standardize=True, **kwargs):
    spec = MixtureSpec.from_data(X, k, covariance_type, prior, standardize=standardize)
    return build_model(X, spec, **kwargs), spec


def _model_logp(model, spec, params):
    point = initial_point(params, model, spec)
    ip = pm.initial_point.make_initial_point_fn(
        model=model, overrides=point, jitter_rvs=set(), return_transformed=True
    )(0)
    return float(model.compile_logp(jacobian=False)(ip))


def _scipy_logp(X, params: MixtureParams, prior: MixturePrior):
    w, mu = params.weights, params.means
    cov = params.full_covariances()
    nu, psi, kappa, m0 = (
        prior.degrees_of_freedom,
        prior.covariance_prior,
        prior.mean_precision,
        prior.mean_prior,
    )
    logp = stats.dirichlet.logpdf(w, prior.concentration(len(w)))
    if params.covariance_type == "full":
        logp += sum(stats.invwishart.logpdf(c, df=nu, scale=psi) for c in cov)
    elif params.covariance_type == "tied":
        logp += stats.invwishart.logpdf(cov[0], df=nu, scale=psi)
    else:
        var = params.covariances
        logp += stats.invgamma.logpdf(var, a=nu / 2, scale=np.asarray(psi) / 2).sum()
    logp += sum(
        stats.multivariate_normal.logpdf(m, m0, c / kappa) for m, c in zip(mu, cov, strict=True)
    )
    comp = np.stack(
        [stats.multivariate_normal.logpdf(X, m, c) for m, c in zip(mu, cov, strict=True)], axis=1
    )
    return logp + logsumexp(np.log(w) + comp, axis=1).sum()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_joint_logp_matches_scipy(faithful, covariance_type):
    params = _params(faithful, covariance_type)
    prior = MixturePrior.default(faithful, 2, covariance_type)
    model, spec = _build(faithful, 2, covariance_type, prior, standardize=False)
    expected = _scipy_logp(faithful, params, prior)
    assert _model_logp(model, spec, params) == pytest.approx(expected, abs=1e-8)


def test_standardised_logp_differs_by_the_parameter_jacobian(faithful):
    params = _params(faithful, "full")
    prior = MixturePrior.default(faithful, 2, "full")
    model, spec = _build(faithful, 2, "full", prior, standardize=True)
    log_s = np.log(faithful.std(axis=0)).sum()  # the standardisation divides by the sd
    d, k = faithful.shape[1], 2
    # mu = loc + s * mu_z and Sigma = D Sigma_z D have constant Jacobians
    jacobian = k * log_s + k * (d + 1) * log_s
    expected = _scipy_logp(faithful, params, prior) + jacobian
    assert _model_logp(model, spec, params) == pytest.approx(expected, abs=1e-8)


def test_log_likelihood_is_one_term_per_observation_on_user_scale(galaxies):
    params = _params(galaxies, "full", k=3).sorted_by_mean()
    model, spec = _build(galaxies, 3, "full")
    point = initial_point(params, model, spec)
    ip = pm.initial_point.make_initial_point_fn(
        model=model, overrides=point, jitter_rvs=set(), return_transformed=True
    )(0)
    elementwise = model.compile_fn(model.logp(vars=[model["X"]], sum=False)[0])(ip)
    comp = np.stack(
        [
            stats.norm.logpdf(galaxies[:, 0], m[0], np.sqrt(c[0, 0]))
            for m, c in zip(params.means, params.full_covariances(), strict=True)
        ],
        axis=1,
    )
    expected = logsumexp(np.log(params.weights) + comp, axis=1)
    assert elementwise.shape == (len(galaxies),)
    np.testing.assert_allclose(elementwise, expected, atol=1e-10)


def test_spd_transform_log_jacobian_matches_autodiff():
    d = 3
    transform = SPDCholeskyTransform(d)
    y = pt.vector("y")
    sigma = transform.backward(y)
    rows, cols = np.tril_indices(d)
    jac = pt.jacobian(sigma[rows, cols], y)
    fn = pm.compile([y], [pt.log(pt.abs(pt.linalg.det(jac))), transform.log_jac_det(y)])
    value = np.random.default_rng(0).normal(size=d * (d + 1) // 2)
    numeric, analytic = fn(value)
    assert analytic == pytest.approx(numeric, abs=1e-10)
    roundtrip = pm.compile([y], transform.forward(sigma))(value)
    np.testing.assert_allclose(roundtrip, value, atol=1e-12)


def test_ordered_components_transform():
    transform = OrderedComponents()
    y = pt.matrix("y")
    x = transform.backward(y)
    jac = pt.jacobian(x[:, 0], y)
    fn = pm.compile([y], [x, pt.log(pt.abs(pt.linalg.det(jac[:, :, 0]))), transform.log_jac_det(y)])
    value = np.array([[0.3], [-0.2], [0.5]])
    means, numeric, analytic = fn(value)
    assert np.all(np.diff(means[:, 0]) > 0)
    assert analytic.shape == (3,)
    assert analytic.sum() == pytest.approx(numeric, abs=1e-12)


def _find_map(model, start):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        result = pm.find_MAP(
            model=model,
            initvals=start,
            jitter=False,
            progressbar=False,
            return_inferencedata=True,
            maxiter=20_000,
            ftol=1e-14,
            gtol=1e-10,
        )
    post = result["posterior"]
    return {name: post[name].values[0, 0] for name in ("weights", "means", "covariances")}


def _perturbed(params: MixtureParams) -> MixtureParams:
    """A start away from the optimum, in the same labelling."""
    return MixtureParams(
        0.8 * params.weights + 0.2 / params.n_components,
        params.means + 0.1 * params.means.std(axis=0),
        params.covariances * 1.3,
        params.covariance_type,
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("prior", ["default", None])
def test_find_map_equals_em(faithful, covariance_type, prior):
    em = GaussianMixture(
        2,
        covariance_type=covariance_type,
        prior=prior,
        reg_covar=0.0,
        tol=1e-12,
        max_iter=5000,
        random_state=0,
    ).fit(faithful)
    model, spec = _build(faithful, 2, covariance_type, prior)
    start = initial_point(_perturbed(em.params_), model, spec)
    found = _find_map(model, start)
    np.testing.assert_allclose(found["weights"], em.weights_, rtol=1e-4)
    np.testing.assert_allclose(found["means"], em.means_, rtol=1e-4)
    np.testing.assert_allclose(
        found["covariances"],
        em.params_.full_covariances(),
        rtol=1e-4,
        atol=1e-4 * np.abs(em.params_.full_covariances()).max(),
    )


def test_lkj_family_builds_per_component_correlations(faithful):
    model, _ = _build(faithful, 3, "full", covariance_prior_family="lkj")
    assert model.named_vars_to_dims["corr_chol_z"] == ("component", "feature", "feature_bis")
    assert np.isfinite(model.compile_logp()(model.initial_point()))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"covariance_type": "banana"}, "covariance_type"),
        ({"covariance_prior_family": "wishart"}, "covariance_prior_family"),
        ({"covariance_type": "diag", "covariance_prior_family": "lkj"}, "lkj"),
        ({"prior": "flat"}, "prior"),
    ],
)
def test_invalid_options_name_the_value(faithful, kwargs, match):
    args = {"covariance_type": "full", "prior": "default"} | kwargs
    with pytest.raises(ValueError, match=match):
        _build(faithful, 2, args.pop("covariance_type"), args.pop("prior"), **args)


def test_prior_for_another_covariance_type_is_rejected(faithful):
    with pytest.raises(ValueError, match="diag"):
        _build(faithful, 2, "full", MixturePrior.default(faithful, 2, "diag"))
