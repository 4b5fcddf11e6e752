"""Saved models: save/load, pickle, joblib and cloudpickle round trips; damaged model folders;
``bayesgmm predict`` on what ``save`` wrote (bayesgmm.core.persistence)."""

import io
import json
import pickle
import shutil
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.exceptions import NotFittedError

import bayesgmm
from bayesgmm import BayesianGaussianMixture, GaussianMixture, cli
from bayesgmm.core.exceptions import ModelFormatError
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.persistence import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MODEL_FILE,
    POSTERIOR_FILE,
    decode,
    encode,
)
from bayesgmm.core.spec import Standardization

EM_VARIANTS = {
    "mle_full": {},
    "map_diag": {"prior": "default", "covariance_type": "diag"},
    "noise": {"noise": True},
    "spherical_tied_start": {"covariance_type": "spherical", "n_init": 3},
}


def _picklers():
    """(name, dumps, loads) of pickle, joblib and, where installed, cloudpickle."""

    def joblib_dumps(obj):
        buffer = io.BytesIO()
        joblib.dump(obj, buffer)
        return buffer.getvalue()

    out = [
        ("pickle", pickle.dumps, pickle.loads),
        ("joblib", joblib_dumps, lambda data: joblib.load(io.BytesIO(data))),
    ]
    try:
        import cloudpickle
    except ImportError:
        return out
    return [*out, ("cloudpickle", cloudpickle.dumps, cloudpickle.loads)]


PICKLERS = _picklers()


def _frame(X: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(X, columns=["eruptions", "waiting"])


def assert_same_em(a: GaussianMixture, b: GaussianMixture, X) -> None:
    """Identical predictions, scores and seeded samples."""
    for method in ("predict", "predict_proba", "score_samples"):
        np.testing.assert_array_equal(getattr(a, method)(X), getattr(b, method)(X), err_msg=method)
    assert a.score(X) == b.score(X)
    if a.noise:
        np.testing.assert_array_equal(a.noise_proba(X), b.noise_proba(X))
    for x, y in zip(a.sample(7), b.sample(7), strict=True):
        np.testing.assert_array_equal(x, y)


def assert_same_bayes(a: BayesianGaussianMixture, b: BayesianGaussianMixture, X) -> None:
    """Identical predictions, posterior summaries, seeded samples and diagnostics."""
    for method in ("predict", "predict_proba", "score_samples"):
        np.testing.assert_array_equal(getattr(a, method)(X), getattr(b, method)(X), err_msg=method)
    pd.testing.assert_frame_equal(a.assignment_probabilities(X), b.assignment_probabilities(X))
    pd.testing.assert_frame_equal(a.summary(), b.summary())
    pd.testing.assert_frame_equal(
        a.assignment_summary(X, max_draws=50), b.assignment_summary(X, max_draws=50)
    )
    for x, y in zip(a.sample(9, random_state=4), b.sample(9, random_state=4), strict=True):
        np.testing.assert_array_equal(x, y)
    xr.testing.assert_identical(
        a.idata_["posterior"].to_dataset(), b.idata_["posterior"].to_dataset()
    )
    if a.method_ == "nuts":
        assert str(a.diagnose()) == str(b.diagnose())
        np.testing.assert_array_equal(a.log_posterior_density()[0], b.log_posterior_density()[0])


@pytest.fixture(scope="module", params=sorted(EM_VARIANTS))
def em_fit(request, faithful):
    return GaussianMixture(2, random_state=0, **EM_VARIANTS[request.param]).fit(_frame(faithful))


@pytest.fixture(scope="module")
def em_plain(faithful):
    return GaussianMixture(2, random_state=0).fit(_frame(faithful))


@pytest.fixture(scope="module")
def bayes_map(faithful):
    model = BayesianGaussianMixture(2, method="map", random_state=0, progressbar=False)
    return model.fit(_frame(faithful))


@pytest.fixture(scope="module")
def bayes_nuts(faithful):
    model = BayesianGaussianMixture(
        2, draws=100, tune=100, chains=2, random_state=1, progressbar=False
    )
    return model.fit(faithful)


# --- save / load ---------------------------------------------------------------------------


def test_em_save_load_gives_identical_predictions(em_fit, faithful, tmp_path):
    X = _frame(faithful)
    path = em_fit.save(tmp_path / "model")
    assert path == tmp_path / "model"
    document = json.loads((path / MODEL_FILE).read_text())
    assert (document["format"], document["format_version"]) == (FORMAT_NAME, FORMAT_VERSION)
    assert document["estimator"] == "GaussianMixture"
    assert document["bayesgmm_version"] == bayesgmm.__version__
    assert document["feature_names"] == ["eruptions", "waiting"]
    assert not (path / POSTERIOR_FILE).exists()
    loaded = bayesgmm.load(path)
    assert type(loaded) is GaussianMixture and loaded.get_params() == em_fit.get_params()
    assert_same_em(em_fit, loaded, X)
    np.testing.assert_array_equal(loaded.lower_bound_trace_, em_fit.lower_bound_trace_)
    assert len(loaded.optima_) == len(em_fit.optima_)
    assert list(loaded.feature_names_in_) == ["eruptions", "waiting"]
    # a second save replaces the first whole
    (path / "stale.txt").write_text("left over")
    em_fit.save(path)
    assert not (path / "stale.txt").exists()


@pytest.mark.parametrize(("name", "dumps", "loads"), PICKLERS)
def test_em_pickles(em_fit, faithful, name, dumps, loads):
    assert_same_em(em_fit, loads(dumps(em_fit)), _frame(faithful))


def test_bayes_map_save_load_and_pickle_give_identical_results(bayes_map, faithful, tmp_path):
    X = _frame(faithful)
    path = bayes_map.save(tmp_path / "model")
    assert (path / POSTERIOR_FILE).is_dir()
    loaded = bayesgmm.load(path)
    assert type(loaded) is BayesianGaussianMixture
    assert_same_bayes(bayes_map, loaded, X)
    assert loaded.map_.to_dict() == bayes_map.map_.to_dict()
    assert loaded.map_source_ == bayes_map.map_source_
    np.testing.assert_array_equal(
        loaded.em_.predict_proba(faithful), bayes_map.em_.predict_proba(faithful)
    )
    # the PyMC model is not saved: rebuilt on first use, with the same variables
    assert "model_" not in vars(loaded)
    assert sorted(v.name for v in loaded.model_.free_RVs) == sorted(
        v.name for v in bayes_map.model_.free_RVs
    )
    for name, dumps, loads in PICKLERS:
        again = loads(dumps(bayes_map))
        assert "model_" not in vars(again), name
        assert_same_bayes(bayes_map, again, X)
    assert "model_" in vars(bayes_map)  # pickling leaves the original whole


@pytest.mark.slow
def test_bayes_nuts_save_load_and_pickle_give_identical_results(bayes_nuts, faithful, tmp_path):
    loaded = bayesgmm.load(bayes_nuts.save(tmp_path / "model"))
    assert_same_bayes(bayes_nuts, loaded, faithful)
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in loaded.idata_.children
    assert loaded.relabeling_.to_dict() == bayes_nuts.relabeling_.to_dict()
    np.testing.assert_array_equal(loaded.chain_starts_, bayes_nuts.chain_starts_)
    for _, dumps, loads in PICKLERS:
        assert_same_bayes(bayes_nuts, loads(dumps(bayes_nuts)), faithful)


def test_save_needs_a_fitted_estimator_and_writes_nothing_otherwise(tmp_path):
    with pytest.raises(NotFittedError):
        GaussianMixture(2).save(tmp_path / "m")
    with pytest.raises(NotFittedError):
        BayesianGaussianMixture(2).save(tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_leaves_the_previous_model(bayes_map, faithful, tmp_path, monkeypatch):
    path = bayes_map.save(tmp_path / "model")
    before = sorted(p.name for p in path.rglob("*"))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_zarr", broken)
    with pytest.raises(OSError, match="disk full"):
        bayes_map.save(path)
    assert sorted(p.name for p in path.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary sibling left
    monkeypatch.undo()
    assert_same_bayes(bayes_map, bayesgmm.load(path), _frame(faithful))


def test_input_scaling_and_metadata_are_saved_and_checked(em_plain, tmp_path):
    scaling = Standardization(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    path = em_plain.save(tmp_path / "m", input_scaling=scaling, metadata={"note": [1, 2.5]})
    _, saved = bayesgmm.load(path, return_info=True)
    np.testing.assert_array_equal(saved.input_scaling.scale, [3.0, 4.0])
    np.testing.assert_array_equal(saved.input_scaling.location, [1.0, 2.0])
    assert saved.metadata == {"note": [1, 2.5]}
    zero = Standardization(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"scale\[1\] is 0.0"):
        em_plain.save(tmp_path / "z", input_scaling=zero)
    assert not (tmp_path / "z").exists()
    with pytest.raises(TypeError, match="cannot save a value of type object"):
        em_plain.save(tmp_path / "o", metadata={"x": object()})


def test_encode_decode_round_trip_exactly():
    params = MixtureParams(
        np.array([0.25, 0.75]), np.arange(4.0).reshape(2, 2), np.ones((2, 2)), "diag"
    )
    value = {
        "floats": np.array([0.1, np.nan, np.inf, -np.inf, 1e-310]),
        "ints": np.arange(6).reshape(2, 3),
        "names": np.array(["a", "b"], dtype=object),
        "tuple": (1, 2.0, None),
        "nan": float("nan"),
        "params": params,
        "rng": np.random.default_rng(3),
    }
    back = decode(json.loads(json.dumps(encode(value), allow_nan=False)))
    np.testing.assert_array_equal(back["floats"], value["floats"])
    assert back["ints"].dtype == np.int64 and back["ints"].shape == (2, 3)
    assert list(back["names"]) == ["a", "b"] and back["tuple"] == (1, 2.0, None)
    assert np.isnan(back["nan"]) and back["params"].to_dict() == params.to_dict()
    assert back["rng"].random() == np.random.default_rng(3).random()


# --- damaged, foreign and other-version folders ----------------------------------------------


def _edit_json(path, edit) -> None:
    file = path / MODEL_FILE
    document = json.loads(file.read_text())
    edit(document)
    file.write_text(json.dumps(document))


def _first_params(document) -> dict:
    return document["state"]["params"]["fields"]


def _damage(case: str, path) -> None:
    file = path / MODEL_FILE
    if case == "other version":
        _edit_json(path, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    elif case == "truncated":
        text = file.read_text()
        file.write_text(text[: len(text) // 2])
    elif case == "foreign json":
        file.write_text(json.dumps({"name": "something else", "version": 1}))
    elif case == "binary":
        file.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    elif case == "missing key":
        _edit_json(path, lambda d: d.pop("state"))
    elif case == "unknown estimator":
        _edit_json(path, lambda d: d.update(estimator="KMeans"))
    elif case == "non-finite parameter":
        _edit_json(path, lambda d: _first_params(d)["means"]["__ndarray__"].__setitem__(0, "nan"))
    elif case == "wrong shape":

        def three_features(document):
            _first_params(document)["means"] = encode(np.zeros((2, 3)))

        _edit_json(path, three_features)
    elif case == "array of the wrong size":
        _edit_json(path, lambda d: _first_params(d)["means"]["__ndarray__"].pop())
    elif case == "scale of 0":

        def zero_scale(document):
            scaling = document["state"]["spec"]["fields"]["standardization"]["fields"]
            scaling["scale"]["__ndarray__"][0] = 0.0

        _edit_json(path, zero_scale)
    elif case == "missing model.json":
        file.unlink()
    else:
        raise AssertionError(case)


DAMAGE = {
    "other version": f"model format version {FORMAT_VERSION + 1}",
    "truncated": "not valid JSON",
    "foreign json": "not a bayesgmm model file",
    "binary": "not a text file",
    "missing key": r"missing key\(s\) \['state'\]",
    "unknown estimator": "unknown estimator 'KMeans'",
    "non-finite parameter": "NaN or infinity",
    "wrong shape": "shape",
    "array of the wrong size": r"array of shape \(2, 2\) holds 3 values",
    "scale of 0": r"scale\[0\] is 0.0",
    "missing model.json": "is not a saved bayesgmm model",
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_model_is_a_clear_error_naming_the_file(em_plain, tmp_path, case):
    path = em_plain.save(tmp_path / "model")
    _damage(case, path)
    with pytest.raises(ModelFormatError, match=DAMAGE[case]) as caught:
        bayesgmm.load(path)
    assert isinstance(caught.value, ValueError)
    assert str(path / MODEL_FILE) in str(caught.value)


def test_a_missing_or_wrong_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFormatError, match="no such folder"):
        bayesgmm.load(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFormatError, match="is not a folder"):
        bayesgmm.load(tmp_path / "file")


def test_a_missing_or_inconsistent_posterior_is_a_clear_error(bayes_map, tmp_path):
    path = bayes_map.save(tmp_path / "model")
    shutil.rmtree(path / POSTERIOR_FILE)
    with pytest.raises(ModelFormatError, match="missing") as caught:
        bayesgmm.load(path)
    assert str(path / POSTERIOR_FILE) in str(caught.value)
    # a posterior with one component for a two-component model
    cut = pickle.loads(pickle.dumps(bayes_map))
    cut.idata_["posterior"] = cut.idata_["posterior"].to_dataset().isel(component=[0])
    path = cut.save(tmp_path / "cut")
    with pytest.raises(ModelFormatError, match="posterior variable 'weights'") as caught:
        bayesgmm.load(path)
    assert str(path / POSTERIOR_FILE) in str(caught.value)


# --- the command line reads what save wrote ---------------------------------------------------


def test_cli_predict_reads_what_save_wrote(bayes_map, faithful, tmp_path, capsys):
    model = bayes_map.save(tmp_path / "model")
    data = tmp_path / "new.csv"
    X = _frame(faithful).iloc[::5]
    X.to_csv(data, index=False)
    out = tmp_path / "pred"
    assert cli.main(["predict", str(model), str(data), "--out", str(out), "--quiet"]) == 0
    predictions = pd.read_csv(out / "predictions.csv", index_col="row")
    expected = bayes_map.assignment_summary(X, max_draws=1000)
    pd.testing.assert_frame_equal(predictions, expected, check_exact=False, rtol=1e-6)  # 7 digits
    np.testing.assert_array_equal(predictions["component"], bayes_map.predict(X))
    assert f"{len(X)} rows assigned" in capsys.readouterr().out


def test_cli_fit_writes_the_saved_format_with_its_scaling(faithful, tmp_path, capsys):
    out = tmp_path / "fit"
    argv = ["fit", "faithful", "--k", "2", "--method", "map", "--scale", "--seed", "2"]
    assert cli.main([*argv, "--quiet", "--out", str(out)]) == 0
    model, saved = bayesgmm.load(out, return_info=True)
    params = json.loads((out / "params.json").read_text())
    np.testing.assert_array_equal(saved.input_scaling.location, params["scaling"]["mean"])
    np.testing.assert_array_equal(saved.input_scaling.scale, params["scaling"]["sd"])
    assert saved.metadata["data"]["columns"] == ["eruptions", "waiting"]
    assert saved.metadata["command"] == params["command"]
    # predict on the raw data: the saved scaling is applied before the estimator's methods
    capsys.readouterr()
    raw = tmp_path / "raw.csv"
    _frame(faithful).to_csv(raw, index=False)
    assert cli.main(["predict", str(out), str(raw), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    predictions = pd.read_csv(tmp_path / "p" / "predictions.csv", index_col="row")
    scaled = saved.input_scaling.to_working(faithful)
    np.testing.assert_array_equal(predictions["component"], model.predict(scaled))
    np.testing.assert_allclose(predictions["p0"], model.predict_proba(scaled)[:, 0], rtol=1e-6)


@pytest.mark.parametrize("case", ["truncated", "other version", "missing model.json"])
def test_cli_predict_on_a_damaged_model_is_one_line_exit_2(bayes_map, tmp_path, capsys, case):
    path = bayes_map.save(tmp_path / "model")
    _damage(case, path)
    argv = ["predict", str(path), "faithful", "--out", str(tmp_path / "p")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bayesgmm: error: ")
    assert MODEL_FILE in err[0]
    assert not (tmp_path / "p").exists()


def test_cli_predict_refuses_an_em_model(em_plain, tmp_path, capsys):
    path = em_plain.save(tmp_path / "em")
    assert cli.main(["predict", str(path), "faithful", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a GaussianMixture" in err[0]


def test_loading_an_em_model_imports_no_pymc(em_plain, faithful, tmp_path):
    """An EM model loads and predicts without PyMC, PyTensor or ArviZ (a fresh interpreter)."""
    path = em_plain.save(tmp_path / "em")
    np.save(tmp_path / "X.npy", faithful)
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import pandas as pd
        import bayesgmm
        model = bayesgmm.load({str(path)!r})
        X = pd.DataFrame(np.load({str(tmp_path / "X.npy")!r}), columns=["eruptions", "waiting"])
        labels = model.predict(X)
        np.save({str(tmp_path / "labels.npy")!r}, labels)
        heavy = [name for name in ("pymc", "pytensor", "arviz") if name in sys.modules]
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    labels = em_plain.predict(_frame(faithful))
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), labels)
