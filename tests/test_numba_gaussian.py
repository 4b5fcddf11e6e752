"""The compiled Gaussian building blocks (``bayesgmm._numba.gaussian``) against NumPy/SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_triangular
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm._numba import gaussian


def _spd(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_cholesky_and_inverse_equal_numpy(d):
    cov = _spd(d, d)
    low = np.full((d, d), np.nan)  # every entry written, the upper triangle with zeros
    assert gaussian.cholesky_lower(cov, low, 0.0)
    np.testing.assert_allclose(low, np.linalg.cholesky(cov), rtol=1e-13, atol=1e-14)
    inv = np.full((d, d), np.nan)
    gaussian.inv_lower(low, inv)
    np.testing.assert_allclose(inv, np.linalg.inv(low), rtol=1e-12, atol=1e-14)
    upper = np.full((d, d), np.nan)
    gaussian.inv_lower(low, upper.T)  # a transposed view: L^{-T}
    np.testing.assert_array_equal(upper, inv.T)


def test_cholesky_of_a_singular_matrix_fails_or_is_floored():
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    low = np.empty((2, 2))
    assert not gaussian.cholesky_lower(singular, low, 0.0)
    assert not gaussian.cholesky_lower(np.array([[np.nan]]), np.empty((1, 1)), 0.0)
    assert gaussian.cholesky_lower(singular, low, 1e-300)
    assert low[1, 1] == np.sqrt(1e-300)


@pytest.mark.parametrize("d", [1, 3])
def test_log_const_and_whitened_residual_give_the_normal_log_density(d):
    rng = np.random.default_rng(d)
    cov, x, mean = _spd(d, 10 + d), rng.normal(size=d), rng.normal(size=d)
    chol = np.linalg.cholesky(cov)
    inv_diag = np.empty(d)
    gaussian.inverse_diagonal(chol, inv_diag)
    np.testing.assert_array_equal(inv_diag, 1.0 / np.diagonal(chol))
    z = np.empty(d)
    sq = gaussian.whiten(x, mean, chol, inv_diag, z)
    np.testing.assert_allclose(z, solve_triangular(chol, x - mean, lower=True), rtol=1e-12)
    assert sq == pytest.approx(z @ z, rel=1e-14)
    log_weight = np.log(0.3)
    logpdf = gaussian.gaussian_log_const(log_weight, chol) - 0.5 * sq
    expected = log_weight + multivariate_normal(mean, cov).logpdf(x)
    assert logpdf == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "a", [[0.0, -1.0, 2.5], [-800.0, -801.0, -1e4], [-np.inf, 3.0], [-np.inf, -np.inf]]
)
def test_log_sum_exp_equals_scipy(a):
    a = np.array(a)
    expected = logsumexp(a)
    top = gaussian.log_sum_exp_shift(a)
    assert top == (np.max(a) if np.isfinite(np.max(a)) else 0.0)
    shifted = a.copy()
    total = gaussian.exp_shifted(shifted, top)
    np.testing.assert_array_equal(shifted, np.exp(a - top))
    assert total == pytest.approx(np.exp(a - top).sum())
    result = gaussian.log_sum_exp(a.copy())
    if np.isfinite(expected):
        assert result == pytest.approx(expected, rel=1e-14)
    else:
        assert result == expected == -np.inf
