"""Library functions that the command line calls instead of doing the work itself: posterior
means for ``params.json``, the data checks of the default prior, and the warning class of an
unreliable PSIS-LOO (matched by class, not by message text)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from bayesgmm.core.exceptions import UnreliableLOOWarning
from bayesgmm.core.priors import check_default_prior_data
from bayesgmm.posterior.summaries import posterior_mean_noise_weight, posterior_mean_params


def _posterior(rng, n_chains=2, n_draws=5, k=2, d=2, noise=None) -> xr.Dataset:
    weights = rng.dirichlet(np.ones(k), size=(n_chains, n_draws))
    if noise is not None:
        weights = weights * (1 - noise[..., None])
    means = rng.normal(size=(n_chains, n_draws, k, d))
    scale = rng.uniform(0.5, 2.0, size=(n_chains, n_draws, k, 1, 1))
    covariances = scale * np.eye(d)
    data = {
        "weights": (("chain", "draw", "component"), weights),
        "means": (("chain", "draw", "component", "feature"), means),
        "covariances": (("chain", "draw", "component", "feature", "feature_bis"), covariances),
    }
    if noise is not None:
        data["noise_weight"] = (("chain", "draw"), noise)
    return xr.Dataset(data)


def test_posterior_mean_params_averages_every_draw():
    rng = np.random.default_rng(0)
    posterior = _posterior(rng)
    params = posterior_mean_params(posterior)
    np.testing.assert_allclose(params.weights, posterior["weights"].values.mean(axis=(0, 1)))
    np.testing.assert_allclose(params.means, posterior["means"].values.mean(axis=(0, 1)))
    np.testing.assert_allclose(
        params.covariances, posterior["covariances"].values.mean(axis=(0, 1))
    )
    assert posterior_mean_noise_weight(posterior) is None


def test_posterior_mean_params_with_noise_gives_the_gaussians_conditional_weights():
    rng = np.random.default_rng(1)
    noise = rng.uniform(0.05, 0.2, size=(2, 5))
    posterior = _posterior(rng, noise=noise)
    mean_weights = posterior["weights"].values.mean(axis=(0, 1))
    assert mean_weights.sum() < 0.96  # the noise takes its share
    params = posterior_mean_params(posterior)
    np.testing.assert_allclose(params.weights, mean_weights / mean_weights.sum())
    assert posterior_mean_noise_weight(posterior) == pytest.approx(noise.mean())


def test_check_default_prior_data_names_a_constant_column_on_the_complete_rows():
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(size=30), np.full(30, 3.0)])
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] are constant"):
        check_default_prior_data(X, ["diag"])
    varied = X.copy()
    varied[0, 1] = np.nan  # the only row where column 1 differs is incomplete
    varied = np.vstack([varied, [np.nan, 4.0]])
    with pytest.raises(ValueError, match="constant"):
        check_default_prior_data(varied, ["full"])
    X[:, 1] = rng.normal(size=30)
    check_default_prior_data(X, ["full", "diag", "tied", "spherical"])  # nothing to name


def test_check_default_prior_data_checks_correlations_only_for_matrix_structures():
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    X = np.column_stack([x, 2 * x + 1])  # perfectly collinear
    check_default_prior_data(X, ["diag", "spherical"])
    with pytest.raises(ValueError, match="collinear"):
        check_default_prior_data(X, ["diag", "full"])


def test_check_default_prior_data_needs_two_complete_rows():
    X = np.array([[1.0, np.nan], [np.nan, 2.0], [3.0, 3.0]])
    check_default_prior_data(X, ["full"])  # one complete row: nothing to check


def test_compare_reports_the_unreliable_loo_warning_by_its_class(monkeypatch):
    import bayesgmm.selection.compare
    from bayesgmm.cli.commands.compare import comparison_data, run_comparison
    from bayesgmm.cli.parser import build_parser

    def fake_compare(*args, **kwargs):
        warnings.warn("Pareto k too high for K=1 full", UnreliableLOOWarning, stacklevel=1)
        warnings.warn("PSIS-LOO is unreliable (but not the class)", UserWarning, stacklevel=1)
        return "result"

    monkeypatch.setattr(bayesgmm.selection.compare, "compare", fake_compare)
    args = build_parser().parse_args(["compare", "faithful", "--k", "1", "--out", "unused"])
    messages = []
    assert run_comparison(args, comparison_data(args), messages.append) == "result"
    assert messages == ["warning: Pareto k too high for K=1 full"]
