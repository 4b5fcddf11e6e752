"""The scikit-learn-compatible estimator: equality with scikit-learn, conventions, errors."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import entr
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import GaussianMixture, MixturePrior, datasets
from bayesgmm.em.estimator import fit_map

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _data_sets():
    X1, _, _ = datasets.make_mixture(200, 3, 2, separation=3.0, random_state=0)
    X2, _, _ = datasets.make_mixture(150, 2, 3, separation=2.0, random_state=1)
    return {
        "faithful": datasets.load_faithful(),
        "synthetic-2d": X1,
        "synthetic-3d": X2,
        "galaxies": datasets.load_galaxies(),
    }


DATA = _data_sets()


def _start(X, n_components, covariance_type, seed):
    """A shared, deliberately imperfect starting point."""
    rng = np.random.default_rng(seed)
    means = X[rng.choice(X.shape[0], n_components, replace=False)]
    spread = np.cov(X, rowvar=False).reshape(X.shape[1], X.shape[1])
    precisions = {
        "full": np.stack([np.linalg.inv(spread)] * n_components),
        "tied": np.linalg.inv(spread),
        "diag": np.tile(1.0 / np.diag(spread), (n_components, 1)),
        "spherical": np.full(n_components, X.shape[1] / np.trace(spread)),
    }[covariance_type]
    return dict(
        weights_init=np.full(n_components, 1.0 / n_components),
        means_init=means,
        precisions_init=precisions,
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("data_name", list(DATA))
@pytest.mark.parametrize("n_iter", [1, 5, 25])
def test_equals_scikit_learn_from_the_same_start(covariance_type, data_name, n_iter):
    X = DATA[data_name]
    k = 3 if data_name != "faithful" else 2
    start = _start(X, k, covariance_type, seed=n_iter)
    # reg_covar=0 on both sides: ours is relative to each feature's variance (EM runs on
    # standardised data), scikit-learn's is absolute, so only zero means the same model.
    kwargs = dict(covariance_type=covariance_type, max_iter=n_iter, tol=0.0, reg_covar=0.0, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GaussianMixture(k, **kwargs).fit(X)
        ref = SkGaussianMixture(k, **kwargs).fit(X)
    np.testing.assert_allclose(ours.weights_, ref.weights_, rtol=1e-8)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.precisions_cholesky_, ref.precisions_cholesky_, rtol=1e-7)
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-8)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.bic(X), ref.bic(X), rtol=1e-8)
    np.testing.assert_allclose(ours.aic(X), ref.aic(X), rtol=1e-8)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-8)


def test_converges_to_scikit_learns_optimum(faithful):
    ours = GaussianMixture(2, tol=1e-8, max_iter=500, random_state=0).fit(faithful)
    ref = SkGaussianMixture(2, tol=1e-8, max_iter=500, random_state=0).fit(faithful)
    order = np.argsort(ours.means_[:, 0])
    ref_order = np.argsort(ref.means_[:, 0])
    np.testing.assert_allclose(ours.means_[order], ref.means_[ref_order], rtol=1e-5)
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-8)
    assert ours.converged_


def test_fit_predict_equals_fit_then_predict(three_blobs):
    X, labels = three_blobs
    model = GaussianMixture(3, random_state=3)
    fitted_labels = model.fit_predict(X)
    np.testing.assert_array_equal(fitted_labels, model.predict(X))
    # recovers the true clusters up to a relabelling
    agreement = pd.crosstab(labels, fitted_labels).to_numpy().max(axis=1).sum() / len(X)
    assert agreement > 0.95


def test_trace_and_attributes(faithful):
    model = GaussianMixture(2, random_state=0, prior="default", tol=1e-10).fit(faithful)
    assert model.lower_bound_trace_.shape == (model.n_iter_,)
    # the objective is the mean log-likelihood plus log p(theta) / N, recomputed here
    objective = model.score(faithful) + model.prior_.log_density(model.params_) / len(faithful)
    assert model.lower_bound_ == pytest.approx(objective, abs=1e-9)
    assert isinstance(model.prior_, MixturePrior)
    np.testing.assert_allclose(
        model.precisions_ @ model.covariances_, np.stack([np.eye(2)] * 2), atol=1e-10
    )
    # ICL = BIC + 2 * the entropy of the responsibilities (Biernacki et al. 2000)
    entropy = entr(model.predict_proba(faithful)).sum()
    assert model.icl(faithful) == pytest.approx(model.bic(faithful) + 2 * entropy, rel=1e-12)


def test_map_changes_little_on_large_data_and_stays_proper(faithful):
    mle = GaussianMixture(2, random_state=0, tol=1e-8).fit(faithful)
    map_ = GaussianMixture(2, random_state=0, tol=1e-8, prior="default").fit(faithful)
    order = np.argsort(map_.means_[:, 0])
    np.testing.assert_allclose(np.sort(mle.means_[:, 0]), map_.means_[order, 0], rtol=0.02)


def test_sample_is_seeded_and_shaped(faithful):
    model = GaussianMixture(2, random_state=5).fit(faithful)
    X1, y1 = model.sample(1000)
    X2, _ = model.sample(1000)
    assert X1.shape == (1000, 2) and y1.shape == (1000,)
    np.testing.assert_array_equal(X1, X2)
    # the sample reproduces the fitted weights
    assert abs(np.mean(y1 == 0) - model.weights_[0]) < 0.05


def test_same_seed_same_fit(faithful):
    a = GaussianMixture(3, random_state=42, init_params="k-means++").fit(faithful)
    b = GaussianMixture(3, random_state=42, init_params="k-means++").fit(faithful)
    np.testing.assert_array_equal(a.means_, b.means_)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_initialisation_fits(faithful, init_params):
    # tol=1e-6: with the default 1e-3, "random" (near-identical starting components)
    # stops after 2 iterations on the initial plateau, at -4.74 instead of -4.155
    model = GaussianMixture(2, init_params=init_params, random_state=0, max_iter=300, tol=1e-6).fit(
        faithful
    )
    assert model.converged_
    # Old Faithful with K=2 has one clear optimum; every start reaches it
    reference = GaussianMixture(2, random_state=0, tol=1e-8).fit(faithful)
    assert model.score(faithful) == pytest.approx(reference.score(faithful), abs=2e-3)


def test_not_converged_warns(faithful):
    with pytest.warns(Warning, match="did not converge"):
        GaussianMixture(2, max_iter=1, random_state=0).fit(faithful)


def test_accepts_dataframes_and_keeps_feature_names():
    frame = datasets.load_faithful(as_frame=True)
    model = GaussianMixture(2, random_state=0).fit(frame)
    assert list(model.feature_names_in_) == ["eruptions", "waiting"]


@pytest.mark.parametrize(
    ("X", "kwargs", "error", "match"),
    [
        (np.ones(10), {}, ValueError, "Expected 2D array"),
        (np.ones((2, 3, 4)), {}, ValueError, "must be 2-D"),
        (np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]]), {}, ValueError, "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [4.0, 5.0]]), {}, ValueError, "infinity"),
        (
            pd.DataFrame({"a": [1.0, 2, 3], "b": ["x", "y", "z"]}),
            {},
            TypeError,
            r"non-numeric columns \['b'\]",
        ),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), {}, TypeError, "non-numeric"),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            {"n_components": 0},
            ValueError,
            "n_components must be >= 1",
        ),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            {"n_components": 6},
            ValueError,
            "n_components=6 must be <= n_samples=5",
        ),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            {"covariance_type": "banana"},
            ValueError,
            "covariance_type",
        ),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            {"reg_covar": -1.0},
            ValueError,
            "reg_covar must be a non-negative",
        ),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            {"init_params": "magic"},
            ValueError,
            "init_params",
        ),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            {"n_components": 2.5},
            TypeError,
            "n_components must be an integer",
        ),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            {"means_init": np.zeros((3, 2))},
            ValueError,
            r"means_init must have shape \(1, 2\)",
        ),
        (np.column_stack([np.arange(5.0), np.full(5, 3.0)]), {}, ValueError, r"constant column 1"),
        (
            np.random.default_rng(0).normal(size=(5, 2)),
            {"prior": "flat"},
            ValueError,
            "prior must be None .maximum likelihood., 'default'",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(X, kwargs, error, match):
    with pytest.raises(error, match=match):
        GaussianMixture(**kwargs).fit(X)


def test_predicting_with_other_features_is_an_error(faithful):
    model = GaussianMixture(2, random_state=0).fit(faithful)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        model.predict(np.ones((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        model.score_samples(np.array([[np.nan, 1.0]]))


def test_prior_must_match_the_model(faithful):
    prior = MixturePrior.default(faithful, 2, "diag")
    with pytest.raises(ValueError, match="covariance_type='diag'"):
        GaussianMixture(2, prior=prior).fit(faithful)


# Every scikit-learn estimator check runs; none is skipped. (check_array_api_input is
# skipped by scikit-learn itself unless SCIPY_ARRAY_API=1 is set in the environment.)
@parametrize_with_checks([GaussianMixture()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("noise", [False, True])
def test_fit_map_under_the_estimators_spec_is_its_fit(faithful, noise):
    """fit_map (the Bayesian estimator's start) runs the EM that GaussianMixture.fit runs."""
    fit = GaussianMixture(2, prior="default", n_init=3, random_state=0, noise=noise).fit(faithful)
    again = fit_map(faithful, fit.spec_, n_init=3, random_state=0)
    assert again.prior is fit.spec_.prior and again.noise is noise
    np.testing.assert_array_equal(again.means_, fit.means_)
    np.testing.assert_array_equal(again.covariances_, fit.covariances_)
    np.testing.assert_array_equal(again.weights_, fit.weights_)
    assert again.lower_bound_ == fit.lower_bound_ and len(again.optima_) == len(fit.optima_)
    assert getattr(again, "noise_weight_", None) == getattr(fit, "noise_weight_", None)
    other = fit_map(faithful, fit.spec_.with_prior(None), n_init=3, random_state=0)
    assert other.lower_bound_ != fit.lower_bound_  # the spec's prior is the one used
