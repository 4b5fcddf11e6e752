"""Out-of-core EM: chunked sufficient statistics give the in-memory fit."""

import dask.array as da
import numpy as np
import pytest

from bayesgmm import GaussianMixture, MixturePrior, datasets
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em import run_em
from bayesgmm.em.chunked import data_moments, fit_em_chunked
from bayesgmm.em.fit import initial_params
from bayesgmm.em.options import EMOptions

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def shifted_data():
    X, _, _ = datasets.make_mixture(6000, 3, 2, separation=3.0, random_state=4)
    return X + 1000.0  # a large offset: the shifted moments must not cancel


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("use_prior", [False, True])
def test_chunked_equals_in_memory(shifted_data, covariance_type, use_prior):
    X = shifted_data
    prior = MixturePrior.default(X, 3, covariance_type) if use_prior else None
    spec = MixtureSpec.from_data(X, 3, covariance_type, prior, standardize=False)
    options = EMOptions(tol=1e-10, max_iter=15, reg_covar=1e-6)
    start = initial_params(X, spec, options, rng=np.random.default_rng(0))
    reference = run_em(X, start, prior=prior, tol=1e-10, max_iter=15)
    for data, chunk_size in ((X, 700), (da.from_array(X, chunks=(1000, 1)), 0)):
        chunked = fit_em_chunked(
            data, spec, options, params_init=start, chunk_size=chunk_size or 1000
        )
        np.testing.assert_allclose(chunked.params.means, reference.params.means, rtol=1e-9)
        np.testing.assert_allclose(
            chunked.params.covariances, reference.params.covariances, rtol=1e-7
        )
        np.testing.assert_allclose(chunked.params.weights, reference.params.weights, rtol=1e-7)
        np.testing.assert_allclose(chunked.trace, reference.trace, rtol=1e-10)


def test_data_moments_match_numpy(shifted_data):
    mean, cov = data_moments(da.from_array(shifted_data, chunks=(777, 2)))
    np.testing.assert_allclose(mean, shifted_data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(shifted_data, rowvar=False), rtol=1e-9)


def test_estimator_fits_and_predicts_dask_arrays(shifted_data):
    X = da.from_array(shifted_data, chunks=(1500, 2))
    model = GaussianMixture(3, prior="default", random_state=0).fit(X)
    in_memory = GaussianMixture(3, prior="default", random_state=0).fit(shifted_data)
    np.testing.assert_allclose(
        np.sort(model.means_[:, 0]), np.sort(in_memory.means_[:, 0]), rtol=1e-4
    )
    np.testing.assert_allclose(model.prior_.mean_prior, shifted_data.mean(axis=0))
    labels = model.predict(X)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), model.predict(shifted_data))
    assert model.predict_proba(X).compute().shape == (6000, 3)
    np.testing.assert_allclose(model.score(X), model.score(shifted_data))


def test_chunked_rejects_nan():
    X = np.ones((100, 2))
    X[57, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity in column\(s\) \[1\]"):
        spec = MixtureSpec.from_data(X, 2, "full", None, standardize=False)
        fit_em_chunked(da.from_array(X, chunks=(10, 2)), spec, random_state=0)


def test_unknown_prior_on_a_dask_array_is_a_clear_error(shifted_data):
    X = da.from_array(shifted_data, chunks=(1500, 2))
    with pytest.raises(ValueError, match=r"prior must be None .maximum likelihood., 'default'"):
        GaussianMixture(2, prior="flat").fit(X)


def _start(X, k):
    rng = np.random.default_rng(3)
    return dict(
        weights_init=np.full(k, 1.0 / k),
        means_init=X[rng.choice(X.shape[0], k, replace=False)],
        precisions_init=np.stack([np.linalg.inv(np.cov(X, rowvar=False))] * k),
    )


def test_distributed_cluster_gives_the_in_memory_fit(shifted_data):
    distributed = pytest.importorskip("distributed")
    X = shifted_data
    kwargs = dict(max_iter=12, tol=0.0, n_init=1, **_start(X, 3))
    with pytest.warns(Warning, match="did not converge"):
        in_memory = GaussianMixture(3, **kwargs).fit(X)
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        with pytest.warns(Warning, match="did not converge"):
            model = GaussianMixture(3, **kwargs).fit(da.from_array(X, chunks=(1000, 2)))
    np.testing.assert_allclose(model.means_, in_memory.means_, rtol=1e-9)
    np.testing.assert_allclose(model.covariances_, in_memory.covariances_, rtol=1e-9)
    np.testing.assert_allclose(model.weights_, in_memory.weights_, rtol=1e-9)
    np.testing.assert_allclose(model.lower_bound_, in_memory.lower_bound_, rtol=1e-12)


def test_threaded_scheduler_runs_kernels_safely(shifted_data):
    # Dask's default threaded scheduler calls the (workqueue) kernels from several threads.
    X = da.from_array(shifted_data.astype(np.float32), chunks=(500, 2))
    kwargs = dict(max_iter=5, tol=0.0, n_init=1, **_start(shifted_data, 3))
    with pytest.warns(Warning, match="did not converge"):
        model = GaussianMixture(3, **kwargs).fit(X)
    assert np.all(np.isfinite(model.means_))


def test_zarr_array_gives_the_in_memory_fit(shifted_data, tmp_path):
    zarr = pytest.importorskip("zarr")
    X = shifted_data
    store = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=X.shape, chunks=(700, 2))
    store[:] = X
    kwargs = dict(max_iter=10, tol=0.0, n_init=1, **_start(X, 3))
    with pytest.warns(Warning, match="did not converge"):
        model = GaussianMixture(3, **kwargs).fit(store)
    with pytest.warns(Warning, match="did not converge"):
        in_memory = GaussianMixture(3, **kwargs).fit(X)
    np.testing.assert_allclose(model.means_, in_memory.means_, rtol=1e-9)
    np.testing.assert_allclose(model.covariances_, in_memory.covariances_, rtol=1e-9)
