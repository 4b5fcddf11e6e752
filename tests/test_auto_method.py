"""``method="auto"`` (bayes/auto.py): the documented rule, the record of the method that ran,
the command line and ``compare``."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from bayesgmm import BayesianGaussianMixture, MixturePrior, UnreliablePosteriorWarning
from bayesgmm.bayes.auto import auto_rule, choose_method
from bayesgmm.bayes.fitting import model_spec
from bayesgmm.bayes.options import Settings
from bayesgmm.core.methods import METHODS
from bayesgmm.core.validation import check_data

FAST = {"draws": 200, "tune": 50, "chains": 2, "random_state": 3}


def _fit(X, k, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliablePosteriorWarning)
        return BayesianGaussianMixture(k, **{**FAST, **settings}).fit(X)


def _choice(X, k, **settings):
    estimator = BayesianGaussianMixture(k, method="auto", **settings)
    params = Settings.checked(estimator.get_params(deep=False), "BayesianGaussianMixture")
    data = check_data(X, allow_1d=True, n_components=k, allow_nan=True)
    data, weights, spec, _ = model_spec(data, None, params)
    return choose_method(
        params, spec, weighted=weights is not None, missing=bool(np.isnan(data).any())
    )


def test_auto_is_a_method_everywhere():
    from bayesgmm.selection.compare import METHODS as COMPARE_METHODS

    assert "auto" in METHODS and "auto" in COMPARE_METHODS


def test_rule_picks_gibbs_inside_its_scope_and_nuts_otherwise():
    assert auto_rule(gibbs_applies=True) == "gibbs"
    assert auto_rule(gibbs_applies=False) == "nuts"
    assert auto_rule(gibbs_applies=True, nuts_setting=True) == "nuts"


@pytest.mark.parametrize("d", [1, 2, 4, 13, 30])
def test_gibbs_at_every_measured_dimension(d):
    X = np.random.default_rng(d).standard_normal((60, d))
    X[:30] += 4.0
    choice = _choice(X, 2)
    assert choice.method == "gibbs" and f"(d={d})" in choice.reason


def test_choice_names_its_reason(faithful, galaxies):
    assert _choice(galaxies, 3).method == "gibbs"
    unequal = MixturePrior(
        weight_concentration=np.array([1.0, 3.0]),
        mean_prior=np.array([20.0]),
        mean_precision=0.01,
        degrees_of_freedom=3.0,
        covariance_prior=np.array([[5.0]]),
    )
    one = _choice(galaxies, 2, prior=unequal)
    assert one.method == "nuts" and "equal Dirichlet concentrations" in one.reason
    diag = _choice(faithful, 2, covariance_type="diag")
    assert diag.method == "nuts" and "covariance_type='diag'" in diag.reason
    assert _choice(faithful, 2, covariance_prior_family="lkj").method == "nuts"
    assert _choice(faithful, 2, noise=True).method == "nuts"
    pymc = _choice(faithful, 2, sampler="pymc")
    assert pymc.method == "nuts" and "sampler='pymc'" in pymc.reason
    holes = faithful.copy()
    holes[0, 0] = np.nan
    assert _choice(holes, 2, missing="marginalize").method == "nuts"
    assert str(_choice(faithful, 2)).startswith("method='auto' chose 'gibbs': ")


def test_auto_fit_records_the_method_and_draws_as_gibbs(faithful):
    auto = _fit(faithful, 2, method="auto")
    gibbs = _fit(faithful, 2, method="gibbs")
    assert auto.method == "auto" and auto.method_ == "gibbs"
    assert auto.method_choice_.startswith("method='auto' chose 'gibbs'")
    assert gibbs.method_choice_ is None
    np.testing.assert_array_equal(
        auto.idata_.posterior["means"].to_numpy(), gibbs.idata_.posterior["means"].to_numpy()
    )
    assert "method         method='auto' chose 'gibbs'" in str(auto.diagnose())
    assert auto.diagnose().method_choice == auto.method_choice_
    assert "method='auto'" not in str(gibbs.diagnose())
    summary = auto.summary()
    assert summary.attrs["method"] == "gibbs"
    assert summary.attrs["method_choice"] == auto.method_choice_


def test_auto_choice_survives_saving(faithful, tmp_path):
    from bayesgmm import load

    fit = _fit(faithful, 2, method="auto")
    fit.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.method_ == "gibbs" and loaded.method_choice_ == fit.method_choice_


@pytest.mark.slow
def test_auto_runs_nuts_outside_gibbs_scope(faithful):
    fit = _fit(faithful, 2, method="auto", covariance_type="diag", max_draws=200)
    assert fit.method_ == "nuts" and "covariance_type='diag'" in fit.method_choice_
    assert "energy" in fit.idata_["sample_stats"].to_dataset()


def test_command_line_accepts_auto(faithful, tmp_path, capsys):
    from bayesgmm import cli

    out = tmp_path / "fit"
    argv = ["fit", "faithful", "--k", "2", "--method", "auto", "--draws", "200", "--tune"]
    argv += ["50", "--chains", "2", "--seed", "1", "--quiet", "--out", str(out)]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "Posterior summary (gibbs (auto))" in stdout
    params = json.loads((out / "params.json").read_text())
    assert params["method"] == "gibbs"
    assert params["method_choice"].startswith("method='auto' chose 'gibbs'")
    assert (out / "summary.md").read_text().startswith("# faithful: K=2 full, gibbs (auto)")


def test_compare_takes_auto(faithful):
    from bayesgmm import compare

    result = compare(
        faithful, [1, 2], method="auto", draws=200, tune=50, chains=2, cluster_count=False
    )
    assert result.methods_run == {"K=1 full": "gibbs", "K=2 full": "gibbs"}
    assert "Model comparison (auto: gibbs for K=" in str(result)
    assert result.fits["K=2 full"].diagnostics_ok is not None
