"""mclust's fourteen covariance models (``Sigma_k = lambda_k D_k A_k D_k^T``).

The ten models added to the four classic structures are checked against independent
references: one component (the constrained MLE of one Gaussian, in closed form), a general
optimiser over an explicit parametrisation of each model (d = 2), data generated from known
volumes, shapes and orientations, the constraints the letters state in every fitted
covariance, EM's monotone objective, the nesting of the models, and mclust's parameter
counts. A slow test compares with R's mclust where it is installed.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import ortho_group

import bayesgmm
from bayesgmm import BayesianGaussianMixture, GaussianMixture, datasets
from bayesgmm.core.covariance import (
    MCLUST_ALIASES,
    MCLUST_MODELS,
    covariance_types,
    get_structure,
)
from bayesgmm.core.covariance.decomposition import SOLVERS, n_variance_parameters
from bayesgmm.selection.compare import compare

NEW_MODELS = [m for m in MCLUST_MODELS if m not in MCLUST_ALIASES]


def _objective(covs: np.ndarray, W: np.ndarray, n: np.ndarray) -> float:
    """``-1/2 sum_k [n_k log det Sigma_k + tr(Sigma_k^{-1} W_k)]``, written out here."""
    total = 0.0
    for cov, w, nk in zip(covs, W, n, strict=True):
        total -= 0.5 * (nk * np.linalg.slogdet(cov)[1] + np.trace(np.linalg.solve(cov, w)))
    return total


def _random_problem(rng, K=3, d=3):
    W = np.empty((K, d, d))
    for k in range(K):
        A = rng.normal(size=(d, 2 * d + 3)) * rng.uniform(0.3, 3.0, size=(d, 1))
        W[k] = A @ A.T
    return W, rng.uniform(5.0, 40.0, size=K)


def _volume(cov):
    return np.linalg.det(cov) ** (1.0 / cov.shape[-1])


def _letters_hold(model: str, covs: np.ndarray, rtol: float) -> None:
    """Assert the constraints mclust's name states (E: equal, I: identity)."""
    volume, shape, orientation = model
    d = covs.shape[-1]
    volumes = np.array([_volume(c) for c in covs])
    if volume == "E":
        np.testing.assert_allclose(volumes, volumes[0], rtol=rtol)
    if orientation == "I":
        off = covs - np.array([np.diag(np.diag(c)) for c in covs])
        assert np.max(np.abs(off)) <= rtol * np.max(np.abs(covs))
        shapes = np.array([np.diag(c) for c in covs]) / volumes[:, None]
    elif orientation == "E":
        # one orientation: the covariances commute, so one eigenbasis diagonalises all
        _, D = np.linalg.eigh(covs[0] + 0.37 * covs[-1])
        rotated = np.einsum("ji,kjl,lm->kim", D, covs, D)
        off = rotated - np.array([np.diag(np.diag(r)) for r in rotated])
        assert np.max(np.abs(off)) <= rtol * np.max(np.abs(covs))
        shapes = np.array([np.diag(r) for r in rotated]) / volumes[:, None]
    else:
        shapes = np.sort(np.linalg.eigvalsh(covs), axis=1) / volumes[:, None]
    if shape == "I":
        np.testing.assert_allclose(shapes, 1.0, rtol=rtol)
    elif shape == "E":
        np.testing.assert_allclose(shapes, np.broadcast_to(shapes[0], shapes.shape), rtol=rtol)
    np.testing.assert_allclose(np.prod(shapes, axis=1), 1.0, rtol=rtol * d)


# ---- the registry ------------------------------------------------------------------------------
def test_all_fourteen_models_are_registered_and_the_classic_ones_answer_to_mclust_names():
    for model in MCLUST_MODELS:
        structure = get_structure(model)
        assert structure.mclust_name == model
    assert get_structure("VVV") is get_structure("full")
    assert get_structure("EEV").name == "EEV" and "EEV" in covariance_types()
    assert get_structure("EEV").bayesian and get_structure("full").bayesian


def test_parameter_counts_are_mclusts():
    # nVarParams(model, d = 4, G = 3) from mclust's table (R/mclust.R), typed out here
    expected = {
        "EII": 1,
        "VII": 3,
        "EEI": 4,
        "VEI": 6,
        "EVI": 10,
        "VVI": 12,
        "EEE": 10,
        "VEE": 12,
        "EVE": 16,
        "VVE": 18,
        "EEV": 22,
        "VEV": 24,
        "EVV": 28,
        "VVV": 30,
    }
    for model, count in expected.items():
        assert get_structure(model).n_parameters(3, 4) == count, model
        assert n_variance_parameters(model, 3, 4) == count
    # in one dimension only the volume is left: one or K parameters
    for model in MCLUST_MODELS:
        assert get_structure(model).n_parameters(3, 1) == (1 if model[0] == "E" else 3), model


# ---- the constrained M-steps -------------------------------------------------------------------
@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_one_component_is_the_constrained_mle_of_one_gaussian(model):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 3)) @ np.array([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.3, -0.2, 0.4]])
    S = np.cov(X.T, bias=True)
    if model in ("EII", "VII"):
        expected = np.trace(S) / 3 * np.eye(3)
    elif model[2] == "I":
        expected = np.diag(np.diag(S))
    else:
        expected = S
    fit = GaussianMixture(1, covariance_type=model, reg_covar=0.0, n_init=1).fit(X)
    np.testing.assert_allclose(
        get_structure(model).expand(fit.covariances_, 1, 3)[0], expected, rtol=1e-8, atol=1e-10
    )


def _parametrised(model: str, K: int):
    """Covariances of ``model`` in two dimensions from free parameters (the reference)."""
    volume, shape, orientation = model
    sizes = {"E": 1, "V": K, "I": 0}
    n_vol, n_shape, n_rot = sizes[volume], sizes[shape], sizes[orientation]

    def covs(theta):
        log_vol = np.broadcast_to(theta[:n_vol], (K,))
        log_shape = (
            np.broadcast_to(theta[n_vol : n_vol + n_shape], (K,)) if n_shape else np.zeros(K)
        )
        angles = np.broadcast_to(theta[n_vol + n_shape :], (K,)) if n_rot else np.zeros(K)
        out = np.empty((K, 2, 2))
        for k in range(K):
            c, s = np.cos(angles[k]), np.sin(angles[k])
            D = np.array([[c, -s], [s, c]])
            A = np.diag([np.exp(log_shape[k]), np.exp(-log_shape[k])])
            out[k] = np.exp(log_vol[k]) * D @ A @ D.T
        return out

    return covs, n_vol + n_shape + n_rot


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_m_step_is_the_maximum_a_general_optimiser_finds(model):
    """d = 2: the closed-form or iterative M-step against Nelder-Mead/BFGS from many starts
    on an explicit parametrisation (volumes, shape, rotation angles)."""
    rng = np.random.default_rng(7)
    W, n = _random_problem(rng, K=3, d=2)
    covs_of, size = _parametrised(model, 3)
    best = -np.inf
    for _ in range(12):
        start = rng.normal(size=size)
        res = minimize(lambda t: -_objective(covs_of(t), W, n), start, method="BFGS")
        best = max(best, -res.fun)
    solved = SOLVERS[model](W, n)
    value = _objective(solved, W, n)
    assert value >= best - 1e-7 * abs(best)
    assert value <= best + 1e-6 * abs(best)  # and it is a covariance set of the model
    _letters_hold(model, solved, rtol=1e-6)


def test_nested_models_order_their_objectives():
    """Each model's maximum is at least that of every model nested in it (same W, n)."""
    nested = [
        ("EII", "VII"), ("VII", "VVI"), ("EII", "EEI"), ("EEI", "VEI"), ("EEI", "EVI"),
        ("VEI", "VVI"), ("EVI", "VVI"), ("EEI", "EEE"), ("VEI", "VEE"), ("EVI", "EVE"),
        ("VVI", "VVE"), ("EEE", "VEE"), ("EEE", "EVE"), ("EEE", "EEV"), ("VEE", "VVE"),
        ("EVE", "VVE"), ("VEE", "VEV"), ("EVE", "EVV"), ("EEV", "VEV"), ("EEV", "EVV"),
        ("VVE", "VVV"), ("VEV", "VVV"), ("EVV", "VVV"),
    ]  # fmt: skip
    rng = np.random.default_rng(3)
    for _ in range(5):
        W, n = _random_problem(rng, K=3, d=3)
        value = {m: _objective(SOLVERS[m](W, n), W, n) for m in MCLUST_MODELS}
        for inner, outer in nested:
            assert value[outer] >= value[inner] - 1e-9 * abs(value[inner]), (inner, outer)


@pytest.mark.parametrize("model", NEW_MODELS)
def test_m_step_beats_random_points_of_the_model_in_three_dimensions(model):
    rng = np.random.default_rng(11)
    W, n = _random_problem(rng, K=3, d=3)
    solved = SOLVERS[model](W, n)
    _letters_hold(model, solved, rtol=1e-7)
    value = _objective(solved, W, n)
    # small moves that stay in the model: common or separate volume, shape, rotation changes
    for _ in range(40):
        vol = np.exp(rng.normal(scale=0.05, size=1 if model[0] == "E" else 3))
        turns = [_small_rotation(rng.normal(scale=0.05, size=3)) for _ in range(3)]
        moved = []
        for k, cov in enumerate(solved):
            turn = {"I": np.eye(3), "E": turns[0]}.get(model[2], turns[k])
            moved.append(vol[0 if model[0] == "E" else k] * turn @ cov @ turn.T)
        assert _objective(np.array(moved), W, n) <= value + 1e-9 * abs(value)


def _small_rotation(angle: np.ndarray) -> np.ndarray:
    from scipy.linalg import expm

    skew = np.array(
        [[0.0, -angle[2], angle[1]], [angle[2], 0.0, -angle[0]], [-angle[1], angle[0], 0.0]]
    )
    return expm(skew)


# ---- EM with the new models --------------------------------------------------------------------
def _known_mixture(model: str, rng, n_per=4000):
    """Three well-separated components in three dimensions with the model's covariances."""
    K, d = 3, 3
    volumes = np.array([1.0, 2.5, 0.6]) if model[0] == "V" else np.ones(K)
    shapes = (
        np.array([[3.0, 1.0, 1 / 3], [2.0, 1.5, 1 / 3.0], [4.0, 0.5, 0.5]])
        if model[1] == "V"
        else np.tile([3.0, 1.0, 1 / 3], (K, 1))
    )
    if model[1] == "I":
        shapes = np.ones((K, d))
    shapes = shapes / np.prod(shapes, axis=1, keepdims=True) ** (1 / d)
    if model[2] == "I":
        rotations = np.tile(np.eye(d), (K, 1, 1))
    elif model[2] == "E":
        rotations = np.tile(ortho_group.rvs(d, random_state=rng), (K, 1, 1))
    else:
        rotations = np.array([ortho_group.rvs(d, random_state=rng) for _ in range(K)])
    covs = np.einsum("k,kij,kj,klj->kil", volumes, rotations, shapes, rotations)
    means = np.array([[0.0, 0.0, 0.0], [12.0, 0.0, 0.0], [0.0, 12.0, 6.0]])
    X = np.concatenate([rng.multivariate_normal(means[k], covs[k], size=n_per) for k in range(K)])
    return X, means, covs


@pytest.mark.parametrize("model", NEW_MODELS)
def test_em_recovers_known_volumes_shapes_and_orientations(model):
    rng = np.random.default_rng(5)
    X, means, covs = _known_mixture(model, rng)
    fit = GaussianMixture(3, covariance_type=model, reg_covar=0.0, n_init=2, random_state=0).fit(X)
    order = [int(np.argmin(np.linalg.norm(fit.means_ - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(fit.means_[order], means, atol=0.15)
    np.testing.assert_allclose(fit.covariances_[order], covs, atol=0.12 * np.max(np.abs(covs)))
    _letters_hold(model, fit.covariances_, rtol=1e-6)
    # EM never decreases its objective; the fitted model keeps its name and mclust's count
    assert np.all(np.diff(fit.lower_bound_trace_) >= -1e-10)
    assert fit.params_.covariance_type == model
    assert fit._n_parameters() == n_variance_parameters(model, 3, 3) + 3 * 3 + 2


@pytest.mark.parametrize("model", NEW_MODELS)
def test_map_em_increases_the_posterior_and_keeps_the_constraints(model):
    X = datasets.load_faithful()
    fit = GaussianMixture(
        3, covariance_type=model, prior="default", reg_covar=0.0, n_init=1, random_state=0
    ).fit(X)
    assert np.all(np.diff(fit.lower_bound_trace_) >= -1e-10)
    _letters_hold(model, fit.covariances_, rtol=1e-6)
    # the MAP prior is the full structure's Normal-Inverse-Wishart one restricted to the model
    mle = GaussianMixture(3, covariance_type=model, reg_covar=0.0, n_init=1, random_state=0).fit(X)
    assert fit.score(X) <= mle.score(X) + 1e-3  # a pull away from the MLE, not a better fit


def test_fit_predict_criteria_and_save_load_round_trip(tmp_path):
    X = datasets.load_faithful()
    fit = GaussianMixture(2, covariance_type="EEV", n_init=1, random_state=0).fit(X)
    labels = fit.predict(X)
    assert set(labels) == {0, 1}
    n = X.shape[0]
    log_lik = fit.score(X) * n
    p = fit._n_parameters()
    assert p == n_variance_parameters("EEV", 2, 2) + 2 * 2 + 1 == 9
    np.testing.assert_allclose(fit.bic(X), -2 * log_lik + p * np.log(n))
    np.testing.assert_allclose(fit.aic(X), -2 * log_lik + 2 * p)
    assert fit.icl(X) >= fit.bic(X)
    fit.save(tmp_path / "eev")
    loaded = bayesgmm.load(tmp_path / "eev")
    assert loaded.params_.covariance_type == "EEV"
    np.testing.assert_array_equal(loaded.covariances_, fit.covariances_)
    np.testing.assert_array_equal(loaded.predict(X), labels)


def test_bayesian_estimator_names_the_models_it_supports():
    X = datasets.load_faithful()
    with pytest.raises(ValueError, match="covariance structure of the Bayesian model") as info:
        BayesianGaussianMixture(2, covariance_type="EEX").fit(X)
    assert all(f"'{name}'" in str(info.value) for name in ("VVV", "full", "EEV", "EII"))


def test_compare_takes_mclust_names_and_all():
    X = datasets.load_faithful()
    result = compare(X, [2], ["VVV", "EEV", "EII"], method="map", em_n_init=1, random_state=0)
    assert set(result.table["covariance_type"]) == {"VVV", "EEV", "EII"}
    from bayesgmm.selection.compare import candidate_structures

    assert len(candidate_structures("all", "map")) == 14
    assert candidate_structures("all", "nuts") == candidate_structures("all", "map")
    assert candidate_structures(["EEV"], "nuts") == ["EEV"]


def test_cli_accepts_mclust_names():
    from bayesgmm.cli import parse_covariances

    assert parse_covariances("EEV, VVV") == ["EEV", "VVV"]
    assert len(parse_covariances("all", "map")) == 14
    assert parse_covariances("all") == parse_covariances("all", "map")


# ---- against R's mclust, where installed -------------------------------------------------------
def _mclust_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    done = subprocess.run(
        ["Rscript", "-e", "library(mclust)"], capture_output=True, timeout=120, check=False
    )
    return done.returncode == 0


def _precisions_in_layout(model: str, covs: np.ndarray) -> np.ndarray:
    """Precisions of mclust's (K, d, d) covariances in the structure's own layout."""
    name = get_structure(model).name
    if name == "tied":
        return np.linalg.inv(covs[0])
    if name == "diag":
        return 1.0 / np.diagonal(covs, axis1=1, axis2=2)
    if name == "spherical":
        return 1.0 / covs[:, 0, 0]
    return np.linalg.inv(covs)


@pytest.mark.slow
@pytest.mark.skipif(not _mclust_available(), reason="needs Rscript and R's mclust")
def test_em_from_mclusts_solution_does_not_lower_its_loglik(tmp_path):
    """Old Faithful, K = 3: mclust's fitted parameters for every model, then bayesgmm's EM
    from them (no prior): its log-likelihood is mclust's or higher."""
    X = datasets.load_faithful()
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    script = f"""
    suppressMessages(library(mclust))
    X <- as.matrix(read.csv("{tmp_path / "x.csv"}", header = FALSE))
    for (m in c({", ".join(repr(m) for m in MCLUST_MODELS)})) {{
      fit <- Mclust(X, G = 3, modelNames = m, verbose = FALSE)
      if (is.null(fit)) next
      p <- fit$parameters
      cat(m, fit$loglik, p$pro, p$mean, p$variance$sigma, "\\n")
    }}
    """
    out = subprocess.run(
        ["Rscript", "-e", script], capture_output=True, text=True, timeout=600, check=True
    ).stdout
    checked = 0
    for line in out.strip().splitlines():
        name, *numbers = line.split()
        values = np.array(numbers, dtype=float)
        loglik, weights = values[0], values[1:4]
        means = values[4:10].reshape(3, 2)  # R stores the d x G matrix by columns
        covs = values[10:].reshape(3, 2, 2)
        fit = GaussianMixture(
            3,
            covariance_type=name,
            reg_covar=0.0,
            n_init=1,
            weights_init=weights,
            means_init=means,
            precisions_init=_precisions_in_layout(name, covs),
        ).fit(X)
        ours = fit.score(X) * X.shape[0]
        assert ours >= loglik - 1e-6 * abs(loglik), (name, ours, loglik)
        checked += 1
    assert checked == len(MCLUST_MODELS)
