"""The default EM settings: mclust's hierarchical start, Aitken's stopping rule, degenerate
optima, and the test that matters: defaults reach the best optimum many restarts find."""

import os

import numpy as np
import pytest
from scipy.stats import ortho_group
from sklearn.metrics import adjusted_rand_score

from bayesgmm import GaussianMixture, datasets
from bayesgmm.core.exceptions import SingularCovarianceError
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import sample_moments
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em.fit import STOPPING_RULES, degenerate_components, fit_em
from bayesgmm.em.init import initial_responsibilities
from bayesgmm.em.options import EMOptions

DATA = {
    "faithful": datasets.load_faithful,
    "galaxies": datasets.load_galaxies,
    "enzyme": datasets.load_enzyme,
    "acidity": datasets.load_acidity,
}
COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]

#: Set BAYESGMM_FULL_OPTIMUM_GRID=1 for every data set, structure and K = 1..6 with 50
#: restarts each (minutes); by default a representative subset with 20 restarts.
FULL_GRID = os.environ.get("BAYESGMM_FULL_OPTIMUM_GRID") == "1"
RESTARTS = 50 if FULL_GRID else 20
REPRESENTATIVE = [
    ("faithful", "full", 3),
    ("faithful", "tied", 3),  # scikit-learn's defaults end 14.4 log-lik units below
    ("faithful", "diag", 4),
    ("faithful", "spherical", 3),
    ("galaxies", "full", 4),
    ("galaxies", "tied", 3),
    ("enzyme", "diag", 2),
    ("acidity", "spherical", 2),
]
#: Cells where the defaults are known to end more than 0.05 below the best of 50 restarts.
#: Empty since n_init="auto" (60 starts and split-and-merge moves on small data): the full
#: grid was reached at seeds 0, 1 and 2 (reports/benchmarks.md, "EM defaults"). Before,
#: faithful full K=5 (3.5), diag K=6 (1.3), galaxies K=5 (1.9), enzyme K=6 (0.95) and
#: acidity K=5 (1.2) missed.
KNOWN_MISSES: set[tuple[str, str, int]] = set()
CELLS = (
    [
        pytest.param(
            d,
            c,
            k,
            marks=pytest.mark.xfail((d, c, k) in KNOWN_MISSES, reason="measured miss"),
        )
        for d in DATA
        for c in COVARIANCE_TYPES
        for k in range(1, 7)
    ]
    if FULL_GRID
    else REPRESENTATIVE
)


def _load(name: str) -> np.ndarray:
    X = np.asarray(DATA[name](), dtype=np.float64)
    return X.reshape(X.shape[0], -1)


def best_non_degenerate(X: np.ndarray, k: int, covariance_type: str, restarts: int) -> float:
    """Best total log-likelihood of non-degenerate fits from ``restarts`` tight runs."""
    spec = MixtureSpec.from_data(X, k, covariance_type, None, standardize=False)
    data_covariance = sample_moments(X)[1]
    best = -np.inf
    for seed in range(restarts):
        options = EMOptions(
            tol=1e-10,
            max_iter=5000,
            n_init=1,
            stopping="absolute",
            init_params=("k-means++", "random_from_data")[seed % 2],
        )
        try:
            result = fit_em(X, spec, options, random_state=seed, warn_not_converged=False)
        except SingularCovarianceError:
            continue
        if degenerate_components(result.params, X, data_covariance).any():
            continue
        best = max(best, result.lower_bound * X.shape[0])
    return best


@pytest.mark.parametrize(("data_name", "covariance_type", "k"), CELLS)
def test_default_fit_reaches_the_best_non_degenerate_optimum(data_name, covariance_type, k):
    X = _load(data_name)
    reference = best_non_degenerate(X, k, covariance_type, RESTARTS)
    model = GaussianMixture(k, covariance_type=covariance_type, random_state=0).fit(X)
    assert not model.degenerate_
    assert model.score(X) * X.shape[0] >= reference - 0.05


def test_old_defaults_miss_the_optimum_the_new_ones_reach(faithful):
    # The example: tied, K=3 on Old Faithful (mclust's EEE).
    old = GaussianMixture(
        3,
        covariance_type="tied",
        n_init=1,
        init_params="kmeans",
        stopping="absolute",
        tol=1e-3,
        max_iter=100,
        random_state=0,
    ).fit(faithful)
    new = GaussianMixture(3, covariance_type="tied", random_state=0).fit(faithful)
    best = GaussianMixture(3, covariance_type="tied", n_init=30, tol=1e-10, random_state=1).fit(
        faithful
    )
    n = faithful.shape[0]
    # on raw data the old defaults ended 14.4 log-likelihood units short; EM now runs on
    # standardised data (issue 9), which already helps k-means, but one start at tol=1e-3
    # still stops short (0.7 measured) while the defaults reach the optimum
    assert (best.score(faithful) - old.score(faithful)) * n > 0.3
    assert (best.score(faithful) - new.score(faithful)) * n < 0.05


def test_aitken_stops_near_the_limit_where_the_absolute_rule_stops_early():
    # A linearly converging sequence l_k = L - c a^k, as EM's with a rate a near one.
    limit, c, rate, tol = -3.0, 1.0, 0.999, 1e-6
    history = []
    stops = {}
    for k in range(50_000):
        history.append(limit - c * rate**k)
        for name, rule in STOPPING_RULES.items():
            if name not in stops and rule(history, tol):
                stops[name] = history[-1]
        if len(stops) == len(STOPPING_RULES):
            break
    assert limit - stops["aitken"] < tol
    assert limit - stops["absolute"] > 100 * tol  # stopped ~ tol / (1 - a) below the limit


def test_hierarchical_start_recovers_separated_clusters():
    X, labels, _ = datasets.make_mixture(600, 4, 3, separation=6.0, random_state=0)
    X = X @ ortho_group.rvs(3, random_state=0) * np.array([1.0, 50.0, 0.01])  # units
    resp = initial_responsibilities(X, 4, "hierarchical", np.random.default_rng(0))
    assert adjusted_rand_score(labels, resp.argmax(axis=1)) == 1.0


def test_hierarchical_start_on_a_subset_for_large_data():
    X, labels, _ = datasets.make_mixture(5000, 3, 2, separation=6.0, random_state=3)
    resp = initial_responsibilities(X, 3, "hierarchical", np.random.default_rng(0))
    assert resp.shape == (5000, 3)
    assert adjusted_rand_score(labels, resp.argmax(axis=1)) > 0.99


def test_degenerate_component_on_repeated_values_is_flagged_and_avoided():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 2)), np.tile([[0.5, 3.0]], (6, 1))])
    spike = MixtureParams(
        np.array([0.97, 0.03]),
        np.array([[0.0, 0.0], [0.5, 3.0]]),
        np.array([np.eye(2), 1e-6 * np.eye(2)]),
        "full",
    )
    cov = sample_moments(X)[1]
    np.testing.assert_array_equal(degenerate_components(spike, X, cov), [False, True])
    model = GaussianMixture(2, random_state=0).fit(X)
    assert not model.degenerate_
    assert not degenerate_components(model.params_, X, cov).any()


def test_float32_input_fits_like_float64():
    X, _, _ = datasets.make_mixture(2000, 3, 2, separation=3.0, random_state=5)
    X32 = X.astype(np.float32)
    kwargs = dict(n_init=1, init_params="kmeans", random_state=0)
    a = GaussianMixture(3, **kwargs).fit(X32)
    b = GaussianMixture(3, **kwargs).fit(X32.astype(np.float64))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=1e-11)


def test_auto_starts_shrink_with_the_rows_outside_the_split_merge_budget(monkeypatch):
    from bayesgmm.em import fit as em_fit

    assert [em_fit.auto_starts_for(n) for n in (5_000, 100_000, 200_000, 10**6, 10**8)] == [
        20,
        20,
        10,
        2,
        2,
    ]
    asked = []
    original = em_fit.run_starts

    def counting(make_start, run, options, n_starts, **kwargs):
        asked.append(n_starts)
        return original(make_start, run, options, n_starts, **kwargs)

    monkeypatch.setattr(em_fit, "run_starts", counting)
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (200_000, 1)), rng.normal(6, 1, (200_000, 1))])
    fit = GaussianMixture(2, max_iter=20, random_state=0).fit(X)
    assert asked == [5]  # 400,000 rows: 2,000,000 // 400,000
    np.testing.assert_allclose(np.sort(fit.means_.ravel()), [0.0, 6.0], atol=0.02)
    asked.clear()
    GaussianMixture(2, random_state=0).fit(X[::200])  # 2,000 rows: small, 60 starts
    assert asked == [60]
