"""Figures: each function draws what it is given and renders to a non-empty PNG."""

import numpy as np
import pandas as pd
import pytest
from arviz_base import from_dict
from matplotlib.figure import Figure

from bayesgmm import plots
from bayesgmm.report import figure_png


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
    _png_ok(plots.plot_trace(tree))
    _png_ok(plots.plot_rank(tree))


def test_plot_loo_comparison_one_row_per_candidate():
    table = pd.DataFrame(
        {"elpd_diff": [0.0, -3.0, -20.0], "dse": [0.0, 2.0, 5.0]},
        index=["K=3 full", "K=4 full", "K=2 full"],
    )
    fig = plots.plot_loo_comparison(table)
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert set(table.index) <= set(ticks)
    _png_ok(fig)
