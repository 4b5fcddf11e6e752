"""mclust's BIC table in one call (bayesgmm.em.mclust_table, bayesgmm.em.mclust_kernels)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesgmm import datasets
from bayesgmm.core.covariance.decomposition import SOLVERS
from bayesgmm.em.mclust_kernels import EXACT, MODELS, SINGULAR, covariances, em_run
from bayesgmm.em.mclust_table import (
    cell_estimator,
    fit_table,
    kmeans_partitions,
    quantile_partitions,
    submodels,
)
from bayesgmm.selection.compare import compare, em_criteria, uses_table


def mixture_loglik(X, weights, means, covs) -> float:
    """Log-likelihood of a Gaussian mixture, from SciPy's densities."""
    dens = sum(
        w * multivariate_normal(m, c).pdf(X) for w, m, c in zip(weights, means, covs, strict=True)
    )
    return float(np.log(dens).sum())


def objective(covs, W, n) -> float:
    return -0.5 * sum(
        nk * np.linalg.slogdet(c)[1] + np.trace(np.linalg.solve(c, w))
        for c, w, nk in zip(covs, W, n, strict=True)
    )


def random_problem(rng, K=3, d=3):
    W = np.empty((K, d, d))
    for k in range(K):
        A = rng.normal(size=(d, 2 * d + 3)) * rng.uniform(0.3, 3.0, size=(d, 1))
        W[k] = A @ A.T
    return W, rng.uniform(5.0, 40.0, size=K)


@pytest.mark.parametrize("model", MODELS)
def test_compiled_m_step_agrees_with_the_numpy_solvers(model):
    rng = np.random.default_rng(MODELS.index(model))
    W, n = random_problem(rng)
    covs = np.empty_like(W)
    assert covariances(MODELS.index(model), W, n, covs, np.ones(3), np.eye(3), False, EXACT)
    reference = SOLVERS[model](W, n)
    if model in ("EVE", "VVE"):  # both search angles on grids: compare the objective
        assert objective(covs, W, n) >= objective(reference, W, n) - 1e-6
    else:
        np.testing.assert_allclose(covs, reference, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("model", ["VVV", "EEV", "VEI", "EVE"])
def test_em_run_returns_the_loglik_of_its_parameters_and_never_decreases(model):
    X = datasets.load_faithful()
    X = (X - X.mean(0)) / X.std(0).mean()
    rng = np.random.default_rng(0)
    resp = rng.dirichlet(np.ones(3), size=len(X))
    previous = -np.inf
    weights, means, covs = np.empty(3), np.empty((3, 2)), np.empty((3, 2, 2))
    lam, D = np.ones(3), np.eye(2)
    warm = False
    for _ in range(5):  # five EM iterations, one call each
        loglik, n_iter, status = em_run(
            MODELS.index(model), X, resp, weights, means, covs, lam, D, warm, 1, 0.0, 1.0, 1
        )
        warm = True
        assert status != SINGULAR and n_iter == 1
        assert loglik >= previous - 1e-9
        assert loglik == pytest.approx(mixture_loglik(X, weights, means, covs), rel=1e-10)
        previous = loglik


def test_singular_start_is_reported_not_raised():
    """Component 1 holds one row: its covariance is singular, so is the run (no error)."""
    X = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5], [3.0, 3.0]])
    resp = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    arrays = (np.empty(2), np.empty((2, 2)), np.empty((2, 2, 2)), np.ones(2), np.eye(2))
    out = em_run(13, X, resp, *arrays, False, 10, 1e-5, 1.0, EXACT)
    assert out[2] == SINGULAR and np.isnan(out[0])


@pytest.fixture(scope="module")
def faithful_table():
    return fit_table(datasets.load_faithful(), range(1, 5), random_state=0)


def test_table_cells_hold_their_own_loglik_and_bic(faithful_table):
    X = datasets.load_faithful()
    n, d = X.shape
    assert faithful_table.bic.shape == (4, 14)
    for cell in faithful_table.fits.values():
        assert cell.loglik == pytest.approx(
            mixture_loglik(X, cell.weights, cell.means, cell.covariances), rel=1e-9
        )
        assert cell.bic == pytest.approx(2 * cell.loglik - cell.n_parameters * np.log(n))
    # one component: each model's closed-form MLE of one Gaussian
    S = np.cov(X.T, ddof=0)
    full = faithful_table.fits[(1, "VVV")]
    np.testing.assert_allclose(full.covariances[0], S, rtol=1e-10)
    spherical = faithful_table.fits[(1, "EII")]
    np.testing.assert_allclose(spherical.covariances[0], np.trace(S) / d * np.eye(d), rtol=1e-10)
    diagonal = faithful_table.fits[(1, "VVI")]
    np.testing.assert_allclose(diagonal.covariances[0], np.diag(np.diag(S)), rtol=1e-10)


def test_nested_models_never_fit_better_than_the_models_containing_them(faithful_table):
    """The table restarts a model from any nested model that fits better, so every model's
    log-likelihood is at least that of each model nested in it (VVV contains all)."""
    ll = faithful_table.loglik
    assert submodels("VVV") == [m for m in MODELS if m != "VVV"]
    assert set(submodels("EEV")) == {"EII", "EEI", "EEE"}
    for model in ll.columns:
        for other in submodels(model):
            assert np.all(ll[model] >= ll[other] - 1e-6 * ll[other].abs()), (model, other)


def test_cell_estimator_predicts_and_scores_as_the_cell(faithful_table):
    X = datasets.load_faithful()
    cell = faithful_table.fits[(3, "EEV")]
    estimator = cell_estimator(cell, X)
    assert estimator.score(X) * len(X) == pytest.approx(cell.loglik, rel=1e-10)
    assert estimator.bic(X) == pytest.approx(-cell.bic, rel=1e-10)
    np.testing.assert_allclose(estimator.predict_proba(X), cell.resp, atol=1e-8)
    tied = cell_estimator(faithful_table.fits[(2, "EEE")], X, "tied")
    assert tied.covariances_.shape == (2, 2)
    assert tied.bic(X) == pytest.approx(-faithful_table.bic.loc[2, "EEE"], rel=1e-10)


def test_kmeans_partitions_have_k_clusters():
    X = datasets.load_faithful()
    parts = kmeans_partitions(X, 4, 3, np.random.default_rng(0))
    assert len(parts) == 3
    assert all(np.bincount(p, minlength=4).min() > 0 for p in parts)


def test_bad_settings_are_named():
    X = datasets.load_faithful()
    with pytest.raises(ValueError, match="models"):
        fit_table(X, [2], ["XYZ"])
    with pytest.raises(ValueError, match="starts"):
        fit_table(X, [2], starts=["random"])


def test_compare_all_map_uses_the_table():
    X = datasets.load_faithful()
    assert uses_table("map", ["EEV", "full"], None, "auto", [])
    assert not uses_table("map", ["full", "tied"], None, "auto", [])
    assert not uses_table("nuts", ["EEV"], None, "auto", [])
    assert not uses_table("map", ["EEV"], "default", "auto", [])
    result = compare(X, [1, 2, 3], "all", method="map", random_state=0)
    table = fit_table(X, [1, 2, 3], random_state=0)
    assert len(result.table) == 42
    for name, row in result.table.iterrows():
        mclust = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}.get(
            row["covariance_type"], row["covariance_type"]
        )
        assert row["bic"] == pytest.approx(-table.bic.loc[row["n_components"], mclust], rel=1e-9)
        fit = result.fits[name]
        assert em_criteria(fit.em, X)["bic"] == pytest.approx(row["bic"])


def test_quantile_partitions_are_ordered_intervals():
    x = np.random.default_rng(5).gamma(2.0, size=101)
    parts = quantile_partitions(x, 6)
    assert np.all(parts[0] == 0)
    for k in range(2, 7):
        labels = parts[k - 1]
        assert sorted(np.unique(labels)) == list(range(k))
        for g in range(k - 1):
            assert x[labels == g].max() < x[labels == g + 1].min()
        sizes = np.bincount(labels)
        assert sizes.max() - sizes.min() <= 2  # quantiles: (nearly) equal counts


def test_agglomeration_on_a_subset_starts_every_row():
    """More rows than ``hc_subset``: the tree is cut on a random subset, one M-step on it
    and one E-step on all rows start EM (mclust's ``subset``); the cells are as good as
    those of the full tree here (well-separated faithful clusters at K=2)."""
    X = datasets.load_faithful()
    small = fit_table(X, [2, 3], ["VVV", "EEE"], hc_subset=60, random_state=1)
    full = fit_table(X, [2, 3], ["VVV", "EEE"])
    assert np.isfinite(small.bic.to_numpy()).all()
    assert small.bic.loc[2, "VVV"] == pytest.approx(full.bic.loc[2, "VVV"], abs=1e-3)
