"""The Bayesian model of mclust's ten decomposed models (bayes.eigen_structures).

Parametrisation (round trip), the log density against SciPy, find_MAP against MAP-EM for
all ten; the canonical decomposition and its place in ``diagnose()``; NUTS on one model
per family on data where it is the truth.
"""

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from map_reference import find_map
from scipy import linalg, stats
from scipy.special import logsumexp

from bayesgmm.bayes.eigen_structures import (
    ORIENTATION_CONCENTRATION,
    eigen_parameters,
    family,
    orientation_log_normaliser,
)
from bayesgmm.bayes.model import build_model, initial_point
from bayesgmm.core.covariance import get_structure
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.datasets import decomposed_covariances, make_decomposed_mixture
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.posterior.decomposition import canonical_decomposition, with_decomposition
from bayesgmm.posterior.diagnostics import diagnose

MODELS = ("EII", "EEI", "VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV")


def _build(X, model, prior="default", standardize=True):
    spec = MixtureSpec.from_data(X, 2, model, prior, standardize=standardize)
    return build_model(X, spec), spec


def _transformed(model, point):
    return pm.initial_point.make_initial_point_fn(
        model=model, overrides=point, jitter_rvs=set(), return_transformed=True
    )(0)


# ---- parametrisation ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_initial_values_give_back_the_models_covariances(name):
    X, _, covs = make_decomposed_mixture(name, 20, 3)
    model, _ = _build(X, name, standardize=False)
    values = eigen_parameters(get_structure(name), covs)
    for key, value in values.items():
        if key.startswith("orientation"):
            assert np.allclose(np.linalg.det(value), 1.0)  # proper rotations
    inputs = [model.rvs_to_values[model[name]] for name in values]
    [covariances] = model.replace_rvs_by_values([model["covariances"]])
    got = pm.compile(inputs, covariances, mode="FAST_COMPILE")(*values.values())
    np.testing.assert_allclose(got, covs, rtol=1e-10, atol=1e-12)


def _reference_covariances(name, values, d):
    """The working-scale covariances of raw variable values, computed without the model."""
    K = 2
    log_lam = np.broadcast_to(values.get("log_volume_z", values.get("log_volumes_z")), (K,))
    helmert = linalg.helmert(d).T  # (d, d - 1), orthonormal, columns sum to zero
    coords = values.get("log_shape_z", values.get("log_shapes_z", np.zeros(d - 1)))
    log_a = np.broadcast_to(coords @ helmert.T, (K, d))
    kind = family(get_structure(name), d)
    if kind == "diagonal":
        return np.exp(log_lam)[:, None, None] * np.stack([np.diag(np.exp(a)) for a in log_a])
    if kind == "cholesky":
        off = np.broadcast_to(
            values.get("shape_offdiagonal_z", values.get("shapes_offdiagonal_z")),
            (K, d * (d - 1) // 2),
        )
        covs = []
        for k in range(K):
            L = np.diag(np.exp(log_a[k] / 2))
            L[np.tril_indices(d, -1)] = off[k]
            covs.append(np.exp(log_lam[k]) * L @ L.T)
        return np.stack(covs)
    M = np.broadcast_to(values.get("orientation_z", values.get("orientations_z")), (K, d, d))
    covs = []
    for k in range(K):
        Q, R = np.linalg.qr(M[k])
        Q = Q * np.sign(np.diag(R))
        covs.append(np.exp(log_lam[k]) * Q @ np.diag(np.exp(log_a[k])) @ Q.T)
    return np.stack(covs)


@pytest.mark.parametrize("name", MODELS)
def test_log_density_is_the_likelihood_times_the_restricted_prior(name):
    d = 3
    X, _, _ = make_decomposed_mixture(name, 15, d)
    model, spec = _build(X, name)
    prior, std = spec.working_prior, spec.standardization
    rng = np.random.default_rng(5)
    values = {}
    for rv in model.free_RVs:
        if rv.name in ("weights", "means_z"):
            continue
        shape = model.initial_point()[rv.name].shape
        values[rv.name] = 0.4 * rng.normal(size=shape)
        if rv.name.startswith("orientation"):  # away from orthogonal: p(M) is not at its mode
            values[rv.name] += np.eye(d)
    weights = np.array([0.3, 0.7])
    means_z = rng.normal(size=(2, d))
    point = _transformed(model, {**values, "weights": weights, "means_z": means_z})
    got = float(model.compile_logp(jacobian=False, mode="FAST_COMPILE")(point))

    covs_z = _reference_covariances(name, values, d)
    scale, location = std.scale, std.location
    covs = covs_z * np.outer(scale, scale)
    means = location + scale * means_z
    log_lik = logsumexp(
        np.log(weights)
        + np.stack([stats.multivariate_normal(means[k], covs[k]).logpdf(X) for k in range(2)], 1),
        axis=1,
    ).sum()
    log_prior = stats.dirichlet.logpdf(weights, prior.concentration(2))
    for k in range(2):
        log_prior += stats.invwishart.logpdf(
            covs_z[k], df=prior.degrees_of_freedom, scale=prior.covariance_prior
        )
        log_prior += stats.multivariate_normal(
            prior.mean_prior, covs_z[k] / prior.mean_precision
        ).logpdf(means_z[k])
    a = ORIENTATION_CONCENTRATION
    for key, M in values.items():
        if key.startswith("orientation"):
            # int |det M|^a exp(-a ||M||^2 / 2) dM, M = Z / sqrt(a), |det Z| = prod chi_i
            moments = [stats.chi(i).moment(a) for i in range(1, d + 1)]
            normaliser = (
                0.5 * d * d * np.log(2 * np.pi / a)
                - 0.5 * a * d * np.log(a)
                + np.log(moments).sum()
            )
            assert orientation_log_normaliser(d) == pytest.approx(normaliser, rel=1e-10)
            for m in np.reshape(M, (-1, d, d)):
                log_prior += a * (np.log(abs(np.linalg.det(m))) - 0.5 * np.sum(m**2)) - normaliser
    assert got == pytest.approx(log_lik + log_prior, rel=1e-9)


# ---- the MAP -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_find_map_equals_map_em(name):
    X, _, _ = make_decomposed_mixture(name, 40, 3, random_state=2)
    em = GaussianMixture(
        2,
        covariance_type=name,
        prior="default",
        n_init=2,  # the test compares optima: find_MAP starts near EM's
        reg_covar=0.0,
        tol=1e-12,
        max_iter=5000,
        random_state=0,
    ).fit(X)
    model, spec = _build(X, name)
    params = em.params_
    perturbed = MixtureParams(
        0.8 * params.weights + 0.1,
        params.means + 0.1 * params.means.std(axis=0),
        params.covariances * 1.3,
        name,
    )
    start = initial_point(perturbed, model, spec)
    rng = np.random.default_rng(0)
    for key in start:  # move the shapes and orientations too
        if key.startswith(("orientation", "log_shape", "shape")):
            start[key] = start[key] + 0.1 * rng.normal(size=np.shape(start[key]))
    found = find_map(model, start, names=None, ftol=1e-15, gtol=1e-9)
    logp = model.compile_logp(jacobian=False, mode="FAST_COMPILE")
    at_em = float(logp(_transformed(model, initial_point(params, model, spec))))
    free = {rv.name: found[rv.name] for rv in model.free_RVs}
    at_found = float(logp(_transformed(model, free)))
    assert at_found == pytest.approx(at_em, abs=1e-6)
    np.testing.assert_allclose(found["weights"], em.weights_, rtol=1e-5)
    np.testing.assert_allclose(found["means"], em.means_, rtol=1e-5, atol=1e-6)
    full = params.full_covariances()
    np.testing.assert_allclose(
        found["covariances"], full, rtol=1e-4, atol=1e-5 * np.abs(full).max()
    )


# ---- the canonical decomposition ---------------------------------------------------------------
def test_canonical_decomposition_orders_shapes_and_fixes_signs():
    covs = decomposed_covariances("VEV", 3, random_state=4)
    volumes, shapes, orientations = canonical_decomposition(covs, diagonal=False)
    np.testing.assert_allclose(volumes, [1.0, 0.35])
    np.testing.assert_allclose(shapes, np.exp(np.stack([np.linspace(1, -1, 3)] * 2)))
    rebuilt = np.einsum("kij,kj,klj->kil", orientations, volumes[:, None] * shapes, orientations)
    np.testing.assert_allclose(rebuilt, covs, atol=1e-12)
    rows = np.argmax(np.abs(orientations), axis=1)
    assert np.all(np.take_along_axis(orientations, rows[:, None, :], axis=1) > 0)
    # a draw whose eigenvectors came out with other signs follows the reference's
    flipped = orientations * np.array([-1.0, 1.0, -1.0])
    _, _, again = canonical_decomposition(covs, diagonal=False, reference=flipped)
    np.testing.assert_allclose(again, flipped, atol=1e-12)
    _, diag_shapes, none = canonical_decomposition(np.diag([4.0, 1.0, 0.25])[None], diagonal=True)
    assert none is None
    np.testing.assert_allclose(diag_shapes, [[4.0, 1.0, 0.25]])


def _posterior(covs, rng, n_chains=2, n_draws=200):
    """A posterior of well-mixed iid draws around ``covs`` (chain, draw, K, d, d)."""
    K, d, _ = covs.shape
    noise = 1 + 0.01 * rng.normal(size=(n_chains, n_draws, K, 1, 1))
    return xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), np.full((n_chains, n_draws, K), 1 / K)),
            "means": (
                ("chain", "draw", "component", "feature"),
                rng.normal(size=(n_chains, n_draws, K, d)),
            ),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                covs * noise,
            ),
        }
    )


def test_diagnose_checks_the_decomposition_of_decomposed_models():
    rng = np.random.default_rng(0)
    covs = decomposed_covariances("VEV", 2, random_state=1)
    posterior = _posterior(covs, rng)
    stats_ = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 200), dtype=bool))})
    decomposed = with_decomposition(posterior, covs, "VEV")
    assert {"volumes", "shapes", "orientations"} <= set(decomposed.data_vars)
    assert "orientations" not in with_decomposition(posterior, covs, "VEI")
    assert "volumes" not in with_decomposition(posterior, covs, "full")
    tree = xr.DataTree.from_dict({"posterior": decomposed, "sample_stats": stats_})
    assert diagnose(tree).max_rhat < 1.05
    # the second chain's orientations (only) disagree: diagnose sees it
    bad = decomposed.copy(deep=True)
    bad["orientations"][1] = -bad["orientations"][1] + 0.01 * rng.normal(size=(200, 2, 2, 2))
    tree = xr.DataTree.from_dict({"posterior": bad, "sample_stats": stats_})
    assert diagnose(tree).max_rhat > 1.5


# ---- NUTS, one model per family ----------------------------------------------------------------
def _covers(posterior, truth):
    """Every true covariance entry within 4 posterior sds of the posterior mean."""
    draws = posterior["covariances"].stack(sample=("chain", "draw")).transpose("sample", ...).values
    order = np.argsort(posterior["means"].mean(("chain", "draw")).values[:, 0])
    mean, sd = draws.mean(0)[order], draws.std(0)[order]
    assert np.all(np.abs(mean - truth) <= 4 * sd + 1e-12), (mean, truth, sd)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["VEV", "VVE", "VEI"])
def test_nuts_passes_its_checks_and_covers_the_truth(name):
    from bayesgmm.bayes.estimator import BayesianGaussianMixture

    X, _, covs = make_decomposed_mixture(name, 60, 2, random_state=3)
    fit = BayesianGaussianMixture(
        2,
        covariance_type=name,
        draws=600,
        tune=600,
        chains=2,
        random_state=1,
        progressbar=False,
    ).fit(X)
    diagnostics = fit.diagnose()
    assert diagnostics.ok, diagnostics.verdict
    posterior = fit.idata_["posterior"]
    assert {"volumes", "shapes"} <= set(posterior.data_vars)
    _covers(posterior, covs)


@pytest.mark.slow
def test_compare_fits_a_decomposed_model_by_nuts():
    # after the VEV test above, its compiled structure (K=2, d=2) is reused: no compilation
    from bayesgmm.selection.compare import compare

    X, _, _ = make_decomposed_mixture("VEV", 60, 2, random_state=3)
    result = compare(
        X,
        [2],
        ["VEV"],
        method="nuts",
        draws=300,
        tune=300,
        chains=2,
        moment_match=False,
        random_state=1,
    )
    [fit] = result.fits.values()
    assert fit.covariance_type == "VEV" and fit.bayes.method_ == "nuts"
    assert fit.loo is not None and np.isfinite(fit.loo.elpd)
    assert "volumes" in fit.bayes.idata_["posterior"].data_vars
