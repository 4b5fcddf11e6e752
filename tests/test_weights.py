"""Frequency weights: a weighted EM fit is the fit of the replicated rows."""

import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture, datasets
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.spec import Standardization
from bayesgmm.core.weights import check_sample_weight, weighted_moments
from bayesgmm.em.run import _fused_pass, _numpy_pass

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def weighted_data():
    X, _, _ = datasets.make_mixture(80, 2, 2, separation=2.5, random_state=3)
    X = X * np.array([3.0, 0.5]) + np.array([10.0, -4.0])  # units and offsets of their own
    counts = np.random.default_rng(1).integers(0, 4, size=X.shape[0])  # zeros included
    return X, counts


def _start(X, covariance_type):
    """An explicit start (so that the weighted and the replicated fits start alike)."""
    rough = GaussianMixture(2, covariance_type=covariance_type, n_init=1, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rough.fit(X)
    return dict(
        weights_init=rough.weights_,
        means_init=rough.means_,
        precisions_init=rough.precisions_,
    )


def _fit(X, covariance_type, prior, start, sample_weight=None, max_iter=30):
    model = GaussianMixture(
        2, covariance_type=covariance_type, prior=prior, tol=0.0, max_iter=max_iter, **start
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, sample_weight=sample_weight)


def _assert_same_fit(a, b, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.means_, b.means_, rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("prior", [None, "default"])
def test_integer_weights_equal_replicated_rows(weighted_data, covariance_type, prior):
    X, counts = weighted_data
    start = _start(X, covariance_type)
    weighted = _fit(X, covariance_type, prior, start, sample_weight=counts)
    replicated = _fit(np.repeat(X, counts, axis=0), covariance_type, prior, start)
    _assert_same_fit(weighted, replicated)
    np.testing.assert_allclose(
        weighted.bic(X, sample_weight=counts), replicated.bic(np.repeat(X, counts, axis=0))
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_equal_weights_equal_unweighted_mle(weighted_data, covariance_type):
    X, _ = weighted_data
    start = _start(X, covariance_type)
    plain = _fit(X, covariance_type, None, start)
    _assert_same_fit(_fit(X, covariance_type, None, start, np.full(X.shape[0], 2.5)), plain)
    # unit weights leave MAP unchanged too (the prior counts once against W = N)
    _assert_same_fit(
        _fit(X, covariance_type, "default", start, np.ones(X.shape[0])),
        _fit(X, covariance_type, "default", start),
    )


def test_zero_weights_equal_dropped_rows_with_default_start(weighted_data):
    """Zero-weight rows are dropped before anything, the initialisation included."""
    X, counts = weighted_data
    weights = np.where(counts > 0, 1.0, 0.0)
    model = GaussianMixture(2, n_init=3, random_state=0)
    weighted = model.fit(X, sample_weight=weights)
    dropped = GaussianMixture(2, n_init=3, random_state=0).fit(X[counts > 0])
    _assert_same_fit(weighted, dropped)
    assert weighted.fit_predict(X, sample_weight=weights).shape == (X.shape[0],)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data", "random"])
def test_weighted_default_initialisations_run(weighted_data, init_params):
    X, counts = weighted_data
    model = GaussianMixture(2, init_params=init_params, n_init=2, random_state=0)
    model.fit(X, sample_weight=counts)
    assert model.converged_


def test_numpy_pass_weights_equal_fused_pass(weighted_data):
    X, counts = weighted_data
    params = MixtureParams(np.array([0.3, 0.7]), X[:2].copy(), np.stack([np.cov(X.T)] * 2), "full")
    w = counts.astype(float)
    fused, numpy = _fused_pass(X, params, w), _numpy_pass(X, params, w)
    np.testing.assert_allclose(fused[0].nk, numpy[0].nk, rtol=1e-12)
    np.testing.assert_allclose(fused[0].xbar, numpy[0].xbar, rtol=1e-12)
    np.testing.assert_allclose(fused[0].scatter, numpy[0].scatter, rtol=1e-10)
    np.testing.assert_allclose(fused[1:3], numpy[1:3], rtol=1e-12)


def test_weighted_moments_and_standardisation_equal_replicated(weighted_data):
    X, counts = weighted_data
    replicated = np.repeat(X, counts, axis=0)
    w = counts.astype(float)
    np.testing.assert_allclose(weighted_moments(X, w)[0], replicated.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(weighted_moments(X, w)[1], np.cov(replicated.T), rtol=1e-12)
    from bayesgmm.core.covariance import get_structure

    full = get_structure("full")
    a = Standardization.from_data(X, full, w)
    b = Standardization.from_data(replicated, full)
    np.testing.assert_allclose(a.location, b.location, rtol=1e-13)
    np.testing.assert_allclose(a.scale, b.scale, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("prior", [None, "default"])
def test_dask_weighted_equals_in_memory_weighted(weighted_data, covariance_type, prior):
    X, counts = weighted_data
    start = _start(X, covariance_type)
    in_memory = _fit(X, covariance_type, prior, start, counts, max_iter=15)
    for weights in (counts, da.from_array(counts.astype(float), chunks=17)):
        chunked = _fit(
            da.from_array(X, chunks=(25, 2)), covariance_type, prior, start, weights, max_iter=15
        )
        _assert_same_fit(chunked, in_memory, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.full(5, -1.0), "non-negative"),
        (np.array([1.0, np.nan, 1.0, 1.0, 1.0]), "NaN or infinity"),
        (np.array([1.0, np.inf, 1.0, 1.0, 1.0]), "NaN or infinity"),
        (np.zeros(5), "zero for every row"),
        (np.ones(4), r"shape \(5,\)"),
        (np.ones((5, 2)), r"shape \(5,\)"),
        (["a"] * 5, "numeric"),
    ],
)
def test_bad_weights_are_named(weights, match):
    X = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(ValueError, match=f"sample_weight.*{match}|{match}.*sample_weight"):
        GaussianMixture(1).fit(X, sample_weight=weights)
    with pytest.raises(ValueError, match="sample_weight"):
        check_sample_weight(weights, 5)


def test_too_few_positive_weights_for_k():
    X = np.random.default_rng(0).normal(size=(6, 2))
    with pytest.raises(ValueError, match="positive sample_weight"):
        GaussianMixture(3).fit(X, sample_weight=[1, 1, 0, 0, 0, 0])


def test_dask_bad_weights_are_named():
    X = da.from_array(np.random.default_rng(0).normal(size=(20, 2)), chunks=10)
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        GaussianMixture(1).fit(X, sample_weight=da.from_array(-np.ones(20), chunks=10))
    with pytest.raises(ValueError, match="sample_weight is zero for every row"):
        GaussianMixture(1).fit(X, sample_weight=da.zeros(20, chunks=10))


# ------------------------------------------------------------------ the Bayesian model


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weighted_bayesian_spec_equals_replicated(weighted_data, covariance_type):
    """Default prior and standardisation of the weighted model are the replicated rows'."""
    from bayesgmm.bayes.start import weighted_spec

    X, counts = weighted_data
    spec_w = weighted_spec(X, counts.astype(float), 2, covariance_type, "default")
    spec_r = weighted_spec(np.repeat(X, counts, axis=0), None, 2, covariance_type, "default")
    np.testing.assert_allclose(spec_w.standardization.scale, spec_r.standardization.scale)
    np.testing.assert_allclose(spec_w.standardization.location, spec_r.standardization.location)
    for name in ("mean_prior", "covariance_prior"):
        np.testing.assert_allclose(getattr(spec_w.prior, name), getattr(spec_r.prior, name))


def test_weighted_pymc_model_density_equals_replicated(weighted_data):
    """The weighted model's log-density is the replicated rows' at every point."""
    from bayesgmm.bayes.model import build_model
    from bayesgmm.bayes.start import weighted_spec

    X, counts = weighted_data
    keep = counts > 0
    w = counts[keep].astype(float)
    model_w = build_model(X[keep], weighted_spec(X[keep], w, 2, "full", "default"), sample_weight=w)
    replicated = np.repeat(X, counts, axis=0)
    model_r = build_model(replicated, weighted_spec(replicated, None, 2, "full", "default"))
    logp_w = model_w.compile_logp(mode="FAST_COMPILE")
    logp_r = model_r.compile_logp(mode="FAST_COMPILE")
    point = model_w.initial_point(0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        moved = {
            key: value + 0.1 * rng.normal(size=np.shape(value)) for key, value in point.items()
        }
        np.testing.assert_allclose(logp_w(moved), logp_r(moved), rtol=1e-10)


@pytest.mark.slow
def test_weighted_nuts_matches_replicated_rows_posterior():
    """K=1, 12 rows with weights 1..4: NUTS on the weighted rows against the closed-form
    Normal-Inverse-Wishart posterior of the 30 replicated rows, within Monte Carlo error
    (means and sds of the mean and the variance); the posterior is that of 30 rows."""
    from arviz_stats import mcse

    from bayesgmm import BayesianGaussianMixture, MixturePrior

    rng = np.random.default_rng(4)
    X = rng.normal(2.0, 1.5, size=(12, 1))
    counts = np.array([1, 2, 3, 4] * 3)
    prior = MixturePrior(1.0, np.array([1.0]), 0.5, 4.0, np.array([[3.0]]), "full")
    model = BayesianGaussianMixture(
        1,
        prior=prior,
        draws=500,
        tune=300,
        chains=2,
        progressbar=False,
        random_state=1,
        pointwise=False,
    ).fit(X, sample_weight=counts)
    # closed form for the replicated rows (d = 1: Normal-Inverse-Gamma)
    Y = np.repeat(X[:, 0], counts)
    n, ybar = Y.size, Y.mean()
    kappa_n, nu_n = prior.mean_precision + n, prior.degrees_of_freedom + n
    m_n = (prior.mean_precision * prior.mean_prior[0] + n * ybar) / kappa_n
    psi_n = (
        prior.covariance_prior[0, 0]
        + ((Y - ybar) ** 2).sum()
        + prior.mean_precision * n / kappa_n * (ybar - prior.mean_prior[0]) ** 2
    )
    sigma_mean = psi_n / (nu_n - 2)
    sigma_sd = sigma_mean / np.sqrt(nu_n / 2 - 2)  # Inverse-Gamma(nu_n / 2, psi_n / 2)
    mu_sd = np.sqrt(psi_n / (kappa_n * (nu_n - 2)))
    post = model.idata_["posterior"]
    mu = post["means"].isel(component=0, feature=0)
    sigma = post["covariances"].isel(component=0, feature=0, feature_bis=0)
    for draws, ref_mean, ref_sd in ((mu, m_n, mu_sd), (sigma, sigma_mean, sigma_sd)):
        mean_err, sd_err = float(mcse(draws, method="mean")), float(mcse(draws, method="sd"))
        assert abs(float(draws.mean()) - ref_mean) <= 4 * mean_err
        assert abs(float(draws.std()) - ref_sd) <= 4 * sd_err
    assert model.idata_["observed_data"]["X"].sizes["obs"] == 12


def test_bayesian_weights_errors():
    from bayesgmm import BayesianGaussianMixture

    X = np.random.default_rng(0).normal(size=(20, 1))
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        BayesianGaussianMixture(1, method="map").fit(X, sample_weight=-np.ones(20))
    with pytest.raises(ValueError, match="minibatch"):
        BayesianGaussianMixture(1, method="advi", batch_size=10).fit(X, sample_weight=np.ones(20))


@pytest.mark.parametrize(
    ("settings", "hole"),
    [({"noise": True}, False), ({"missing": "marginalize"}, True)],
)
def test_weights_with_noise_or_missing_entries_is_a_clear_error(settings, hole):
    X, _, _ = datasets.make_mixture(60, 2, 2, separation=4.0, random_state=0)
    if hole:
        X[0, 1] = np.nan
    with pytest.raises(ValueError, match="cannot be combined yet"):
        GaussianMixture(2, random_state=0, **settings).fit(X, sample_weight=np.ones(60))
