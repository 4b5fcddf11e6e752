"""Hostile input, table-driven: every failure is one clear error, every valid input a finite fit.

Four tables:

* ``API_ERRORS``: input to the Python API -> exception type and a fragment of its message.
* ``API_FINITE``: degenerate but valid input -> finite, valid results (and the warning, if any).
* ``CLI_CASES``: a command line -> exit status and a fragment of its one stderr line.
* scale invariance (hypothesis): multiplying the data by ``10**s`` changes nothing but units.

Then output safety: a user's folder survives, a failed or interrupted overwrite (SIGINT and
SIGTERM sent to a real ``python -m bayesgmm.cli fit`` while it samples) leaves the previous
output byte-identical, and a successful overwrite leaves no stale file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

from bayesgmm import GaussianMixture, cli, datasets
from bayesgmm.core.exceptions import DegenerateFitWarning, NumericalError
from bayesgmm.em.steps import LOG_DENSITY_FLOOR
from bayesgmm.reporting.report import markdown_table
from bayesgmm.selection.compare import compare

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
RNG = np.random.default_rng(20261126)
BLOBS, BLOB_LABELS, _ = datasets.make_mixture(150, 3, 2, separation=4.0, random_state=0)
NORMAL = RNG.normal(size=(60, 2))
COLLINEAR = np.c_[NORMAL, NORMAL @ [2.0, -1.0]]
CONSTANT = np.c_[NORMAL, np.full(60, 3.0)]
DUPLICATE_ROWS = np.repeat(NORMAL[:2], 30, axis=0)
WIDE = RNG.normal(size=(3, 5))
SINGULAR_PRECISION = np.stack([np.eye(2), np.array([[1.0, 1.0], [1.0, 1.0]])])
ASYMMETRIC_PRECISION = np.stack([np.eye(2), np.array([[1.0, 0.5], [-0.5, 1.0]])])


def _fit(X, k=2, **kwargs):
    kwargs.setdefault("random_state", 0)
    return lambda: GaussianMixture(k, **kwargs).fit(X)


# ------------------------------------------------------------------------------------------
# API: (id, call, exception type, message fragment)
API_ERRORS = [
    ("constant-mle", _fit(CONSTANT), ValueError, "constant column 2"),
    ("constant-map", _fit(CONSTANT, prior="default"), ValueError, "constant"),
    ("collinear-map", _fit(COLLINEAR, prior="default"), ValueError, "perfectly collinear"),
    ("duplicated-rows-map", _fit(DUPLICATE_ROWS, prior="default"), ValueError, "distinct rows"),
    ("n-le-d-map", _fit(WIDE, k=1, prior="default"), ValueError, "n_samples=3 <= n_features=5"),
    ("tiny-scale-map", _fit(NORMAL * 1e-300, prior="default"), ValueError, "too small"),
    ("huge-scale-map", _fit(NORMAL * 1e200, prior="default"), ValueError, "too large"),
    ("huge-scale-mle", _fit(NORMAL * 1e200), NumericalError, "cannot be represented"),
    ("tiny-scale-mle", _fit(NORMAL * 1e-300), NumericalError, "cannot be represented"),
    ("nan", _fit(np.where(NORMAL > 2, np.nan, NORMAL)), ValueError, "NaN"),
    ("inf", _fit(np.where(NORMAL > 2, np.inf, NORMAL)), ValueError, "infinity"),
    ("one-dimensional", _fit(NORMAL[:, 0]), ValueError, "reshape(-1, 1)"),
    ("three-dimensional", _fit(NORMAL.reshape(3, 20, 2)), ValueError, "2-D"),
    ("no-rows", _fit(np.empty((0, 2))), ValueError, "n_samples=0"),
    ("no-columns", _fit(np.empty((10, 0))), ValueError, "0 feature"),
    ("complex", _fit(NORMAL + 1j), ValueError, "Complex"),
    ("strings", _fit(np.array([["a", "b"], ["c", "d"]])), TypeError, "non-numeric"),
    ("bool-array", _fit(NORMAL > 0), TypeError, "boolean"),
    (
        "bool-frame",
        _fit(pd.DataFrame({"a": NORMAL[:, 0], "b": NORMAL[:, 1] > 0})),
        TypeError,
        "boolean values in columns ['b']",
    ),
    (
        "object-frame",
        _fit(pd.DataFrame({"a": NORMAL[:, 0], "b": ["x"] * 60})),
        TypeError,
        "non-numeric columns ['b']",
    ),
    ("sparse", _fit(sp.csr_matrix(NORMAL)), TypeError, "sparse"),
    ("k-above-n", _fit(NORMAL[:3], k=5), ValueError, "n_components=5 must be <= n_samples=3"),
    ("k-zero", _fit(NORMAL, k=0), ValueError, "n_components must be >= 1"),
    ("k-float", _fit(NORMAL, k=2.5), TypeError, "n_components must be an integer, got 2.5"),
    ("k-numpy-float", _fit(NORMAL, k=np.float64(1.0)), TypeError, "got 1 (float64)"),
    ("random-state-str", _fit(NORMAL, random_state="abc"), TypeError, "random_state"),
    ("random-state-negative", _fit(NORMAL, random_state=-1), ValueError, "non-negative"),
    (
        "precisions-singular",
        _fit(NORMAL, means_init=NORMAL[:2], precisions_init=SINGULAR_PRECISION),
        ValueError,
        "precisions_init[1] is not symmetric positive definite",
    ),
    (
        "precisions-asymmetric",
        _fit(NORMAL, precisions_init=ASYMMETRIC_PRECISION),
        ValueError,
        "precisions_init[1]",
    ),
    (
        "precisions-negative-diag",
        _fit(NORMAL, covariance_type="diag", precisions_init=-np.ones((2, 2))),
        ValueError,
        "must be positive",
    ),
    (
        "precisions-tied-singular",
        _fit(NORMAL, covariance_type="tied", precisions_init=np.zeros((2, 2))),
        ValueError,
        "precisions_init is not symmetric positive definite",
    ),
    (
        "weights-not-summing",
        _fit(NORMAL, weights_init=np.array([0.5, 0.6])),
        ValueError,
        "sum to 1",
    ),
    ("means-wrong-shape", _fit(NORMAL, means_init=np.zeros((3, 2))), ValueError, "shape"),
    ("reg-covar-negative", _fit(NORMAL, reg_covar=-1.0), ValueError, "reg_covar"),
    ("reg-covar-nan", _fit(NORMAL, reg_covar=np.float64("nan")), ValueError, "got nan"),
    ("tol-numpy", _fit(NORMAL, tol=np.float64(-1.0)), ValueError, "got -1"),
    ("covariance-type", _fit(NORMAL, covariance_type="round"), ValueError, "round"),
    ("prior-name", _fit(NORMAL, prior="flat"), ValueError, "prior must be"),
    ("init-params", _fit(NORMAL, init_params="bogus"), ValueError, "init_params"),
    (
        "compare-float-k",
        lambda: compare(NORMAL, [1, 2.7], method="map"),
        TypeError,
        "n_components must be an integer, got 2.7",
    ),
    ("compare-empty-k", lambda: compare(NORMAL, [], method="map"), ValueError, "empty"),
    ("compare-zero-k", lambda: compare(NORMAL, [0, 1], method="map"), ValueError, ">= 1"),
    (
        "compare-covariance",
        lambda: compare(NORMAL, [1], ["round"], method="map"),
        ValueError,
        "covariance_types",
    ),
    ("compare-method", lambda: compare(NORMAL, [1], method="hmc"), ValueError, "method"),
]


def _with_random_state(case):
    """``random_state=`` in a row of the table stands for the estimator's random_state."""
    return case


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [pytest.param(call, error, fragment, id=name) for name, call, error, fragment in API_ERRORS],
)
def test_api_error_names_the_cause(call, error, fragment):
    with pytest.raises(error) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    message = str(info.value)
    assert fragment in message
    assert "np.float64" not in message and "\n" not in message


def _check_fitted(model, X):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(model, name))), name
    assert np.isfinite(model.lower_bound_)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(np.isfinite(model.score_samples(X)))


def _identical_cluster():
    return np.r_[NORMAL, np.tile([[5.0, 5.0]], (20, 1))]


def _correlated():
    x = RNG.normal(size=200)
    return np.c_[x, x + 1e-4 * RNG.normal(size=200), RNG.normal(size=200)]


# (id, data, estimator settings, warning expected or None)
API_FINITE = [
    ("n-equals-k-mle", NORMAL[:3], dict(n_components=3), DegenerateFitWarning),
    (
        "n-equals-k-map",
        NORMAL[:4],
        dict(n_components=4, covariance_type="diag", prior="default"),
        None,
    ),
    ("duplicated-points", np.r_[NORMAL, NORMAL], dict(n_components=2), None),
    ("identical-cluster-mle", _identical_cluster(), dict(n_components=2), DegenerateFitWarning),
    ("identical-cluster-map", _identical_cluster(), dict(n_components=2, prior="default"), None),
    ("correlated-mle", _correlated(), dict(n_components=2), None),
    ("correlated-map", _correlated(), dict(n_components=2, prior="default"), None),
    ("d-close-to-n-map", RNG.normal(size=(12, 10)), dict(n_components=2, prior="default"), None),
    ("float32", BLOBS.astype(np.float32), dict(n_components=3), None),
    ("integers", np.round(BLOBS * 10).astype(np.int64), dict(n_components=3), None),
    ("scale-1e150-mle", BLOBS * 1e150, dict(n_components=3), None),
    ("scale-1e-8-map", BLOBS * 1e-8, dict(n_components=3, prior="default"), None),
    ("offset-1e12", BLOBS + 1e12, dict(n_components=3), None),
    (
        "spherical-mixed-units",
        BLOBS * [1e-6, 1e6],
        dict(n_components=3, covariance_type="spherical"),
        None,
    ),
]


@pytest.mark.parametrize(
    ("X", "kwargs", "warning"),
    [pytest.param(X, kw, w, id=name) for name, X, kw, w in API_FINITE],
)
def test_degenerate_but_valid_data_gives_a_finite_fit(X, kwargs, warning):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = GaussianMixture(random_state=0, **kwargs).fit(X)
    _check_fitted(model, np.asarray(X, dtype=np.float64))
    assert model.means_.dtype == np.float64
    degenerate = [w for w in caught if issubclass(w.category, DegenerateFitWarning)]
    if warning is None:
        assert not degenerate, [str(w.message) for w in degenerate]
    else:
        assert degenerate and "prior='default'" in str(degenerate[0].message)


def test_tiny_clusters_are_found():
    # sd 1e-4 clusters 1e-3 apart: an absolute reg_covar of 1e-6 (variance of sd 1e-3) used
    # to swamp them (ARI 0); relative to the data's variance it does not.
    centres = np.array([[0.0, 0.0], [1e-3, 0.0], [0.0, 1e-3]])
    labels = np.repeat(np.arange(3), 50)
    X = centres[labels] + 1e-4 * RNG.normal(size=(150, 2))
    model = GaussianMixture(3, random_state=0).fit(X)
    assert adjusted_rand_score(labels, model.predict(X)) == 1.0
    assert model.converged_


@pytest.mark.parametrize("distance", [1e10, 1e200, 1e300])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_away_points_get_finite_predictions(distance, covariance_type):
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(BLOBS)
    far = np.array([[distance, 0.0], [-distance, distance], [0.0, -distance]])
    proba = model.predict_proba(far)
    log_density = model.score_samples(far)
    assert np.all(np.isfinite(proba)) and np.all(np.isfinite(log_density))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(log_density >= LOG_DENSITY_FLOOR) and np.all(log_density < -1e6)
    labels = model.predict(far)
    assert np.all((labels >= 0) & (labels < 3))
    if distance >= 1e200:  # underflow: the nearest component in Mahalanobis distance,
        # which there is distance**2 * u' inv(Sigma_k) u for the direction u (means negligible)
        mahalanobis = [
            [u @ np.linalg.solve(c, u) for c in model.params_.full_covariances()]
            for u in far / distance
        ]
        np.testing.assert_array_equal(labels, np.argmin(mahalanobis, axis=1))


@pytest.mark.parametrize("scale", [1e-6, 1e120])
def test_out_of_core_fit_has_the_same_units_semantics(scale):
    da = pytest.importorskip("dask.array")
    X = BLOBS * scale
    in_memory = GaussianMixture(3, random_state=0, tol=1e-8).fit(X)
    chunked = GaussianMixture(3, random_state=0, tol=1e-8).fit(da.from_array(X, chunks=(50, 2)))
    order = np.argsort(chunked.means_[:, 0])
    ref_order = np.argsort(in_memory.means_[:, 0])
    np.testing.assert_allclose(
        chunked.means_[order], in_memory.means_[ref_order], rtol=1e-4, atol=1e-4 * scale
    )
    assert chunked.lower_bound_ == pytest.approx(in_memory.lower_bound_, rel=1e-4, abs=1e-4)


def test_markdown_table_escapes_column_names():
    frame = pd.DataFrame({"<script>alert(1)</script>": [1.0], "a\nb|c": ["x<y"]})
    text = markdown_table(frame)
    lines = text.splitlines()
    assert len(lines) == 3
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "a b\\|c" in lines[0] and "x&lt;y" in lines[2]


# ------------------------------------------------------------------------------------------
# Scale invariance: 10**s for s in -8..150, four structures, MLE and MAP.


def _match(reference: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Permutation ``p`` with ``p[labels] == reference`` (asserting it exists)."""
    table = pd.crosstab(labels, reference)
    assert (table.to_numpy() > 0).sum(axis=1).max() == 1, table
    return table.to_numpy().argmax(axis=1)


_REFERENCE: dict = {}


def _reference(covariance_type, prior):
    key = (covariance_type, prior)
    if key not in _REFERENCE:
        _REFERENCE[key] = GaussianMixture(
            3, covariance_type=covariance_type, prior=prior, random_state=0
        ).fit(BLOBS)
    return _REFERENCE[key]


@settings(max_examples=40, deadline=None)
@given(
    exponent=st.integers(-8, 150),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    prior=st.sampled_from([None, "default"]),
)
def test_fit_is_invariant_to_the_units(exponent, covariance_type, prior):
    scale = 10.0**exponent
    ref = _reference(covariance_type, prior)
    model = GaussianMixture(3, covariance_type=covariance_type, prior=prior, random_state=0).fit(
        BLOBS * scale
    )
    labels = model.predict(BLOBS * scale)
    perm = _match(ref.predict(BLOBS), labels)
    order = np.argsort(perm)
    np.testing.assert_allclose(model.weights_[order], ref.weights_, rtol=1e-6)
    np.testing.assert_allclose(model.means_[order] / scale, ref.means_, rtol=1e-6, atol=1e-9)
    covariances = model.covariances_ / scale**2
    ref_cov = ref.covariances_
    if covariance_type != "tied":
        covariances = covariances[order]
    np.testing.assert_allclose(covariances, ref_cov, rtol=1e-6, atol=1e-12)
    if prior is None:  # the per-sample log-likelihood shifts by -d log(scale)
        assert model.lower_bound_ == pytest.approx(ref.lower_bound_ - 2 * np.log(scale))


@pytest.mark.parametrize("exponent", [-6, 80])
def test_compare_em_is_invariant_to_the_units(exponent):
    scale = 10.0**exponent
    ref = compare(BLOBS, [1, 2, 3], ["full", "diag"], method="map", random_state=0)
    scaled = compare(BLOBS * scale, [1, 2, 3], ["full", "diag"], method="map", random_state=0)
    assert scaled.recommended == ref.recommended
    # log L shifts by -N d log(scale), so BIC = -2 log L + p log N by +2 N d log(scale); d = 2
    shift = 2 * BLOBS.shape[0] * 2 * np.log(scale)
    np.testing.assert_allclose(
        scaled.table["bic"].to_numpy(), ref.table["bic"].to_numpy() + shift, rtol=1e-6
    )


# ------------------------------------------------------------------------------------------
# The command line: (id, argv with {dir} for the data folder, exit status, stderr fragment)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    a, b = RNG.normal(size=40), RNG.normal(size=40)
    frames = {
        "good": pd.DataFrame({"a": a, "b": b}),
        "collinear": pd.DataFrame({"a": a, "b": b, "c": a + b}),
        "wide": pd.DataFrame(RNG.normal(size=(3, 6)), columns=list("abcdef")),
        "huge": pd.DataFrame({"a": a * 1e200, "b": b * 1e200}),
        "tiny": pd.DataFrame({"a": a * 1e-300, "b": b * 1e-300}),
        "constant": pd.DataFrame({"a": a, "b": 1.0}),
        "duplicated": pd.DataFrame({"a": [1.0, 2.0] * 20, "b": [3.0, 5.0] * 20}),
        "text": pd.DataFrame({"a": a, "label": ["x"] * 40}),
        "boolean": pd.DataFrame({"a": a, "flag": a > 0}),
        "missing": pd.DataFrame({"a": np.where(a > 1, np.nan, a), "b": b}),
        "scaled": pd.DataFrame(BLOBS * 1e100, columns=["x", "y"]),
        "blobs": pd.DataFrame(BLOBS, columns=["x", "y"]),
    }
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    frames["good"].to_csv(folder / "indexed.csv")  # a pandas index: column "Unnamed: 0"
    (folder / "header.csv").write_text("a,b\n")
    (folder / "a-file").write_text("not a folder")
    return folder


MAP = ["--method", "map", "--quiet"]
CLI_CASES = [
    ("collinear", ["fit", "{dir}/collinear.csv", "--k", "2", *MAP], 2, "perfectly collinear"),
    (
        "repeated-column",
        ["fit", "{dir}/good.csv", "--k", "2", "--columns", "a,a", *MAP],
        2,
        "more than once",
    ),
    (
        "more-columns-than-rows",
        ["fit", "{dir}/wide.csv", "--k", "1", *MAP],
        2,
        "n_samples=3 <= n_features=6",
    ),
    ("huge-values", ["fit", "{dir}/huge.csv", "--k", "2", *MAP], 2, "too large"),
    (
        "huge-values-diag",
        ["compare", "{dir}/huge.csv", "--k", "1-2", "--covariance", "diag", *MAP],
        2,
        "too large",
    ),
    ("tiny-values", ["fit", "{dir}/tiny.csv", "--k", "2", *MAP], 2, "too small"),
    ("constant", ["fit", "{dir}/constant.csv", "--k", "2", *MAP], 2, "constant"),
    ("duplicated-rows", ["fit", "{dir}/duplicated.csv", "--k", "1", *MAP], 2, "distinct rows"),
    ("non-numeric", ["fit", "{dir}/text.csv", "--k", "2", *MAP], 2, "non-numeric"),
    ("boolean-column", ["fit", "{dir}/boolean.csv", "--k", "2", *MAP], 2, "boolean"),
    ("missing-values", ["fit", "{dir}/missing.csv", "--k", "2", *MAP], 2, "NaN"),
    ("header-only", ["fit", "{dir}/header.csv", "--k", "2", *MAP], 2, "no data rows"),
    ("no-such-file", ["fit", "{dir}/nope.csv", "--k", "2", *MAP], 2, "not found"),
    ("draws-0", ["fit", "{dir}/good.csv", "--k", "2", "--draws", "0"], 2, "--draws"),
    ("draws-text", ["fit", "{dir}/good.csv", "--k", "2", "--draws", "many"], 2, "integer"),
    ("tune-negative", ["fit", "{dir}/good.csv", "--k", "2", "--tune", "-1"], 2, "--tune"),
    ("chains-0", ["fit", "{dir}/good.csv", "--k", "2", "--chains", "0"], 2, "--chains"),
    ("seed-negative", ["fit", "{dir}/good.csv", "--k", "2", "--seed", "-1"], 2, "--seed"),
    ("seed-huge", ["fit", "{dir}/good.csv", "--k", "2", "--seed", str(2**40)], 2, "--seed"),
    ("ci-prob-2", ["fit", "{dir}/good.csv", "--k", "2", "--ci-prob", "2"], 2, "--ci-prob"),
    ("ci-prob-nan", ["fit", "{dir}/good.csv", "--k", "2", "--ci-prob", "nan"], 2, "got nan"),
    ("ci-prob-0", ["fit", "{dir}/good.csv", "--k", "2", "--ci-prob", "0"], 2, "(0, 1)"),
    ("jobs-0", ["compare", "{dir}/good.csv", "--k", "1-2", "--jobs", "0", *MAP], 2, "--jobs"),
    (
        "k-huge-range",
        ["compare", "{dir}/good.csv", "--k", "1-2000000000", *MAP],
        2,
        "n_components=2000000000 must be <= n_samples=40",
    ),
    ("k-decreasing", ["compare", "{dir}/good.csv", "--k", "5-2", *MAP], 2, "goes down"),
    ("k-zero", ["compare", "{dir}/good.csv", "--k", "0-2", *MAP], 2, "positive"),
    ("k-text", ["compare", "{dir}/good.csv", "--k", "three", *MAP], 2, "--k must look like"),
    ("k-too-many-for-rows", ["compare", "{dir}/good.csv", "--k", "1,30", *MAP], 2, "too few"),
    ("fit-two-ks", ["fit", "{dir}/good.csv", "--k", "1-3", *MAP], 2, "one number"),
    (
        "covariance-unknown",
        ["compare", "{dir}/good.csv", "--k", "1", "--covariance", "round", *MAP],
        2,
        "--covariance",
    ),
    ("method-unknown", ["fit", "{dir}/good.csv", "--k", "2", "--method", "hmc"], 2, "--method"),
    (
        "report-needs-posterior",
        ["report", "{dir}/good.csv", "--k", "1-2", *MAP],
        2,
        "report needs a posterior",
    ),
    (
        "out-is-a-file",
        ["compare", "{dir}/good.csv", "--k", "1", "--out", "{dir}/a-file", *MAP],
        2,
        "not a folder",
    ),
    (
        "missing-column",
        ["fit", "{dir}/good.csv", "--k", "2", "--columns", "a,z", *MAP],
        2,
        "not in",
    ),
]


def _run_cli(argv, folder, out):
    argv = [a.replace("{dir}", str(folder)) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    return cli.main(argv)


@pytest.mark.parametrize(
    ("argv", "status", "fragment"),
    [pytest.param(argv, status, fragment, id=name) for name, argv, status, fragment in CLI_CASES],
)
def test_cli_fails_with_one_line(argv, status, fragment, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run_cli(argv, data_dir, out) == status
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("bayesgmm: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in captured.err
    assert not out.exists()


def test_cli_debug_shows_the_traceback(data_dir, tmp_path, capsys):
    argv = ["fit", "{dir}/collinear.csv", "--k", "2", *MAP, "--debug"]
    assert _run_cli(argv, data_dir, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("bayesgmm: error: ")


def test_cli_drops_an_index_column_with_a_warning(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run_cli(["compare", "{dir}/indexed.csv", "--k", "1-2", *MAP], data_dir, out) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bayesgmm: warning: ") and "Unnamed: 0" in err[0]
    assert "Unnamed" not in (out / "comparison.md").read_text()


def test_cli_em_comparison_is_invariant_to_the_units(data_dir, tmp_path):
    tables = []
    for name in ("blobs", "scaled"):
        out = tmp_path / name
        argv = ["compare", f"{{dir}}/{name}.csv", "--k", "1-4", "--covariance", "full,diag", *MAP]
        assert _run_cli(argv, data_dir, out) == 0
        tables.append(pd.read_csv(out / "comparison.csv", index_col=0))
    assert list(tables[0].index) == list(tables[1].index)  # same ranking
    shift = 2 * len(BLOBS) * 2 * np.log(1e100)
    np.testing.assert_allclose(tables[1]["bic"], tables[0]["bic"] + shift, rtol=1e-6)


# ------------------------------------------------------------------------------------------
# Output safety


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _temporaries(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".") and ".tmp" in p.name]


@pytest.fixture
def previous_output(tmp_path):
    """A folder a previous bayesgmm run wrote (its marker and two results)."""
    out = tmp_path / "results"
    out.mkdir()
    (out / ".bayesgmm-output").write_text("written by bayesgmm; replaced whole by the next run\n")
    (out / "summary.csv").write_text("previous,run\n1,2\n")
    (out / "stale.txt").write_text("from an older version")
    return out


def test_user_folder_survives_without_overwrite(data_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    before = _snapshot(out)
    argv = ["compare", "{dir}/good.csv", "--k", "1", "--out", str(out), *MAP]
    assert _run_cli(argv, data_dir, out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _snapshot(out) == before and not _temporaries(tmp_path)


def test_failed_overwrite_leaves_previous_output(previous_output, data_dir, capsys):
    before = _snapshot(previous_output)
    argv = ["fit", "{dir}/collinear.csv", "--k", "2", "--out", str(previous_output), *MAP]
    assert _run_cli(argv, data_dir, previous_output) == 2
    assert _snapshot(previous_output) == before
    assert not _temporaries(previous_output.parent)


def test_successful_overwrite_leaves_no_stale_file(previous_output, data_dir):
    argv = ["compare", "{dir}/good.csv", "--k", "1-2", "--out", str(previous_output), *MAP]
    assert _run_cli(argv, data_dir, previous_output) == 0
    names = {p.name for p in previous_output.iterdir()}
    assert "stale.txt" not in names and "summary.csv" not in names
    assert {"comparison.csv", "comparison.md", ".bayesgmm-output"} <= names
    assert not _temporaries(previous_output.parent)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "status", "word"),
    [
        (signal.SIGINT, 130, "interrupted"),
        (signal.SIGTERM, 143, "terminated"),
    ],
)
def test_signal_while_sampling_leaves_previous_output(previous_output, signum, status, word):
    before = _snapshot(previous_output)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "MPLBACKEND": "Agg",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "bayesgmm.cli",
        "fit",
        "faithful",
        "--k",
        "2",
        "--draws",
        "200000",
        "--tune",
        "500",
        "--chains",
        "2",
        "--seed",
        "1",
        # the default sampler (nutpie on the hand-written kernel, compiled in this process's
        # cache by the tests before: PyMC's own sampler compiled the model's graph, 25 s of
        # this test); 2 x 200,000 draws run for minutes
        "--out",
        str(previous_output),
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    lines: list[str] = []
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "fitting" in line.lower():
                break
        # the command's progress line, then the MAP-EM start (a second) and the sampler
        assert lines and "by nuts" in lines[-1].lower(), lines
        time.sleep(3.0)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signum)
        rest = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, rest
    assert rest.strip().splitlines()[-1] == f"bayesgmm: {word}; nothing written"
    assert _snapshot(previous_output) == before
    assert not _temporaries(previous_output.parent)


def test_cancelled_output_is_never_committed(previous_output):
    # what a signal handler does when the interrupt it raised is swallowed by a library
    from bayesgmm.core import io as _io

    before = _snapshot(previous_output)
    _io.cancel_output()
    try:
        with pytest.raises(KeyboardInterrupt), _io.atomic_directory(previous_output) as tmp:
            (tmp / "summary.csv").write_text("new")
    finally:
        _io.reset_output()
    assert _snapshot(previous_output) == before
    assert not _temporaries(previous_output.parent)
    with _io.atomic_directory(previous_output) as tmp:  # reset: commits again
        (tmp / "summary.csv").write_text("new")
    assert (previous_output / "summary.csv").read_text() == "new"
