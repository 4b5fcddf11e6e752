"""A Bayesian fit that fails its checks says so: one UnreliablePosteriorWarning, its verdict."""

from __future__ import annotations

import warnings

import pytest

from bayesgmm import BayesianGaussianMixture, UnreliablePosteriorWarning
from bayesgmm.datasets import load_faithful


def _fit_catching(**settings):
    X = load_faithful()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = BayesianGaussianMixture(2, random_state=0, progressbar=False, **settings).fit(X)
    unreliable = [w for w in caught if issubclass(w.category, UnreliablePosteriorWarning)]
    return model, unreliable


@pytest.mark.slow
def test_a_run_too_short_for_its_checks_warns_once_with_the_verdict():
    # 2 chains x 40 draws cannot reach ESS >= 400: the checks fail
    model, unreliable = _fit_catching(draws=40, tune=100, chains=2, max_draws=None)
    diagnostics = model.diagnose()
    assert not diagnostics.ok
    assert len(unreliable) == 1
    message = str(unreliable[0].message)
    assert diagnostics.verdict in message
    assert message.startswith("BayesianGaussianMixture(n_components=2")
    # users can make it an error
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreliablePosteriorWarning)
        with pytest.raises(UnreliablePosteriorWarning, match="Verdict"):
            BayesianGaussianMixture(
                2, draws=40, tune=100, chains=2, max_draws=None, random_state=0, progressbar=False
            ).fit(load_faithful())


@pytest.mark.slow
def test_a_fit_passing_its_checks_does_not_warn():
    import pickle

    from bayesgmm.bayes.state import DIAGNOSTICS_CACHE

    model, unreliable = _fit_catching()
    assert model.diagnose().ok
    assert unreliable == []
    # the warning's diagnostics are kept for the fit, not recomputed, pickled or kept by a refit
    first = model.diagnose()
    assert model.diagnose() is first
    assert DIAGNOSTICS_CACHE not in vars(pickle.loads(pickle.dumps(model)))
    model.set_params(random_state=1).fit(load_faithful())
    assert model.diagnose() is not first


def test_the_map_alone_has_no_checks_and_does_not_warn():
    model, unreliable = _fit_catching(method="map")
    assert model.method_ == "map"
    assert unreliable == []
