"""The BIC-by-model figure (bayesgmm.reporting.plots.bic_models): mclust's layout, the sign of
the comparison table (lower is better)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from bayesgmm.em.mclust_table import BICTable
from bayesgmm.reporting import plots
from bayesgmm.reporting.plots import bic_by_model, model_styles, plot_bic_models
from bayesgmm.reporting.plots.bic_models import CLASSIC_NAMES, MCLUST_ORDER
from bayesgmm.reporting.report import figure_png

#: The structures of ``compare(..., "all", method="map")``: four classic names, ten of mclust's.
ALL_STRUCTURES = (
    "full",
    "tied",
    "diag",
    "spherical",
    *(name for name in MCLUST_ORDER if name not in CLASSIC_NAMES.values()),
)


def _table(models=ALL_STRUCTURES, ks=range(1, 6), seed=0) -> pd.DataFrame:
    """A comparison table (lower-is-better BIC) with one empty cell and a known lowest BIC."""
    rng = np.random.default_rng(seed)
    rows = [
        {"n_components": k, "covariance_type": c, "bic": 1000 + rng.uniform(0, 100)}
        for c in models
        for k in ks
    ]
    table = pd.DataFrame(
        rows, index=[f"K={r['n_components']} {r['covariance_type']}" for r in rows]
    )
    for name, value in (("K=3 EEV", 900.0), ("K=4 VEV", np.nan)):  # the lowest; a gap
        if name in table.index:
            table.loc[name, "bic"] = value
    return table


def _model_lines(ax) -> dict:
    """The figure's lines by label, without the circle and square marks (labels ``_...``)."""
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label()[0] == "_"}


def _marks(ax) -> dict:
    """The marked cells by marker: ``{marker: (K, value)}``."""
    return {
        line.get_marker(): (float(line.get_xdata()[0]), float(line.get_ydata()[0]))
        for line in ax.get_lines()
        if line.get_label().startswith("_") and len(line.get_xdata()) == 1
    }


def _style(line) -> tuple:
    """Colour, marker, line style, filled."""
    filled = str(line.get_markerfacecolor()) != "none"
    return (to_rgba(line.get_color()), line.get_marker(), line.get_linestyle(), filled)


def test_fourteen_models_fourteen_distinct_styles_legend_outside():
    table = _table()
    fig = plot_bic_models(table, title="demo")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = _model_lines(ax)
    assert len(lines) == 14
    styles = [_style(line) for line in lines.values()]
    assert len(set(styles)) == 14
    # mclust's colours alone tell them apart, and so do marker and line style without colour
    assert len({s[0] for s in styles}) == 14 and len({s[1:] for s in styles}) == 14
    assert len({s[2] for s in styles}) == 4
    # mclust's legend order, classic structures named with mclust's name
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:3] == ["EII", "spherical (VII)", "EEI"]
    assert texts[13:] == ["full (VVV)", "lowest BIC"]
    assert ax.get_legend() is None and len(fig.axes) == 1  # no zoom: one cell near the best
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
    png = figure_png(fig, dpi=40)
    assert png.startswith(b"\x89PNG") and len(png) > 500


def test_plotted_values_are_the_tables_bic_in_its_sign():
    table = _table()
    ax = plot_bic_models(table).axes[0]
    assert ax.get_ylabel() == "BIC = -2 log L + p log n (lower is better)"
    for name, line in _model_lines(ax).items():
        model = name.split(" ")[0]
        rows = table[table["covariance_type"] == model].sort_values("n_components")
        np.testing.assert_array_equal(line.get_xdata(), rows["n_components"])
        np.testing.assert_array_equal(line.get_ydata(), rows["bic"])  # NaN: a gap, not 0
    assert np.isnan(_model_lines(ax)["VEV"].get_ydata()[3])


def test_the_lowest_bic_is_circled_and_named():
    ax = plot_bic_models(_table()).axes[0]
    assert _marks(ax) == {"o": (3.0, 900.0)}
    assert "lowest BIC: EEV, K=3 (circled)" in ax.get_title()


def test_a_comparisons_recommendation_is_circled_and_the_lowest_bic_squared():
    table = _table()
    comparison = SimpleNamespace(table=table, recommended="K=2 full")
    fig = plot_bic_models(comparison)
    ax = fig.axes[0]
    assert _marks(ax) == {"o": (2.0, table.loc["K=2 full", "bic"]), "s": (3.0, 900.0)}
    assert "recommended: full (VVV), K=2" in ax.get_title()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[-2:] == ["recommended", "lowest BIC"]
    # the recommendation that is the lowest BIC: one circle, no square
    comparison.recommended = "K=3 EEV"
    assert _marks(plot_bic_models(comparison).axes[0]) == {"o": (3.0, 900.0)}


def test_a_second_panel_zooms_on_the_crowd_near_the_best_when_poor_models_stretch_the_axis():
    table = _table()
    poor = table["covariance_type"].isin(["spherical", "EII", "EEI", "EVI", "VEI", "diag"])
    table.loc[poor, "bic"] += 3000.0  # as EII and the diagonal models on crabs
    fig = plot_bic_models(table)
    full, zoom = fig.axes
    low, high = zoom.get_ylim()
    assert low < 900.0 < high and high < table.loc[poor, "bic"].min()
    assert table.loc[~poor, "bic"].max() < high  # every good cell is in the zoom
    assert "zoom" in zoom.get_title() and zoom.get_ylabel() == full.get_ylabel()
    for label, line in _model_lines(full).items():
        np.testing.assert_array_equal(_model_lines(zoom)[label].get_ydata(), line.get_ydata())
    assert _marks(zoom) == _marks(full) == {"o": (3.0, 900.0)}
    assert len(fig.legends) == 1


def test_bic_by_model_keeps_the_tables_sign_unless_asked_for_mclusts():
    table = _table(models=("full", "EEV"), ks=(1, 2, 3))
    wide = bic_by_model(table)
    assert list(wide.columns) == ["full", "EEV"] and list(wide.index) == [1, 2, 3]
    assert wide.loc[3, "EEV"] == 900.0 and wide.loc[1, "full"] == table.loc["K=1 full", "bic"]
    pd.testing.assert_frame_equal(bic_by_model(table, mclust_sign=True), -wide)


def test_mclusts_sign_is_turned_into_the_tables():
    mclust = pd.DataFrame({"EEV": [-130.0, -90.0], "VVV": [-120.0, -100.0]}, index=[1, 2])
    bic_table = BICTable(bic=mclust, loglik=mclust, fits={}, n_samples=10, seconds=0.0)
    for fig in (plot_bic_models(bic_table), plot_bic_models(mclust, mclust_sign=True)):
        ax = fig.axes[0]
        np.testing.assert_array_equal(_model_lines(ax)["EEV"].get_ydata(), [130.0, 90.0])
        assert _marks(ax) == {"o": (2.0, 90.0)}  # mclust's highest is the lowest here
    lines = _model_lines(plot_bic_models(mclust, mclust_sign=False).axes[0])
    np.testing.assert_array_equal(lines["EEV"].get_ydata(), [-130.0, -90.0])


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="does not say its sign"):
        plot_bic_models(pd.DataFrame({"EEV": [1.0, 2.0]}, index=[1, 2]))
    with pytest.raises(ValueError, match="no finite value"):
        plot_bic_models(_table().assign(bic=np.nan))
    with pytest.raises(ValueError, match="K=7 EEV is not in the table"):
        plot_bic_models(_table(), chosen="K=7 EEV")
    with pytest.raises(ValueError, match="chosen='best'"):
        plot_bic_models(_table(), chosen="best")
    with pytest.raises(TypeError, match="got list"):
        plot_bic_models([1.0, 2.0])


def test_criterion_by_k_for_bic_is_the_bic_figure_and_elpd_is_higher_is_better():
    table = _table(models=("full", "diag"), ks=(1, 2, 3))
    table["elpd_loo"] = -table["bic"] / 2 + np.arange(len(table))
    bic_ax = plots.plot_criterion_by_k(table).axes[0]
    assert bic_ax.get_ylabel() == plot_bic_models(table).axes[0].get_ylabel()
    ax = plots.plot_criterion_by_k(table, "elpd_loo").axes[0]
    assert ax.get_ylabel() == "elpd_loo (higher is better)"
    best = table["elpd_loo"].idxmax()
    assert _marks(ax) == {"o": (float(table.loc[best, "n_components"]), table["elpd_loo"].max())}


def test_styles_are_distinct_for_names_outside_mclusts_fourteen():
    names = [*MCLUST_ORDER, *CLASSIC_NAMES, *(f"custom{i}" for i in range(12))]
    styles = model_styles(names)
    keys = {(to_rgba(s["color"]), s["marker"], s["ls"], str(s["mfc"])) for s in styles.values()}
    assert len(keys) == len(MCLUST_ORDER) + 12  # a classic name looks as its mclust name
    assert styles["full"] == styles["VVV"]
