"""Bootstrap of EM fits: standard errors against closed forms, seeding, relabelling."""

import numpy as np
import pandas as pd
import pytest

from bayesgmm import GaussianMixture, datasets
from bayesgmm.core.params import MixtureParams
from bayesgmm.em.bootstrap import collect_replicates


@pytest.fixture(scope="module")
def one_gaussian():
    rng = np.random.default_rng(0)
    X = rng.normal(1.0, 2.0, size=(300, 2))
    return X, GaussianMixture(1, random_state=0).fit(X)


@pytest.mark.parametrize("kind", ["nonparametric", "weighted", "parametric"])
def test_standard_error_of_mean_is_sigma_over_sqrt_n(one_gaussian, kind):
    """K=1: the bootstrap SE of each mean is s / sqrt(N) (s the fitted sd) within 10%.

    With 400 replicates an SE estimate has a relative sd of about 1 / sqrt(2 * 400) = 3.5%,
    so 10% is 2.8 sd.
    """
    X, model = one_gaussian
    result = model.bootstrap(X, n_boot=400, kind=kind, random_state=5)
    se = result.standard_errors()
    expected = np.sqrt(np.diag(model.covariances_[0]) / X.shape[0])
    observed = se.loc[["means[0, 0]", "means[0, 1]"], "se"].to_numpy()
    np.testing.assert_allclose(observed, expected, rtol=0.10)
    assert not result.failed.any()
    # the interval holds the estimate and has about the normal width
    intervals = result.intervals(0.9)
    width = (intervals["upper"] - intervals["lower"]).loc["means[0, 0]"]
    np.testing.assert_allclose(width, 2 * 1.645 * expected[0], rtol=0.2)


def test_same_seed_same_result_whatever_n_jobs(one_gaussian):
    """Each replicate has its own child seed, so the workers do not matter (threads here:
    worker processes take seconds to start; the default process backend was checked too)."""
    from joblib import parallel_config

    X, model = one_gaussian
    one = model.bootstrap(X, n_boot=6, random_state=11, n_jobs=1)
    again = model.bootstrap(X, n_boot=6, random_state=11, n_jobs=1)
    with parallel_config(backend="threading"):
        two = model.bootstrap(X, n_boot=6, random_state=11, n_jobs=2)
    pd.testing.assert_frame_equal(one.to_frame(), again.to_frame())
    pd.testing.assert_frame_equal(one.to_frame(), two.to_frame())
    other = model.bootstrap(X, n_boot=6, random_state=12)
    assert not np.allclose(one.means, other.means)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_two_separated_clusters_keep_their_labels(covariance_type):
    X, _, _ = datasets.make_mixture(400, 2, 2, separation=6.0, random_state=2)
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    result = model.bootstrap(X, n_boot=40, kind="weighted", random_state=0)
    se = result.standard_errors()
    gap = np.linalg.norm(model.means_[0] - model.means_[1])
    assert se.loc[se["kind"] == "means", "se"].max() < 0.05 * gap
    # every replicate's component k is near the fit's component k (no label mixing)
    assert np.abs(result.means - model.means_).max() < 0.25 * gap
    assert result.covariances.shape == (40, *model.covariances_.shape)


def test_replicates_are_relabelled_to_the_fit():
    X, _, _ = datasets.make_mixture(200, 2, 3, separation=5.0, random_state=1)
    params = GaussianMixture(3, n_init=2, random_state=0).fit(X).params_
    swapped = params.permuted(np.array([2, 0, 1]))
    result = collect_replicates(params, [(swapped, True), (None, False), (params, True)], "x")
    np.testing.assert_allclose(result.means[0], params.means)
    np.testing.assert_allclose(result.covariances[0], params.covariances)
    np.testing.assert_allclose(result.weights[2], params.weights)
    assert np.isnan(result.means[1]).all() and result.failed.tolist() == [False, True, False]
    assert result.standard_errors()["se"].max() == 0.0  # the failed replicate is left out


def test_weighted_fit_and_dataframe_names():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    counts = rng.integers(1, 4, size=60)
    model = GaussianMixture(1).fit(frame, sample_weight=counts)
    result = model.bootstrap(frame, n_boot=20, sample_weight=counts, random_state=0)
    assert "means[0, a]" in result.to_frame().columns
    assert "covariances[0, b, a]" in result.standard_errors().index
    # SE of a mean from W = sum(counts) replicated rows: sd / sqrt(W)
    expected = np.sqrt(model.covariances_[0, 0, 0] / counts.sum())
    assert 0.6 * expected < result.standard_errors().loc["means[0, a]", "se"] < 1.5 * expected


def test_bad_arguments():
    X = np.random.default_rng(0).normal(size=(30, 1))
    model = GaussianMixture(1)
    with pytest.raises(ValueError, match="kind must be one of"):
        model.bootstrap(X, n_boot=5, kind="jackknife")
    with pytest.raises(ValueError, match="n_boot must be >= 2"):
        model.bootstrap(X, n_boot=1)
    with pytest.raises(ValueError, match="sample_weight"):
        model.bootstrap(X, n_boot=5, sample_weight=-np.ones(30))


def test_map_vs_posterior_gains_bootstrap_columns_relabelled_to_the_posterior():
    """Replicates in the MAP's labels, the posterior in swapped labels: the bootstrap
    columns follow the posterior's labels, and equal NumPy's sd and quantiles."""
    import xarray as xr

    from bayesgmm.posterior.summaries import map_vs_posterior

    truth = MixtureParams(
        np.array([0.3, 0.7]),
        np.array([[0.0, 0.0], [5.0, 1.0]]),
        np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.8, -0.2], [-0.2, 1.2]]]),
    )
    rng = np.random.default_rng(0)
    swapped = truth.permuted(np.array([1, 0]))
    draws = swapped.means + 0.05 * rng.standard_normal((2, 100, 2, 2))
    posterior = xr.Dataset(
        {
            "weights": (
                ("chain", "draw", "component"),
                np.broadcast_to(swapped.weights, (2, 100, 2)),
            ),
            "means": (("chain", "draw", "component", "feature"), draws),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                np.broadcast_to(swapped.full_covariances(), (2, 100, 2, 2, 2)),
            ),
        }
    )
    replicates = [
        (
            MixtureParams(
                truth.weights, truth.means + 0.1 * rng.standard_normal((2, 2)), truth.covariances
            ),
            True,
        )
        for _ in range(50)
    ]
    boot = collect_replicates(truth, replicates, "nonparametric", feature_names=["a", "b"])
    table = map_vs_posterior(posterior, truth, ci_prob=0.8, bootstrap=boot).set_index("parameter")
    # posterior component 0 is the fit's component 1
    values = boot.means[:, 1, 0]
    assert table.loc["mu[0, 0]", "boot_se"] == pytest.approx(values.std(ddof=1))
    assert table.loc["mu[0, 0]", "boot_lower"] == pytest.approx(np.quantile(values, 0.1))
    assert table.loc["mu[0, 0]", "boot_upper"] == pytest.approx(np.quantile(values, 0.9))
    assert table.loc["w[0]", "boot_se"] == pytest.approx(0.0)
    assert table.attrs["bootstrap"] == "nonparametric, 50 replicates"
