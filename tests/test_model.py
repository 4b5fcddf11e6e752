"""The PyMC model: densities against SciPy, transforms, and find_MAP against MAP-EM."""

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from map_reference import find_map
from scipy import stats
from scipy.special import logsumexp

from bayesgmm.bayes.model import (
    OrderedComponents,
    OrderedFirstCoordinate,
    SPDCholeskyTransform,
    build_model,
    initial_point,
    set_model_data,
)
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.posterior.relabel import projection_order

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
    return float(model.compile_logp(jacobian=False, mode="FAST_COMPILE")(ip))


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
    elementwise = model.compile_fn(
        model.logp(vars=[model["X"]], sum=False)[0], mode="FAST_COMPILE"
    )(ip)
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
    # the autodiff reference in PyTensor's Python backend (the default, numba, compiles for 15 s)
    fn = pm.compile(
        [y], [pt.log(pt.abs(pt.linalg.det(jac))), transform.log_jac_det(y)], mode="FAST_COMPILE"
    )
    value = np.random.default_rng(0).normal(size=d * (d + 1) // 2)
    numeric, analytic = fn(value)
    assert analytic == pytest.approx(numeric, abs=1e-10)
    roundtrip = pm.compile([y], transform.forward(sigma), mode="FAST_COMPILE")(value)
    np.testing.assert_allclose(roundtrip, value, atol=1e-12)


def test_ordered_components_transform():
    transform = OrderedComponents()
    y = pt.matrix("y")
    x = transform.backward(y)
    jac = pt.jacobian(x[:, 0], y)
    fn = pm.compile(
        [y],
        [x, pt.log(pt.abs(pt.linalg.det(jac[:, :, 0]))), transform.log_jac_det(y)],
        mode="FAST_COMPILE",
    )
    value = np.array([[0.3], [-0.2], [0.5]])
    means, numeric, analytic = fn(value)
    assert np.all(np.diff(means[:, 0]) > 0)
    assert analytic.shape == (3,)
    assert analytic.sum() == pytest.approx(numeric, abs=1e-12)


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
    found = find_map(model, start)
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
    assert np.isfinite(model.compile_logp(mode="FAST_COMPILE")(model.initial_point()))


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


def test_ordered_first_coordinate_transform():
    transform = OrderedFirstCoordinate()
    y = pt.matrix("y")
    x = transform.backward(y)
    outputs = [x, transform.forward(x), transform.log_jac_det(y)]
    fn = pm.compile([y], outputs, mode="FAST_COMPILE")
    value = np.array([[0.3, 1.0], [-0.2, 2.0], [0.5, -1.0]])
    points, roundtrip, analytic = fn(value)
    assert np.all(np.diff(points[:, 0]) > 0)
    np.testing.assert_allclose(points[:, 1], value[:, 1])
    np.testing.assert_allclose(roundtrip, value, atol=1e-12)
    # the log-Jacobian against central differences of the backward map
    step, jac = 1e-6, np.empty((6, 6))
    for i in range(6):
        delta = np.zeros(6)
        delta[i] = step
        up, down = (fn((value.ravel() + s).reshape(3, 2))[0].ravel() for s in (delta, -delta))
        jac[:, i] = (up - down) / (2 * step)
    assert analytic.shape == (3,)
    assert analytic.sum() == pytest.approx(np.log(abs(np.linalg.det(jac))), abs=1e-7)


def _log_densities(model, points):
    """Log density without and with the Jacobian at constrained ``points`` (one compilation)."""
    fn = pm.compile(
        model.value_vars, [model.logp(jacobian=False), model.logp()], mode="FAST_COMPILE"
    )
    out = []
    for point in points:
        ip = pm.initial_point.make_initial_point_fn(
            model=model, overrides=point, jitter_rvs=set(), return_transformed=True
        )(0)
        out.append([float(v) for v in fn(*[ip[v.name] for v in model.value_vars])])
    return np.array(out)


def test_ordered_projection_model_has_the_unconstrained_density(faithful):
    """Same density on the ordered region; the log-Jacobian is that of the ordered gaps."""
    params = _params(faithful, "full")
    free, spec = _build(faithful, 2, "full")
    working = spec.standardization.params_to_working(params)
    order = projection_order(working.means, working.full_covariances(), working.weights, 272)
    ordered = build_model(faithful, spec, order_basis=order.basis())
    start = params.permuted(order.order)
    moved = [
        MixtureParams(start.weights, start.means + shift, start.covariances, "full")
        for shift in (0.0, 0.05)
    ]
    free_logp = _log_densities(free, [initial_point(p, free, spec) for p in moved])
    ordered_logp = _log_densities(ordered, [initial_point(p, ordered, spec) for p in moved])
    np.testing.assert_allclose(ordered_logp[:, 0], free_logp[:, 0], atol=1e-8)
    projected = [
        np.sort(spec.standardization.params_to_working(p).means @ order.direction) for p in moved
    ]
    log_gaps = [np.log(np.diff(t)).sum() for t in projected]
    np.testing.assert_allclose(ordered_logp[:, 1] - free_logp[:, 1], log_gaps, atol=1e-8)


def test_order_basis_is_checked(faithful):
    spec = MixtureSpec.from_data(faithful, 2, "full", "default")
    with pytest.raises(ValueError, match="orthogonal"):
        build_model(faithful, spec, order_basis=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        build_model(faithful, spec, order_basis=np.eye(3))
    one_d = MixtureSpec.from_data(faithful[:, :1], 2, "full", "default")
    with pytest.raises(ValueError, match="always ordered"):
        build_model(faithful[:, :1], one_d, order_basis=np.eye(1))
    with pytest.raises(ValueError, match="exactly when"):
        set_model_data(build_model(faithful, spec), faithful, spec, order_basis=np.eye(2))
