"""The prior's log density against SciPy, and its data-scaled defaults."""

import numpy as np
import pytest
from scipy import stats

from bayesgmm import MixtureParams, MixturePrior


def _params(covariance_type, rng):
    covs = {
        "full": np.stack([np.array([[2.0, 0.3], [0.3, 1.0]]), np.eye(2) * 0.5]),
        "tied": np.array([[2.0, 0.3], [0.3, 1.0]]),
        "diag": np.array([[2.0, 0.5], [0.7, 1.3]]),
        "spherical": np.array([0.8, 1.7]),
    }[covariance_type]
    return MixtureParams(np.array([0.35, 0.65]), rng.normal(size=(2, 2)), covs, covariance_type)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_log_density_matches_scipy(covariance_type):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    prior = MixturePrior.default(X, 2, covariance_type, weight_concentration=2.5)
    params = _params(covariance_type, rng)
    m0, kappa, nu, psi = (
        prior.mean_prior,
        prior.mean_precision,
        prior.degrees_of_freedom,
        prior.covariance_prior,
    )
    expected = stats.dirichlet(np.full(2, 2.5)).logpdf(params.weights)
    full = params.full_covariances()
    if covariance_type == "full":
        expected += sum(stats.invwishart(nu, psi).logpdf(c) for c in full)
    elif covariance_type == "tied":
        expected += stats.invwishart(nu, psi).logpdf(full[0])
    elif covariance_type == "diag":
        expected += stats.invgamma(nu / 2, scale=psi / 2).logpdf(params.covariances).sum()
    else:
        expected += stats.invgamma(nu / 2, scale=psi / 2).logpdf(params.covariances).sum()
    for k in range(2):
        expected += stats.multivariate_normal(m0, full[k] / kappa).logpdf(params.means[k])
    np.testing.assert_allclose(prior.log_density(params), expected, rtol=1e-10)


def test_default_prior_follows_fraley_raftery():
    X = np.random.default_rng(1).normal(size=(100, 3)) * [1.0, 2.0, 3.0]
    prior = MixturePrior.default(X, 4, "full")
    np.testing.assert_allclose(prior.mean_prior, X.mean(axis=0))
    assert prior.mean_precision == 0.01
    assert prior.degrees_of_freedom == 5.0
    np.testing.assert_allclose(prior.covariance_prior, np.cov(X, rowvar=False) / 4 ** (2 / 3))
    spherical = MixturePrior.default(X, 4, "spherical")
    np.testing.assert_allclose(
        spherical.covariance_prior, np.trace(np.cov(X, rowvar=False)) / 3 / 4 ** (2 / 3)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"covariance_prior": np.eye(3)}, r"must have shape \(2, 2\)"),
        ({"degrees_of_freedom": 0.5}, "degrees_of_freedom must exceed 1"),
        ({"mean_precision": 0.0}, "mean_precision must be positive"),
        ({"covariance_prior": np.array([[1.0, 2.0], [2.0, 1.0]])}, "positive definite"),
        ({"weight_concentration": -1.0}, "weight_concentration must be positive"),
        ({"covariance_type": "banana"}, "Invalid value for .covariance_type."),
    ],
)
def test_invalid_priors_are_rejected(kwargs, match):
    base = dict(
        weight_concentration=1.0,
        mean_prior=np.zeros(2),
        mean_precision=1.0,
        degrees_of_freedom=4.0,
        covariance_prior=np.eye(2),
        covariance_type="full",
    )
    with pytest.raises(ValueError, match=match):
        MixturePrior(**{**base, **kwargs})


def test_default_prior_names_the_data_problem_not_the_prior():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=50), np.full(50, 3.0), rng.normal(size=50)])
    with pytest.raises(ValueError, match=r"data column\(s\) \[1\] are constant"):
        MixturePrior.default(X, 2, "full")
    Z = rng.normal(size=(50, 2))
    collinear = np.column_stack([Z, Z[:, 0] - 2 * Z[:, 1]])
    with pytest.raises(ValueError, match=r"columns \[0, 1, 2\] are perfectly collinear"):
        MixturePrior.default(collinear, 2, "full")
    # diagonal structures need no correlations: the collinear data are fine there
    assert MixturePrior.default(collinear, 2, "diag").covariance_prior.shape == (3,)
