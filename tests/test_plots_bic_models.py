"""mclust's BIC figure (bayesgmm.reporting.plots.bic_models)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bayesgmm.reporting.plots import bic_by_model, plot_bic_models
from bayesgmm.reporting.plots.bic_models import MCLUST_ORDER, model_colors


def _frame():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        -1000 - rng.uniform(0, 100, size=(5, 14)), index=range(1, 6), columns=list(MCLUST_ORDER)
    )
    frame.loc[4, "VEV"] = np.nan  # an empty cell
    frame.loc[3, "EEV"] = -900.0  # the best
    return frame


def test_one_line_per_model_in_mclust_colours_and_the_best_circled():
    frame = _frame()
    fig = plot_bic_models(frame, title="demo")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(MCLUST_ORDER) <= set(lines)
    colors = model_colors()
    assert colors["EII"] != colors["VII"] and len({tuple(c) for c in colors.values()}) == 14
    np.testing.assert_allclose(lines["VVV"].get_ydata(), frame["VVV"])
    assert np.isnan(lines["VEV"].get_ydata()[3])  # a gap, not a zero
    assert "EEV, K=3" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["EII", "VII"]


def test_a_comparison_table_is_drawn_in_mclusts_sign_with_classic_names_mapped():
    table = pd.DataFrame(
        {
            "n_components": [1, 2, 1, 2],
            "covariance_type": ["full", "full", "EEV", "EEV"],
            "bic": [120.0, 100.0, 130.0, 90.0],
        },
        index=["K=1 full", "K=2 full", "K=1 EEV", "K=2 EEV"],
    )
    wide = bic_by_model(table)
    assert wide.loc[2, "EEV"] == -90.0 and wide.loc[1, "full"] == -120.0
    ax = plot_bic_models(table).axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "full (VVV)" in labels and "EEV" in labels
    assert "EEV, K=2" in ax.get_title()


def test_an_empty_table_is_refused():
    frame = _frame() * np.nan
    with pytest.raises(ValueError, match="no finite value"):
        plot_bic_models(frame)
