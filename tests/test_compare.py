"""Model comparison: EM criteria against scikit-learn, the LOO table, the recommendation."""

import numpy as np
import pandas as pd
import pytest
from arviz_base import from_dict
from scipy.stats import norm
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from bayesgmm import GaussianMixture, datasets
from bayesgmm.core.covariance import covariance_types
from bayesgmm.core.exceptions import UnreliableLOOWarning
from bayesgmm.selection import compare as compare_module
from bayesgmm.selection.compare import (
    CandidateFit,
    _warn_high_k,
    compare,
    comparison_table,
    em_criteria,
    fit_candidate,
    pareto_k_counts,
    psis_loo,
    recommend,
)
from bayesgmm.selection.sparse import ClusterCountPosterior, fit_sparse_mixture


def _sklearn_with_params(model: GaussianMixture) -> SkGaussianMixture:
    """A scikit-learn mixture holding exactly the parameters of ``model``."""
    sk = SkGaussianMixture(model.n_components, covariance_type=model.covariance_type)
    sk.weights_ = model.weights_
    sk.means_ = model.means_
    sk.covariances_ = model.covariances_
    sk.precisions_cholesky_ = model.precisions_cholesky_
    sk.precisions_ = model.precisions_
    sk.n_features_in_ = model.means_.shape[1]
    sk.converged_ = True
    return sk


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_em_criteria_equal_sklearn_for_same_parameters(faithful, covariance_type):
    result = compare(faithful, [1, 2, 3], [covariance_type], method="map", random_state=1)
    for name, fit in result.fits.items():
        sk = _sklearn_with_params(fit.em)
        row = result.table.loc[name]
        assert row["bic"] == pytest.approx(sk.bic(faithful), rel=1e-10)
        assert row["aic"] == pytest.approx(sk.aic(faithful), rel=1e-10)
        assert row["loglik"] == pytest.approx(sk.score(faithful) * len(faithful), rel=1e-10)
        assert row["n_parameters"] == sk._n_parameters()
        resp = sk.predict_proba(faithful)
        entropy = -np.sum(resp * np.log(np.clip(resp, 1e-300, None)))
        assert row["icl"] == pytest.approx(sk.bic(faithful) + 2 * entropy, rel=1e-8)


def test_em_only_comparison_sorted_by_bic_and_recommends_lowest(galaxies):
    result = compare(galaxies, range(1, 5), method="map", random_state=0)
    assert list(result.table["bic"]) == sorted(result.table["bic"])
    assert result.recommended == result.table["bic"].idxmin()
    assert "lowest BIC" in result.reason
    assert "elpd_loo" not in result.table
    text = str(result)
    assert "lower is better" in text and "higher is better" in text
    assert result.to_frame().equals(result.table)


def test_compare_rejects_bad_arguments(galaxies):
    with pytest.raises(ValueError, match="covariance_types"):
        compare(galaxies, [1], ["banana"], method="map")
    with pytest.raises(ValueError, match="method"):
        compare(galaxies, [1], method="hmc")
    with pytest.raises(ValueError, match="n_components"):
        compare(galaxies[:3], [1, 5], method="map")
    with pytest.raises(ValueError, match="empty"):
        compare(galaxies, [], method="map")
    with pytest.raises(ValueError, match=r"bayes_kwargs sets \['random_state'\]"):
        compare(galaxies, [1], bayes_kwargs={"random_state": 1})


def test_method_names_have_one_definition():
    from bayesgmm.bayes import estimator as inference
    from bayesgmm.core import methods as _methods

    assert compare_module.METHODS == (*_methods.POSTERIOR_METHODS, _methods.AUTO, "map")
    assert set(compare_module.METHODS) == set(_methods.METHODS)
    assert inference.METHODS is _methods.METHODS
    assert set(_methods.METHODS) == {*_methods.POSTERIOR_METHODS, "auto", "map"}


@pytest.mark.slow
def test_fit_candidate_passes_settings_to_the_estimator(faithful):
    # method="auto" (not the default, "nuts") runs NUTS on diag's hand-written kernel: nothing
    # to compile (ADVI compiled a step function for this model alone, 35-40 s)
    fit = fit_candidate(
        faithful,
        2,
        "diag",
        method="auto",
        bayes_kwargs={"draws": 100, "tune": 150, "vi_iterations": 200, "pointwise": True},
        em_prior=None,
        em_n_init=1,
        moment_match=False,
        random_state=3,
    )
    params = fit.bayes.get_params()
    assert (params["method"], params["covariance_type"], params["random_state"]) == (
        "auto",
        "diag",
        3,
    )
    assert params["vi_iterations"] == 200 and params["progressbar"] is False
    assert params["tune"] == 150 and fit.bayes.method_ == "nuts"  # auto: no Gibbs for diag
    assert fit.bayes.idata_["posterior"].sizes["draw"] == 100
    assert fit.loo is not None and fit.loo_method == "psis"


def test_pareto_k_counts_bins():
    counts = pareto_k_counts(np.array([0.1, 0.5, 0.69, 0.71, 1.0, 1.2, np.inf, np.nan]), 0.7)
    assert counts == {"k_ok": 3, "k_high": 2, "k_very_high": 3}


def _loo_fit(name_k: int, log_lik: np.ndarray, X: np.ndarray) -> CandidateFit:
    idata = from_dict(
        {"posterior": {"mu": log_lik[..., 0]}, "log_likelihood": {"X": log_lik}},
        dims={"X": ["obs"]},
    )
    em = GaussianMixture(name_k, random_state=0).fit(X)
    fit = CandidateFit(name_k, "full", em, em_criteria(em, X))
    fit.loo, fit.loo_method = psis_loo(idata)
    return fit


def _normal_log_lik(y: np.ndarray, centre: float, rng) -> np.ndarray:
    """Log-likelihood draws (2 chains, 200 draws, n) of y under N(mu, 1), mu ~ N(centre, 0.1)."""
    mu = centre + 0.1 * rng.standard_normal((2, 200, 1))
    return norm.logpdf(y[None, None, :], mu, 1.0)


def test_comparison_table_ranks_by_elpd_with_se():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(60)
    X = y[:, None]
    fits = [
        _loo_fit(k, _normal_log_lik(y, centre, rng), X)
        for k, centre in ((1, 2.0), (2, 0.0), (3, 1.0))
    ]
    table = comparison_table(fits)
    assert list(table.index) == ["K=2 full", "K=3 full", "K=1 full"]
    assert list(table["rank"]) == [0, 1, 2]
    assert table["elpd_diff"].iloc[0] == 0 and (table["elpd_diff"].iloc[1:] < 0).all()
    assert (table["dse"].iloc[1:] > 0).all()
    np.testing.assert_allclose(
        table["elpd_loo"] - table["elpd_loo"].iloc[0], table["elpd_diff"], atol=1e-8
    )
    assert table["weight"].sum() == pytest.approx(1.0)
    assert (table[["k_ok", "k_high", "k_very_high"]].sum(axis=1) == len(y)).all()
    assert set(table["loo_method"]) == {"psis"}
    name, reason = recommend(table)
    assert name == "K=2 full" and "highest LOO elpd" in reason


def test_recommend_prefers_simplest_within_one_se():
    table = pd.DataFrame(
        {
            "n_parameters": [11, 8, 5],
            "elpd_loo": [-100.0, -101.0, -130.0],
            "se": [5.0] * 3,
            "elpd_diff": [0.0, -1.0, -30.0],
            "dse": [0.0, 2.0, 6.0],
            "k_high": [0, 0, 0],
            "k_very_high": [0, 1, 0],
            "bic": [300.0, 290.0, 320.0],
        },
        index=["K=4 full", "K=3 full", "K=2 full"],
    )
    name, reason = recommend(table)
    assert name == "K=3 full"
    assert "simplest" in reason and "K=4 full" in reason and "BIC agrees" in reason
    assert "Pareto k" in reason
    assert recommend(table, n_se=0.1)[0] == "K=4 full"


def test_high_pareto_k_warns_with_candidate_name():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(30)
    log_lik = _normal_log_lik(y, 0.0, rng)
    # importance ratios exp(1.5 E), E ~ Exp(1), have a Pareto tail with shape k = 1.5
    log_lik[..., 0] = -1.5 * rng.exponential(size=(2, 200))
    fit = _loo_fit(1, log_lik, y[:, None])
    assert fit.loo.pareto_k.values[0] > 1.0
    assert pareto_k_counts(fit.loo.pareto_k.values, fit.loo.good_k)["k_ok"] == len(y) - 1
    with pytest.warns(UnreliableLOOWarning, match=r"K=1 full: \d"):
        _warn_high_k([fit])


@pytest.mark.slow
def test_loo_on_galaxies_ranks_k1_and_k2_below_best(galaxies):
    result = compare(galaxies, range(1, 5), draws=300, tune=300, chains=2, random_state=0)
    table = result.table
    best = table.index[0]
    assert best not in ("K=1 full", "K=2 full")
    for name, n_se in (("K=1 full", 2.0), ("K=2 full", 1.0)):
        row = table.loc[name]
        assert row["elpd_diff"] + n_se * row["dse"] < 0, (name, row)
    assert set(result.elpd) == set(table.index)
    assert result.recommended in ("K=3 full", "K=4 full")


@pytest.mark.slow
def test_loo_recovers_three_separated_components():
    X, _, _ = datasets.make_mixture(150, 3, 1, separation=6.0, random_state=11)
    result = compare(X, range(1, 5), draws=300, tune=300, chains=2, random_state=1)
    table = result.table
    k3 = table.loc["K=3 full"]
    # K=4 can only split a cluster: the two are not told apart by LOO, an elpd difference
    # below 4 nats being small whatever its SE (Sivula, Magnusson & Vehtari 2022)
    assert k3["rank"] == 0 or k3["elpd_diff"] > -4.0
    k1 = table.loc["K=1 full"]
    assert k1["elpd_diff"] + 2 * k1["dse"] < 0


_SPARSE = {"draws": 400, "burn": 300}


def test_em_only_comparison_gains_the_kplus_column_only_when_asked(galaxies):
    plain = compare(galaxies, [1, 2], method="map", random_state=0)
    assert "p_kplus" not in plain.table and plain.cluster_count is None
    result = compare(
        galaxies, [2, 3, 4], method="map", cluster_count=True, sparse_kwargs=_SPARSE, random_state=0
    )
    reference = fit_sparse_mixture(galaxies, 10, random_state=0, **_SPARSE).cluster_count
    assert result.cluster_count.max_components == 10
    pd.testing.assert_series_equal(result.cluster_count.probabilities, reference.probabilities)
    for name, row in result.table.iterrows():
        assert row["p_kplus"] == reference.probabilities[row["n_components"]], name
    assert result.table["p_kplus"].sum() <= 1.0 + 1e-12
    # galaxies: K+ = 3 under the sparse prior (Malsiner-Walli et al. 2016); BIC is a near tie
    # of K=3 and K=4 (442.22 and 442.19 with n_init="auto"), and the sentence says which
    assert reference.mode == 3
    assert result.recommended == result.table["bic"].idxmin()
    if result.recommended == "K=3 full":
        assert "agrees: K+ = 3 is its mode" in result.reason
    else:
        assert "disagrees: its mode is K+ = 3" in result.reason
    assert "full covariances" in result.reason
    assert "p_kplus" in str(result) and reference.answer() in str(result)


def test_kplus_disagreeing_with_loo_is_explained(galaxies, monkeypatch):
    """LOO (faked, best at K=4) against the real sparse-mixture K+ (mode 3) on galaxies."""
    y = (galaxies[:, 0] - galaxies[:, 0].mean()) / galaxies[:, 0].std()
    centres = {2: 2.0, 3: 1.0, 4: 0.0}

    def fake_fit(X, k, cov, **kwargs):
        rng = np.random.default_rng(k)
        return _loo_fit(k, _normal_log_lik(y, centres[k], rng), X)

    monkeypatch.setattr(compare_module, "fit_candidate", fake_fit)
    result = compare(galaxies, [2, 3, 4], sparse_kwargs=_SPARSE, random_state=0)  # nuts: on
    assert result.recommended == "K=4 full"
    kplus = result.cluster_count
    assert kplus is not None and kplus.mode == 3
    assert {"elpd_loo", "p_kplus"} <= set(result.table)
    p4 = result.table.loc["K=4 full", "p_kplus"]
    assert p4 == kplus.probabilities[4] < kplus.mode_probability
    reason = result.reason
    assert "disagrees: its mode is K+ = 3" in reason
    assert f"P(K+ = 4) = {p4:.2f}" in reason
    for why in ("LOO measures predictive fit", "occupied clusters", "BIC is an asymptotic"):
        assert why in reason


def test_recommend_adds_the_kplus_sentence_without_changing_the_pick():
    table = pd.DataFrame(
        {"n_components": [3, 2], "bic": [290.0, 300.0]}, index=["K=3 full", "K=2 full"]
    )
    agree = ClusterCountPosterior.from_counts(np.array([3] * 9 + [4]), 10, "test")
    disagree = ClusterCountPosterior.from_counts(np.array([2] * 6 + [3] * 4), 10, "test")
    plain = recommend(table)
    name, reason = recommend(table, cluster_count=agree)
    assert name == plain[0] == "K=3 full" and reason.startswith(plain[1])
    assert "agrees: K+ = 3 is its mode (probability 0.90" in reason
    name, reason = recommend(table, cluster_count=disagree)
    assert name == "K=3 full"
    assert "mode is K+ = 2 (probability 0.60) and P(K+ = 3) = 0.40" in reason


def test_sparse_kwargs_may_not_set_what_compare_owns(galaxies):
    with pytest.raises(ValueError, match=r"sparse_kwargs sets \['max_components'\]"):
        compare(
            galaxies, [1], method="map", cluster_count=True, sparse_kwargs={"max_components": 5}
        )


def _screening_table(sampler_ok, k_high, p_loo=(10.0, 7.0, 4.0)):
    return pd.DataFrame(
        {
            "n_parameters": [11, 8, 5],
            "elpd_loo": [-100.0, -101.0, -102.0],
            "se": [5.0] * 3,
            "elpd_diff": [0.0, -1.0, -2.0],
            "dse": [0.0, 2.0, 3.0],
            "p_loo": list(p_loo),
            "k_ok": [100 - k for k in k_high],
            "k_high": list(k_high),
            "k_very_high": [0, 0, 0],
            "sampler_ok": list(sampler_ok),
            "bic": [300.0, 290.0, 320.0],
        },
        index=["K=4 full", "K=3 full", "K=2 full"],
    )


def test_recommend_passes_over_failed_sampler_and_high_pareto_k():
    # K=2 (simplest) failed its sampler checks, K=3 has 20% high Pareto k: K=4 is chosen
    table = _screening_table([True, True, False], [0, 20, 0])
    name, reason = recommend(table)
    assert name == "K=4 full"
    assert "no simpler acceptable candidate is within 1 SE" in reason
    assert "K=2 full was passed over: its sampler checks failed." in reason
    assert "K=3 full was passed over: 20 of 100 observations have high Pareto k." in reason
    # a few high-k points are tolerated (1%): K=3 is chosen
    assert recommend(_screening_table([True, True, False], [0, 1, 0]))[0] == "K=3 full"


def test_recommend_says_when_every_candidate_failed():
    name, reason = recommend(_screening_table([False, False, False], [0, 0, 0]))
    assert name == "K=2 full"
    assert "every candidate failed a check" in reason and "no recommendation is reliable" in reason


def test_recommend_warns_about_p_loo_far_above_the_parameter_count():
    name, reason = recommend(_screening_table([True] * 3, [0] * 3, p_loo=(10.0, 7.0, 9.0)))
    assert name == "K=2 full"
    assert "p_loo of K=2 full (9.0) is far above its 5 parameters" in reason
    assert "misspecified" in reason
    assert "p_loo" not in recommend(_screening_table([True] * 3, [0] * 3))[1]


def test_compare_seeds_like_the_estimators(galaxies):
    import inspect

    from bayesgmm import BayesianGaussianMixture, GaussianMixture

    defaults = {
        f: inspect.signature(f).parameters["random_state"].default
        for f in (compare, GaussianMixture, BayesianGaussianMixture)
    }
    assert defaults == dict.fromkeys(defaults, None)
    first = compare(galaxies, [1, 2, 3], method="map", em_n_init=2, random_state=4)
    again = compare(galaxies, [1, 2, 3], method="map", em_n_init=2, random_state=4)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert first.reason == again.reason
    # a Generator is consumed reproducibly: the same state gives the same table, and it moves on
    rng = np.random.default_rng(9)
    state = rng.bit_generator.state
    by_rng = compare(galaxies, [1, 2, 3], method="map", em_n_init=2, random_state=rng)
    assert rng.bit_generator.state != state
    by_copy = compare(
        galaxies, [1, 2, 3], method="map", em_n_init=2, random_state=np.random.default_rng(9)
    )
    pd.testing.assert_frame_equal(by_rng.table, by_copy.table)
    seq = np.random.SeedSequence(9)
    pd.testing.assert_frame_equal(
        compare(galaxies, [1, 2], method="map", em_n_init=2, random_state=seq).table,
        compare(galaxies, [1, 2], method="map", em_n_init=2, random_state=seq).table,
    )
    with pytest.raises(TypeError, match="random_state"):
        compare(galaxies, [1], method="map", random_state=1.5)


def test_an_int_n_components_is_one_candidate(galaxies):
    one = compare(galaxies, 2, ["full", "diag"], method="map", em_n_init=2, random_state=0)
    assert sorted(one.table.index) == ["K=2 diag", "K=2 full"]
    every = compare(galaxies, 1, "all", method="map", em_n_init=1, random_state=0)
    # with method="map", "all" is every registered structure: mclust's fourteen models
    assert set(every.table["covariance_type"]) == set(covariance_types())
    assert len(covariance_types()) == 14
    with pytest.raises(TypeError, match="n_components must be a positive int"):
        compare(galaxies, "3", method="map")


def test_method_none_is_deprecated_for_map(galaxies):
    with pytest.warns(DeprecationWarning, match='method="map"'):
        old = compare(galaxies, [1, 2], method=None, em_n_init=1, random_state=0)
    new = compare(galaxies, [1, 2], method="map", em_n_init=1, random_state=0)
    pd.testing.assert_frame_equal(old.table, new.table)
    assert new.method == "map" and "EM only" in str(new)


def test_progressbar_takes_a_callable_or_a_bool(galaxies, capsys):
    seen = []
    compare(galaxies, [1, 2], method="map", em_n_init=1, random_state=0, progressbar=seen.append)
    assert seen == ["fitting K=1 full (1/2)", "fitting K=2 full (2/2)"]
    compare(galaxies, [1], method="map", em_n_init=1, random_state=0, progressbar=True)
    assert "fitting K=1 full (1/1)" in capsys.readouterr().err
    with pytest.raises(TypeError, match="progressbar"):
        compare(galaxies, [1], method="map", progressbar="yes")


@pytest.mark.slow
def test_readme_comparison_gives_the_same_table_twice(galaxies):
    first = compare(galaxies, [1, 2], draws=100, tune=100, chains=2, random_state=0)
    again = compare(galaxies, [1, 2], draws=100, tune=100, chains=2, random_state=0)
    pd.testing.assert_frame_equal(first.table, again.table)


@pytest.mark.slow
def test_compiled_moment_matching_equals_arviz_from_the_pymc_model(galaxies):
    # reference: ArviZ's moment-matching inputs compiled from the PyMC model
    import pytensor
    from arviz_stats import loo as az_loo
    from arviz_stats import loo_moment_match
    from arviz_stats.loo.loo_moment_match_helper import mm_from_pymc

    from bayesgmm.bayes.estimator import BayesianGaussianMixture

    fit = BayesianGaussianMixture(
        3, random_state=0, draws=100, tune=200, chains=2, progressbar=False
    ).fit(galaxies)
    densities = compare_module.compiled_densities(fit)
    assert densities is not None
    # ArviZ compiles its three functions in PyTensor's default mode (numba: a minute or more
    # with a cold cache); the Python linker computes the same reference without compiling
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        log_prob, log_lik_i, upars = mm_from_pymc(fit.idata_, model=fit.model_)
    ours = densities.upars(fit.idata_)
    np.testing.assert_allclose(ours.values, upars.values, rtol=0, atol=1e-10)
    moved = upars + 0.05  # off the draws, as moment matching moves them
    np.testing.assert_allclose(densities.log_prob(moved).values, log_prob(moved).values, rtol=1e-10)
    for i in (0, 40, 81):
        np.testing.assert_allclose(
            densities.log_lik_i(moved, i).values, log_lik_i(moved, i).values, rtol=1e-10
        )
    # whole moment matching on the most influential observations, both ways
    base = az_loo(fit.idata_, pointwise=True)
    threshold = float(np.quantile(base.pareto_k.values, 0.95))
    results = [
        loo_moment_match(
            fit.idata_,
            base,
            log_prob_upars_fn=lp,
            log_lik_i_upars_fn=ll,
            upars=up,
            k_threshold=threshold,
            pointwise=True,
        )
        for lp, ll, up in [
            (log_prob, log_lik_i, upars),
            (densities.log_prob, densities.log_lik_i, ours),
        ]
    ]
    assert abs(results[0].elpd - base.elpd) > 1e-6  # moment matching changed something
    assert results[1].elpd == pytest.approx(results[0].elpd, abs=1e-8)
    np.testing.assert_allclose(
        results[1].elpd_i.values, results[0].elpd_i.values, rtol=0, atol=1e-8
    )


def test_weighted_criteria_are_those_of_the_replicated_rows(faithful):
    # reference: the same fitted model scored on the rows repeated w_n times
    weights = np.random.default_rng(0).integers(1, 4, len(faithful))
    model = GaussianMixture(2, random_state=0).fit(faithful, sample_weight=weights)
    weighted = em_criteria(model, faithful, weights.astype(float))
    replicated = em_criteria(model, np.repeat(faithful, weights, axis=0))
    assert weighted.keys() == replicated.keys()
    for name, value in replicated.items():
        np.testing.assert_allclose(weighted[name], value, rtol=1e-10, err_msg=name)
    by_compare = compare(
        faithful, 2, method="map", sample_weight=weights, em_n_init=1, random_state=0
    )
    assert by_compare.cluster_count is None  # the sparse mixture has no weights
    with pytest.raises(ValueError, match="cluster_count=True with sample_weight"):
        compare(faithful, 2, method="map", sample_weight=weights, cluster_count=True)
