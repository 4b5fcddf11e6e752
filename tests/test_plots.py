"""Figures: each function draws what it is given and renders to a non-empty PNG."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from arviz_base import from_dict
from matplotlib.colors import same_color
from matplotlib.figure import Figure

from bayesgmm.reporting import plots
from bayesgmm.reporting.report import figure_png


def _png_ok(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    png = figure_png(fig, dpi=40)
    assert png.startswith(b"\x89PNG") and len(png) > 500


def test_plot_density_one_panel_per_feature():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    grid = np.column_stack([np.linspace(-3, 3, 30)] * 2)
    dens = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
    fig = plots.plot_density(
        X,
        grid,
        dens,
        {"mean": dens, "lower": 0.9 * dens, "upper": 1.1 * dens},
        feature_names=["a", "b"],
    )
    assert len(fig.axes) == 2
    assert [ax.get_xlabel() for ax in fig.axes] == ["a", "b"]
    # one legend, below the panels (not over a density peak)
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "data",
        "posterior 89% band",
        "posterior mean",
        "MAP (EM)",
    ]
    _png_ok(fig)


def test_plot_assignment_marks_uncertain_points():
    assignment = pd.DataFrame(
        {
            "component": [0, 1, 1],
            "prob": [0.99, 0.6, 0.97],
            "lower": [0.95, 0.3, 0.9],
            "upper": [1.0, 0.9, 1.0],
            "uncertain": [False, True, False],
        }
    )
    fig = plots.plot_assignment(np.arange(3.0), assignment)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["uncertain (1)"]
    _png_ok(fig)


def test_plot_map_vs_posterior_standardises_rows():
    table = pd.DataFrame(
        {
            "kind": ["weights", "means"],
            "parameter": ["w[0]", "mu[0, x]"],
            "map": [0.5, 12.0],
            "median": [0.4, 10.0],
            "sd": [0.1, 1.0],
            "lower": [0.3, 8.0],
            "upper": [0.6, 11.0],
        }
    )
    fig = plots.plot_map_vs_posterior(table)
    crosses = [line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "x"]
    np.testing.assert_allclose([line.get_xdata()[0] for line in crosses], [1.0, 2.0])
    _png_ok(fig)


def test_plot_ellipses_draws_map_and_posterior_ellipses():
    X = np.random.default_rng(1).normal(size=(30, 3))
    means = np.zeros((2, 3))
    covs = np.stack([np.eye(3)] * 2)
    fig = plots.plot_ellipses(
        X, means, covs, np.zeros((5, 2, 3)), np.stack([covs] * 5), features=(0, 2)
    )
    assert len(fig.axes[0].patches) == 2 + 5 * 2
    _png_ok(fig)


@pytest.fixture(scope="module")
def tree():
    rng = np.random.default_rng(2)
    return from_dict(
        {
            "posterior": {
                "weights": rng.dirichlet([5, 5], size=(2, 50)),
                "means": rng.normal(size=(2, 50, 2, 1)),
            }
        },
        dims={"weights": ["component"], "means": ["component", "feature"]},
    )


def test_trace_and_rank_plots(tree):
    from bayesgmm.posterior.summaries import parameter_draws

    posterior = tree["posterior"].to_dataset()
    posterior["covariances"] = xr.ones_like(posterior["means"]).expand_dims(
        feature_bis=[0], axis=-1
    )
    draws = parameter_draws(posterior, "full")
    _png_ok(plots.plot_trace(draws))
    rank = plots.plot_rank(draws)
    assert len([ax for ax in rank.axes if ax.get_title()]) == 2 + 2 + 2


def test_plot_loo_comparison_one_row_per_candidate():
    table = pd.DataFrame(
        {"elpd_diff": [0.0, -3.0, -20.0], "dse": [0.0, 2.0, 5.0]},
        index=["K=3 full", "K=4 full", "K=2 full"],
    )
    fig = plots.plot_loo_comparison(table)
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert set(table.index) <= set(ticks)
    _png_ok(fig)


# ---- figures that scale with K and d -----------------------------------------------------
def _wide_posterior(n_components=3, n_features=13, chains=2, draws=60, seed=3, stuck=None):
    """Diagonal-covariance draws of a K x d mixture; chain 1 of ``stuck`` shifted (bad R-hat)."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    means = rng.normal(size=(n_components, n_features)) * 4 + rng.normal(
        scale=0.05, size=(*shape, n_components, n_features)
    )
    variances = np.exp(rng.normal(scale=0.05, size=(*shape, n_components, n_features)))
    if stuck is not None:
        means[1, :, stuck[0], stuck[1]] += 3.0
    covs = variances[..., None] * np.eye(n_features)
    weights = rng.dirichlet([50] * n_components, size=shape)
    return xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights),
            "means": (("chain", "draw", "component", "feature"), means),
            "covariances": (("chain", "draw", "component", "feature", "feature_bis"), covs),
        }
    )


def test_rank_and_trace_plots_scale_to_wine_sized_models():
    # K * (d + 1) = 42 > 40: one panel per scalar parameter used to crash matplotlib
    from bayesgmm.posterior.summaries import parameter_draws, posterior_summary

    posterior = _wide_posterior(stuck=(2, 7))
    names = [f"x{j}" for j in range(12)] + ["od280/od315"]  # a "/" as in wine's columns
    draws = parameter_draws(posterior, "diag", names)
    assert draws.sizes["parameter"] == 3 + 39 + 39
    summary = posterior_summary(draws)
    slash = plots.plot_rank(draws.isel(parameter=[-1]))  # a "/" in a label is drawn
    # the title carries the label and the uniformity test's p-value (moved off the curves)
    (title,) = [ax.get_title() for ax in slash.axes]
    assert title.startswith("covariances[2, od280\u2215od315,\nod280\u2215od315]  (p=")
    assert not any(ax.texts for ax in slash.axes)
    rank = plots.plot_rank(draws, summary)
    panels = [ax for ax in rank.axes if ax.get_title()]
    assert len(panels) == plots.MAX_RANK_PARAMETERS
    # the stuck chain: worst R-hat first, and the uniformity test rejects it
    assert panels[0].get_title().startswith("means[2, x7]  (p=0.00(")
    assert all(len(ax.get_lines()) == 2 for ax in panels)  # one ECDF per chain
    _png_ok(rank)
    trace = plots.plot_trace(draws, summary)
    assert len(trace.axes) == 2 * 3  # one row (trace, density) per parameter group
    trace_axes = trace.axes[::2]
    assert [ax.get_title(loc="left").split(" (")[0] for ax in trace_axes] == [
        "weights",
        "means",
        "covariances",
    ]
    legend = [t.get_text() for t in trace_axes[1].get_legend().get_texts()]
    assert len(legend) == plots.MAX_TRACE_PER_GROUP and legend[0] == "means[2, x7]"
    _png_ok(trace)


def test_ellipses_for_many_features_show_the_most_separating_pairs():
    rng = np.random.default_rng(4)
    d = 13
    means = np.zeros((3, d))
    means[:, 5] = [-6, 0, 6]  # feature 5 separates most, then 9, then 2
    means[:, 9] = [-3, 3, 0]
    means[:, 2] = [1, -1, 0]
    covs = np.stack([np.eye(d)] * 3)
    X = np.concatenate([rng.normal(m, 1, size=(30, d)) for m in means])
    draws_m = means + rng.normal(scale=0.1, size=(4, 3, d))
    fig = plots.plot_ellipses(
        X, means, covs, draws_m, np.stack([covs] * 4), feature_names=[f"f{j}" for j in range(d)]
    )
    assert len(fig.axes) == 3
    labels = {(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes}
    assert labels == {("f5", "f9"), ("f5", "f2"), ("f9", "f2")}
    for ax in fig.axes:
        assert len(ax.patches) == 3 + 4 * 3
        a, b = int(ax.get_xlabel()[1:]), int(ax.get_ylabel()[1:])
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert x0 <= X[:, a].min() and X[:, a].max() <= x1
        assert y0 <= X[:, b].min() and X[:, b].max() <= y1
    _png_ok(fig)


def test_density_panels_wrap_for_many_features():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 13))
    grid = np.linspace(-3, 3, 20)[:, None] * np.ones(13)
    dens = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
    fig = plots.plot_density(X, grid, dens, {"mean": dens, "lower": dens, "upper": dens})
    assert len(fig.axes) == 13
    width, height = fig.get_size_inches()
    assert width <= 4.5 * plots.MAX_COLUMNS + 1e-9 and height > width / 2


def test_assignment_legend_names_every_component():
    assignment = pd.DataFrame(
        {
            "component": [0, 2, 1, 2],
            "prob": [0.99, 0.6, 0.97, 0.9],
            "lower": [0.95, 0.3, 0.9, 0.8],
            "upper": [1.0, 0.9, 1.0, 1.0],
            "uncertain": [False, True, False, False],
        }
    )
    fig = plots.plot_assignment(np.arange(4.0), assignment)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["component 0", "component 1", "component 2", "uncertain (1)"]


def test_loo_plot_flags_high_pareto_k_and_failed_diagnostics():
    table = pd.DataFrame(
        {
            "elpd_loo": [-100.0, -101.0, -130.0],
            "se": [5.0, 5.0, 6.0],
            "elpd_diff": [0.0, -1.0, -30.0],
            "dse": [0.0, 1.5, 5.0],
            "k_ok": [100, 80, 100],
            "k_high": [0, 15, 0],
            "k_very_high": [0, 5, 0],
            "sampler_ok": [True, True, False],
        },
        index=["K=3 full", "K=4 full", "K=2 full"],
    )
    fig = plots.plot_loo_comparison(table)
    ax = fig.axes[0]
    texts = [t.get_text().strip() for t in ax.texts]
    assert texts == ["20 high Pareto k", "sampler checks failed"]
    colors = {t.get_text(): t.get_color() for t in ax.get_yticklabels()}
    assert same_color(colors["K=3 full"], "k") and same_color(colors["K=4 full"], plots.FLAG_COLOR)
    x0, x1 = ax.get_xlim()
    assert x0 <= -136 and x1 >= -95
    _png_ok(fig)


def test_criterion_by_k_one_line_per_covariance_structure():
    table = pd.DataFrame(
        {
            "n_components": [1, 2, 3, 1, 2, 3],
            "covariance_type": ["full"] * 3 + ["diag"] * 3,
            "aic": [500.0, 420.0, 430.0, 520.0, 450.0, 440.0],
        },
        index=[f"K={k} {c}" for c, k in [("full", 1), ("full", 2), ("full", 3)] * 1]
        + [f"K={k} diag" for k in (1, 2, 3)],
    )
    fig = plots.plot_criterion_by_k(table, "aic")
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 3]
    assert len(lines) == 2
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["diag (VVI)", "full (VVV)", "lowest AIC"]  # mclust's order
    assert ax.get_xlabel() == "number of components K"
    assert ax.get_ylabel() == "AIC (lower is better)"
    assert "lowest AIC: full (VVV), K=2" in ax.get_title()
    _png_ok(fig)
