"""The compiled EM loop (bayesgmm.em.loop) against the Python loop of run_em, and the
split-and-merge moves of the default search."""

import itertools

import numpy as np
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.core.exceptions import SingularCovarianceError
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import sample_moments
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.em.fit import (
    coincident_components,
    degenerate_components,
    initial_params,
    run_em,
    split_merge,
    split_merge_starts,
)
from bayesgmm.em.options import EMOptions

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _working(X, k, covariance_type, prior):
    spec = MixtureSpec.from_data(X, k, covariance_type, prior)
    scaling = Standardization.from_data(X, spec.structure)
    return scaling.to_working(X), spec.working_prior_for(scaling), spec


def _assert_same_run(a, b):
    assert (a.n_iter, a.converged, a.n_reseeds) == (b.n_iter, b.converged, b.n_reseeds)
    np.testing.assert_allclose(a.trace, b.trace, rtol=1e-12, atol=1e-12)
    assert a.lower_bound == pytest.approx(b.lower_bound, rel=1e-12, abs=1e-12)
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_allclose(
            getattr(a.params, name), getattr(b.params, name), rtol=1e-8, atol=1e-10
        )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("prior", [None, "default"])
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_loop_equals_the_python_loop(faithful, covariance_type, prior, weighted):
    Z, working_prior, spec = _working(faithful, 3, covariance_type, prior)
    start = initial_params(Z, spec, EMOptions(init_params="k-means++"), np.random.default_rng(4))
    weights = np.random.default_rng(0).integers(0, 4, Z.shape[0]) * 1.0 if weighted else None
    kwargs = dict(prior=working_prior, tol=1e-9, max_iter=400, stopping="aitken")
    python = run_em(Z, start, compiled=False, sample_weight=weights, **kwargs)
    compiled = run_em(Z, start, compiled=True, sample_weight=weights, **kwargs)
    assert python.n_iter > 5
    _assert_same_run(compiled, python)


def test_compiled_loop_absolute_rule_max_iter_and_float32(galaxies):
    X = galaxies.reshape(-1, 1)
    Z, _, spec = _working(X, 4, "full", None)
    start = initial_params(
        Z, spec, EMOptions(init_params="random_from_data"), np.random.default_rng(1)
    )
    for max_iter in (0, 1, 7, 300):
        kwargs = dict(tol=1e-6, max_iter=max_iter, stopping="absolute")
        _assert_same_run(
            run_em(Z, start, compiled=True, **kwargs), run_em(Z, start, compiled=False, **kwargs)
        )
    z32 = np.ascontiguousarray(Z, dtype=np.float32)
    kwargs = dict(tol=1e-8, max_iter=300, stopping="aitken")
    _assert_same_run(
        run_em(z32, start, compiled=True, **kwargs), run_em(z32, start, compiled=False, **kwargs)
    )


def test_a_start_that_needs_a_reseed_is_rerun_in_python():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    # component 1 sits 1e3 standard deviations away: it owns no row and is re-seeded
    start = MixtureParams(
        np.array([0.5, 0.5]), np.array([[0.0, 0.0], [1e3, 1e3]]), np.array([np.eye(2)] * 2), "full"
    )
    python = run_em(X, start, compiled=False, tol=1e-8, max_iter=200, stopping="aitken")
    compiled = run_em(X, start, compiled=True, tol=1e-8, max_iter=200, stopping="aitken")
    assert python.n_reseeds >= 1
    _assert_same_run(compiled, python)


def test_singular_map_error_is_the_same_in_both_loops():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]), 5, axis=0)
    start = MixtureParams(
        np.array([0.5, 0.5]), np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([np.eye(2)] * 2), "full"
    )
    for compiled in (False, True):
        with pytest.raises(SingularCovarianceError):
            run_em(X, start, compiled=compiled, tol=1e-8, max_iter=50, max_reseeds=0, reg_covar=0.0)


def test_split_merge_moves_keep_k_components_and_never_lose(faithful):
    Z, _, spec = _working(faithful, 4, "full", None)
    options = EMOptions()
    start = initial_params(Z, spec, EMOptions(init_params="k-means++"), np.random.default_rng(2))
    fit = run_em(Z, start, tol=1e-8, max_iter=1000, stopping="aitken")
    starts = list(split_merge_starts(Z, fit.params, None, options.reg_covar))
    assert len(starts) == 4 * 3  # 6 merge pairs x 2 components left to split
    assert all(p.n_components == 4 for p in starts)
    cov = sample_moments(Z)[1]
    best, path = split_merge(Z, fit, spec, options, cov)
    assert best.lower_bound >= fit.lower_bound
    assert not degenerate_components(best.params, Z, cov).any()
    assert all(a.lower_bound < b.lower_bound for a, b in itertools.pairwise(path))


def test_auto_n_init_reaches_what_twenty_starts_missed(galaxies):
    # galaxies, K=5: 20 starts ended 1.9 log-likelihood units below the best
    # non-degenerate optimum of 50 tight restarts (-190.449); the default reaches it
    X = galaxies.reshape(-1, 1)
    auto = GaussianMixture(5, random_state=0).fit(X)
    assert auto.score(X) * X.shape[0] >= -190.449 - 0.05
    assert not auto.degenerate_


def test_n_init_auto_is_the_only_string():
    assert EMOptions().n_init == "auto"
    with pytest.raises(TypeError, match='integer or "auto"'):
        EMOptions(n_init="many")
    with pytest.raises(ValueError, match="n_init"):
        EMOptions(n_init=0)


def test_coincident_components_are_the_fit_of_last_resort():
    """Two equal components (the symmetric stationary point that random-responsibility
    starts can reach) are not a K-component optimum: the restarts return another fit, and
    on data where every other fit is degenerate, the degenerate one with its warning."""
    twice = MixtureParams(np.full(2, 0.5), np.zeros((2, 2)), np.stack([np.eye(2)] * 2), "full")
    apart = MixtureParams(
        np.full(2, 0.5), np.array([[0.0, 0.0], [0.0, 1e-3]]), twice.covariances, "full"
    )
    assert coincident_components(twice)
    assert not coincident_components(apart)
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(60, 2)), np.tile([[5.0, 5.0]], (20, 1))]
    with pytest.warns(UserWarning, match="degenerate"):
        gm = GaussianMixture(2, random_state=0).fit(X)
    assert not np.allclose(gm.means_[0], gm.means_[1])
    np.testing.assert_allclose(gm.means_[np.argmax(gm.means_[:, 0])], [5.0, 5.0])
