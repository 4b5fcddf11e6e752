"""The report document: Markdown and HTML rendering, tables, provenance."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesgmm.core.params import MixtureParams
from bayesgmm.posterior.summaries import data_grid, marginal_density
from bayesgmm.reporting.plots import plot_density
from bayesgmm.reporting.report import Report, markdown_table, software_versions

TRUE = MixtureParams(
    np.array([0.3, 0.7]),
    np.array([[0.0, 0.0], [5.0, 1.0]]),
    np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.8, -0.2], [-0.2, 1.2]]]),
)


def test_markdown_table_layout_and_escaping():
    frame = pd.DataFrame({"x": [1.23456, np.nan], "name": ["a|b", "c"]}, index=["r1", "r2"])
    lines = markdown_table(frame, digits=3).splitlines()
    assert lines[0] == "|  | x | name |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| r1 | 1.23 | a\\|b |"
    assert lines[3] == "| r2 |  | c |"


def test_report_renders_markdown_and_self_contained_html(tmp_path):
    X = np.random.default_rng(0).normal(size=(50, 2))
    grid = data_grid(X, 20)
    dens = marginal_density(grid, TRUE.weights, TRUE.means, TRUE.full_covariances())
    report = Report("Title <&>")
    report.heading("Section")
    report.text("**Bold** text & more")
    report.table(pd.DataFrame({"v": [1.0]}))
    report.code("bayesgmm report x")
    report.figure(
        "density",
        plot_density(X, grid, dens, {"mean": dens, "lower": dens, "upper": dens}),
        "A caption",
    )
    md = report.to_markdown()
    assert md.startswith("# Title <&>")
    assert "![A caption](figures/density.png)" in md and "```\nbayesgmm report x\n```" in md
    page = report.to_html()
    assert "<title>Title &lt;&amp;&gt;</title>" in page
    assert "<strong>Bold</strong> text &amp; more" in page
    assert page.count("data:image/png;base64,") == 1
    written = report.write(tmp_path)
    assert {p.name for p in written} == {"density.png", "report.md", "report.html"}
    png = (tmp_path / "figures" / "density.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_software_versions_names_the_stack():
    versions = software_versions()
    for name in ("python", "bayesgmm", "pymc", "arviz-stats", "numpy"):
        assert versions[name] and versions[name] != "not installed"


def test_a_figure_that_fails_becomes_a_note_and_the_report_goes_on(tmp_path):
    report = Report("T")
    report.table(pd.DataFrame({"v": [1.0]}))

    def broken():
        raise ValueError("Requested 42 subplots, which exceeds rcParams['plot.max_subplots']=40")

    with pytest.warns(UserWarning, match="figure 'rank' could not be drawn"):
        assert not report.figure_or_note("rank", broken, "Rank plots")
    X = np.random.default_rng(0).normal(size=(20, 1))
    grid = data_grid(X, 10)
    dens = np.ones_like(grid)
    assert report.figure_or_note(
        "density",
        lambda: plot_density(X, grid, dens, {"mean": dens, "lower": dens, "upper": dens}),
        "ok",
    )
    md = report.to_markdown()
    assert "**Figure 'rank' could not be drawn** (ValueError: Requested 42 subplots" in md
    assert "| v |" in md and "figures/density.png" in md and "rank.png" not in md
    assert {p.name for p in report.write(tmp_path)} == {"density.png", "report.md", "report.html"}


def test_posterior_analysis_of_a_wine_sized_model_keeps_every_figure(tmp_path):
    # K * (d + 1) = 3 * 14 = 42 > 40 scalar panels: the rank plot used to crash the report
    from types import SimpleNamespace

    import xarray as xr

    from bayesgmm.reporting.report import add_posterior_analysis

    rng = np.random.default_rng(7)
    K, d, chains, draws = 3, 13, 2, 50
    centres = rng.normal(scale=4.0, size=(K, d))
    X = np.concatenate([rng.normal(c, 1.0, size=(40, d)) for c in centres])
    variances = np.exp(rng.normal(scale=0.05, size=(chains, draws, K, d)))
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), rng.dirichlet([40] * K, (chains, draws))),
            "means": (
                ("chain", "draw", "component", "feature"),
                centres + rng.normal(scale=0.1, size=(chains, draws, K, d)),
            ),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                variances[..., None] * np.eye(d),
            ),
        }
    )
    bayes = SimpleNamespace(
        idata_=xr.DataTree.from_dict({"posterior": posterior}),
        map_=MixtureParams(np.full(K, 1 / K), centres, np.ones((K, d)), "diag"),
        method_="advi",
    )
    names = [f"f{j}" for j in range(d)]
    report = Report("wine-like")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a figure that fails would warn
        table = add_posterior_analysis(report, X, bayes, feature_names=names)
    assert len(table) == K + K * d + K * d  # free parameters only
    assert set(report.figures) == {
        "map_vs_posterior.png",
        "density.png",
        "assignment.png",
        "ellipses.png",
        "trace.png",
        "rank.png",
    }
    assert "could not be drawn" not in report.to_markdown()
    report.write(tmp_path)


def test_posterior_analysis_shows_the_bootstrap_beside_the_posterior(monkeypatch):
    from types import SimpleNamespace

    import xarray as xr

    from bayesgmm.em.bootstrap import collect_replicates
    from bayesgmm.reporting.report import add_posterior_analysis

    rng = np.random.default_rng(3)
    X = np.concatenate(
        [
            rng.multivariate_normal(m, c, 60)
            for m, c in zip(TRUE.means, TRUE.covariances, strict=True)
        ]
    )
    shape = (2, 60)
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), np.broadcast_to(TRUE.weights, (*shape, 2))),
            "means": (
                ("chain", "draw", "component", "feature"),
                TRUE.means + 0.05 * rng.standard_normal((*shape, 2, 2)),
            ),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                np.broadcast_to(TRUE.full_covariances(), (*shape, 2, 2, 2)),
            ),
        }
    )
    bayes = SimpleNamespace(
        idata_=xr.DataTree.from_dict({"posterior": posterior}), map_=TRUE, method_="advi"
    )
    replicates = [
        (
            MixtureParams(
                TRUE.weights, TRUE.means + 0.1 * rng.standard_normal((2, 2)), TRUE.covariances
            ),
            True,
        )
        for _ in range(30)
    ]
    boot = collect_replicates(
        TRUE.permuted(np.array([1, 0])),
        [(p.permuted(np.array([1, 0])), ok) for p, ok in replicates],
        "weighted",
    )
    report = Report("bootstrap")
    monkeypatch.setattr(Report, "figure_or_note", lambda *args, **kwargs: None)  # tables only
    table = add_posterior_analysis(report, X, bayes, feature_names=["a", "b"], bootstrap=boot)
    assert {"boot_se", "boot_lower", "boot_upper"} <= set(table.columns)
    text = report.to_markdown()
    assert "weighted bootstrap of the MAP-EM fit (30 replicates" in text
    assert "boot_se | boot_lower | boot_upper |" in text
    # the replicates were in swapped labels: relabelled, the SEs are the replicates' spread
    np.testing.assert_allclose(table["boot_se"].iloc[2:6], np.full(4, 0.1), rtol=0.35)


def test_map_mode_text_explains_where_the_posterior_mass_sits():
    from bayesgmm.posterior.diagnostics import Diagnostics, Mode
    from bayesgmm.reporting.report import _map_mode_text

    check = {
        "map": -220.5,
        "q05": -231.7,
        "median": -225.3,
        "q95": -222.3,
        "max": -220.8,
        "gap": 4.8,
        "expected_gap": 4.0,
        "gap_limit": 13.1,
        "mode": "same",
    }
    text = _map_mode_text(check, 0, None)
    assert "-220.5 at the MAP" in text and "median is -225.3" in text
    assert "The posterior mass sits in the MAP's mode" in text and "unimodal" in text
    skewed = _map_mode_text(check, 2, None)
    assert "asymmetry" in skewed and "not from another mode" in skewed
    modes = (Mode("A", (0, 2), -231.4, 0.9), Mode("B", (1, 3), -236.0, 0.1))
    diag = Diagnostics(1.3, 10.0, 10.0, 0, 0.8, "none", 4, 100, modes=modes)
    lower = _map_mode_text({**check, "gap": 20.0, "mode": "lower"}, 3, diag)
    assert "sits in another mode, lower at its peak than the MAP's but wider" in lower
    assert "chains 0,2 in mode A (mean sampler log density -231.4)" in lower
    assert "stacking weights A 0.90, B 0.10" in lower and "3 MAP value(s)" in lower


def _two_mode_bayes(rng, draws=200):
    """A fitted-model stand-in whose stacked posterior sits in another mode than the MAP.

    1-D, K=2. Chains 0,1 sample the MAP's mode (means -2, 2), chains 2,3 another one
    (means -1, 3) whose log density lies 20 nats lower; stacking weights 0.02, 0.02,
    0.48, 0.48 (mode B carries 0.96), so the stacked posterior sits mostly in mode B.
    """
    from types import SimpleNamespace

    import xarray as xr

    from bayesgmm.posterior.diagnostics import Diagnostics, Mode

    centres = np.array([[-2.0, 2.0], [-2.0, 2.0], [-1.0, 3.0], [-1.0, 3.0]])
    means = centres[:, None, :, None] + 0.05 * rng.standard_normal((4, draws, 2, 1))
    chains = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), np.full((4, draws, 2), 0.5)),
            "means": (("chain", "draw", "component", "feature"), means),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                np.ones((4, draws, 2, 1, 1)),
            ),
        }
    )
    chain_weights = np.array([0.02, 0.02, 0.48, 0.48])
    picked = rng.choice(4, size=4 * draws, p=chain_weights)
    stacked = chains.isel(
        chain=xr.DataArray(picked, dims="sample"),
        draw=xr.DataArray(rng.integers(0, draws, 4 * draws), dims="sample"),
    )
    stacked = stacked.drop_vars(["chain", "draw"], errors="ignore").rename({"sample": "draw"})
    stacked = stacked.expand_dims(chain=[0])
    stacked.attrs.update(chain_combination="stacked", chain_weights=chain_weights.tolist())
    n_free, top = 5, -150.0
    log_density = top - rng.chisquare(n_free, size=(4, draws)) / 2
    log_density[2:] -= 20.0
    modes = (Mode("A", (0, 1), -152.5, 0.04), Mode("B", (2, 3), -172.5, 0.96))
    diag = Diagnostics(
        1.5, 5.0, 5.0, 0, 0.9, "none", 4, draws, modes=modes, chain_combination="stacked"
    )
    tree = xr.DataTree.from_dict({"posterior": stacked, "posterior_chains": chains})
    return SimpleNamespace(
        idata_=tree,
        map_=MixtureParams(np.array([0.5, 0.5]), np.array([[-2.0], [2.0]]), np.ones((2, 1, 1))),
        method_="nuts",
        chain_weights_=chain_weights,
        diagnose=lambda: diag,
        log_posterior_density=lambda: (log_density, top, n_free),
    )


def test_map_versus_posterior_section_names_the_mode_that_holds_the_mass(monkeypatch):
    from bayesgmm.reporting.report import add_posterior_analysis

    rng = np.random.default_rng(5)
    bayes = _two_mode_bayes(rng)
    X = np.concatenate([rng.normal(-2, 1, 40), rng.normal(2, 1, 40)])[:, None]
    drawn = {}
    monkeypatch.setattr(
        Report, "figure_or_note", lambda self, name, draw, caption: drawn.setdefault(name, draw)
    )
    report = Report("two modes")
    table = add_posterior_analysis(report, X, bayes, feature_names=["x"])
    text = report.to_markdown()
    # the MAP's means (-2, 2) lie outside the stacked posterior's intervals around (-1, 3)
    assert not table.set_index("parameter").loc["mu[0, x]", "map_in_interval"]
    # the weighted draws sit 20 nats below the MAP's mode: the mass is in another mode
    assert "over the draws (each chain weighted by its stacking weight) its median is" in text
    assert "The posterior mass sits in another mode, lower at its peak than the MAP's" in text
    assert "The chains sit in 2 different modes" in text
    assert "stacking weights A 0.04, B 0.96" in text
    assert "chains 0,1 (in the MAP's mode: median" in text
    assert "chains 2,3 (in another mode, lower than the MAP's: median" in text
    assert "stacking weight 0.96)" in text
    assert "MAP value(s) lie outside their intervals: the table shows both" in text
    # the per-mode table and the log-density figure are there, and the figure draws
    assert "| chains 2,3 | 0.96 | -172." in text
    figure = drawn["log_density"]()
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "chain 2 (stacking weight 0.48)" in labels and "MAP (-150.0)" in labels


def test_failed_candidates_get_their_modes_explained():
    from types import SimpleNamespace

    from bayesgmm.reporting.report import add_unsettled_candidates

    rng = np.random.default_rng(6)
    failed = _two_mode_bayes(rng)
    passed = SimpleNamespace(method_="nuts", diagnose=lambda: SimpleNamespace(ok=True))
    comparison = SimpleNamespace(
        fits={
            "K=1 full": SimpleNamespace(bayes=passed),
            "K=2 full": SimpleNamespace(bayes=failed),
            "K=3 full": SimpleNamespace(bayes=None),
        },
        recommended="K=1 full",
    )
    report = Report("candidates")
    drawn = []
    report.figure_or_note = lambda name, draw, caption: drawn.append(name)
    shown = add_unsettled_candidates(report, comparison, feature_names=["x"], ci_prob=0.89)
    assert shown == ["K=2 full"] and drawn == ["log_density_k_2_full"]
    text = report.to_markdown()
    assert "## Candidates whose sampler checks failed" in text
    assert "**K=2 full** (nuts (4 chain(s) x 200 draws, combined by Bayesian stacking" in text
    assert "the chains sit in 2 different modes" in text
    assert "The posterior mass sits in another mode" in text
    # nothing to say when every candidate passed
    quiet = Report("none")
    comparison.fits.pop("K=2 full")
    assert add_unsettled_candidates(quiet, comparison, feature_names=["x"], ci_prob=0.89) == []
    assert quiet.blocks == []


def test_the_report_opens_with_the_answer_and_the_posteriors_verdict():
    from types import SimpleNamespace

    from bayesgmm.reporting.report import answer_text

    verdict = "Verdict: the sampler checks passed (4 chains x 1000 draws ...)."
    bayes = SimpleNamespace(diagnose=lambda: SimpleNamespace(verdict=verdict))
    best = SimpleNamespace(n_components=2, covariance_type="full", bayes=bayes)
    comparison = SimpleNamespace(
        best=best, recommended="K=2 full", reason="K=2 full has the best LOO elpd."
    )
    text = answer_text(comparison)
    assert text.startswith("**Recommended: K=2 full** (K=2, full covariances).")
    assert "best LOO elpd" in text
    assert text.endswith("Its posterior: the sampler checks passed (4 chains x 1000 draws ...).")

    def refuse():
        raise ValueError("method='map'")

    map_only = SimpleNamespace(best=SimpleNamespace(**{**vars(best), "bayes": None}))
    assert "Its posterior" not in answer_text(
        SimpleNamespace(**{**vars(comparison), **vars(map_only)})
    )
    too_short = SimpleNamespace(diagnose=refuse)
    comparison.best = SimpleNamespace(**{**vars(best), "bayes": too_short})
    assert "Its posterior" not in answer_text(comparison)
