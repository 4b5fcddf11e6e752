"""MAP-versus-posterior analysis on hand-made posteriors: tables, assignments, densities."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import norm

from bayesgmm.core.params import MixtureParams
from bayesgmm.posterior.summaries import (
    align_to_posterior,
    assignment_summary,
    data_grid,
    map_vs_posterior,
    marginal_density,
    marginal_density_band,
    parameter_draws,
    point_estimate_table,
    posterior_summary,
    separating_features,
    worst_mixing,
)

TRUE = MixtureParams(
    np.array([0.3, 0.7]),
    np.array([[0.0, 0.0], [5.0, 1.0]]),
    np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.8, -0.2], [-0.2, 1.2]]]),
)


def _posterior(
    params: MixtureParams, spread: float = 0.05, chains: int = 2, draws: int = 400, seed: int = 0
) -> xr.Dataset:
    """Draws scattered around ``params`` in the layout of ``BayesianGaussianMixture.idata_``."""
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    weights = params.weights + spread * 0.1 * rng.standard_normal((*shape, 1)) * [1, -1]
    means = params.means + spread * rng.standard_normal((*shape, *params.means.shape))
    covs = params.full_covariances() * np.exp(spread * rng.standard_normal((*shape, 1, 1, 1)))
    return xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights),
            "means": (("chain", "draw", "component", "feature"), means),
            "covariances": (("chain", "draw", "component", "feature", "feature_bis"), covs),
        }
    )


def test_align_to_posterior_undoes_a_permutation():
    post = _posterior(TRUE)
    swapped = TRUE.permuted(np.array([1, 0]))
    aligned = align_to_posterior(swapped, post)
    np.testing.assert_allclose(aligned.means, TRUE.means)
    np.testing.assert_allclose(aligned.weights, TRUE.weights)
    with pytest.raises(ValueError, match="same K"):
        align_to_posterior(MixtureParams(np.ones(1), np.zeros((1, 2)), np.eye(2)[None]), post)


def test_map_vs_posterior_table_against_numpy_quantiles():
    post = _posterior(TRUE)
    shifted = MixtureParams(
        TRUE.weights, TRUE.means + np.array([[0.0, 0.0], [1.0, 0.0]]), TRUE.covariances
    )
    table = map_vs_posterior(
        post, shifted.permuted(np.array([1, 0])), ci_prob=0.9, feature_names=["a", "b"]
    )
    assert len(table) == 2 + 4 + 6
    assert table.attrs == {"ci_prob": 0.9, "interval": "equal-tailed"}
    row = table.set_index("parameter").loc["mu[1, a]"]
    draws = post["means"].values[:, :, 1, 0].ravel()
    assert row["map"] == pytest.approx(6.0)
    assert row["lower"] == pytest.approx(np.quantile(draws, 0.05))
    assert row["upper"] == pytest.approx(np.quantile(draws, 0.95))
    assert row["median"] == pytest.approx(np.median(draws))
    assert row["sd"] == pytest.approx(draws.std(ddof=1))
    assert not row["map_in_interval"]
    others = table[table["parameter"] != "mu[1, a]"]
    assert others["map_in_interval"].all()


@pytest.mark.parametrize(
    ("covariance_type", "n_cov_rows"), [("full", 6), ("tied", 3), ("diag", 4), ("spherical", 2)]
)
def test_map_vs_posterior_rows_follow_covariance_type(covariance_type, n_cov_rows):
    cov = {
        "full": TRUE.covariances,
        "tied": TRUE.covariances[0],
        "diag": np.array([[1.0, 0.5], [0.8, 1.2]]),
        "spherical": np.array([1.0, 0.7]),
    }
    params = MixtureParams(TRUE.weights, TRUE.means, cov[covariance_type], covariance_type)
    table = map_vs_posterior(_posterior(params), params)
    assert (table["kind"] == "covariances").sum() == n_cov_rows
    assert table["map_in_interval"].all()


def test_assignment_summary_flags_points_between_components():
    X = np.array([[0.0, 0.0], [5.0, 1.0], [2.6, 0.6]])
    summary = assignment_summary(X, _posterior(TRUE, spread=0.3), ci_prob=0.89)
    assert list(summary["component"][:2]) == [0, 1]
    assert list(summary["uncertain"]) == [False, False, True]
    assert (summary["lower"] <= summary["upper"]).all()
    assert summary["prob"].between(0.5, 1.0).all()


def test_marginal_density_is_a_normal_mixture_per_feature():
    grid = np.column_stack([np.linspace(-6, 11, 2001), np.linspace(-6, 8, 2001)])
    dens = marginal_density(grid, TRUE.weights, TRUE.means, TRUE.full_covariances())
    expected = sum(
        w * norm.pdf(grid[:, 1], m[1], np.sqrt(c[1, 1]))
        for w, m, c in zip(TRUE.weights, TRUE.means, TRUE.full_covariances(), strict=True)
    )
    np.testing.assert_allclose(dens[:, 1], expected)
    np.testing.assert_allclose(np.trapezoid(dens, grid, axis=0), 1.0, atol=1e-4)


def test_marginal_density_band_brackets_the_draws():
    post = _posterior(TRUE, spread=0.2)
    grid = data_grid(np.array([[-3.0, -3.0], [8.0, 4.0]]), n_grid=50)
    band = marginal_density_band(grid, post, ci_prob=0.89)
    assert set(band) == {"mean", "lower", "upper"}
    assert band["mean"].shape == (50, 2)
    assert (band["lower"] <= band["upper"]).all()
    assert (band["upper"] - band["lower"]).max() > 0


def test_align_to_posterior_follows_the_draws_rule_not_the_means_alone():
    # Two components share a mean and differ only in spread: the KL rule tells them apart.
    params = MixtureParams(
        np.array([0.4, 0.6]), np.zeros((2, 2)), np.array([np.eye(2), 16.0 * np.eye(2)])
    )
    aligned = align_to_posterior(params.permuted(np.array([1, 0])), _posterior(params))
    np.testing.assert_allclose(aligned.covariances, params.covariances)


def test_importing_analysis_does_not_load_matplotlib():
    code = "import sys, bayesgmm.posterior.summaries; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("covariance_type", "n_covariance_rows"),
    [("full", 2 * 3), ("tied", 3), ("diag", 2 * 2), ("spherical", 2)],
)
def test_parameter_draws_hold_only_free_entries(covariance_type, n_covariance_rows):
    post = _posterior(TRUE)
    draws = parameter_draws(post, covariance_type, ["a", "b"])
    kinds = list(draws["kind"].values)
    assert kinds.count("weights") == 2 and kinds.count("means") == 4
    assert kinds.count("covariances") == n_covariance_rows
    assert "means[1, b]" in draws["parameter"].values
    if covariance_type == "full":  # each unique entry once: the lower triangle
        assert "covariances[0, b, a]" in draws["parameter"].values
        assert "covariances[0, a, b]" not in draws["parameter"].values
        np.testing.assert_array_equal(
            draws.sel(parameter="covariances[1, b, a]"), post["covariances"][:, :, 1, 1, 0]
        )


def test_posterior_summary_against_numpy_and_arviz():
    import arviz_stats as azs

    post = _posterior(TRUE, spread=0.2)
    draws = parameter_draws(post, "diag")
    summary = posterior_summary(draws, ci_prob=0.8)
    assert list(summary.columns) == [
        "kind",
        "mean",
        "sd",
        "eti80_lb",
        "eti80_ub",
        "ess_bulk",
        "ess_tail",
        "r_hat",
    ]
    flat = post["means"].values[:, :, 1, 0].ravel()
    row = summary.loc["means[1, 0]"]
    assert row["mean"] == pytest.approx(flat.mean())
    assert row["sd"] == pytest.approx(flat.std(ddof=1))
    assert row["eti80_lb"] == pytest.approx(np.quantile(flat, 0.1))
    assert row["eti80_ub"] == pytest.approx(np.quantile(flat, 0.9))
    assert row["r_hat"] == pytest.approx(float(azs.rhat(post["means"]).values[1, 0]))
    assert summary["r_hat"].notna().all()  # no structural zeros, so no NaN R-hat


def test_worst_mixing_orders_by_rhat_then_ess():
    summary = pd.DataFrame(
        {"r_hat": [1.0, 1.2, np.nan, 1.05], "ess_bulk": [900, 50, np.nan, 30]},
        index=["a", "b", "c", "d"],
    )
    assert worst_mixing(summary, 3) == ["b", "d", "a"]


def test_point_estimate_table_rows_match_the_structure():
    table = point_estimate_table(
        MixtureParams(TRUE.weights, TRUE.means, np.array([[1.0, 2.0], [3.0, 4.0]]), "diag"),
        ["a", "b"],
    )
    assert list(table.index) == [
        "weights[0]",
        "weights[1]",
        "means[0, a]",
        "means[0, b]",
        "means[1, a]",
        "means[1, b]",
        "covariances[0, a, a]",
        "covariances[0, b, b]",
        "covariances[1, a, a]",
        "covariances[1, b, b]",
    ]
    assert table.loc["covariances[1, a, a]", "estimate"] == 3.0


def test_separating_features_ranks_by_fisher_ratio():
    means = np.array([[0.0, 0.0, 0.0], [1.0, 10.0, 3.0]])
    covs = np.stack([np.diag([1.0, 1.0, 0.1])] * 2)
    assert separating_features(means, covs, np.array([0.5, 0.5]), 2) == [1, 2]


def test_readable_summary_digits_make_interval_ends_differ():
    from bayesgmm.reporting.report import readable_summary

    frame = pd.DataFrame(
        {
            "kind": ["means", "weights"],
            "mean": [1024.33, 0.5],
            "sd": [0.012345, 0.1],
            "eti89_lb": [1024.31, 0.3],
            "eti89_ub": [1024.36, 0.7],
            "ess_bulk": [812.4, np.nan],
            "r_hat": [1.00123, np.nan],
        },
        index=["means[0, x]", "weights[0]"],
    )
    shown = readable_summary(frame)
    assert list(shown.loc["means[0, x]", ["mean", "eti89_lb", "eti89_ub"]]) == [
        "1024.33",
        "1024.31",
        "1024.36",
    ]
    assert list(shown.loc["weights[0]", ["mean", "eti89_lb", "eti89_ub"]]) == ["0.5", "0.3", "0.7"]
    assert shown.loc["means[0, x]", "sd"] == "0.0123"
    assert shown.loc["means[0, x]", "ess_bulk"] == "812" and shown.loc["weights[0]", "r_hat"] == ""


def test_map_log_density_check_tells_the_mode_of_the_draws():
    from scipy.stats import chi2

    from bayesgmm.posterior.summaries import map_log_density_check

    # near a mode with p free parameters, 2 (log p(MAP) - log p(draw)) ~ chi-square(p)
    rng = np.random.default_rng(0)
    p, top = 8, -200.0
    same = top - rng.chisquare(p, size=4000) / 2
    check = map_log_density_check(top, same, p)
    assert check["mode"] == "same" and check["expected_gap"] == 4.0
    assert abs(check["gap"] - chi2.median(p) / 2) < 0.2
    assert check["gap_limit"] == pytest.approx(chi2.ppf(0.999, p) / 2)
    # the draws sit in a mode whose density is 20 nats lower: the mass is elsewhere
    assert map_log_density_check(top, same - 20.0, p)["mode"] == "lower"
    # draws above the MAP by more than the margin: a higher mode that EM missed
    assert map_log_density_check(top, np.append(same, top + 3.0), p)["mode"] == "higher"
