"""The diagnostics record on synthetic DataTrees with known behaviour."""

import numpy as np
import pytest
import xarray as xr

from bayesgmm.posterior.diagnostics import (
    Diagnostics,
    chain_modes,
    diagnose,
    drifting_chains,
    empty_components,
    empty_draw_fractions,
    stacking_groups,
)


def _tree(shift=0.0, n_div=0, seed=0, chains=4, draws=500):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet([20, 30], size=(chains, draws))
    means = rng.normal(size=(chains, draws, 2, 1))
    means[0] += shift
    covs = np.exp(rng.normal(size=(chains, draws, 2, 1, 1)))
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights),
            "means": (("chain", "draw", "component", "feature"), means),
            "covariances": (("chain", "draw", "component", "feature", "feature_bis"), covs),
        }
    )
    diverging = np.zeros((chains, draws), dtype=bool)
    diverging.flat[:n_div] = True
    energy = rng.normal(size=(chains, draws)).cumsum(axis=1) * 0.1 + rng.normal(
        size=(chains, draws)
    )
    stats = xr.Dataset(
        {"diverging": (("chain", "draw"), diverging), "energy": (("chain", "draw"), energy)}
    )
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})


def test_independent_draws_pass():
    diag = diagnose(_tree(), label_switching="no label switching")
    assert isinstance(diag, Diagnostics)
    assert diag.max_rhat < 1.01 and diag.min_ess_bulk > 1000 and diag.n_divergences == 0
    assert diag.ok
    assert "OK" in str(diag)


def test_a_shifted_chain_fails_rhat():
    diag = diagnose(_tree(shift=3.0))
    assert diag.max_rhat > 1.1
    assert not diag.ok
    frame = diag.to_frame()
    assert not frame.loc["max_rhat", "ok"]
    assert "PROBLEMS" in str(diag)


def test_divergences_are_counted():
    diag = diagnose(_tree(n_div=3))
    assert diag.n_divergences == 3 and not diag.ok


def test_constant_entries_are_ignored():
    tree = _tree()
    post = tree["posterior"].to_dataset()
    covs = post["covariances"].values
    padded = np.zeros((*covs.shape[:3], 2, 2))
    padded[..., 0, 0] = covs[..., 0, 0]
    padded[..., 1, 1] = covs[..., 0, 0]
    post = post.drop_vars("covariances").assign(
        covariances=(("chain", "draw", "component", "row", "column"), padded)
    )
    tree["posterior"] = xr.DataTree(post)
    assert np.isfinite(diagnose(tree).max_rhat)


def test_one_chain_is_refused():
    with pytest.raises(ValueError, match="2 chains"):
        diagnose(_tree(chains=1))


def test_empty_components_are_flagged():
    rng = np.random.default_rng(0)
    counts = np.column_stack(
        [
            rng.normal(60, 3, 400),  # well populated
            rng.exponential(0.3, 400),  # almost always below one sample
            rng.normal(22, 2, 400),
        ]
    )
    assert empty_components(counts) == (1,)
    assert empty_components(counts[:, [0, 2]]) == ()


def test_empty_components_reach_the_report():
    rng = np.random.default_rng(1)
    idata = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(
                {"weights": (("chain", "draw", "component"), rng.dirichlet([5, 5], size=(4, 100)))}
            ),
            "sample_stats": xr.Dataset(
                {"diverging": (("chain", "draw"), np.zeros((4, 100), dtype=bool))}
            ),
        }
    )
    counts = np.column_stack([rng.normal(50, 2, 400), np.full(400, 0.2)])
    result = diagnose(idata, var_names=("weights",), component_counts=counts)
    assert result.empty_components == (1,)
    assert "probably empty" in str(result)


def _sometimes_empty_tree(stuck_draws: int, seed=0, chains=4, draws=400):
    """A small component (about 6 points) that empties for the last ``stuck_draws`` of
    chain 2; while empty its mean wanders over the prior (sd 10) instead of staying near 3.
    """
    rng = np.random.default_rng(seed)
    counts = np.stack(
        [rng.normal(50, 2, (chains, draws)), rng.normal(94, 2, (chains, draws))], axis=-1
    )
    small = rng.gamma(6.0, 1.0, (chains, draws))
    empty = np.zeros((chains, draws), dtype=bool)
    empty[2, draws - stuck_draws :] = True
    small[empty] = rng.exponential(0.05, empty.sum())
    counts = np.concatenate([counts, small[..., None]], axis=-1)
    weights = counts / counts.sum(axis=-1, keepdims=True)
    means = rng.normal(size=(chains, draws, 3, 1)) * 0.1 + np.array([-2.0, 0.0, 3.0])[:, None]
    means[..., 2, 0] = np.where(empty, np.cumsum(rng.normal(size=(chains, draws)), 1), 3.0)
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights),
            "means": (("chain", "draw", "component", "feature"), means),
        }
    )
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))})
    tree = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    return tree, counts


def test_a_component_that_empties_in_some_draws_is_named_as_the_cause():
    tree, counts = _sometimes_empty_tree(stuck_draws=200)
    assert empty_draw_fractions(counts) == pytest.approx((0.0, 0.0, 0.5, 0.0), abs=0.01)
    result = diagnose(tree, var_names=("weights", "means"), component_counts=counts)
    assert not result.ok and result.sometimes_empty and result.empty_components == ()
    text = result.verdict
    assert "a component holds fewer than one point in 12.5% of the draws" in text
    assert "by chain: 0.0%, 0.0%, 50.0%, 0.0%" in text
    assert "fewer components (one that empties in some draws" in text
    assert "empty draws" in str(result)
    assert not result.to_frame().loc["empty_draws", "ok"]
    # the same chains without the empty stretch: no such sentence
    tree, counts = _sometimes_empty_tree(stuck_draws=0)
    calm = diagnose(tree, var_names=("weights", "means"), component_counts=counts)
    assert not calm.sometimes_empty and "fewer than one point" not in str(calm) + calm.verdict
    # flattened counts (no chains) still flag probably-empty components, not this
    flat = diagnose(tree, var_names=("weights",), component_counts=counts.reshape(-1, 3))
    assert flat.empty_draws == ()


def test_verdict_says_what_failed_and_what_to_do():
    good = diagnose(_tree(), label_switching="no label switching")
    assert good.verdict.startswith("Verdict: the sampler checks passed")
    assert good.problems == [] and good.remedies == []
    bad = diagnose(_tree(shift=3.0, n_div=3, draws=100))
    text = bad.verdict
    assert text.startswith(
        "Verdict: the sampler checks FAILED: the chains sit in 2 different modes"
    )
    assert "3 divergent transition(s)" in text and "Do not trust" in text
    # chains in separate modes: more draws would not help, and the remedy says so
    assert "not more draws" in text and "target_accept" in text and "fewer components" in text
    # a slightly high R-hat with too few draws asks for more draws, not fewer components
    mild = Diagnostics(1.02, 300.0, 250.0, 0, 0.9, "none", 2, 300)
    assert mild.remedies == [
        "more draws and tuning (e.g. draws=600, tune=600; on the command line --draws 600 "
        "--tune 600)"
    ]
    # chains that barely move (ESS 14 in 4 x 4000): more draws would need ~29x, not offered
    stuck = Diagnostics(1.05, 14.0, 22.0, 0, 0.9, "none", 4, 4000, draws_asked=1000)
    (remedy,) = stuck.remedies
    assert remedy.startswith("not more draws") and "29x" in remedy
    assert "extended from 1000 to 4000 draws per chain" in str(stuck)


def _two_mode_tree(draws=300, seed=0):
    """Chains 0 and 2 sample the posterior of a normal mean; chains 1 and 3 a false mode.

    y ~ N(theta, 1), flat prior: the posterior is N(mean(y), 1/n). The false mode sits
    1 unit away (10 posterior sds): its draws explain the data far worse.
    """
    in_false_mode = np.zeros((4, draws), dtype=bool)
    in_false_mode[[1, 3]] = True
    return _normal_mean_tree(in_false_mode, seed)


def _normal_mean_tree(in_false_mode, seed=0):
    """Draws of a normal mean that sit in the true or (where ``in_false_mode``) the false mode.

    ``in_false_mode`` has shape (chains, draws); see :func:`_two_mode_tree`.
    """
    rng = np.random.default_rng(seed)
    n = 100
    y = rng.normal(size=n)
    chains, draws = in_false_mode.shape
    centre = in_false_mode + y.mean()
    theta = centre + rng.normal(size=(chains, draws)) / np.sqrt(n)
    log_lik = -0.5 * (y[None, None, :] - theta[:, :, None]) ** 2 - 0.5 * np.log(2 * np.pi)
    ones = np.ones((chains, draws, 1))
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), ones),
            "means": (("chain", "draw", "component", "feature"), theta[:, :, None, None]),
            "covariances": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                ones[..., None, None],
            ),
        }
    )
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((chains, draws), dtype=bool)),
            "lp": (("chain", "draw"), log_lik.sum(axis=2)),
        }
    )
    log_likelihood = xr.Dataset({"X": (("chain", "draw", "obs"), log_lik)})
    return xr.DataTree.from_dict(
        {"posterior": posterior, "sample_stats": stats, "log_likelihood": log_likelihood}
    )


def test_chains_in_two_separated_modes_are_named_with_their_stacking_weights():
    diag = diagnose(_two_mode_tree())
    assert diag.multimodal and not diag.ok
    a, b = diag.modes
    assert (a.name, a.chains, b.name, b.chains) == ("A", (0, 2), "B", (1, 3))
    # mode A (the true posterior) explains the data 50 log units better per chain
    assert a.mean_log_density > b.mean_log_density + 40
    assert a.weight > 0.99 and np.isclose(a.weight + b.weight, 1.0)
    assert diag.lp_rhat > 1.5
    text = diag.verdict
    assert (
        "the chains sit in 2 different modes: chains 0,2 in mode A (mean sampler log density"
        in text
    )
    assert "stacking weights A 1.00, B 0.00" in text and "combine_chains='stack'" in text
    assert not diag.to_frame().loc["modes", "ok"]
    # each chain stays in its mode: nothing drifts
    assert diag.drifting == () and "do not agree" not in text


def _switching(starts, ends, draws=1000):
    """(chains, draws) mask: chain c is in the false mode from starts[c] to ends[c] (fractions)."""
    t = np.arange(draws) / draws
    return np.array([(t >= a) & (t < b) for a, b in zip(starts, ends, strict=True)])


def test_chains_that_drift_between_modes_are_not_reported_as_one_mode():
    # every chain spends part of its run in the false mode, entering it at a different
    # time: whole-chain means lie between the modes with wide spreads, so single linkage
    # merges all chains into one "mode" although the log posterior's R-hat is large
    in_false_mode = _switching([0.15, 0.4, 0.65, 0.0], [1.0, 1.0, 1.0, 0.1])
    tree = _normal_mean_tree(in_false_mode)
    diag = diagnose(tree)
    assert len(diag.modes) == 1 and diag.lp_rhat > 1.2
    assert diag.drifting == (0, 1, 2, 3) and diag.drift and not diag.ok
    text = diag.verdict
    assert "the chains do not agree: every chain moves between configurations" in text
    assert "sit in one mode" not in text and "R-hat of the log posterior" in text
    assert "drift between configurations" in diag.to_frame().loc["modes", "value"]
    assert not diag.to_frame().loc["modes", "ok"]
    assert "modes          The chains do not agree" in str(diag)
    # each drifting chain is stacked on its own: the chain that spent least time in the
    # false mode (chain 3, 10%) explains the data best and takes the largest weight
    weights = np.asarray(diag.chain_weights)
    assert np.isclose(weights.sum(), 1.0) and weights.argmax() == 3
    assert "Stacking weights: chain 0 " in diag.modes_text


def test_one_excursion_marks_only_that_chain():
    # chain 0 leaves for the false mode in the middle 30% of its run; the others stay
    in_false_mode = _switching([0.35, 0, 0, 0], [0.65, 0, 0, 0])
    diag = diagnose(_normal_mean_tree(in_false_mode, seed=1))
    assert diag.drifting == (0,)
    assert "chain 0 moves between configurations" in diag.verdict
    assert stacking_groups(diag.modes, diag.drifting) == [(0,), (1, 2, 3)]


@pytest.mark.parametrize("seed", range(10))
def test_autocorrelated_but_stationary_chains_do_not_drift(seed):
    # AR(1) chains (phi = 0.7, about 180 effective draws per chain) of 20 parameters
    # sampling one distribution: no chain may be called drifting
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(4, 1000, 20))
    params = np.empty_like(noise)
    params[:, 0] = noise[:, 0]
    for t in range(1, 1000):
        params[:, t] = 0.7 * params[:, t - 1] + np.sqrt(1 - 0.7**2) * noise[:, t]
    modes = chain_modes(params[:, :, 0], params[:, :, 1:])
    assert drifting_chains(params[:, :, 0], params[:, :, 1:], modes) == ()


def test_mixing_chains_form_one_mode():
    diag = diagnose(_tree())
    assert len(diag.modes) == 1 and diag.modes[0].chains == (0, 1, 2, 3)
    assert not diag.multimodal


def test_chain_modes_links_chains_transitively():
    # chains 0-1 and 1-2 are close, 0-2 are not: single linkage keeps them in one mode
    rng = np.random.default_rng(0)
    params = rng.normal(size=(4, 200, 1)) + np.array([0.0, 1.5, 3.0, 20.0])[:, None, None]
    modes = chain_modes(None, params)
    assert [m.chains for m in modes] == [(0, 1, 2), (3,)]
    assert np.isnan(modes[0].mean_log_density) and np.isnan(modes[0].weight)


def test_auto_combination_stacks_drifting_chains():
    # the estimator's combine_chains="auto" uses the same rule as diagnose(): drifting
    # chains are stacked one by one and the choice is recorded in the attributes
    from bayesgmm.bayes.postprocess import combine_chains

    in_false_mode = _switching([0.15, 0.4, 0.65, 0.0], [1.0, 1.0, 1.0, 0.1])
    starts = np.zeros(4, dtype=int)
    tree, weights = combine_chains(
        _normal_mean_tree(in_false_mode), starts, "auto", np.random.default_rng(0)
    )
    np.testing.assert_array_equal(weights, tree["posterior"].attrs["chain_weights"])
    attrs = tree["posterior"].attrs
    assert attrs["chain_combination"] == "stacked"
    np.testing.assert_allclose(
        attrs["chain_weights"], diagnose(_normal_mean_tree(in_false_mode)).chain_weights
    )
    assert tree["posterior"].sizes["chain"] == 1 and "posterior_chains" in tree.children


def test_drifting_chains_that_predict_alike_are_pooled_and_say_why():
    # every chain spends half its run in the false mode, at different times: the chains
    # drift, but their predictive distributions agree, so stacking cannot weigh them
    in_false_mode = _switching([0.0, 0.25, 0.5, 0.1], [0.5, 0.75, 1.0, 0.6])
    diag = diagnose(_normal_mean_tree(in_false_mode, seed=2))
    assert diag.drifting == (0, 1, 2, 3) and diag.stacking_rejected
    assert diag.stacking_gain <= diag.stacking_penalty == 3.0 and diag.chain_weights == ()
    text = diag.verdict
    assert "Stacking does not tell the chains apart" in text and "pooled with equal" in text
    assert "combine_chains='stack'" not in text


def test_a_mostly_empty_component_is_the_remedy_not_more_draws():
    # the extended run stops early when a component is empty in most draws (long_enough);
    # the verdict says why instead of asking for the draws it did not run
    failed = Diagnostics(1.03, 120.0, 150.0, 0, 0.9, "none", 4, 1000, empty_components=(2,))
    text = failed.verdict
    assert "not more draws: component(s) [2] hold fewer than one point in most draws" in text
    assert "stops early" in text and "fewer components" in text
    assert "draws=2000" not in text and "--draws" not in text
    # the same numbers with every component occupied: more draws, as before
    occupied = Diagnostics(1.03, 120.0, 150.0, 0, 0.9, "none", 4, 1000)
    assert "more draws and tuning (e.g. draws=3400" in occupied.verdict
