"""Converging ADVI and the PSIS k-hat check (bayesgmm.bayes.vi) against NUTS on the same model.

NUTS references are 2 chains x 2000 draws from the MAP, one per data set and module. Measured
(reports/vi.md, benchmarks/bench_vi_correction.py): on Old Faithful K=2 both families match
NUTS; on galaxies K=3 the means match but the small components' variances and the 3-galaxy
component's mean have skewed, heavy-tailed posteriors that a Gaussian in the unconstrained
space cannot follow: q's sd of the 3-galaxy variance is 0.22-0.24 of NUTS's and q's own k-hat
is borderline (0.49-0.74 over seeds), which the tests pin down rather than hide. The PSIS
correction (a defensive proposal adapted once from q) has k-hat < 0.7 for both families on
both data sets and its resampled draws, which ``BayesianGaussianMixture`` returns, match
NUTS: sds within a factor 1.5 (but the two heavy-tailed galaxies scalars, whose sd has no
Monte Carlo error bound: factor 2.5) and interquartile ranges within 1.5.
"""

import logging

import numpy as np
import pymc as pm
import pytest
from matplotlib.figure import Figure

from bayesgmm import datasets
from bayesgmm.bayes.compiled import compiled_mixture
from bayesgmm.bayes.model import build_model, initial_point
from bayesgmm.bayes.sampling import PSIS_DRAWS, psis_draws
from bayesgmm.bayes.vi import (
    UNRELIABLE_MESSAGE,
    fit_vi,
    is_minibatch,
    psis_khat,
    psis_khat_subsample,
    psis_posterior,
)
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.em.estimator import fit_map
from bayesgmm.reporting.plots import plot_elbo

VARS = ("weights", "means", "covariances")
logging.getLogger("pymc").setLevel(logging.ERROR)


def _problem(name):
    X, K = (datasets.load_faithful(), 2) if name == "faithful" else (datasets.load_galaxies(), 3)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    spec = MixtureSpec.from_data(X, K, "full", "default")
    model = build_model(X, spec)
    params = fit_map(X, spec, tol=1e-6, max_iter=1000, n_init=5, random_state=0).params_
    if X.shape[1] == 1:
        params = params.sorted_by_mean()
    return X, spec, model, initial_point(params, model, spec)


def _moments(posterior, chains=None):
    """Mean, sd and interquartile range of each variable over the draws (of ``chains``)."""
    out = {}
    for v in VARS:
        a = posterior[v].values if chains is None else posterior[v].values[chains]
        a = a.reshape(-1, *a.shape[2:])
        q1, q3 = np.quantile(a, [0.25, 0.75], axis=0)
        out[v] = (a.mean(0), a.std(0), q3 - q1)
    return out


@pytest.fixture(scope="module", params=["faithful", "galaxies"])
def problem(request):
    X, spec, model, start = _problem(request.param)
    # NUTS (nutpie) on the same posterior through the structure's compiled target, the
    # package's hand-written kernel (PyMC's own NUTS compiled the model's graph with numba
    # first: a minute per data set with a cold cache), every chain from the start plus the
    # estimator's default jitter, without relabelling (the start fixes the labelling).
    # 2 x 2000 draws (a second): 2 x 500 of them from near the MAP missed most of the rare
    # excursions behind galaxies' heavy-tailed variance (full-rank q's sd of the 3-galaxy
    # variance came out 0.73 of theirs, against 0.22-0.24 of 13 chains pooled)
    target = compiled_mixture(X, spec)
    x0 = target.unconstrained(start)
    rng = np.random.default_rng(11)
    starts = [x0 + rng.uniform(-0.1, 0.1, x0.shape) for _ in range(2)]
    idata = target.sample(X, spec, starts, draws=2000, tune=500, seed=11, target_accept=0.8)
    # galaxies K=3 is multimodal: a NUTS chain can leave the MAP's mode for another that VI
    # started at the MAP does not target; compare to the chains that stayed
    chain_means = idata.posterior["means"].mean("draw").values
    means_user = problem_means(spec, start)
    stayed = np.all(np.abs(chain_means - means_user) < 0.5 * X.std(0), axis=(1, 2))
    assert stayed.any()
    return {
        "name": request.param,
        "X": X,
        "spec": spec,
        "model": model,
        "start": start,
        "nuts": _moments(idata.posterior, np.flatnonzero(stayed)),
        "fits": {},
    }


def problem_means(spec, start):
    """The start's component means on the user's scale."""
    std = spec.standardization
    return std.location + std.scale * start["means_z"]


def _fit(problem, method):
    if method not in problem["fits"]:
        result = fit_vi(problem["model"], problem["start"], method, random_seed=1)
        moments = _moments(result.approximation.sample(4000, random_seed=2).posterior)
        psis = psis_khat(problem["model"], result.approximation, n_draws=4000, random_seed=3)
        problem["fits"][method] = (result, moments, psis)
    return problem["fits"][method]


def _corrected(problem, method):
    """The correction as ``BayesianGaussianMixture`` makes it, and the moments of its draws.

    ``PSIS_DRAWS`` draws of the adapted defensive proposal, resampled into 1000 draws (the
    estimator's default ``draws``): the posterior a VI fit returns and ``summary()`` reports.
    """
    key = method + "/corrected"
    if key not in problem["fits"]:
        result = _fit(problem, method)[0]
        model = problem["model"]
        psis = psis_khat(
            model, result.approximation, n_draws=PSIS_DRAWS, random_seed=4, proposal="defensive"
        )
        idata = psis_posterior(model, result.approximation, psis, 1000, random_seed=5)
        problem["fits"][key] = (psis, _moments(idata.posterior))
    return problem["fits"][key]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["advi", "fullrank_advi"])
def test_converges_and_means_match_nuts(problem, method):
    result, vi, _ = _fit(problem, method)
    assert result.converged and result.n_iter < 30_000
    err = np.abs(vi["means"][0] - problem["nuts"]["means"][0]) / problem["X"].std(0)
    assert err.max() < 0.1


def _sd_ratios(problem, vi):
    return {v: vi[v][1] / problem["nuts"][v][1] for v in VARS}


@pytest.mark.slow
def test_fullrank_sds_match_nuts(problem):
    _, vi, _ = _fit(problem, "fullrank_advi")
    ratios = _sd_ratios(problem, vi)
    if problem["name"] == "faithful":
        for ratio in ratios.values():
            assert np.all((ratio > 1 / 1.5) & (ratio < 1.5))
    else:
        # weights and the large component (index 1, 70 galaxies) match; the small
        # components' variances are too narrow (Gaussian q, skewed posterior)
        assert np.all((ratios["weights"] > 1 / 1.5) & (ratios["weights"] < 1.5))
        for v in ("means", "covariances"):
            assert 1 / 1.5 < ratios[v].ravel()[1] < 1.5
        assert ratios["covariances"].ravel()[2] < 1 / 1.5


@pytest.mark.slow
def test_meanfield_sds_not_wider_than_nuts(problem):
    # mean-field ignores correlations, so its sds may be narrower than NUTS's, never much wider
    _, vi, _ = _fit(problem, "advi")
    for ratio in _sd_ratios(problem, vi).values():
        assert np.all(ratio < 1.5)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["advi", "fullrank_advi"])
def test_khat(problem, method):
    _, _, psis = _fit(problem, method)
    assert np.isclose(np.exp(psis.log_weights).sum(), 1.0)
    if problem["name"] == "faithful":
        assert psis.khat < 0.7 and psis.reliable
    else:
        assert 0.4 < psis.khat < 0.85


#: Scalars (flat index over weights, means, covariances) whose posterior sd is a heavy-tail
#: statistic: galaxies' 3-galaxy component, its mean (#5) and variance (#8). Their NUTS
#: posteriors have a polynomial right tail (Hill tail index of the variance 1.9-2.9: a finite
#: sd, an infinite fourth moment, so the sd has no Monte Carlo standard error) fed by rare
#: excursions towards another configuration (in the top 3% of the variance's draws the mean
#: moves from 33 to 24-28 and the weight doubles). NUTS's own sd of them, one 1000-draw chain
#: against 13 chains pooled (reports/vi.md), is 0.44-1.41 (variance) and 0.63-1.55 (mean)
#: of the pooled value, and the test's 2 x 2000 reference is no better. Their spread is
#: compared by the interquartile range within a factor 1.5, and their sd within a factor 2.5.
HEAVY_TAILED = {"faithful": (), "galaxies": (5, 8)}


def _flat(moments, i):
    return np.concatenate([np.ravel(moments[v][i]) for v in VARS])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["advi", "fullrank_advi"])
def test_corrected_posterior_matches_nuts(problem, method):
    # what a VI fit returns (the PSIS correction from the adapted defensive proposal): its
    # k-hat < 0.7 for both families on both data sets, its means within 0.1 data-sd of NUTS,
    # its sds within a factor 1.5 of NUTS's (every scalar but the heavy-tailed two above),
    # its interquartile ranges within a factor 1.5 for every scalar. q itself is narrower
    # on galaxies (test_fullrank_sds_match_nuts); measured over fit seeds 1-3 and proposal
    # seeds (benchmarks/bench_vi_correction.py, reports/vi.md)
    psis, corrected = _corrected(problem, method)
    assert psis.proposal == "defensive" and psis.khat < 0.7 and psis.reliable
    nuts = problem["nuts"]
    err = np.abs(corrected["means"][0] - nuts["means"][0]) / problem["X"].std(0)
    assert err.max() < 0.1
    sd = _flat(corrected, 1) / _flat(nuts, 1)
    iqr = _flat(corrected, 2) / _flat(nuts, 2)
    heavy = np.zeros(len(sd), dtype=bool)
    heavy[list(HEAVY_TAILED[problem["name"]])] = True
    assert np.all((sd[~heavy] > 1 / 1.5) & (sd[~heavy] < 1.5)), sd
    assert np.all((iqr > 1 / 1.5) & (iqr < 1.5)), iqr
    assert np.all((sd[heavy] > 1 / 2.5) & (sd[heavy] < 2.5)), sd


@pytest.mark.slow
def test_psis_correction_improves_faithful(problem):
    if problem["name"] != "faithful":
        pytest.skip("correction is checked where k-hat < 0.7")
    _, vi, psis = _fit(problem, "fullrank_advi")
    corrected = psis.moments(weighted=True)
    plain = psis.moments(weighted=False)
    sd_data = problem["X"].std(0)
    nuts = problem["nuts"]
    assert np.allclose(plain["means"][0], vi["means"][0], atol=0.02 * sd_data)
    err = np.abs(corrected["means"][0] - nuts["means"][0]) / sd_data
    assert err.max() < 0.03
    for v in VARS:
        ratio = corrected[v][1] / nuts[v][1]
        assert np.all((ratio > 0.8) & (ratio < 1.25))
    table = psis.summary()
    assert list(table.columns) == ["mean", "sd"] and len(table) == 2 + 4 + 8


def _correlated_gaussian(d=5, rho=0.9):
    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(d), cov=np.full((d, d), rho) + (1 - rho) * np.eye(d))
    return model


@pytest.mark.slow
def test_meanfield_on_correlated_posterior_is_flagged():
    # an equicorrelated 5-D Gaussian: the mean-field optimum has sds 0.35 of the marginal
    # ones (1 / sqrt(precision_ii)), and the importance ratios have a heavy tail
    model = _correlated_gaussian()
    start = {"x": np.zeros(5)}
    # q starts 10x narrower than this posterior: a larger first step travels that far before
    # the 1/t decay (the default suits a MAP start on a mixture, where sds are ~0.1)
    settings = {"random_seed": 0, "max_iter": 5000, "window": 200, "learning_rate": 0.05}
    mf = fit_vi(model, start, "advi", **settings)
    psis = psis_khat(model, mf.approximation, n_draws=4000, random_seed=0)
    assert psis.khat > 0.7 and psis.verdict == "unreliable"
    assert UNRELIABLE_MESSAGE in psis.message
    with pytest.raises(ValueError, match="use NUTS"):
        psis.moments(weighted=True)
    # the adapted correction repairs it: stage 1 (q and q widened 2x, k-hat 0.78-0.98 over
    # proposal seeds 0-2) still finds the long diagonal, its weighted covariance shapes stage
    # 2 (k-hat 0.54-0.65): the corrected draws have the target's sds 1 and correlations 0.9
    defensive = psis_khat(
        model, mf.approximation, n_draws=4000, random_seed=0, proposal="defensive"
    )
    assert defensive.khat < 0.7 and defensive.reliable
    x = defensive.theta[defensive.resample(4000, random_seed=0)]
    np.testing.assert_allclose(x.std(0), 1.0, atol=0.1)
    corr = np.corrcoef(x.T)[np.triu_indices(5, 1)]
    np.testing.assert_allclose(corr, 0.9, atol=0.05)
    # the same check passes the full-rank fit of the same posterior: q can equal p
    fr = fit_vi(model, start, "fullrank_advi", **settings)
    assert psis_khat(model, fr.approximation, n_draws=4000, random_seed=0).khat < 0.5


@pytest.mark.slow
def test_meanfield_beyond_the_correction_is_flagged():
    # 10-D, correlations 0.95: mean-field sds are 0.22 of the marginal ones, stage 1's wide
    # half does not reach the diagonal and both k-hats are > 0.7 (correction: 0.94-1.08 over
    # proposal seeds 0-2): the fit must say "use NUTS"
    model = _correlated_gaussian(d=10, rho=0.95)
    settings = {"random_seed": 0, "max_iter": 5000, "window": 200, "learning_rate": 0.05}
    mf = fit_vi(model, {"x": np.zeros(10)}, "advi", **settings)
    q = psis_khat(model, mf.approximation, n_draws=4000, random_seed=0)
    assert q.khat > 0.7 and UNRELIABLE_MESSAGE in q.message
    defensive = psis_khat(
        model, mf.approximation, n_draws=4000, random_seed=0, proposal="defensive"
    )
    assert defensive.khat > 0.7 and not defensive.reliable
    assert "unreliable" in defensive.message
    with pytest.raises(ValueError, match="resampling needs khat"):
        defensive.resample(10)


@pytest.mark.slow
def test_defensive_proposal_corrects_a_too_narrow_q():
    # target N(0, I_8), q = N(0, 0.5^2 I): the ratios p/q have a Pareto tail (k = 1 - 0.5^2
    # asymptotically; estimated higher in 8 dimensions). Stage 1's wide half is N(0, I) = p,
    # so its weighted moments are p's, and stage 2 (N(m, S) + N(m, 4 S)) / 2 with S ~ I has
    # ratios bounded by about 2: the corrected sds are the target's, 1
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=8)
    fit = fit_vi(
        model, {"x": np.zeros(8)}, "fullrank_advi", max_iter=1, start_sigma=0.5, learning_rate=1e-12
    )
    q = psis_khat(model, fit.approximation, n_draws=2000, random_seed=0)
    assert q.khat > 0.7 and q.proposal == "q"
    d = psis_khat(model, fit.approximation, n_draws=2000, random_seed=0, proposal="defensive")
    assert d.proposal == "defensive" and d.khat < 0.5 and d.verdict == "good"
    assert "correction" in d.message
    # the defensive mixture around p itself: ESS 2000 / E[(p/g)^2] = 0.58 x 2000 for g = (p +
    # p widened 2x) / 2 in 8 dimensions, exactly; measured 1104 with estimated moments
    assert d.ess > 0.45 * 2000
    assert d.theta.shape == (2000, 8)
    np.testing.assert_allclose(
        np.linalg.norm(d.theta[1000:], axis=1).mean() / 2,
        np.linalg.norm(d.theta[:1000], axis=1).mean(),
        rtol=0.05,
    )
    idata = psis_posterior(model, fit.approximation, d, 3000, random_seed=1)
    x = idata.posterior["x"].values
    assert x.shape == (1, 3000, 8)
    np.testing.assert_allclose(x.std(axis=(0, 1)), 1.0, atol=0.08)
    np.testing.assert_allclose(x.mean(axis=(0, 1)), 0.0, atol=0.08)
    # the resampled draws are draws of the proposal, by weight: the same seed, the same draws
    np.testing.assert_array_equal(x[0], d.theta[d.resample(3000, random_seed=1)])
    assert all(np.any(np.all(np.isclose(d.theta, row), axis=1)) for row in x[0, :20])
    with pytest.raises(ValueError, match="proposal must be"):
        psis_khat(model, fit.approximation, proposal="t")
    with pytest.raises(ValueError, match="resampling needs khat"):
        q.resample(10)


@pytest.mark.slow
def test_khat_of_exact_q_is_small_and_weights_uniform():
    # target N(0, I) and mean-field q = N(0, I): log ratios are constant
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=8)
    fit = fit_vi(
        model, {"x": np.zeros(8)}, "advi", max_iter=1, start_sigma=1.0, learning_rate=1e-12
    )
    psis = psis_khat(model, fit.approximation, n_draws=1000, random_seed=0)
    assert psis.verdict == "good"
    assert np.allclose(psis.log_weights, -np.log(1000), atol=1e-6)
    assert np.isclose(psis.ess, 1000)


@pytest.mark.slow
def test_stopping_rule_and_reproducibility():
    with pm.Model() as model:
        pm.Normal("mu", 0.0, 10.0, observed=None)
        mu = model["mu"]
        pm.Normal("y", mu, 1.0, observed=np.random.default_rng(0).normal(3.0, 1.0, 50))
    start = {"mu": np.array(3.0)}
    runs = [fit_vi(model, start, "fullrank_advi", max_iter=20_000, random_seed=5) for _ in range(2)]
    assert runs[0].converged and runs[0].n_iter < 20_000
    assert runs[0].n_iter == len(runs[0].hist)
    np.testing.assert_array_equal(runs[0].hist, runs[1].hist)
    other = fit_vi(model, start, "fullrank_advi", max_iter=20_000, random_seed=6)
    assert not np.array_equal(other.hist[:100], runs[0].hist[:100])
    # posterior of mu: N(mean, 1/50) approximately (prior sd 10)
    group = runs[0].approximation.groups[0]
    assert abs(float(group.std.eval()[0]) - 50**-0.5) < 0.02
    capped = fit_vi(model, start, "advi", max_iter=50, random_seed=5)
    assert not capped.converged and capped.n_iter == 50


@pytest.mark.slow
def test_fullrank_starts_at_start_sigma():
    model = _correlated_gaussian(d=2)
    fit = fit_vi(model, {"x": np.ones(2)}, "fullrank_advi", max_iter=1, learning_rate=1e-12)
    group = fit.approximation.groups[0]
    np.testing.assert_allclose(group.cov.eval(), 0.01 * np.eye(2), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(group.mean.eval(), np.ones(2))


@pytest.mark.slow
def test_minibatch_fit_and_subsample_khat(faithful):
    X = np.asarray(faithful, dtype=np.float64)
    spec = MixtureSpec.from_data(X, 2, "full", "default")
    model = build_model(X, spec, batch_size=100, random_seed=0)
    assert is_minibatch(model) and not is_minibatch(build_model(X, spec))
    params = fit_map(X, spec, tol=1e-6, n_init=2, random_state=0).params_
    fit = fit_vi(model, initial_point(params, model, spec), "fullrank_advi", random_seed=0)
    assert fit.converged
    with pytest.raises(ValueError, match="Minibatch"):
        psis_khat(model, fit.approximation)
    sub = psis_khat_subsample(X, spec, fit.approximation, n_rows=136, n_draws=1000, random_seed=0)
    full = psis_khat_subsample(
        X, spec, fit.approximation, n_rows=10**6, n_draws=1000, random_seed=0
    )
    assert sub.likelihood_scale == 2.0 and full.likelihood_scale == 1.0
    # n_rows >= N is the exact check on the full-data model
    exact = psis_khat(
        build_model(X, spec),
        fit.approximation,
        n_draws=1000,
        random_seed=int(np.random.default_rng(0).integers(2**31 - 1)),
    )
    # equal up to rounding: the data enter one graph as pm.Data, the other as constants
    np.testing.assert_allclose(full.khat, exact.khat, rtol=1e-9)
    # measured: k-hat 0.51 on all rows; the half-sample check is noisier (0.85 with a
    # step size decaying as 1/sqrt(t), whose q was worse: k-hat 0.87 on all rows)
    assert full.khat < 0.7 and np.isfinite(sub.khat)


@pytest.mark.slow
def test_plot_elbo():
    with pm.Model() as model:
        pm.Normal("x", 1.0, 2.0)
    fit = fit_vi(model, {"x": np.array(1.0)}, "advi", random_seed=0, window=100, max_iter=3000)
    fig = plot_elbo(fit)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "ELBO"
    assert "advi" in ax.get_title()
    assert any(np.allclose(line.get_xdata(), fit.n_iter) for line in ax.lines[2:])


def test_correction_draws_follow_the_row_budget():
    # 16000 draws up to 1000 rows (galaxies, faithful), then a fixed budget of row
    # evaluations, never fewer than 4000 nor than the posterior draws asked for
    assert psis_draws(82, 1000) == psis_draws(1000, 1000) == PSIS_DRAWS == 16_000
    assert psis_draws(2000, 1000) == 8000 and psis_draws(18_000, 1000) == 4000
    assert psis_draws(18_000, 5000) == 5000 and psis_draws(10, 20_000) == 20_000


@pytest.mark.slow
def test_fullrank_step_function_has_no_batched_alloc_diag(monkeypatch):
    """The VI step function compiles in the package's mode (bayesgmm.bayes.graph.MODE).

    PyMC's default mode leaves ``Blockwise(AllocDiag)`` nodes (wrapped in
    ``BlockwiseWithCoreShape``) in the full-rank gradient of a full-covariance mixture,
    which numba runs in object mode; measured on a 1-D K=2 SBC replicate, the second fit
    of a process spent 62 s compiling its step function with numba (of 111 s), and none
    with the package's ``unbatch_alloc_diag`` rewrite (25 s in all, the same draws).
    """
    from pymc.variational.opvi import ObjectiveFunction
    from pytensor.tensor.basic import AllocDiag
    from pytensor.tensor.blockwise import Blockwise

    compiled = []
    original = ObjectiveFunction.step_function

    class Built(Exception):
        """Raised once the step function is built: numba compiles it at its first call
        (a minute with a cold cache), which this check of its graph does not need."""

    def recording(self, *args, **kwargs):
        compiled.append(original(self, *args, **kwargs))
        raise Built

    def ops(fgraph):
        for node in fgraph.apply_nodes:
            yield node.op
            if hasattr(node.op, "fgraph"):  # an inner graph (OpFromGraph, Composite)
                yield from ops(node.op.fgraph)

    monkeypatch.setattr(ObjectiveFunction, "step_function", recording)
    X = np.asarray(datasets.load_galaxies(), dtype=np.float64).reshape(-1, 1)
    spec = MixtureSpec.from_data(X, 2, "full", "default")
    model = build_model(X, spec)
    params = fit_map(X, spec, n_init=2, random_state=0).params_.sorted_by_mean()
    start = initial_point(params, model, spec)
    with pytest.raises(Built):
        fit_vi(model, start, "fullrank_advi", max_iter=3, random_seed=0)
    (step,) = compiled
    inner = list(ops(step.maker.fgraph))
    assert len(inner) > 50  # the whole step function was walked
    assert not [
        op for op in inner if isinstance(op, Blockwise) and isinstance(op.core_op, AllocDiag)
    ]
