"""Posterior array maths against independent references (SciPy, NumPy, Monte Carlo)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp, softmax
from scipy.stats import multivariate_normal

import bayesgmm.posterior.draws
from bayesgmm.posterior.draws import (
    equal_tailed_interval,
    log_joint_densities,
    log_mixture_density,
    responsibilities,
    sample_mixture,
    stack_draws,
)


def _draws(n_draws=5, k=3, d=2, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(k), n_draws)
    means = 3.0 * rng.normal(size=(n_draws, k, d))
    factors = rng.normal(size=(n_draws, k, d, d))
    covs = factors @ np.swapaxes(factors, -1, -2) + 0.5 * np.eye(d)
    return weights, means, covs


def _scipy_log_joint(X, weights, means, covs):
    """(S, N, K) from scipy.stats.multivariate_normal, one component at a time."""
    s, k = weights.shape
    out = np.empty((s, len(X), k))
    for i in range(s):
        for j in range(k):
            out[i, :, j] = np.log(weights[i, j]) + multivariate_normal(
                means[i, j], covs[i, j]
            ).logpdf(X)
    return out


X = np.random.default_rng(1).normal(scale=3.0, size=(20, 2))


def test_log_joint_densities_match_scipy():
    w, m, c = _draws()
    out = log_joint_densities(X, w, m, c)
    assert out.shape == (5, 20, 3)
    np.testing.assert_allclose(out, _scipy_log_joint(X, w, m, c), rtol=1e-10)


def test_log_joint_densities_of_one_parameter_set_equal_a_draw():
    w, m, c = _draws()
    np.testing.assert_allclose(
        log_joint_densities(X, w[2], m[2], c[2]), _scipy_log_joint(X, w, m, c)[2], rtol=1e-10
    )


def test_zero_weight_gives_minus_infinity_and_no_responsibility():
    w, m, c = _draws(n_draws=1)
    w = np.array([[0.0, 0.4, 0.6]])
    assert np.all(log_joint_densities(X, w, m, c)[..., 0] == -np.inf)
    resp = responsibilities(X, w, m, c)
    assert np.all(resp[..., 0] == 0.0)
    expected = softmax(_scipy_log_joint(X, w[:, 1:], m[:, 1:], c[:, 1:]), axis=-1)
    np.testing.assert_allclose(resp[..., 1:], expected, rtol=1e-10)


def test_responsibilities_are_the_softmax_of_the_joint():
    w, m, c = _draws()
    resp = responsibilities(X, w, m, c)
    np.testing.assert_allclose(resp, softmax(_scipy_log_joint(X, w, m, c), axis=-1), rtol=1e-10)
    np.testing.assert_allclose(resp.sum(axis=-1), 1.0)


def test_log_mixture_density_matches_scipy_logsumexp():
    w, m, c = _draws()
    out = log_mixture_density(X, w, m, c)
    assert out.shape == (5, 20)
    np.testing.assert_allclose(out, logsumexp(_scipy_log_joint(X, w, m, c), axis=-1), rtol=1e-10)


@pytest.mark.parametrize("d", [1, 3])
def test_densities_of_batched_and_broadcast_draws_match_scipy(d):
    """(chain, draw) batches, covariances shared by every draw, and d = 1 or 3."""
    rng = np.random.default_rng(d)
    data = rng.normal(scale=2.0, size=(15, d))
    w, m, c = _draws(n_draws=6, k=3, d=d, seed=d)
    expected = _scipy_log_joint(data, w, m, c)
    joint = log_joint_densities(
        data, w.reshape(2, 3, 3), m.reshape(2, 3, 3, d), c.reshape(2, 3, 3, d, d)
    )
    np.testing.assert_allclose(joint.reshape(6, 15, 3), expected, rtol=1e-10)
    density = log_mixture_density(
        data, w.reshape(2, 3, 3), m.reshape(2, 3, 3, d), c.reshape(2, 3, 3, d, d)
    )
    np.testing.assert_allclose(density.reshape(6, 15), logsumexp(expected, axis=-1), rtol=1e-10)
    shared = log_mixture_density(data, w, m, c[0])
    expected_shared = _scipy_log_joint(data, w, m, np.broadcast_to(c[0], c.shape))
    np.testing.assert_allclose(shared, logsumexp(expected_shared, axis=-1), rtol=1e-10)
    singular = c.copy()
    singular[1, 2] = 0.0
    with pytest.raises(np.linalg.LinAlgError):
        log_mixture_density(data, w, m, singular)


def test_log_mixture_density_survives_far_points():
    w, m, c = _draws()
    far = np.array([[300.0, -300.0]])
    out = log_mixture_density(far, w, m, c)
    assert np.all(np.isfinite(out)) and np.all(out < -1000)
    np.testing.assert_allclose(out, logsumexp(_scipy_log_joint(far, w, m, c), axis=-1), rtol=1e-10)


def _moments(weights, means, covs):
    """Mean and covariance of a Gaussian mixture (law of total covariance)."""
    mean = weights @ means
    second = np.einsum("k,kij->ij", weights, covs + np.einsum("ki,kj->kij", means, means))
    return mean, second - np.outer(mean, mean)


def test_sample_mixture_moments_and_label_frequencies_one_parameter_set():
    w, m, c = _draws(n_draws=1, seed=3)
    w, m, c = w[0], m[0], c[0]
    n = 200_000
    sample, labels = sample_mixture(w, m, c, n, np.random.default_rng(4))
    assert sample.shape == (n, 2) and labels.shape == (n,)
    freq = np.bincount(labels, minlength=3) / n
    assert np.all(np.abs(freq - w) < 5 * np.sqrt(w * (1 - w) / n))
    mean, cov = _moments(w, m, c)
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(sample.mean(axis=0) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(sample.T), cov, rtol=0.03)
    for k in range(3):
        np.testing.assert_allclose(np.cov(sample[labels == k].T), c[k], rtol=0.05, atol=0.02)


def test_sample_mixture_from_draws_is_the_average_of_the_draws():
    w, m, c = _draws(n_draws=2, seed=5)
    m[1] += 10.0
    n = 200_000
    sample, _ = sample_mixture(w, m, c, n, 6)
    moments = [_moments(w[s], m[s], c[s]) for s in range(2)]
    mean = np.mean([mu for mu, _ in moments], axis=0)
    second = np.mean([sig + np.outer(mu, mu) for mu, sig in moments], axis=0)
    cov = second - np.outer(mean, mean)
    assert np.all(np.abs(sample.mean(axis=0) - mean) < 5 * np.sqrt(np.diag(cov) / n))
    np.testing.assert_allclose(np.cov(sample.T), cov, rtol=0.03)


def test_sample_mixture_is_seeded_and_checks_shapes():
    w, m, c = _draws()
    a, la = sample_mixture(w, m, c, 50, 7)
    b, lb = sample_mixture(w, m, c, 50, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    with pytest.raises(ValueError, match="same mixture"):
        sample_mixture(w, m[0], c, 5, 0)
    with pytest.raises(ValueError, match="weights must have shape"):
        sample_mixture(w[None], m, c, 5, 0)


def test_equal_tailed_interval_matches_numpy_quantile():
    draws = np.random.default_rng(8).gamma(2.0, size=(1000, 4))
    lower, upper = equal_tailed_interval(draws, 0.9)
    np.testing.assert_allclose(lower, np.quantile(draws, 0.05, axis=0))
    np.testing.assert_allclose(upper, np.quantile(draws, 0.95, axis=0))
    lower, upper = equal_tailed_interval(draws.T, 0.5, axis=1)
    np.testing.assert_allclose(upper, np.quantile(draws, 0.75, axis=0))
    with pytest.raises(ValueError, match="ci_prob"):
        equal_tailed_interval(draws, 89)


def _dataset(weights, means, covs, chains=2):
    shape = (chains, weights.shape[0] // chains)
    return xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights.reshape(*shape, -1)),
            "means": (
                ("chain", "draw", "component", "feature"),
                means.reshape(*shape, *means.shape[1:]),
            ),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                covs.reshape(*shape, *covs.shape[1:]),
            ),
        }
    )


def test_stack_draws_is_chain_major_and_thins_in_order():
    w, m, c = _draws(n_draws=8)
    c[..., 0, 1] += 0.1  # not symmetric: a transposed matrix would show
    post = _dataset(w, m, c)
    for got, want in zip(stack_draws(post), (w, m, c), strict=True):
        np.testing.assert_array_equal(got, want)
    post = post.transpose("feature_bis", "feature", "draw", "component", "chain")
    for got, want in zip(stack_draws(post), (w, m, c), strict=True):
        np.testing.assert_array_equal(got, want)
    keep = np.sort(np.random.default_rng(3).choice(8, 5, replace=False))
    thinned = stack_draws(post, max_draws=5, random_state=3)
    np.testing.assert_array_equal(thinned[2], c[keep])
    np.testing.assert_array_equal(stack_draws(post, max_draws=50)[0], w)


def test_importing_posterior_loads_numpy_only():
    path = Path(bayesgmm.posterior.draws.__file__)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('posterior', {str(path)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "heavy = {'pymc', 'pytensor', 'arviz_base', 'arviz_stats', 'scipy', 'xarray', 'pandas'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("d", [1, 3])
def test_replicates_kernel_draws_each_row_from_its_inverted_cdf_component(d):
    """The compiled posterior-predictive draws equal gathering each row's component
    (the number of cumulative weights <= u) and adding its Cholesky factor times the noise."""
    from bayesgmm.posterior.kernels import replicates_kernel

    rng = np.random.default_rng(d)
    w, m, c = _draws(n_draws=40, k=3, d=d, seed=d)
    chol = np.linalg.cholesky(c)
    cdf = np.cumsum(w, axis=-1)
    cdf /= cdf[..., -1:]
    u = rng.random((40, 200))
    u[0, :3] = cdf[0, :3]  # on a boundary: the next component (the last one at most)
    noise = rng.standard_normal((40, 200, d))
    labels = np.minimum((cdf[:, None, :] <= u[..., None]).sum(-1), 2)
    rows = np.arange(40)[:, None]
    expected = m[rows, labels] + np.einsum("snij,snj->sni", chol[rows, labels], noise)
    np.testing.assert_allclose(replicates_kernel(u, noise, cdf, m, chol), expected, atol=1e-12)
