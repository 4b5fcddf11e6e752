"""posterior/rhat.py: the vectorised rank-normalised split R-hat equals arviz-stats' number;
posterior/modes.py's drifting-chains check uses it and is computed once per fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from arviz_stats.base import array_stats

from bayesgmm import BayesianGaussianMixture, UnreliablePosteriorWarning
from bayesgmm.bayes.state import DIAGNOSTICS_CACHE
from bayesgmm.posterior import modes
from bayesgmm.posterior.modes import chain_modes, drifting_chains, split_rhat
from bayesgmm.posterior.rhat import rank_split_rhat


def _arviz(values: np.ndarray) -> np.ndarray:
    """arviz-stats' R-hat of every column of (n_chains, n_draws, n_columns), one by one."""
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = [values[:, :, j] for j in range(values.shape[2])]
        return np.array([float(array_stats.rhat(c, method="rank")) for c in columns])


def _awkward_columns(rng: np.random.Generator, n_chains: int, n_draws: int) -> np.ndarray:
    """Columns of every kind R-hat meets: smooth, shifted chains, ties, constant, NaN, inf."""
    smooth = rng.standard_normal((n_chains, n_draws))
    shifted = smooth + 3.0 * np.arange(n_chains)[:, None]
    ties = np.round(rng.standard_normal((n_chains, n_draws)))
    constant = np.full((n_chains, n_draws), 2.5)
    holed = rng.standard_normal((n_chains, n_draws))
    holed[0, 3] = np.nan
    infinite = rng.standard_normal((n_chains, n_draws))
    infinite[1, 2] = np.inf
    heavy = rng.standard_cauchy((n_chains, n_draws))
    return np.stack([smooth, shifted, ties, constant, holed, infinite, heavy], axis=-1)


@pytest.mark.parametrize(("n_chains", "n_draws"), [(4, 200), (2, 101), (3, 8), (2, 5)])
def test_rank_split_rhat_equals_arviz_stats_column_by_column(n_chains, n_draws):
    rng = np.random.default_rng(n_draws)
    sets = np.stack([_awkward_columns(rng, n_chains, n_draws) for _ in range(3)])
    fast = rank_split_rhat(sets)
    assert fast.shape == (3, sets.shape[-1])
    for values, row in zip(sets, fast, strict=True):
        np.testing.assert_allclose(row, _arviz(values), rtol=1e-12, equal_nan=True)
    assert np.isfinite(fast[:, 0]).all() and np.isnan(fast[:, 3]).all()  # smooth; constant
    assert np.isnan(fast[:, 4]).all()  # a NaN draw: no R-hat, as in arviz-stats
    assert (fast[:, 1] > 1.1).all()  # chains 3 sd apart


def test_rank_split_rhat_needs_two_chains_of_four_draws():
    rng = np.random.default_rng(0)
    assert np.isnan(rank_split_rhat(rng.standard_normal((1, 100, 3)))).all()
    assert np.isnan(rank_split_rhat(rng.standard_normal((4, 3, 3)))).all()


def test_split_rhat_of_one_chain_compares_its_halves():
    rng = np.random.default_rng(1)
    chain = rng.standard_normal((1, 301, 4))
    chain[0, 150:, 2] += 3.0  # one column jumps halfway
    halves = np.stack([chain[0, :150], chain[0, 150:300]])
    assert split_rhat(chain) == pytest.approx(np.nanmax(_arviz(halves)), rel=1e-12)
    assert split_rhat(chain) > 1.5


def _drifting_reference(log_density, params, chain_groups, threshold=1.1):
    """The drifting rule (modes.drifting_chains' docstring) with arviz-stats' R-hat."""
    values = np.concatenate([log_density[:, :, None], params], axis=2)
    n_chains, n_draws = values.shape[:2]
    half = n_draws // 2

    def worst(v):
        rhat = _arviz(v)
        return np.nanmax(rhat) if np.isfinite(rhat).any() else np.nan

    def halves(c):
        return np.stack([values[c, :half], values[c, half : 2 * half]])

    both = np.concatenate([values[:, :half], values[:, half : 2 * half]], axis=0)
    group = modes._linked_groups(both, modes.MODE_SEPARATION)
    drifting = {c for c in range(n_chains) if group[c] != group[c + n_chains]}
    drifting |= {c for c in range(n_chains) if worst(halves(c)) > threshold}
    for chains in chain_groups:
        single = len(chains) == 1
        if (worst(halves(chains[0])) if single else worst(values[list(chains)])) > threshold:
            drifting |= set(chains)
    return tuple(sorted(drifting))


@pytest.mark.parametrize("jump", [0.0, 4.0])
def test_drifting_chains_equals_the_rule_computed_with_arviz_stats(jump):
    rng = np.random.default_rng(2)
    params = rng.standard_normal((4, 400, 6))
    params[2, 200:, 1] += jump  # chain 2 moves to another configuration halfway
    log_density = -0.5 * (params**2).sum(axis=2)
    modes.clear_drift_cache()
    found = chain_modes(log_density, params)
    drifting = drifting_chains(log_density, params, found)
    assert drifting == _drifting_reference(log_density, params, [m.chains for m in found])
    assert (2 in drifting) == (jump > 0)


def test_drifting_chains_is_kept_for_the_same_draws(monkeypatch):
    rng = np.random.default_rng(3)
    params = rng.standard_normal((4, 100, 3))
    calls = []
    find = modes._find_drifting
    monkeypatch.setattr(modes, "_find_drifting", lambda *a: calls.append(1) or find(*a))
    modes.clear_drift_cache()
    found = chain_modes(None, params)
    first = drifting_chains(None, params, found)
    assert drifting_chains(None, params.copy(), found) == first and len(calls) == 1
    changed = params.copy()
    changed[0, 0, 0] += 1e-9  # other draws: computed again
    drifting_chains(None, changed, found)
    assert len(calls) == 2
    drifting_chains(None, params, found, threshold=1.05)  # another setting: again
    assert len(calls) == 3


def test_a_fit_computes_the_drifting_chains_once_and_diagnose_agrees(faithful, monkeypatch):
    calls = []
    find = modes._find_drifting
    monkeypatch.setattr(modes, "_find_drifting", lambda *a: calls.append(1) or find(*a))
    modes.clear_drift_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliablePosteriorWarning)
        fit = BayesianGaussianMixture(
            2, method="gibbs", chains=3, draws=150, tune=50, random_state=0
        ).fit(faithful)
    # the chain combination asked, then fit's own diagnose() (its warning check)
    assert len(calls) == 1
    kept = fit.diagnose()
    assert len(calls) == 1
    modes.clear_drift_cache()
    fit.__dict__.pop(DIAGNOSTICS_CACHE)
    fresh = fit.diagnose()  # from scratch: the same record
    assert len(calls) == 2
    assert fresh.verdict == kept.verdict and fresh.drifting == kept.drifting
    assert [m.chains for m in fresh.modes] == [m.chains for m in kept.modes]


def test_diagnose_reports_arviz_stats_worst_rhat_over_the_varying_entries():
    import arviz_stats as azs
    import xarray as xr

    from bayesgmm.posterior.diagnostics import diagnose

    rng = np.random.default_rng(4)
    means = rng.standard_normal((4, 300, 2, 3)) + np.arange(4)[:, None, None, None] * 0.3
    covariances = np.zeros((4, 300, 2, 3, 3))  # diag covariances: off-diagonals never vary
    covariances[..., [0, 1, 2], [0, 1, 2]] = rng.gamma(5.0, size=(4, 300, 2, 3))
    weights = rng.dirichlet([5.0, 5.0], size=(4, 300))
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), weights),
            "means": (("chain", "draw", "component", "feature"), means),
            "covariances": (("chain", "draw", "component", "row", "col"), covariances),
        }
    )
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 300), dtype=bool))})
    tree = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = azs.rhat(posterior)
    varying = posterior.std(dim=("chain", "draw")) > 0
    expected = np.nanmax(
        np.concatenate([rhat[v].where(varying[v]).values.ravel() for v in rhat.data_vars])
    )
    assert diagnose(tree).max_rhat == pytest.approx(expected, rel=1e-12)
    assert expected > 1.05  # the chains' means are 0.3 sd apart: a real failure to report
