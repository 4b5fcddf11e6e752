"""Bayesian stacking of MCMC chains that do not mix (Yao, Vehtari & Gelman, JMLR 2022).

When chains sit in different modes, pooling their draws gives each mode the share of
chains that happened to land in it, not its posterior mass. Stacking weighs chain ``k``
by ``w_k``, the weights on the simplex that maximise the leave-one-out log score of the
mixture of the chains' predictive distributions::

    max_w  sum_n log sum_k w_k p_k(y_n | y_-n),

with ``p_k(y_n | y_-n)`` the PSIS-LOO predictive density of observation ``n`` computed
from chain ``k``'s draws alone (Yao, Vehtari and Gelman, "Stacking for non-mixing
Bayesian computations: the curse and blessing of multimodal posteriors", JMLR 23, 2022).

Functions on arrays only:

* :func:`chain_loo_log_densities`: the ``(n_obs, n_chains)`` matrix of per-chain
  PSIS-LOO log predictive densities from the pointwise log-likelihood.
* :func:`stacking_weights`: the weights (a concave maximisation on the simplex, solved in
  softmax coordinates).
* :func:`mode_stacking_weights`: the same on groups of chains that share a mode, each
  group's weight shared equally by its chains.
* :func:`stack_chains`: :func:`mode_stacking_weights` with a check that the weights
  mean something: stacking is kept only when its LOO log score beats pooling (every
  chain weighted equally) by more than ``STACKING_NATS_PER_WEIGHT`` per free weight,
  the gain that fitting that many weights to the same observations gives by chance (as
  in AIC). Chains that all cover the same configurations (drifting, not separated)
  predict the data about equally well; their stacking weights then pile onto whichever
  chain happens to score a fraction of a nat better, which says nothing about the
  posterior.
* :func:`stacked_indices`: which (chain, draw) pairs make a resampled posterior that
  carries weight ``w_k`` on chain ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from arviz_stats.base import array_stats
from scipy.optimize import minimize
from scipy.special import logsumexp

#: Stopping rule of the optimiser: relative change of the mean log score per observation.
STACKING_TOL = 1e-12
STACKING_MAX_ITER = 1_000
#: Log score (nats) that each free stacking weight must gain over pooling to be used.
STACKING_NATS_PER_WEIGHT = 1.0
#: Fewest draws a PSIS-LOO estimate takes: ArviZ fits the Pareto tail to the largest fifth of
#: the ratios (below 225 draws) and needs at least 5 of them.
PSIS_MIN_DRAWS = 25


def chain_loo_log_densities(log_lik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-chain PSIS-LOO log predictive densities.

    Parameters
    ----------
    log_lik : ndarray of shape (n_chains, n_draws, n_obs)
        Pointwise log-likelihood ``log p(y_n | theta_s)`` of every draw.

    Returns
    -------
    lpd : ndarray of shape (n_obs, n_chains)
        ``log p_k(y_n | y_-n)``: the Pareto-smoothed importance-sampling LOO estimate from
        chain ``k``'s draws.
    khat : ndarray of shape (n_chains, n_obs)
        Pareto k of each estimate (above 0.7 the estimate is unreliable).
    """
    log_lik = np.asarray(log_lik, dtype=np.float64)
    if log_lik.ndim != 3:
        raise ValueError(f"log_lik must have shape (n_chains, n_draws, n_obs), got {log_lik.shape}")
    n_chains, n_draws, n_obs = log_lik.shape
    if n_draws < PSIS_MIN_DRAWS or not np.all(np.isfinite(log_lik)):
        raise ValueError(
            f"log_lik needs at least {PSIS_MIN_DRAWS} finite draws per chain (got "
            f"{n_draws} draws, {int((~np.isfinite(log_lik)).sum())} non-finite values)"
        )
    lpd = np.empty((n_obs, n_chains))
    khat = np.empty((n_chains, n_obs))
    for k in range(n_chains):
        # psislw takes the log-likelihood (the LOO log ratios are its negative) with the
        # draws on `axis` and returns normalised log weights, draws last: (n_obs, n_draws)
        log_weights, khat[k] = array_stats.psislw(log_lik[k], r_eff=1.0, axis=0)
        lpd[:, k] = logsumexp(log_weights + log_lik[k].T, axis=1)
    return lpd, khat


def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    """Weights on the simplex maximising ``sum_n log sum_k w_k exp(lpd[n, k])``.

    The objective is concave in ``w``; it is maximised over the softmax parameters
    ``w = softmax(z)`` by L-BFGS with the exact gradient
    ``d/dz_j = sum_n r_nj - N w_j`` (``r_nk`` proportional to ``w_k exp(lpd[n, k])``).

    Parameters
    ----------
    lpd : ndarray of shape (n_obs, n_chains)
        Log predictive densities (:func:`chain_loo_log_densities`).

    Returns
    -------
    ndarray of shape (n_chains,)
        Non-negative weights summing to one.
    """
    lpd = np.asarray(lpd, dtype=np.float64)
    if lpd.ndim != 2 or lpd.shape[0] < 1 or lpd.shape[1] < 1:
        raise ValueError(f"lpd must have shape (n_obs, n_chains), got {lpd.shape}")
    if not np.all(np.isfinite(lpd)):
        raise ValueError("lpd holds non-finite log densities: check the log-likelihood")
    n_obs, n_chains = lpd.shape
    if n_chains == 1:
        return np.ones(1)

    def negative_score(z: np.ndarray) -> tuple[float, np.ndarray]:
        log_w = z - logsumexp(z)
        joint = lpd + log_w
        norm = logsumexp(joint, axis=1, keepdims=True)
        resp = np.exp(joint - norm).sum(axis=0)
        return -float(norm.sum()) / n_obs, -(resp - n_obs * np.exp(log_w)) / n_obs

    result = minimize(
        negative_score,
        np.zeros(n_chains),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": STACKING_MAX_ITER, "ftol": STACKING_TOL, "gtol": 1e-9},
    )
    weights = np.exp(result.x - logsumexp(result.x))
    return weights / weights.sum()


def mode_stacking_weights(log_lik: np.ndarray, groups: list[tuple[int, ...]]) -> np.ndarray:
    """Chain weights from stacking groups of chains that share a mode.

    The chains of a group are pooled (their predictive distributions are the same up to
    Monte Carlo error, so stacking them separately would give arbitrary weights within
    the group); the groups are stacked on their PSIS-LOO densities; each group's weight is
    shared equally by its chains.

    Parameters
    ----------
    log_lik : ndarray of shape (n_chains, n_draws, n_obs)
    groups : list of tuple of int
        A partition of the chains.

    Returns
    -------
    ndarray of shape (n_chains,)
    """
    log_lik = np.asarray(log_lik, dtype=np.float64)
    return _chain_weights(stacking_weights(_group_lpd(log_lik, groups)), groups, log_lik.shape[0])


def _group_lpd(log_lik: np.ndarray, groups: list[tuple[int, ...]]) -> np.ndarray:
    """(n_obs, n_groups) PSIS-LOO log predictive densities of the groups' pooled draws."""
    return np.column_stack(
        [
            chain_loo_log_densities(log_lik[list(g)].reshape(1, -1, log_lik.shape[2]))[0][:, 0]
            for g in groups
        ]
    )


def _chain_weights(
    group_weights: np.ndarray, groups: list[tuple[int, ...]], n_chains: int
) -> np.ndarray:
    weights = np.zeros(n_chains)
    for g, w in zip(groups, group_weights, strict=True):
        weights[list(g)] = w / len(g)
    return weights


@dataclass(frozen=True)
class ChainStacking:
    """Stacking weights of chains, and whether they beat pooling.

    Attributes
    ----------
    stacked : ndarray of shape (n_chains,)
        The stacking weights (:func:`mode_stacking_weights`).
    gain : float
        LOO log score (nats, summed over observations) of the stacked weights minus that
        of pooling (every chain weighted ``1 / n_chains``); never negative.
    penalty : float
        ``STACKING_NATS_PER_WEIGHT`` times the number of free weights (groups - 1).
    """

    stacked: np.ndarray
    gain: float
    penalty: float

    @property
    def significant(self) -> bool:
        """Whether stacking beats pooling by more than its free weights gain by chance."""
        return self.gain > self.penalty

    @property
    def weights(self) -> np.ndarray:
        """The weights to use: stacked if significant, else pooled (equal per chain)."""
        n_chains = len(self.stacked)
        return self.stacked if self.significant else np.full(n_chains, 1.0 / n_chains)


def stack_chains(log_lik: np.ndarray, groups: list[tuple[int, ...]]) -> ChainStacking:
    """Stack groups of chains and compare the stacked log score with pooling.

    Parameters
    ----------
    log_lik : ndarray of shape (n_chains, n_draws, n_obs)
    groups : list of tuple of int
        A partition of the chains (see :func:`mode_stacking_weights`).

    Returns
    -------
    ChainStacking
    """
    log_lik = np.asarray(log_lik, dtype=np.float64)
    n_chains = log_lik.shape[0]
    lpd = _group_lpd(log_lik, groups)
    group_weights = stacking_weights(lpd)
    pooled = np.array([len(g) / n_chains for g in groups])
    with np.errstate(divide="ignore"):
        stacked_score = logsumexp(lpd + np.log(group_weights), axis=1).sum()
    gain = float(stacked_score - logsumexp(lpd + np.log(pooled), axis=1).sum())
    return ChainStacking(
        stacked=_chain_weights(group_weights, groups, n_chains),
        gain=max(gain, 0.0),
        penalty=STACKING_NATS_PER_WEIGHT * (len(groups) - 1),
    )


def stacked_indices(
    weights: np.ndarray, n_draws: int, n_out: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(chain, draw) indices of ``n_out`` draws resampled with chain weights ``weights``.

    Chain ``k`` contributes ``round(w_k n_out)`` draws (largest remainders, so the counts
    sum to ``n_out``), taken uniformly with replacement from its ``n_draws`` draws; the
    result is shuffled.

    Parameters
    ----------
    weights : ndarray of shape (n_chains,)
    n_draws : int
        Draws per chain.
    n_out : int
    rng : numpy Generator

    Returns
    -------
    chain, draw : ndarray of shape (n_out,)
    """
    weights = np.asarray(weights, dtype=np.float64)
    exact = weights / weights.sum() * n_out
    counts = np.floor(exact).astype(int)
    remainder = n_out - counts.sum()
    counts[np.argsort(counts - exact)[:remainder]] += 1
    chain = np.repeat(np.arange(len(weights)), counts)
    draw = rng.integers(0, n_draws, size=n_out)
    order = rng.permutation(n_out)
    return chain[order], draw[order]


__all__ = [
    "PSIS_MIN_DRAWS",
    "STACKING_NATS_PER_WEIGHT",
    "ChainStacking",
    "chain_loo_log_densities",
    "mode_stacking_weights",
    "stack_chains",
    "stacked_indices",
    "stacking_weights",
]
