"""The pure EM functions: hand-computed iteration, closed forms, monotonicity."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm

from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em import (
    SingularCovarianceError,
    e_step,
    estimate_log_gaussian_prob,
    fit_em,
    m_step,
    run_em,
)
from bayesgmm.em.options import EMOptions

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _fit(
    X, k, covariance_type, *, prior=None, random_state=None, warn_not_converged=True, **options
):
    """fit_em with the spec and options built from keywords."""
    spec = MixtureSpec.from_data(X, k, covariance_type, prior, standardize=False)
    return fit_em(
        X,
        spec,
        EMOptions(**options),
        random_state=random_state,
        warn_not_converged=warn_not_converged,
    )


def test_one_hand_computed_iteration():
    # X = [0, 1, 3, 5]; alpha = (0.3, 0.7), mu = (0, 4), sigma^2 = (1, 2).
    # gamma_n1 = 0.3 N(x|0,1) / (0.3 N(x|0,1) + 0.7 N(x|4,2)), worked out by hand:
    X = np.array([[0.0], [1.0], [3.0], [5.0]])
    params = MixtureParams(
        np.array([0.3, 0.7]), np.array([[0.0], [4.0]]), np.array([[1.0], [2.0]]), "diag"
    )
    log_resp, log_lik = e_step(X, params)
    gamma1 = [0.970667154547, 0.777174461372, 0.008571328476, 2.90021069454e-06]
    np.testing.assert_allclose(np.exp(log_resp[:, 0]), gamma1, rtol=1e-10)
    np.testing.assert_allclose(log_lik.mean(), -2.04993088965, rtol=1e-10)

    new = m_step(X, np.exp(log_resp), "diag")
    # N_k = (1.75641584461, 2.24358415539); alpha_k = N_k / 4
    np.testing.assert_allclose(new.weights, [0.439103961152, 0.560896038848], rtol=1e-10)
    np.testing.assert_allclose(new.means[:, 0], [0.457125771394, 3.65357235762], rtol=1e-10)
    np.testing.assert_allclose(new.covariances[:, 0], [0.277474890145, 1.87063358623], rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_gaussian_prob_matches_scipy(covariance_type):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 3))
    params = MixtureParams(
        np.array([0.2, 0.8]),
        rng.normal(size=(2, 3)),
        {
            "full": np.stack([np.eye(3) + 0.3, np.diag([1.0, 2.0, 3.0])]),
            "tied": np.eye(3) + 0.4,
            "diag": np.array([[1.0, 0.5, 2.0], [0.3, 1.5, 1.0]]),
            "spherical": np.array([0.7, 1.9]),
        }[covariance_type],
        covariance_type,
    )
    got = estimate_log_gaussian_prob(X, params.means, params.precisions_cholesky, covariance_type)
    full = params.full_covariances()
    expected = np.column_stack(
        [multivariate_normal(params.means[k], full[k]).logpdf(X) for k in range(2)]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_single_component_is_the_closed_form(covariance_type):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0.2], [0, 0, 2]])
    result = _fit(X, 1, covariance_type, reg_covar=0.0, random_state=0)
    cov = np.cov(X, rowvar=False, bias=True)  # the 1/N covariance
    expected = {
        "full": cov[None],
        "tied": cov,
        "diag": np.diag(cov)[None],
        "spherical": np.array([np.trace(cov) / 3]),
    }[covariance_type]
    np.testing.assert_allclose(result.params.weights, [1.0])
    np.testing.assert_allclose(result.params.means[0], X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.params.covariances, expected, rtol=1e-10)
    assert result.converged


def test_map_single_component_is_the_niw_posterior_mode():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 2)) + 3.0
    prior = MixturePrior(1.0, np.zeros(2), 0.5, 5.0, np.eye(2) * 2.0, "full")
    result = _fit(X, 1, "full", prior=prior, reg_covar=0.0, random_state=0)
    n, xbar = X.shape[0], X.mean(axis=0)
    scatter = (X - xbar).T @ (X - xbar)
    kappa_n, nu_n = 0.5 + n, 5.0 + n
    m_n = (n * xbar) / kappa_n
    psi_n = 2.0 * np.eye(2) + scatter + 0.5 * n / kappa_n * np.outer(xbar, xbar)
    np.testing.assert_allclose(result.params.means[0], m_n, rtol=1e-12)
    # joint mode of NIW(m_n, kappa_n, nu_n, Psi_n): Sigma = Psi_n / (nu_n + d + 2)
    np.testing.assert_allclose(result.params.covariances[0], psi_n / (nu_n + 4), rtol=1e-12)


def test_map_covariance_update_maximises_the_log_posterior():
    """Perturbing the MAP M-step result never increases the expected log posterior."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 2))
    resp = rng.dirichlet(np.ones(2), size=40)
    for covariance_type in COVARIANCE_TYPES:
        prior = MixturePrior.default(X, 2, covariance_type)
        best = m_step(X, resp, covariance_type, prior)

        def objective(params, covariance_type=covariance_type, prior=prior):
            log_prob = estimate_log_gaussian_prob(
                X, params.means, params.precisions_cholesky, covariance_type
            )
            return (resp * (log_prob + np.log(params.weights))).sum() + prior.log_density(params)

        base = objective(best)
        for scale in (0.97, 1.03):
            for attr in ("means", "covariances"):
                values = {
                    "weights": best.weights,
                    "means": best.means,
                    "covariances": best.covariances,
                }
                values[attr] = values[attr] * scale
                moved = MixtureParams(**values, covariance_type=covariance_type)
                assert objective(moved) < base


@st.composite
def mixture_problems(draw):
    n_features = draw(st.integers(1, 3))
    n_components = draw(st.integers(1, 3))
    n_samples = draw(st.integers(4 * n_components * n_features + 5, 60))
    seed = draw(st.integers(0, 2**31 - 1))
    covariance_type = draw(st.sampled_from(COVARIANCE_TYPES))
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_components, n_features))
    X = centres[rng.integers(n_components, size=n_samples)] + rng.normal(
        size=(n_samples, n_features)
    )
    return X, n_components, covariance_type, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixture_problems(), st.booleans())
def test_objective_never_decreases(problem, use_prior):
    X, n_components, covariance_type, seed = problem
    prior = MixturePrior.default(X, n_components, covariance_type) if use_prior else None
    result = (
        _fit(
            X,
            n_components,
            covariance_type,
            prior=prior,
            reg_covar=0.0,
            tol=1e-10,
            max_iter=30,
            random_state=seed,
            warn_not_converged=False,
        )
        if use_prior
        else None
    )
    if not use_prior:
        try:
            result = _fit(
                X,
                n_components,
                covariance_type,
                reg_covar=0.0,
                tol=1e-10,
                max_iter=30,
                random_state=seed,
                warn_not_converged=False,
            )
        except SingularCovarianceError:
            assume(False)
        assume(result.n_reseeds == 0)
    steps = np.diff(result.trace)
    assert np.all(steps >= -1e-9 * np.abs(result.trace[1:]).clip(1.0))
    params = result.params  # MixtureParams validates weights (non-negative, sum 1)
    full = params.full_covariances()
    np.testing.assert_allclose(full, np.swapaxes(full, -1, -2))
    assert np.all(np.linalg.eigvalsh(full) > 0)
    assert np.all(np.isfinite(params.means))


def test_collapsing_component_is_reseeded_not_nan():
    # Two identical points far away: one component collapses onto them under MLE.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(40, 2)), [[30.0, 30.0], [30.0, 30.0]]])
    means_init = np.array([[0.0, 0.0], [30.0, 30.0], [1.0, 1.0]])
    result = _fit(
        X,
        3,
        "full",
        reg_covar=0.0,
        means_init=means_init,
        max_iter=50,
        random_state=0,
        warn_not_converged=False,
    )
    assert result.n_reseeds >= 1
    assert np.all(np.isfinite(result.params.covariances))
    assert np.all(np.linalg.eigvalsh(result.params.full_covariances()) > 0)


def test_collapse_under_map_prior_never_happens():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(40, 2)), [[30.0, 30.0], [30.0, 30.0]]])
    prior = MixturePrior.default(X, 3, "full")
    means_init = np.array([[0.0, 0.0], [30.0, 30.0], [1.0, 1.0]])
    result = _fit(X, 3, "full", prior=prior, reg_covar=0.0, means_init=means_init, random_state=0)
    assert result.n_reseeds == 0
    assert np.all(np.linalg.eigvalsh(result.params.full_covariances()) > 0)


def test_tied_collapse_raises_a_clear_error():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    start = MixtureParams(
        np.array([0.5, 0.5]), np.array([[0.0, 0.0], [1.0, 1.0]]), np.eye(2), "tied"
    )
    with pytest.raises(SingularCovarianceError, match="reg_covar"):
        run_em(X, start, reg_covar=0.0)


def test_same_seed_same_result_and_n_init_keeps_best():
    X = np.random.default_rng(4).normal(size=(80, 2))
    a = _fit(X, 3, "full", random_state=11, n_init=3, warn_not_converged=False)
    b = _fit(X, 3, "full", random_state=11, n_init=3, warn_not_converged=False)
    np.testing.assert_array_equal(a.params.means, b.params.means)
    singles = [
        _fit(X, 3, "full", random_state=seed, n_init=1, warn_not_converged=False).lower_bound
        for seed in range(3)
    ]
    best = _fit(X, 3, "full", random_state=0, n_init=6, warn_not_converged=False)
    assert best.lower_bound >= max(singles) - 1e-3


def test_distinct_optima_are_kept_once_each():
    # 20 normal quantiles around -8, 0 and 8: K=2 has two mirror-image MAP optima of equal
    # objective (the middle cluster joins the left or the right one); restarts that reach
    # the same optimum in another labelling count once (starts from random
    # responsibilities may also stop at the symmetric stationary point, far below)
    from bayesgmm.em.fit import same_optimum

    base = norm.ppf((np.arange(20) + 0.5) / 20)
    X = np.concatenate([c + base for c in (-8.0, 0.0, 8.0)])[:, None]
    result = _fit(X, 2, "full", prior=MixturePrior.default(X, 2, "full"), n_init=8, random_state=0)
    assert len(result.optima) >= 2
    assert all((result.optima[1][1] - bound) * len(X) > 1.0 for _, bound in result.optima[2:])
    (first, bound_a), (second, bound_b) = result.optima[:2]
    assert first is result.params and bound_a == result.lower_bound
    assert abs(bound_a - bound_b) * len(X) < 1e-6
    means = sorted(tuple(np.sort(p.means.ravel()).round(1)) for p, _ in result.optima[:2])
    assert means[0] == pytest.approx((-8.0, 4.0), abs=0.2)
    assert means[1] == pytest.approx((-4.0, 8.0), abs=0.2)
    assert same_optimum(first, first.permuted(np.array([1, 0])))
    assert not same_optimum(first, second)
    # one start: no list of optima
    assert _fit(X, 2, "full", prior=MixturePrior.default(X, 2, "full"), n_init=1).optima == ()


@pytest.mark.parametrize("structure", ["full", "tied", "diag", "spherical"])
def test_large_data_e_step_runs_the_fused_kernel_with_numpys_answers(structure, monkeypatch):
    """Beyond COMPILED_MAX_ROWS rows the E-step of predict/score/fit_predict runs the fused
    kernel; it gives NumPy's log-responsibilities and log-likelihoods, including rows whose
    every density underflows (nearest component, floored log-likelihood) and a component of
    weight zero."""
    from bayesgmm.core.covariance import get_structure
    from bayesgmm.em import fused
    from bayesgmm.em.run import COMPILED_MAX_ROWS, log_responsibilities
    from bayesgmm.em.steps import LOG_DENSITY_FLOOR, e_step

    rng = np.random.default_rng(3)
    X = rng.normal(size=(COMPILED_MAX_ROWS + 500, 3))
    X[:3] = [[1e200, 0, 0], [-1e200, 1e200, 0], [0, 0, -1e180]]
    resp = rng.dirichlet(np.ones(3), size=X.shape[0])
    params = m_step(X[3:], resp[3:], get_structure(structure), reg_covar=1e-6)
    params = MixtureParams(
        np.array([0.6, 0.4, 0.0]), params.means, params.covariances, params.structure
    )
    calls = []
    original = fused.fused_log_resp
    monkeypatch.setattr(
        fused, "fused_log_resp", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    log_resp, log_lik = log_responsibilities(X, params)
    expected_resp, expected_lik = e_step(X, params)
    assert calls, "the fused kernel was not used"
    assert np.all(np.isfinite(log_lik)) and np.all(log_lik >= LOG_DENSITY_FLOOR)
    np.testing.assert_allclose(log_lik, expected_lik, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(np.exp(log_resp), np.exp(expected_resp), atol=1e-10)
    assert np.all(log_resp[:, 2] == -np.inf)
    np.testing.assert_array_equal(log_resp[:3].argmax(axis=1), expected_resp[:3].argmax(axis=1))
