"""What users hit (issue 27): no file ever lost, every interrupt clean, every message true.

One test per cause: an output folder reached through a symbolic link or one that cannot be
moved; messages that name the real problem (weights, feature combinations, bootstrap,
command-line columns, ``predict``'s data); far points and intervals at the edges; index-like
columns; interrupts of the command (while it loads, twice, and in the sparse Gibbs sampler).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture, cli, datasets
from bayesgmm.bayes.queries import nearest_components, softmax_or_nearest
from bayesgmm.core import io as _io
from bayesgmm.posterior.summaries import assignment_intervals
from bayesgmm.selection.compare import compare

FAITHFUL = np.asarray(datasets.load_faithful(), dtype=float)
ROOT = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture
def previous_output(tmp_path):
    """A folder an earlier bayesgmm run wrote, and a user's file beside it."""
    out = tmp_path / "real" / "results"
    out.mkdir(parents=True)
    (out / _io.MARKER).write_text("written by bayesgmm; replaced whole by the next run\n")
    (out / "summary.csv").write_text("previous,run\n1,2\n")
    (tmp_path / "real" / "notes.txt").write_text("the user's own file")
    return out


# ------------------------------------------------------------------------------------------
# Data loss


def test_out_through_a_symlink_keeps_the_link_and_leaves_no_entry(previous_output, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(previous_output, target_is_directory=True)
    notes = _snapshot(previous_output.parent)["notes.txt"]
    for run in range(2):
        with _io.atomic_directory(link) as tmp:
            (tmp / "summary.csv").write_text(f"run {run}\n")
        assert link.is_symlink() and link.resolve() == previous_output.resolve()
        assert (link / "summary.csv").read_text() == f"run {run}\n"
        assert _hidden(tmp_path) == [] and _hidden(previous_output.parent) == []
        assert (previous_output.parent / "notes.txt").read_bytes() == notes


def test_an_output_that_cannot_be_moved_is_one_error_and_leaves_no_entry(
    previous_output, monkeypatch
):
    before = _snapshot(previous_output.parent)
    real_replace = os.replace

    def refuse_to_move_the_output(src, dst):
        if Path(src) == previous_output:  # e.g. an immutable folder (chattr +i)
            raise PermissionError(1, "Operation not permitted")
        return real_replace(src, dst)

    monkeypatch.setattr(_io, "_exchange", lambda first, second: False)
    monkeypatch.setattr(_io.os, "replace", refuse_to_move_the_output)
    with (
        pytest.raises(_io.OutputFolderError, match="cannot replace the output folder"),
        _io.atomic_directory(previous_output) as tmp,
    ):
        (tmp / "summary.csv").write_text("new")
    assert _snapshot(previous_output.parent) == before
    assert _hidden(previous_output.parent) == []


# ------------------------------------------------------------------------------------------
# Messages that name the real cause (library)


def _fit(**kwargs):
    return GaussianMixture(2, random_state=0, **kwargs)


def test_sample_weight_messages_name_the_weights():
    with pytest.raises(ValueError, match="sample_weight sums to inf") as caught:
        _fit().fit(FAITHFUL, sample_weight=np.full(len(FAITHFUL), 1e307))
    assert "missing" not in str(caught.value)
    one = np.zeros(len(FAITHFUL))
    one[0] = 1.0
    with pytest.raises(ValueError, match="positive sample_weight"):
        _fit().fit(FAITHFUL, sample_weight=one)


def test_noise_and_missing_entries_cannot_be_combined():
    X = FAITHFUL.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="cannot be combined") as caught:
        _fit(noise=True, missing="marginalize").fit(X)
    assert "noise=True" in str(caught.value) and "missing" in str(caught.value)


def test_tiny_equal_weights_give_the_unweighted_mle():
    plain = _fit().fit(FAITHFUL)
    for scale in (1e-6, 1e-9):
        tiny = _fit().fit(FAITHFUL, sample_weight=np.full(len(FAITHFUL), scale))
        np.testing.assert_allclose(tiny.means_, plain.means_, rtol=1e-8)
        np.testing.assert_allclose(tiny.lower_bound_, plain.lower_bound_, rtol=1e-10)


def test_max_iter_0_says_that_nothing_was_fitted():
    with pytest.warns(ConvergenceWarning, match="max_iter=0"):
        model = _fit(max_iter=0).fit(FAITHFUL)
    assert model.lower_bound_ == -np.inf and not model.converged_


def test_bootstrap_names_the_real_reason():
    noisy = _fit(noise=True).fit(FAITHFUL)
    with pytest.raises(ValueError, match=r"noise component \(noise=True\)") as caught:
        noisy.bootstrap(FAITHFUL, n_boot=2)
    assert "sample_weight" not in str(caught.value)
    X = FAITHFUL.copy()
    X[0, 0] = np.nan
    missing = _fit(missing="marginalize").fit(X)
    with pytest.raises(ValueError, match='kind="parametric"') as caught:
        missing.bootstrap(X, n_boot=2)
    assert "sample_weight and" not in str(caught.value)
    plain = _fit().fit(FAITHFUL)
    with pytest.raises(ValueError, match="not the data this estimator was fitted to"):
        plain.bootstrap(FAITHFUL * 2 + 5, n_boot=2)
    assert plain.bootstrap(FAITHFUL, n_boot=2, random_state=0).n_boot == 2


def test_compare_takes_one_number_of_components():
    one = compare(FAITHFUL, 2, method="map", random_state=0)
    listed = compare(FAITHFUL, [2], method="map", random_state=0)
    pd.testing.assert_frame_equal(one.table, listed.table)


# ------------------------------------------------------------------------------------------
# Messages that name the real cause (command line)


@pytest.fixture
def table_csv(tmp_path):
    frame = pd.DataFrame(FAITHFUL, columns=["eruptions", "waiting"])
    frame["count"] = np.arange(len(frame)) % 3 + 1
    frame["species"] = np.where(frame["eruptions"] > 3, "long", "short")
    frame["note"] = "text"
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    gap = frame.copy()
    gap.loc[3, "species"] = np.nan
    gap.to_csv(tmp_path / "gap.csv", index=False)
    return path


CLI_ERRORS = [
    ("weights-text", ["--weights", "note"], "--weights column 'note' of", "not numeric"),
    (
        "weights-also-a-feature",
        ["--columns", "eruptions,waiting,count", "--weights", "count"],
        "named by both --weights and --columns",
        "drop it from --columns",
    ),
    (
        "labels-also-a-feature",
        ["--columns", "eruptions,waiting,species", "--labels", "species"],
        "named by both --labels and --columns",
        "drop it from --columns",
    ),
    (
        "weights-and-labels-one-column",
        ["--weights", "count", "--labels", "count"],
        "--labels and --weights both name column 'count'",
        "",
    ),
    ("noise-bootstrap", ["--noise", "--bootstrap", "5"], "--bootstrap cannot be combined", "noise"),
]


@pytest.mark.parametrize(
    ("extra", "fragment", "also"), [c[1:] for c in CLI_ERRORS], ids=[c[0] for c in CLI_ERRORS]
)
def test_cli_column_checks_name_the_real_problem(
    table_csv, tmp_path, capsys, extra, fragment, also
):
    columns = [] if "--columns" in extra else ["--columns", "eruptions,waiting"]
    argv = ["fit", str(table_csv), "--k", "2", "--method", "map", "--out", str(tmp_path / "o")]
    assert cli.main([*argv, *columns, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bayesgmm: error: "), err
    assert fragment in err[0] and also in err[0], err[0]
    assert "not in" not in err[0] and "NaN or infinity" not in err[0]
    assert not (tmp_path / "o").exists()


def test_cli_fit_map_writes_its_bootstrap_and_assignments(tmp_path, capsys):
    out = tmp_path / "fit"
    argv = ["fit", "faithful", "--k", "2", "--method", "map", "--bootstrap", "3", "--seed", "1"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert "bootstrap.csv" in capsys.readouterr().err  # the "written to" line names it
    table = pd.read_csv(out / "bootstrap.csv")
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert list(table["parameter"]) == list(summary.index)  # the same names in every file
    assert (table["boot_se"] > 0).all()
    assert (table["boot_lower"] <= table["boot_upper"]).all()
    rows = pd.read_csv(out / "assignments.csv", index_col="row")  # per-row assignments
    assert len(rows) == len(FAITHFUL) and set(rows["component"]) == {0, 1}
    assert not [c for c in rows.columns if c.endswith("_lower")]  # a MAP fit: no intervals
    assert (out / "clusters.png").stat().st_size > 1000  # and a figure of the fit


def test_cli_labels_with_empty_cells_are_named(table_csv, tmp_path, capsys):
    argv = ["fit", str(table_csv.parent / "gap.csv"), "--k", "2", "--method", "map"]
    argv += ["--columns", "eruptions,waiting", "--labels", "species", "--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--labels column 'species'" in err and "1 empty cell(s) (row(s) [3])" in err


@pytest.mark.parametrize(
    ("header", "values"),
    [
        ("rownames", np.arange(1, 273)),
        ("id", np.arange(1000, 1272)),
        ("n", np.arange(1, 273)),  # the row numbers 1..N in the first column
        ("index", np.arange(272)),
    ],
)
def test_index_like_columns_are_dropped_with_a_warning(tmp_path, header, values):
    frame = pd.DataFrame(FAITHFUL, columns=["eruptions", "waiting"])
    frame.insert(0, header, values)
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    with pytest.warns(UserWarning, match=rf"dropping column\(s\) \['{header}'\]"):
        data = cli.load_dataset(str(path), None, 2)
    assert data.feature_names == ["eruptions", "waiting"]
    named = cli.load_dataset(str(path), f"{header},eruptions", 2)  # --columns keeps it
    assert named.feature_names == [header, "eruptions"]


def test_heavily_rounded_columns_are_flagged(tmp_path, capsys):
    rng = np.random.default_rng(3)
    duration = rng.normal(3.5, 1.0, size=100)
    duration[:20] = 4.0  # as MASS geyser: many durations recorded as exactly 4.0
    frame = pd.DataFrame({"duration": duration, "waiting": rng.normal(70, 10, size=100)})
    path = tmp_path / "geyser.csv"
    frame.to_csv(path, index=False)
    cli.load_dataset(str(path), None, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "bayesgmm: warning: column 'duration' is heavily rounded: 4 occurs 20 times (20% of the "
        "rows); components can collapse onto such ties (check the clusters, or use fewer "
        "components)"
    ]
    cli.load_dataset("faithful", None, 2)  # integer minutes, but no value in 10% of the rows
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------
# predict: the data it reads, the rows at the edges, what it writes


@pytest.fixture(scope="module")
def map_fit(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "model"
    argv = ["fit", "faithful", "--k", "2", "--method", "map", "--seed", "1", "--quiet"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    return out


def test_predict_on_a_header_only_csv_says_no_data_rows(map_fit, tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("eruptions,waiting\n")
    assert cli.main(["predict", str(map_fit), str(path), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has a header but no data rows" in err[0]


def test_predict_keeps_identifiers_and_writes_finite_readable_numbers(map_fit, tmp_path):
    frame = pd.DataFrame(
        {
            "name": ["far", "near", "between"],
            "eruptions": [1e200, 2.0, 3.3],
            "waiting": [-1e200, 55.0, 68.0],
        }
    )
    path = tmp_path / "new.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "p"
    assert cli.main(["predict", str(map_fit), str(path), "--out", str(out), "--quiet"]) == 0
    text = (out / "predictions.csv").read_text()
    table = pd.read_csv(out / "predictions.csv", index_col="row")
    assert list(table["name"]) == ["far", "near", "between"]
    probabilities = table.drop(columns=["name", "component"]).to_numpy()
    assert np.isfinite(probabilities).all()
    assert table.loc[0, "prob"] == 1.0  # wholly on the nearest component
    numbers = [
        cell for cell in re.split(r"[,\n]", text) if re.fullmatch(r"-?[\d.]+(e[-+]\d+)?", cell)
    ]
    digits = [len(cell.lstrip("-").split("e")[0].replace(".", "").lstrip("0")) for cell in numbers]
    assert numbers and max(digits) <= 7, text


def test_far_rows_go_to_the_nearest_component_under_every_draw():
    from bayesgmm.posterior.draws import log_joint_densities

    weights = np.array([[0.5, 0.5], [0.3, 0.7], [0.6, 0.4]])
    means = np.array([[[0.0, 0.0], [10.0, 0.0]]] * 3)
    covs = np.broadcast_to(np.eye(2), (3, 2, 2, 2)).copy()
    covs[:, 1] *= 4.0  # component 1 is the wider, so the nearer in Mahalanobis distance ...
    covs[2, 0] *= 1e6  # ... except in draw 2
    X = np.array([[1e200, 1e199], [1.0, 0.0], [1e200, np.nan]])
    joint = log_joint_densities(X, weights, means, covs)
    assert not np.isfinite(joint[:, [0, 2]]).any()  # every density of the far rows underflows
    resp = softmax_or_nearest(joint, X, weights, means, covs)
    assert np.isfinite(resp).all()
    np.testing.assert_allclose(resp.sum(axis=-1), 1.0)
    for row in (0, 2):
        np.testing.assert_array_equal(resp[:, row].argmax(axis=-1), [1, 1, 0])
        np.testing.assert_array_equal(resp[:, row].max(axis=-1), 1.0)
    nearest = nearest_components(X[[0, 2]], weights, means, covs)
    np.testing.assert_array_equal(nearest, [[1, 1], [1, 1], [0, 0]])


def test_a_probability_lies_inside_its_own_interval():
    # 95 draws at 1 - 1e-12, 5 at 0.5: the mean lies below the equal-tailed lower bound
    column = np.r_[np.full(95, 1 - 1e-12), np.full(5, 0.5)]
    resp = np.stack([column, 1 - column], axis=-1)[:, None, :]
    mean, lower, upper, component = assignment_intervals(resp, 0.89)
    assert component.tolist() == [0]
    assert np.all(lower <= mean) and np.all(mean <= upper)


# ------------------------------------------------------------------------------------------
# Interrupts of the command (real processes)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}


def _python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a Python process of its own (the package importable)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120
    )


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bayesgmm.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _wait_for(proc: subprocess.Popen, cue: str, timeout: float = 300) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if cue in line:
            return lines
    raise AssertionError(f"no {cue!r} in {lines}")


def test_importing_the_cli_leaves_a_library_users_signals_alone():
    # in a process of its own, with Python's handler installed first: a process started in
    # the background inherits SIGINT ignored, and this one may have imported the CLI already
    code = (
        "import signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import bayesgmm.cli\n"
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr


def test_ctrl_c_while_the_command_loads_is_one_line():
    code = (
        "import os, signal, sys, time\n"
        "sys.argv[0] = 'bayesgmm'\n"
        "import bayesgmm.cli\n"
        "from bayesgmm.cli.start import interrupted_at_start\n"
        "assert signal.getsignal(signal.SIGINT) is interrupted_at_start\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(30)\n"
    )
    done = _python(code)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "bayesgmm: interrupted; nothing written"


@pytest.mark.slow
def test_ctrl_c_twice_during_fit_exits_130(previous_output):
    before = _snapshot(previous_output.parent)
    argv = ["fit", "faithful", "--k", "2", "--method", "map", "--n-init", "60", "--seed", "1"]
    proc = _start([*argv, "--out", str(previous_output)])
    try:
        _wait_for(proc, "fitting K=2")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, rest
    assert rest.strip().splitlines()[-1] == "bayesgmm: interrupted; nothing written"
    assert "Traceback" not in rest
    assert _snapshot(previous_output.parent) == before
    assert _hidden(previous_output.parent) == []


def test_a_second_interrupt_while_the_first_is_being_handled_still_exits_130(monkeypatch, capsys):
    """The race behind one exit status -2 of the test above (under load): the second Ctrl-C
    lands between catching the first interrupt and recording that main is exiting, so the
    handler raises again inside main's ``except``; it must not escape main."""
    import argparse
    import importlib
    from types import SimpleNamespace

    command = importlib.import_module("bayesgmm.cli.main")  # the module, not the function

    class SecondPress(list):
        armed = True

        def append(self, item):  # main's first step in its except: the signal comes first
            if self.armed:
                self.armed = False
                raise KeyboardInterrupt
            super().append(item)

    def interrupted(args, progress):
        raise KeyboardInterrupt

    args = argparse.Namespace(debug=False, quiet=True, func=interrupted)
    monkeypatch.setattr(command, "build_parser", lambda: SimpleNamespace(parse_args=lambda a: args))
    monkeypatch.setattr(command, "_EXITING", SecondPress())
    try:
        status = command.main([])
    except KeyboardInterrupt:
        pytest.fail("the second interrupt escaped main (the process would die by the signal)")
    assert status == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["bayesgmm: interrupted; nothing written"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "status", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_signal_during_the_sparse_gibbs_sampler_is_honoured_at_once(
    previous_output, signum, status, word
):
    before = _snapshot(previous_output.parent)
    argv = ["clusters", "faithful", "--draws", "200000", "--burn", "10", "--seed", "1"]
    proc = _start([*argv, "--out", str(previous_output)])
    try:
        _wait_for(proc, "sampling the sparse finite mixture")
        time.sleep(3.0)  # past the k-means starts, inside the compiled sweeps
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signum)
        sent = time.monotonic()
        rest = proc.communicate(timeout=120)[1]
        seconds = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, rest
    assert rest.strip().splitlines()[-1] == f"bayesgmm: {word}; nothing written"
    assert seconds < 5.0, seconds  # about 1 s: the sweeps' chunk, then the exit
    assert _snapshot(previous_output.parent) == before
    assert _hidden(previous_output.parent) == []


# ------------------------------------------------------------------------------------------
# The demo: one labelling, and what the posterior adds


def test_demo_figure_rings_the_uncertain_points():
    X = np.random.default_rng(0).normal(size=(10, 2))
    labels = np.array([0] * 4 + [1] * 6)
    uncertain = np.zeros(10, dtype=bool)
    uncertain[[3, 4]] = True
    ax = cli._demo_figure(X, labels, uncertain=uncertain).axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[-1] == "uncertain assignment (2 points)"


@pytest.mark.slow
def test_demo_uses_one_labelling_everywhere(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), "--seed", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    printed = dict(re.findall(r"component (\d): weight (\d\.\d{3})", out))
    table = dict(re.findall(r"w\[(\d)\]\s+(\d\.\d{3})", out))  # the MAP column of the table
    assert printed == table and len(printed) == 2, out
