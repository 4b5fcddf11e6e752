"""Fused EM kernels against the NumPy E-step + statistics, and a fused EM against scikit-learn."""

import numba
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from bayesgmm import datasets
from bayesgmm.core.params import MixtureParams
from bayesgmm.em.fused import fused_log_resp, fused_moments, fused_statistics
from bayesgmm.em.steps import e_step, m_step_from_statistics, sufficient_statistics

STRUCTURES = ["full", "tied", "diag", "spherical"]
BLOCK = 96  # small blocks: many blocks, and a last one that needs padding


def _params(structure: str, n_components: int, d: int, seed: int = 0) -> MixtureParams:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 3.0))
    means = rng.normal(scale=2.0, size=(n_components, d))
    if structure == "full":
        a = rng.normal(size=(n_components, d, d))
        covariances = a @ a.swapaxes(1, 2) / d + np.eye(d)
    elif structure == "tied":
        a = rng.normal(size=(d, d))
        covariances = a @ a.T / d + np.eye(d)
    elif structure == "diag":
        covariances = rng.uniform(0.5, 2.0, size=(n_components, d))
    else:
        covariances = rng.uniform(0.5, 2.0, size=n_components)
    return MixtureParams(weights, means, covariances, structure)


def _data(n: int, d: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=2.0, size=(n, d)) + 0.5


def _fused(X, params, **kw):
    return fused_statistics(
        X,
        params.weights,
        params.means,
        params.precisions_cholesky,
        params.covariance_type,
        block_size=BLOCK,
        **kw,
    )


def _reference(X, params, resp_weight=None):
    log_resp, log_lik = e_step(X, params)
    resp = np.exp(log_resp)
    if resp_weight is not None:
        resp = resp * resp_weight[:, None]
        log_lik = log_lik * resp_weight
    return sufficient_statistics(X, resp, params.covariance_type), log_lik.sum()


def _assert_stats_close(got, ref, ref_log_lik, rtol):
    np.testing.assert_allclose(got.nk, ref.nk, rtol=rtol)
    np.testing.assert_allclose(got.xbar, ref.xbar, rtol=rtol, atol=rtol * np.abs(ref.xbar).max())
    np.testing.assert_allclose(
        got.scatter, ref.scatter, rtol=rtol, atol=rtol * np.abs(ref.scatter).max()
    )
    np.testing.assert_allclose(got.log_lik_sum, ref_log_lik, rtol=rtol)


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("n_components", [1, 3])
@pytest.mark.parametrize("d", [1, 2, 5])
def test_equals_numpy_e_step_and_statistics(structure, n_components, d):
    X = _data(1003, d)
    params = _params(structure, n_components, d)
    got = _fused(X, params)
    ref, ref_log_lik = _reference(X, params)
    _assert_stats_close(got, ref, ref_log_lik, rtol=1e-10)
    assert got.weight_sum == X.shape[0]
    suff = got.sufficient_statistics()
    assert (suff.nk, suff.xbar, suff.scatter) == (got.nk, got.xbar, got.scatter)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_log_resp_kernel_equals_e_step(structure):
    X = _data(1003, 3)
    X[:5] += 1e4  # far away: finite, in log space
    params = _params(structure, 3, 3)
    log_resp, log_lik = fused_log_resp(
        X,
        params.weights,
        params.means,
        params.precisions_cholesky,
        structure,
        block_size=BLOCK,
    )
    ref_resp, ref_lik = e_step(X, params)
    assert np.isfinite(log_lik).all()
    np.testing.assert_allclose(log_lik, ref_lik, rtol=1e-10)
    np.testing.assert_allclose(log_resp, ref_resp, rtol=1e-10, atol=1e-10)
    out = (np.empty_like(log_resp), np.empty_like(log_lik))
    fused_log_resp(
        X,
        params.weights,
        params.means,
        params.precisions_cholesky,
        structure,
        log_resp=out[0],
        log_lik=out[1],
    )
    np.testing.assert_array_equal(out[1], log_lik)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_integer_weights_equal_replicated_rows(structure):
    X = _data(601, 2)
    counts = np.random.default_rng(2).integers(0, 4, size=X.shape[0])
    params = _params(structure, 3, 2)
    weighted = _fused(X, params, sample_weight=counts.astype(float))
    replicated = _fused(np.repeat(X, counts, axis=0), params)
    _assert_stats_close(
        weighted, replicated.sufficient_statistics(), replicated.log_lik_sum, rtol=1e-10
    )
    assert weighted.weight_sum == counts.sum()
    ref, ref_log_lik = _reference(X, params, resp_weight=counts.astype(float))
    _assert_stats_close(weighted, ref, ref_log_lik, rtol=1e-10)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_zero_weights_equal_dropping_rows(structure):
    X = _data(600, 2)
    keep = np.random.default_rng(3).random(X.shape[0]) < 0.7
    X[~keep] = 1e300  # whatever finite values rows of weight zero hold, they add nothing
    params = _params(structure, 3, 2)
    weighted = _fused(X, params, sample_weight=keep.astype(float))
    dropped = _fused(X[keep], params)
    _assert_stats_close(weighted, dropped.sufficient_statistics(), dropped.log_lik_sum, 1e-12)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_bitwise_deterministic_across_runs_and_threads(structure):
    X = _data(20_000, 3)
    params = _params(structure, 3, 3)
    runs = [_fused(X, params)]
    runs.append(_fused(X, params))
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        runs.append(_fused(X, params))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        runs.append(_fused(X, params))
    finally:
        numba.set_num_threads(previous)
    for other in runs[1:]:
        assert other.log_lik_sum == runs[0].log_lik_sum
        for name in ("nk", "xbar", "scatter"):
            np.testing.assert_array_equal(getattr(other, name), getattr(runs[0], name))


@pytest.mark.parametrize("structure", STRUCTURES)
def test_float32_input(structure):
    X = _data(1003, 3)
    params = _params(structure, 3, 3)
    got = _fused(X.astype(np.float32), params)
    ref, ref_log_lik = _reference(X, params)
    assert got.nk.dtype == np.float64 and got.scatter.dtype == np.float64
    _assert_stats_close(got, ref, ref_log_lik, rtol=1e-5)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_far_away_points_have_finite_log_likelihood(structure):
    X = _data(200, 2)
    X[:3] = [[1e4, -1e4], [3e5, 0.0], [-2e6, 2e6]]
    params = _params(structure, 3, 2)
    got = _fused(X, params)
    ref, ref_log_lik = _reference(X, params)
    assert np.isfinite(got.log_lik_sum)
    assert np.isfinite(got.nk).all() and np.isfinite(got.scatter).all()
    np.testing.assert_allclose(got.log_lik_sum, ref_log_lik, rtol=1e-10)
    np.testing.assert_allclose(got.nk, ref.nk, rtol=1e-10)


def test_moments_about_the_current_means():
    X = _data(500, 2)
    params = _params("full", 2, 2)
    moments = fused_moments(X, params.weights, params.means, params.precisions_cholesky, "full")
    resp = np.exp(e_step(X, params)[0])
    centred = X[:, None, :] - params.means[None]
    np.testing.assert_allclose(moments.s0, resp.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.s1, np.einsum("nk,nki->ki", resp, centred), rtol=1e-12)
    np.testing.assert_allclose(
        moments.s2, np.einsum("nk,nki,nkj->kij", resp, centred, centred), rtol=1e-12
    )


def test_errors_name_the_value_and_the_remedy():
    X = _data(10, 2)
    params = _params("full", 2, 2)
    args = (X, params.weights, params.means, params.precisions_cholesky)
    with pytest.raises(ValueError, match="structure='banded' has no fused kernel"):
        fused_statistics(*args, "banded")
    with pytest.raises(ValueError, match=r"must have shape \(2, 2\)"):
        fused_statistics(*args, "tied")
    with pytest.raises(ValueError, match="non-negative"):
        fused_statistics(*args, "full", sample_weight=-np.ones(10))
    with pytest.raises(ValueError, match="one weight per row"):
        fused_statistics(*args, "full", sample_weight=np.ones(9))


def _start(X, n_components, structure):
    rng = np.random.default_rng(0)
    means = X[rng.choice(len(X), n_components, replace=False)]
    prec = np.linalg.inv(np.cov(X, rowvar=False))
    precisions = {
        "full": np.stack([prec] * n_components),
        "tied": prec,
        "diag": np.tile(np.diag(prec), (n_components, 1)),
        "spherical": np.full(n_components, np.diag(prec).mean()),
    }[structure]
    return np.full(n_components, 1 / n_components), means, precisions


def _fused_em(X, params, n_iter, reg_covar):
    for _ in range(n_iter):
        stats = fused_statistics(
            X, params.weights, params.means, params.precisions_cholesky, params.covariance_type
        )
        lower_bound = stats.log_lik_sum / stats.weight_sum
        params = m_step_from_statistics(
            stats.sufficient_statistics(), params.covariance_type, reg_covar=reg_covar
        )
    return params, lower_bound


@pytest.mark.parametrize("structure", STRUCTURES)
def test_fused_em_equals_scikit_learn(structure):
    X, _, _ = datasets.make_mixture(3000, 3, 2, random_state=0)
    weights, means, precisions = _start(X, 3, structure)
    ref = SkGaussianMixture(
        3,
        covariance_type=structure,
        max_iter=10,
        tol=0.0,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
    )
    with pytest.warns(Warning):  # not converged in 10 iterations
        ref.fit(X)
    if structure in ("full", "tied"):
        covariances = np.linalg.inv(precisions)
    else:
        covariances = 1.0 / precisions
    params, lower_bound = _fused_em(
        X, MixtureParams(weights, means, covariances, structure), 10, ref.reg_covar
    )
    np.testing.assert_allclose(params.weights, ref.weights_, rtol=1e-8)
    np.testing.assert_allclose(params.means, ref.means_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(params.covariances, ref.covariances_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(lower_bound, ref.lower_bound_, rtol=1e-8)
