"""Command line: argument parsing, bad input, atomic output, fit / compare / report round trips."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesgmm import cli, load
from bayesgmm.posterior.summaries import parameter_draws, posterior_summary

SMALL = ["--draws", "200", "--tune", "200", "--chains", "2", "--quiet"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("bayesgmm: error: ")
    return err[0]


def _nothing_written(parent, out) -> None:
    assert not out.exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("text", "expected"), [("3", [3]), ("1-4", [1, 2, 3, 4]), ("1-3,5,2", [1, 2, 3, 5])]
)
def test_parse_ks(text, expected):
    assert cli.parse_ks(text) == expected


@pytest.mark.parametrize("text", ["a", "0-2", "", "3-x"])
def test_parse_ks_rejects(text):
    with pytest.raises(cli.InputError, match="--k"):
        cli.parse_ks(text)


def test_parse_covariances():
    assert cli.parse_covariances("full, diag") == ["full", "diag"]
    with pytest.raises(cli.InputError, match="--covariance"):
        cli.parse_covariances("full,round")


@pytest.fixture
def csv_files(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "good.csv"
    pd.DataFrame({"a": rng.normal(size=30), "b": rng.normal(size=30)}).to_csv(good, index=False)
    text = tmp_path / "text.csv"
    pd.DataFrame({"a": rng.normal(size=30), "label": ["x"] * 30}).to_csv(text, index=False)
    tiny = tmp_path / "tiny.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.5, 4.0]}).to_csv(tiny, index=False)
    negative = tmp_path / "negative.csv"
    pd.DataFrame({"a": rng.normal(size=30), "w": -np.ones(30)}).to_csv(negative, index=False)
    return {"good": good, "text": text, "tiny": tiny, "negative": negative}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "{dir}/missing.csv", "--k", "2"], "not found"),
        (["fit", "{text}", "--k", "2"], "non-numeric"),
        (["compare", "{tiny}", "--k", "1-3"], "too few"),
        (["fit", "{good}", "--k", "2", "--columns", "a,zz"], "not in"),
        (["fit", "{good}", "--k", "2", "--weights", "zz"], "--weights column 'zz' not in"),
        (["fit", "{negative}", "--k", "2", "--weights", "w"], "sample_weight must be non-negative"),
        (["fit", "{good}", "--k", "1-2"], "one number"),
        (["fit", "nonsense_dataset", "--k", "2"], "bundled data sets"),
        (["report", "{good}", "--k", "1-2", "--method", "map"], "needs a posterior"),
        (["clusters", "{good}", "--e0", "-1"], "--e0 must be a positive number or 'gamma'"),
        (["clusters", "{good}", "--e0", "many"], "--e0"),
        (
            ["clusters", "{good}", "--max-components", "0"],
            "--max-components: must be an integer >= 1",
        ),
        (["clusters", "{good}", "--draws", "0"], "--draws"),
        (["clusters", "{tiny}"], "too few"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, csv_files, capsys, args, message
):
    out = tmp_path / "out"
    names = {"dir": tmp_path, **csv_files}
    argv = [a.format(**names) for a in args] + ["--out", str(out), "--quiet"]
    assert cli.main(argv) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def test_unwritable_output_exits_2(tmp_path, csv_files, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "out"):
        assert (
            cli.main(
                [
                    "compare",
                    str(csv_files["good"]),
                    "--k",
                    "1-2",
                    "--method",
                    "map",
                    "--out",
                    str(out),
                    "--quiet",
                ]
            )
            == 2
        )
        _error_line(capsys)
    assert blocker.read_text() == "not a folder"


def test_compare_em_only_writes_table(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        cli.main(
            ["compare", "galaxies", "--k", "1-3", "--method", "map", "--out", str(out), "--quiet"]
        )
        == 0
    )
    table = pd.read_csv(out / "comparison.csv", index_col=0)
    assert sorted(table.index) == ["K=1 full", "K=2 full", "K=3 full"]
    md = (out / "comparison.md").read_text()
    assert "lower is better" in md and "Recommended:" in md
    assert "bayesgmm compare galaxies --k 1-3 --method map" in md
    assert "Recommended" in capsys.readouterr().out
    assert (out / "bic_by_model.png").read_bytes().startswith(b"\x89PNG")
    # one BIC figure (no second one in another sign), no LOO figure without a posterior
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert written == ["bic_by_model.png", "comparison.csv", "comparison.md"]
    _nothing_written(tmp_path, tmp_path / "absent")


def test_method_and_sampler_choices_come_from_one_list():
    from bayesgmm.core.methods import METHODS, SAMPLERS

    parser = cli.build_parser()
    for command in ("fit", "compare", "report"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "galaxies", "--k", "2", "--out", "o", "--method", "hmc"])
        for method in METHODS:
            args = parser.parse_args(
                [command, "galaxies", "--k", "2", "--out", "o", "--method", method]
            )
            assert args.method == method
    actions = {
        a.dest: a for a in cli.build_parser()._subparsers._group_actions[0].choices["fit"]._actions
    }
    assert tuple(actions["method"].choices) == METHODS
    assert tuple(actions["sampler"].choices) == SAMPLERS


def test_fit_map_passes_settings_to_the_estimator(tmp_path, monkeypatch):
    import bayesgmm.bayes.estimator

    seen = {}
    original = bayesgmm.bayes.estimator.BayesianGaussianMixture.fit

    def spy(self, X, y=None, sample_weight=None):
        seen.update(self.get_params())
        return original(self, X, y, sample_weight=sample_weight)

    monkeypatch.setattr(bayesgmm.bayes.estimator.BayesianGaussianMixture, "fit", spy)
    out = tmp_path / "fit"
    argv = [
        "fit",
        "faithful",
        "--k",
        "2",
        "--method",
        "map",
        "--seed",
        "5",
        "--draws",
        "7",
        "--covariance",
        "diag",
        "--quiet",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    assert (seen["method"], seen["random_state"], seen["draws"]) == ("map", 5, 7)
    assert (seen["em_n_init"], seen["prior"]) == ("auto", "default")
    assert (seen["covariance_type"], seen["progressbar"]) == ("diag", False)
    params = json.loads((out / "params.json").read_text())
    assert params["method"] == "map" and params["covariance_type"] == "diag"
    # the model itself is what BayesianGaussianMixture.save writes, read by bayesgmm.load
    model, saved = load(out, return_info=True)
    assert model.get_params()["random_state"] == 5 and model.method_ == "map"
    assert saved.metadata["data"]["columns"] == params["data"]["columns"]


@pytest.mark.parametrize("debug", [False, True])
def test_failure_mid_run_leaves_no_output(tmp_path, monkeypatch, capsys, debug):
    import bayesgmm.reporting.report

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bayesgmm.reporting.report, "markdown_table", explode)
    out = tmp_path / "cmp"
    argv = ["compare", "galaxies", "--k", "1-2", "--method", "map", "--out", str(out), "--quiet"]
    assert cli.main(argv + ["--debug"] * debug) == 1
    err = capsys.readouterr().err.strip().splitlines()
    # an unexpected error is one line; --debug puts the traceback before it
    assert err[-1].startswith("bayesgmm: internal error") and "disk on fire" in err[-1]
    assert (len(err) == 1) != debug
    assert ("Traceback (most recent call last):" in err[0]) == debug
    _nothing_written(tmp_path, out)


def test_interrupt_exits_130_and_leaves_no_output(tmp_path, monkeypatch, capsys):
    import bayesgmm.reporting.report

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bayesgmm.reporting.report, "markdown_table", interrupt)
    out = tmp_path / "cmp"
    assert (
        cli.main(
            ["compare", "galaxies", "--k", "1-2", "--method", "map", "--out", str(out), "--quiet"]
        )
        == 130
    )
    assert "interrupted" in capsys.readouterr().err
    _nothing_written(tmp_path, out)


def test_existing_folders_are_refused_or_replaced_whole(tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["compare", "galaxies", "--k", "1-2", "--method", "map", "--out", str(out), "--quiet"]
    # a non-empty folder that bayesgmm did not write is the user's: refused, untouched
    assert cli.main(args) == 2
    assert "--overwrite" in _error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    # --overwrite replaces it whole
    assert cli.main([*args, "--overwrite"]) == 0
    assert "K=1 full" in (out / "comparison.csv").read_text()
    assert not (out / "keep.txt").exists()
    # a folder bayesgmm wrote is replaced whole by the next run: no stale file survives
    (out / "stale.txt").write_text("left over")
    assert cli.main(args) == 0
    assert not (out / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_demo_without_posterior(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "--no-posterior", "--quiet"]) == 0
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 1000
    assert "MAP-EM" in capsys.readouterr().out


@pytest.mark.slow
def test_fit_round_trip_verdict_first_and_strict_exit_3(tmp_path, capsys):
    out = tmp_path / "fit"
    # 2 x 100 draws cannot reach 400 effective draws: the checks fail, --strict says so
    # (K=3: K=2 has two posterior modes, whose verdict names them instead)
    small = ["--draws", "100", "--tune", "200", "--chains", "2", "--quiet", "--strict"]
    argv = ["fit", "galaxies", "--k", "3", "--seed", "3", *small, "--out", str(out)]
    assert cli.main(argv) == cli.EXIT_DIAGNOSTICS == 3
    captured = capsys.readouterr()
    stdout = captured.out.splitlines()
    assert stdout[0].startswith("Verdict: the sampler checks FAILED")
    # the remedy: more draws (with the option to pass), or, when the ESS projected from
    # these draws is hopeless, a model that mixes (fewer components, a firmer prior)
    remedy = stdout[0][stdout[0].index("Remedy:") :]
    assert "--draws" in remedy or "fewer components" in remedy
    assert "exit status 3" in captured.err
    loaded = xr.open_datatree(out / "posterior.zarr", engine="zarr")
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in loaded.children
    params = json.loads((out / "params.json").read_text())
    saved = pd.read_csv(out / "summary.csv", index_col=0)
    draws = parameter_draws(loaded.posterior.to_dataset(), "full", params["data"]["columns"])
    again = posterior_summary(draws, ci_prob=0.89)
    pd.testing.assert_frame_equal(again, saved, check_dtype=False, check_names=False)
    assert len(saved) == 3 + 3 + 3 and saved["r_hat"].notna().all()
    md = (out / "summary.md").read_text()
    assert md.index("Verdict:") < md.index("max R-hat") < md.index("| weights[0] |")
    assert params["n_components"] == 3 and params["method"] == "nuts"
    assert params["command"].startswith("bayesgmm fit galaxies --k 3")
    mean = loaded.posterior["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(params["posterior_mean"]["means"], mean)
    table = pd.read_csv(out / "map_vs_posterior.csv")
    assert {"map", "lower", "upper", "map_in_interval"} <= set(table.columns)
    assert list(table["parameter"]) == list(saved.index)  # one name per parameter in every file


def test_fit_map_prints_a_point_estimate_table_of_free_parameters(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "wide.csv"
    frame = pd.DataFrame(rng.normal(size=(60, 5)), columns=[f"c{j}" for j in range(5)])
    frame.iloc[30:] += 4
    frame.to_csv(data, index=False)
    out = tmp_path / "fit"
    argv = ["fit", str(data), "--k", "2", "--covariance", "diag", "--method", "map"]
    assert cli.main([*argv, "--quiet", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("Verdict: MAP point estimate only")
    assert "nan" not in stdout.lower()
    saved = pd.read_csv(out / "summary.csv", index_col=0)
    assert list(saved.columns) == ["kind", "estimate"]
    assert len(saved) == 2 + 2 * 5 + 2 * 5  # weights, means, variances: no zeros
    assert "covariances[1, c4, c4]" in saved.index and "means[0, c3]" in stdout


def test_fit_noise_reports_the_noise_weight_and_predict_flags_outliers(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "outliers.csv"
    clusters = np.vstack([rng.normal(0, 0.5, (40, 2)), rng.normal(3, 0.5, (40, 2))])
    frame = pd.DataFrame(np.vstack([clusters, rng.uniform(-6, 9, (6, 2))]), columns=["a", "b"])
    frame.to_csv(data, index=False)
    out = tmp_path / "fit"
    argv = ["fit", str(data), "--k", "2", "--method", "map", "--noise", "--quiet"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert "noise_weight" in capsys.readouterr().out
    saved = pd.read_csv(out / "summary.csv", index_col=0)
    weights = saved.loc[saved["kind"] == "weights", "estimate"]
    assert list(weights.index) == ["weights[0]", "weights[1]", "noise_weight"]
    assert weights.sum() == pytest.approx(1.0)
    params = json.loads((out / "params.json").read_text())
    assert params["noise"]["map_weight"] == pytest.approx(weights["noise_weight"])
    assert cli.main(["predict", str(out), str(data), "--out", str(tmp_path / "p")]) == 0
    predictions = pd.read_csv(tmp_path / "p" / "predictions.csv", index_col=0)
    total = predictions[["p0", "p1", "p_noise"]].sum(axis=1)
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    assert (predictions["component"].iloc[80:] == -1).sum() >= 4  # the far background
    assert (predictions["component"].iloc[:80] == -1).sum() <= 1
    np.testing.assert_array_equal(
        predictions["component"] == -1,
        predictions["p_noise"] > predictions[["p0", "p1"]].max(axis=1),
    )


@pytest.mark.slow
def test_report_writes_markdown_and_html_with_figures(tmp_path):
    out = tmp_path / "rep"
    argv = ["report", "faithful", "--k", "1-2", "--seed", "1", *SMALL, "--out", str(out)]
    assert cli.main(argv) == 0
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    figures = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    assert {
        "figures/loo_comparison.png",
        "figures/bic_by_model.png",
        "figures/density.png",
        "figures/assignment.png",
        "figures/map_vs_posterior.png",
        "figures/ellipses.png",
        "figures/trace.png",
        "figures/rank.png",
    } <= set(figures)
    for name in figures:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000
    assert page.count("data:image/png;base64,") == len(figures)
    command = "bayesgmm " + " ".join(argv)
    assert command in md and command in page
    for text in ("Recommended:", "equal-tailed", "lower is better", "pymc", "Sampler diagnostics"):
        assert text in md
    # the answer first: K, structure, why, and the verdict, before the data and the tables
    assert md.index("## Answer") < md.index("**Recommended: K=") < md.index("## Data")
    assert md.index("Its posterior:") < md.index("## Data")
    _nothing_written(tmp_path, tmp_path / "absent")


def test_clusters_writes_the_answer_tables_and_figures(tmp_path, capsys):
    from bayesgmm import datasets
    from bayesgmm.selection.clusters import how_many_clusters

    out = tmp_path / "k"
    argv = ["clusters", "galaxies", "--out", str(out), "--draws", "300", "--burn", "200"]
    assert cli.main([*argv, "--seed", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    reference = how_many_clusters(
        datasets.load_galaxies(), 10, draws=300, burn=200, chains=2, random_state=3
    )
    assert printed[0] == reference.answer()
    assert printed[0].startswith("K+ = 3 with posterior probability")
    counts = pd.read_csv(out / "cluster_count.csv", index_col=0)
    assert list(counts.index) == list(range(1, 11))
    np.testing.assert_allclose(counts["probability"], reference.cluster_count.probabilities)
    assert counts["cumulative"].iloc[-1] == pytest.approx(1.0)
    partition = pd.read_csv(out / "partition.csv", index_col=0)
    assert len(partition) == 82 and list(partition.columns) == ["cluster", "certainty"]
    np.testing.assert_array_equal(partition["cluster"], reference.partitions.partition)
    assert partition["certainty"].dropna().between(0, 1).all()
    for png in ("similarity.png", "cluster_count.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "summary.md").read_text()
    assert reference.answer() in md and "full covariances" in md and "e0 = 0.01" in md
    assert "credible ball has radius" in md and "| n_clusters |" in md
    assert " ".join(argv) in md
    assert cli.main([*argv, "--e0", "gamma", "--quiet"]) == 0  # rerun replaces the folder
    assert "e0 ~ Gamma(10, 100)" in (out / "summary.md").read_text()


def test_demo_figure_has_a_legend_entry_per_cluster():
    X = np.random.default_rng(0).normal(size=(10, 2))
    labels = np.array([0] * 4 + [1] * 6)
    ax = cli._demo_figure(X, labels).axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["component 0 (4 points)", "component 1 (6 points)"]
    assert len(ax.collections) == 2 and ax.get_xlabel() and ax.get_title()


@pytest.fixture
def labelled_csv(tmp_path):
    """Two well-separated classes with a label column and one column 1000 times wider."""
    rng = np.random.default_rng(1)
    classes = np.repeat(["setosa", "virginica"], 40)
    offset = np.where(classes == "setosa", 0.0, 6.0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=80) + offset,
            "species": classes,
            "b": 1000 * (rng.normal(size=80) + offset),
        }
    )
    path = tmp_path / "labelled.csv"
    frame.to_csv(path, index=False)
    return path


def test_labels_scale_and_predict_round_trip(tmp_path, labelled_csv, capsys):
    out = tmp_path / "fit"
    argv = ["fit", str(labelled_csv), "--k", "2", "--method", "map", "--labels", "species"]
    assert cli.main([*argv, "--quiet", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "column scales differ by a factor of" in captured.err and "--scale" in captured.err
    assert "adjusted Rand index 1.000" in captured.out
    crosstab = pd.read_csv(out / "labels_vs_clusters.csv", index_col=0)
    assert crosstab.to_numpy().sum() == 80 and sorted(crosstab.to_numpy().ravel()) == [0, 0, 40, 40]
    params = json.loads((out / "params.json").read_text())
    assert params["data"]["columns"] == ["a", "b"] and params["scaling"] is None
    # --scale: standardised columns, no warning, the scaling saved for predict
    scaled = tmp_path / "scaled"
    assert cli.main([*argv, "--scale", "--quiet", "--out", str(scaled)]) == 0
    captured = capsys.readouterr()
    assert "scales differ" not in captured.err and "in sd units" in captured.out
    assert cli.SCALED_NOTE in (scaled / "summary.md").read_text()
    saved = json.loads((scaled / "params.json").read_text())["scaling"]
    assert saved["sd"][1] == pytest.approx(1000 * saved["sd"][0], rel=0.3)
    # predict new rows with the saved (scaled) model
    new = tmp_path / "new.csv"
    pd.DataFrame({"a": [0.0, 6.0, 3.0], "b": [0.0, 6000.0, 3000.0]}).to_csv(new, index=False)
    pred_out = tmp_path / "pred"
    assert cli.main(["predict", str(scaled), str(new), "--quiet", "--out", str(pred_out)]) == 0
    pred = pd.read_csv(pred_out / "predictions.csv", index_col="row")
    assert pred.loc[0, "component"] != pred.loc[1, "component"]
    assert pred.loc[0, "prob"] > 0.99 and pred.loc[1, "prob"] > 0.99
    np.testing.assert_allclose(pred[["p0", "p1"]].sum(axis=1), 1.0)
    assert (pred["p0_lower"] <= pred["p0"]).all() and (pred["p0"] <= pred["p0_upper"]).all()
    assert "3 rows assigned" in capsys.readouterr().out


def test_predict_refuses_a_folder_not_written_by_fit(tmp_path, labelled_csv, capsys):
    argv = ["predict", str(tmp_path), str(labelled_csv), "--out", str(tmp_path / "p")]
    assert cli.main(argv) == 2
    line = _error_line(capsys)
    assert "model.json" in line and "is not a saved bayesgmm model" in line


def test_prior_mle_needs_method_map(tmp_path, csv_files, capsys):
    argv = [
        "fit",
        str(csv_files["good"]),
        "--k",
        "2",
        "--prior",
        "mle",
        "--out",
        str(tmp_path / "o"),
    ]
    assert cli.main(argv) == 2
    assert "--prior mle" in _error_line(capsys)


def test_compare_passes_prior_and_n_init(tmp_path, monkeypatch):
    import bayesgmm.selection.compare

    seen = {}
    original = bayesgmm.selection.compare.compare

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(bayesgmm.selection.compare, "compare", spy)
    argv = ["compare", "galaxies", "--k", "1-2", "--method", "map", "--prior", "default"]
    assert cli.main([*argv, "--n-init", "2", "--quiet", "--out", str(tmp_path / "c")]) == 0
    assert (seen["em_prior"], seen["em_n_init"], seen["method"]) == ("default", 2, "map")


def test_help_shows_defaults_and_a_line_for_every_option():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"fit", "compare", "report", "predict", "demo"} <= set(commands)
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, (name, action.dest)
    text = commands["compare"].format_help()
    assert "(default: 1000)" in text and "(default: auto)" in text and "(default: None)" not in text


def test_compare_draws_its_one_bic_figure_from_the_comparison_it_prints(tmp_path, monkeypatch):
    """The command line's figure is ``plot_bic_models(compare(...))``: the API's, with the
    table's values in the table's sign and the recommendation circled."""
    import bayesgmm.reporting.plots
    from bayesgmm.selection.compare import ModelComparison

    drawn = []
    real = bayesgmm.reporting.plots.plot_bic_models

    def recording(comparison, **kwargs):
        fig = real(comparison, **kwargs)
        drawn.append((fig, comparison))
        return fig

    monkeypatch.setattr(bayesgmm.reporting.plots, "plot_bic_models", recording)
    out = tmp_path / "cmp"
    argv = ["compare", "faithful", "--k", "1-3", "--covariance", "full,diag", "--method", "map"]
    assert cli.main([*argv, "--quiet", "--out", str(out)]) == 0
    ((fig, comparison),) = drawn  # drawn once
    assert isinstance(comparison, ModelComparison)
    table = pd.read_csv(out / "comparison.csv", index_col=0)
    ax = fig.axes[0]
    assert "lower is better" in ax.get_ylabel() and "faithful" in ax.get_title()
    lines = {line.get_label(): line for line in ax.get_lines()}
    for label, model in (("full (VVV)", "full"), ("diag (VVI)", "diag")):
        rows = table[table["covariance_type"] == model].sort_values("n_components")
        np.testing.assert_allclose(lines[label].get_ydata(), rows["bic"], rtol=1e-12)
    best = table.loc[comparison.recommended]
    assert best["bic"] == table["bic"].min()
    (circle,) = [line for line in ax.get_lines() if line.get_label() == "_recommended"]
    assert circle.get_xdata()[0] == best["n_components"]
    assert circle.get_ydata()[0] == pytest.approx(best["bic"], rel=1e-12)


def test_compare_keeps_its_table_when_a_figure_fails(tmp_path, monkeypatch, capsys):
    import bayesgmm.reporting.plots

    def broken(*args, **kwargs):
        raise ValueError("Requested 42 subplots")

    monkeypatch.setattr(bayesgmm.reporting.plots, "plot_bic_models", broken)
    out = tmp_path / "cmp"
    argv = ["compare", "galaxies", "--k", "1-2", "--method", "map", "--quiet", "--out", str(out)]
    assert cli.main(argv) == 0
    assert "figure bic_by_model.png not written: Requested 42 subplots" in capsys.readouterr().err
    assert (out / "comparison.csv").exists() and not (out / "bic_by_model.png").exists()


def test_fit_weights_column_equals_replicated_rows(tmp_path, capsys):
    """``--weights COUNT`` fits the rows repeated COUNT times (MAP: same estimate)."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"])
    frame.iloc[20:] += 6.0
    frame["count"] = rng.integers(0, 4, size=40)
    weighted_csv, replicated_csv = tmp_path / "weighted.csv", tmp_path / "replicated.csv"
    frame.to_csv(weighted_csv, index=False)
    frame.loc[frame.index.repeat(frame["count"]), ["a", "b"]].to_csv(replicated_csv, index=False)
    maps = []
    for data, extra in ((weighted_csv, ["--weights", "count"]), (replicated_csv, [])):
        out = tmp_path / data.stem
        argv = ["fit", str(data), "--k", "2", "--method", "map", "--quiet", "--out", str(out)]
        assert cli.main(argv + extra) == 0
        params = json.loads((out / "params.json").read_text())
        assert params["data"]["columns"] == ["a", "b"]
        maps.append(params["map"])
    order = [np.argsort(np.asarray(m["means"])[:, 0]) for m in maps]
    for key in ("weights", "means", "covariances"):
        a, b = (np.asarray(m[key])[o] for m, o in zip(maps, order, strict=True))
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def _tree_bytes(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_output_folder_never_replaces_an_input(tmp_path, capsys):
    # the output folder is replaced whole: it may be neither the model nor hold the data
    rng = np.random.default_rng(0)
    folder = tmp_path / "project"
    folder.mkdir()
    data = folder / "mydata.csv"
    frame = pd.DataFrame(rng.normal(size=(60, 2)), columns=["x", "y"])
    frame.iloc[30:] += 5
    frame.to_csv(data, index=False)
    (folder / ".bayesgmm-output").write_text("an earlier run wrote here\n")  # a marker
    before = _tree_bytes(folder)
    fit = ["fit", str(data), "--k", "2", "--method", "map", "--quiet"]
    assert cli.main([*fit, "--out", str(folder)]) == 2
    assert "an input of this run" in capsys.readouterr().err
    assert _tree_bytes(folder) == before
    model = tmp_path / "model"
    assert cli.main([*fit, "--out", str(model)]) == 0
    saved = _tree_bytes(model)
    for out in (model, tmp_path / "." / "model"):
        assert cli.main(["predict", str(model), str(data), "--out", str(out), "--quiet"]) == 2
        assert "an input of this run" in capsys.readouterr().err
        assert _tree_bytes(model) == saved
    link = tmp_path / "link"
    link.symlink_to(model, target_is_directory=True)
    assert cli.main(["predict", str(model), str(data), "--out", str(link), "--quiet"]) == 2
    assert _tree_bytes(model) == saved and link.is_symlink()
    assert cli.main(["predict", str(model), str(data), "--out", str(tmp_path / "p")]) == 0
