"""The uniform noise component with EM: maths against NumPy/SciPy, recovery, API, errors."""

import numpy as np
import pytest
from scipy import stats

from bayesgmm.core.noise import NoiseComponent, noise_concentration
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.em.fit import fit_em
from bayesgmm.em.noise import NoisyParams, noise_e_step, noise_m_step
from bayesgmm.em.options import EMOptions

TRUE_MEANS = np.array([[0.0, 0.0], [5.0, 3.0]])
TRUE_COVS = np.array([[[1.0, 0.5], [0.5, 1.0]], [[1.5, -0.4], [-0.4, 0.8]]])
#: The background box: the clusters' range expanded by several standard deviations.
BOX = (np.array([-8.0, -8.0]), np.array([13.0, 11.0]))


def _contaminated(seed: int, n: int = 600, fraction: float = 0.05):
    """Two Gaussian clusters plus ``fraction`` of uniform background over :data:`BOX`."""
    rng = np.random.default_rng(seed)
    n_background = round(fraction * n)
    labels = rng.integers(2, size=n - n_background)
    clusters = np.empty((labels.size, 2))
    for k in range(2):
        rows = labels == k
        clusters[rows] = rng.multivariate_normal(TRUE_MEANS[k], TRUE_COVS[k], rows.sum())
    background = rng.uniform(*BOX, (n_background, 2))
    return clusters, labels, background


def _by_first_mean(means, covs):
    order = np.argsort(means[:, 0])
    return means[order], covs[order]


def _standard_errors(means, covs, counts):
    """Sampling standard errors of Gaussian mean and covariance estimates from n_k points."""
    var = np.diagonal(covs, axis1=-2, axis2=-1)
    se_means = np.sqrt(var / counts[:, None])
    se_covs = np.sqrt((var[:, :, None] * var[:, None, :] + covs**2) / counts[:, None, None])
    return se_means, se_covs


@pytest.fixture(scope="module")
def contaminated():
    clusters, labels, background = _contaminated(0)
    return clusters, labels, background, np.vstack([clusters, background])


@pytest.fixture(scope="module")
def noise_fit(contaminated):
    return GaussianMixture(2, noise=True, random_state=0).fit(contaminated[3])


# ------------------------------------------------------------- the maths against references


def test_e_and_m_step_match_a_hand_computation():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 2)) * [2.0, 1.0]
    params = MixtureParams([0.3, 0.7], [[-1.0, 0.0], [1.0, 0.5]], [np.eye(2), 2 * np.eye(2)])
    w0, volume = 0.1, 40.0
    log_resp, log_lik = noise_e_step(X, params, w0, -np.log(volume))
    dens = np.stack(
        [
            stats.multivariate_normal.pdf(X, m, c)
            for m, c in zip(params.means, params.covariances, strict=True)
        ],
        axis=1,
    )
    joint = np.column_stack([(1 - w0) * params.weights * dens, np.full(len(X), w0 / volume)])
    np.testing.assert_allclose(log_lik, np.log(joint.sum(axis=1)), rtol=1e-12)
    resp = joint / joint.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.exp(log_resp), resp, rtol=1e-10)
    updated = noise_m_step(X, resp, params, None, 0.0)
    counts = resp.sum(axis=0)
    assert updated.noise_weight == pytest.approx(resp[:, 2].mean(), rel=1e-12)
    np.testing.assert_allclose(updated.weights, counts[:2] / len(X), rtol=1e-10)
    for k in range(2):
        mean = resp[:, k] @ X / counts[k]
        cov = (resp[:, k, None] * (X - mean)).T @ (X - mean) / counts[k]
        np.testing.assert_allclose(updated.gaussian.means[k], mean, rtol=1e-10)
        np.testing.assert_allclose(updated.gaussian.covariances[k], cov, rtol=1e-8)


def test_map_m_step_is_the_mode_of_the_dirichlet_over_k_plus_one_weights():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 2))
    resp = rng.dirichlet(np.ones(3), size=40)
    prior = MixturePrior.default(X, 2, "full", weight_concentration=3.0)
    params = MixtureParams([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [np.eye(2)] * 2)
    updated = noise_m_step(X, resp, params, prior, 0.0)
    counts = resp.sum(axis=0) + 10 * np.finfo(float).eps * np.array([1, 1, 0])
    mode = (counts + 2.0) / (40 + 3 * 2.0)
    np.testing.assert_allclose(np.append(updated.weights, updated.noise_weight), mode, rtol=1e-9)
    assert noise_concentration(3.0, 2).tolist() == [3.0, 3.0, 3.0]
    assert noise_concentration([2.0, 4.0], 2).tolist() == [2.0, 4.0, 1.0]


def test_score_samples_is_the_mixture_plus_uniform_density(noise_fit, contaminated):
    X = contaminated[3]
    gm = noise_fit
    dens = sum(
        w * stats.multivariate_normal.pdf(X, m, c)
        for w, m, c in zip(gm.weights_, gm.means_, gm.covariances_, strict=True)
    )
    volume = np.prod(X.max(axis=0) - X.min(axis=0))
    assert gm.noise_volume_ == pytest.approx(volume, rel=1e-12)
    np.testing.assert_allclose(
        gm.score_samples(X), np.log(dens + gm.noise_weight_ / volume), rtol=1e-10
    )
    assert gm.weights_.sum() + gm.noise_weight_ == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(gm.params_.weights, gm.weights_ / (1 - gm.noise_weight_))
    # at the optimum the objective is the mean log-likelihood (MLE)
    assert gm.lower_bound_ == pytest.approx(gm.score(X), abs=1e-7)
    assert gm.bic(X) == pytest.approx(-2 * gm.score(X) * len(X) + 12 * np.log(len(X)))


def test_fit_does_not_depend_on_units(contaminated):
    X = contaminated[3]
    scale, shift = np.array([1000.0, 0.01]), np.array([-3.0, 50.0])
    a = GaussianMixture(2, noise=True, random_state=0).fit(X)
    b = GaussianMixture(2, noise=True, random_state=0).fit(X * scale + shift)
    assert b.noise_weight_ == pytest.approx(a.noise_weight_, rel=1e-6)
    assert b.noise_volume_ == pytest.approx(a.noise_volume_ * np.prod(scale), rel=1e-12)
    np.testing.assert_allclose(b.means_, a.means_ * scale + shift, rtol=1e-6)
    # log-densities shift by the log-Jacobian of the change of units
    np.testing.assert_allclose(
        b.score_samples(X * scale + shift), a.score_samples(X) - np.log(scale).sum(), atol=1e-6
    )


@pytest.mark.parametrize("prior", [None, "default"])
def test_em_objective_never_decreases(contaminated, prior):
    gm = GaussianMixture(
        2, noise=True, prior=prior, n_init=3, stopping="absolute", tol=1e-12, random_state=1
    ).fit(contaminated[3])
    assert gm.n_iter_ > 3
    assert np.all(np.diff(gm.lower_bound_trace_) >= -1e-10)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_every_structure_fits_with_noise(contaminated, covariance_type):
    X = contaminated[3]
    gm = GaussianMixture(2, covariance_type=covariance_type, noise=True, n_init=3, random_state=0)
    gm.fit(X)
    assert np.all(np.diff(gm.lower_bound_trace_) >= -1e-10)
    assert gm.noise_weight_ == pytest.approx(0.05, abs=0.02)  # measured 0.054-0.057
    p = gm.spec_.structure.n_parameters(2, 2) + 2 * 2 + 2
    assert gm.bic(X) == pytest.approx(-2 * gm.score(X) * len(X) + p * np.log(len(X)))


# ------------------------------------------------------------- recovery (issue 13)


def test_noise_component_recovers_the_clean_fit_and_the_plain_fit_is_biased(
    contaminated, noise_fit
):
    clusters, _, _, X = contaminated
    clean = GaussianMixture(2, random_state=0).fit(clusters)
    plain = GaussianMixture(2, random_state=0).fit(X)
    clean_means, clean_covs = _by_first_mean(clean.means_, clean.covariances_)
    se_means, se_covs = _standard_errors(clean_means, clean_covs, clean.weights_ * len(clusters))

    def deviation(model):
        means, covs = _by_first_mean(model.means_, model.covariances_)
        return max(
            np.max(np.abs(means - clean_means) / se_means),
            np.max(np.abs(covs - clean_covs) / se_covs),
        )

    # in standard errors of the clean fit (N = 570): measured 0.58 with noise; 449 without
    # (the plain fit spends a component on the background)
    assert deviation(noise_fit) < 2.0
    assert deviation(plain) > 5.0
    # the plain fit inflates the covariances to absorb the background
    assert np.linalg.det(plain.covariances_).sum() > 2 * np.linalg.det(clean_covs).sum()
    assert noise_fit.noise_weight_ == pytest.approx(0.05, abs=0.03)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_background_points_get_noise_probability_above_one_half(seed):
    clusters, _, background = _contaminated(seed)
    X = np.vstack([clusters, background])
    gm = GaussianMixture(2, noise=True, random_state=0).fit(X)
    p_noise = gm.noise_proba(X)
    # background points outside every true cluster's 99% ellipse
    cutoff = stats.chi2.ppf(0.99, df=2)
    inside = np.zeros(len(background), dtype=bool)
    for m, c in zip(TRUE_MEANS, TRUE_COVS, strict=True):
        diff = background - m
        inside |= np.einsum("ni,ij,nj->n", diff, np.linalg.inv(c), diff) < cutoff
    flagged = p_noise[len(clusters) :][~inside] > 0.5
    false_alarms = p_noise[: len(clusters)] > 0.5
    # measured (seeds 0, 1, 2): 96%, 96%, 88% of the ~25 outlying background points flagged
    # (83%, 80%, 73% of all 30 background points); 0.35%, 0.18%, 0% of the cluster points
    assert flagged.mean() > 0.8, f"{flagged.mean():.0%} of outlying background flagged"
    assert false_alarms.mean() < 0.02, f"{false_alarms.mean():.1%} of cluster points flagged"
    labels = gm.predict(X)
    np.testing.assert_array_equal(labels == -1, p_noise > gm.predict_proba(X).max(axis=1))
    np.testing.assert_allclose(gm.predict_proba(X).sum(axis=1) + p_noise, 1.0, atol=1e-12)


def test_noise_init_with_the_true_background_reaches_the_same_fit(contaminated, noise_fit):
    clusters, _, background, X = contaminated
    marked = np.r_[np.zeros(len(clusters), bool), np.ones(len(background), bool)]
    gm = GaussianMixture(2, noise=True, noise_init=marked, n_init=1, random_state=0).fit(X)
    assert gm.lower_bound_ == pytest.approx(noise_fit.lower_bound_, abs=1e-6)
    assert gm.noise_weight_ == pytest.approx(noise_fit.noise_weight_, abs=1e-4)


def test_user_volume_is_used_and_shifts_the_fit(contaminated, noise_fit):
    X = contaminated[3]
    big = GaussianMixture(2, noise=True, noise_volume=100 * noise_fit.noise_volume_, random_state=0)
    big.fit(X)
    assert big.noise_volume_ == pytest.approx(100 * noise_fit.noise_volume_)
    # a lower background density explains fewer points as noise
    assert big.noise_proba(X).sum() < noise_fit.noise_proba(X).sum()


# ------------------------------------------------------------- unchanged without noise


def test_noise_false_is_the_plain_fit(contaminated):
    X = contaminated[3]
    gm = GaussianMixture(2, n_init=3, random_state=4).fit(X)
    spec = MixtureSpec.from_data(X, 2, "full", None, standardize=False)
    result = fit_em(X, spec, EMOptions(n_init=3), random_state=4)
    np.testing.assert_array_equal(gm.means_, result.params.means)
    np.testing.assert_array_equal(gm.covariances_, result.params.covariances)
    assert result.noise_weight is None and spec.noise is None
    assert not hasattr(gm, "noise_weight_")
    with pytest.raises(ValueError, match="noise=True"):
        gm.noise_proba(X)


def test_sample_draws_noise_from_the_box(noise_fit):
    X, y = noise_fit.sample(4000)
    assert abs((y == -1).mean() - noise_fit.noise_weight_) < 0.015
    noise = noise_fit.spec_.noise
    assert np.all((X[y == -1] >= noise.lower) & (X[y == -1] <= noise.upper))
    assert set(np.unique(y)) == {-1, 0, 1}


def test_noise_region_sample_has_the_given_volume():
    component = NoiseComponent.from_data(np.array([[0.0, 0.0], [2.0, 1.0]]), volume=8.0)
    draws = component.sample(20_000, np.random.default_rng(0))
    sides = draws.max(axis=0) - draws.min(axis=0)
    assert np.prod(sides) == pytest.approx(8.0, rel=0.01)
    np.testing.assert_allclose(draws.mean(axis=0), [1.0, 0.5], atol=0.05)


# ------------------------------------------------------------- errors


@pytest.mark.parametrize("volume", [0.0, -1.0, np.nan, np.inf, True, "big"])
def test_bad_noise_volume_is_a_clear_error(contaminated, volume):
    with pytest.raises(ValueError, match="noise_volume must be None"):
        GaussianMixture(2, noise=True, noise_volume=volume).fit(contaminated[3])


@pytest.mark.parametrize(
    ("noise_init", "match"),
    [
        (np.zeros(10, bool), r"shape \(n_samples,\) = \(600,\)"),
        (np.zeros((600, 1)), r"got shape \(600, 1\)"),
        (np.full(600, 1.5), r"in \[0, 1\]"),
        (np.ones(600, bool), "every point"),
    ],
)
def test_bad_noise_init_is_a_clear_error(contaminated, noise_init, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, noise=True, noise_init=noise_init).fit(contaminated[3])


def test_noise_with_chunked_data_is_a_clear_error(contaminated):
    da = pytest.importorskip("dask.array")
    X = da.from_array(contaminated[3], chunks=200)
    with pytest.raises(ValueError, match="not supported for Dask"):
        GaussianMixture(2, noise=True).fit(X)


def test_constant_feature_without_volume_is_a_clear_error():
    X = np.column_stack([np.random.default_rng(0).normal(size=50), np.ones(50)])
    with pytest.raises(ValueError, match="give noise_volume"):
        NoiseComponent.from_data(X)
    assert NoiseComponent.from_data(X, volume=2.0).log_density == pytest.approx(-np.log(2.0))


def test_noise_must_be_a_bool(contaminated):
    with pytest.raises(ValueError, match="noise must be True or False"):
        GaussianMixture(2, noise="yes").fit(contaminated[3])


def test_noisy_params_weights_are_absolute():
    params = NoisyParams(MixtureParams([0.25, 0.75], [[0.0], [1.0]], [1.0, 1.0], "spherical"), 0.2)
    np.testing.assert_allclose(params.weights, [0.2, 0.6])


def test_noise_fit_records_its_distinct_optima(contaminated):
    # the restart driver of fit_em serves the noise fit too: optima, best first
    X = contaminated[3][::2]
    model = GaussianMixture(3, noise=True, n_init=5, tol=1e-6, random_state=0).fit(X)
    first, bound = model.optima_[0]
    assert first is model.params_ and bound == model.lower_bound_
    bounds = [b for _, b in model.optima_]
    assert bounds == sorted(bounds, reverse=True)
    assert len(model.optima_) >= 2
