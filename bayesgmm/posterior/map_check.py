"""The MAP against the posterior: the parameter table and the log-density check.

Pure functions of a MAP-EM estimate and a posterior ``xarray.Dataset`` (layout as in
:mod:`bayesgmm.posterior.summaries`, which re-exports every public name here):

* :func:`map_vs_posterior`: per parameter, the MAP (EM) value beside the posterior
  mean, median, sd and the **equal-tailed** credible interval (ArviZ 1's default kind,
  89% by default), with the MAP's components relabelled to match the posterior's
  (:func:`align_to_posterior`, the KL-Hungarian rule of :mod:`bayesgmm.posterior.relabel`).
* :func:`map_log_density_check`: the log posterior density at the MAP against its
  distribution over the draws (weighted by the chains' stacking weights when the chains
  were stacked), which tells whether the posterior mass sits in the MAP's mode, in a
  lower (wider) one or in a higher one that EM missed; :func:`map_check_by_chains` asks
  the same of every mode (group of chains) separately.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import chi2

from bayesgmm.core.covariance import get_structure
from bayesgmm.core.params import MixtureParams
from bayesgmm.posterior.draws import equal_tailed_interval, stack_draws
from bayesgmm.posterior.relabel import align_point_estimate, best_permutations, gaussian_kl_cost

INTERVAL_KIND = "equal-tailed"
#: Draws whose best log density exceeds the MAP's by more than this (nats) sit in a mode
#: that EM missed (a margin for EM's stopping tolerance and the prior's parametrisation).
HIGHER_MODE_MARGIN = 1.0


def map_log_density_check(
    map_log_density: float,
    log_density: np.ndarray,
    n_free: int,
    chain_weights: np.ndarray | None = None,
) -> dict:
    """Where the posterior mass sits relative to the MAP's mode, from log densities.

    Near a mode with ``p`` free (unconstrained) parameters the posterior is close to a
    Gaussian, so ``2 (log p(MAP) - log p(draw))`` follows about a chi-square with ``p``
    degrees of freedom: the draws' log density lies about ``p / 2`` below the MAP's.
    A median gap beyond the chi-square's 99.9% quantile / 2 puts the mass in another,
    lower but wider mode; draws above the MAP (by ``HIGHER_MODE_MARGIN``) in a higher
    mode that EM did not find.

    Parameters
    ----------
    map_log_density : float
        The model's log density at the MAP, without log-Jacobians (the MAP is its mode).
    log_density : ndarray of shape (n_draws,) or (n_chains, n_draws)
    n_free : int
        Number of free unconstrained parameters ``p``.
    chain_weights : ndarray of shape (n_chains,), optional
        Weight of every chain (stacking): each draw of chain ``c`` counts ``w_c / n_draws``
        in the quantiles, and chains of weight 0 are left out of the highest value.
        Default: every draw counts once.

    Returns
    -------
    dict
        ``map`` (the MAP's log density), ``q05``, ``median``, ``q95``, ``max`` (over the
        draws), ``gap`` (MAP minus the median), ``expected_gap`` (``p / 2``),
        ``gap_limit`` (the 99.9% chi-square quantile / 2) and ``mode``: ``"same"`` (the
        draws sit in the MAP's mode), ``"lower"`` or ``"higher"``.
    """
    values = np.atleast_2d(np.asarray(log_density, dtype=float))
    if chain_weights is None:
        chain_weights = np.ones(values.shape[0])
    weights = np.broadcast_to(
        np.asarray(chain_weights, dtype=float)[:, None] / values.shape[1], values.shape
    ).ravel()
    values = values.ravel()
    q05, median, q95 = weighted_quantiles(values, weights, [0.05, 0.5, 0.95])
    highest = float(values[weights > 0].max())
    gap = float(map_log_density - median)
    limit = float(chi2.ppf(0.999, n_free) / 2)
    if highest > map_log_density + HIGHER_MODE_MARGIN:
        mode = "higher"
    elif gap > limit:
        mode = "lower"
    else:
        mode = "same"
    return {
        "map": float(map_log_density),
        "q05": float(q05),
        "median": float(median),
        "q95": float(q95),
        "max": highest,
        "gap": gap,
        "expected_gap": n_free / 2,
        "gap_limit": limit,
        "mode": mode,
    }


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, probs) -> np.ndarray:
    """Quantiles of weighted values (the inverse of the weighted empirical CDF).

    With equal weights this is ``np.quantile(values, probs, method="inverted_cdf")``.

    Parameters
    ----------
    values, weights : ndarray of shape (n,)
        Non-negative weights, not all zero.
    probs : sequence of float in [0, 1]

    Returns
    -------
    ndarray of shape (len(probs),)
    """
    order = np.argsort(values, kind="stable")
    cdf = np.cumsum(np.asarray(weights, dtype=float)[order])
    cdf /= cdf[-1]
    index = np.searchsorted(cdf, np.asarray(probs, dtype=float) * (1 - 1e-12), side="left")
    return np.asarray(values, dtype=float)[order][np.minimum(index, len(cdf) - 1)]


def map_check_by_chains(
    map_log_density: float,
    log_density: np.ndarray,
    n_free: int,
    groups: list[tuple[int, ...]],
    chain_weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """:func:`map_log_density_check` for each group of chains (a mode, a drifting chain).

    Parameters
    ----------
    map_log_density : float
    log_density : ndarray of shape (n_chains, n_draws)
    n_free : int
    groups : list of tuple of int
        E.g. :func:`bayesgmm.posterior.diagnostics.stacking_groups`.
    chain_weights : ndarray of shape (n_chains,), optional
        Stacking weights; a group's weight is the sum over its chains.

    Returns
    -------
    DataFrame
        One row per group, indexed by its chains (``"0,2"``): ``weight`` (NaN without
        weights), ``median``, ``q05``, ``q95``, ``max``, ``gap`` and ``mode`` as in
        :func:`map_log_density_check`.
    """
    log_density = np.atleast_2d(np.asarray(log_density, dtype=float))
    rows = {}
    for group in groups:
        check = map_log_density_check(map_log_density, log_density[list(group)], n_free)
        weight = np.nan if chain_weights is None else float(np.sum(chain_weights[list(group)]))
        rows[",".join(map(str, group))] = {
            "weight": weight,
            **{key: check[key] for key in ("median", "q05", "q95", "max", "gap", "mode")},
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "chains"
    return frame


def align_to_posterior(params: MixtureParams, posterior: xr.Dataset) -> MixtureParams:
    """Relabel a point estimate so that component k matches the posterior's component k.

    The KL-Hungarian rule that aligns the draws
    (:func:`~bayesgmm.posterior.relabel.align_point_estimate`),
    with the posterior means of the means and of the covariances as the reference.

    Parameters
    ----------
    params : MixtureParams
        With as many components and features as the posterior.
    posterior : xarray.Dataset
        See the module docstring.

    Returns
    -------
    MixtureParams
    """
    mean = posterior[["means", "covariances"]].mean(("chain", "draw"))
    return align_point_estimate(
        params,
        mean["means"].transpose("component", "feature").to_numpy(),
        mean["covariances"].transpose("component", "feature", "feature_bis").to_numpy(),
    )


def _parameter_entries(
    n_components: int,
    n_features: int,
    covariance_type: str,
    names: list[str],
    prefixes: tuple[str, str, str] = ("w", "mu", "Sigma"),
) -> list[tuple[str, str, tuple[int, ...]]]:
    """(kind, label, index) of every free parameter, index into the full-matrix layout."""
    w, mu, sigma = prefixes
    entries = [("weights", f"{w}[{k}]", (k,)) for k in range(n_components)]
    entries += [
        ("means", f"{mu}[{k}, {names[j]}]", (k, j))
        for k in range(n_components)
        for j in range(n_features)
    ]
    for who, (k, i, j) in get_structure(covariance_type).entries(n_components, n_features):
        entries.append(("covariances", f"{sigma}[{who}, {names[i]}, {names[j]}]", (k, i, j)))
    return entries


#: Labels of :func:`parameter_draws` and the summaries: the posterior's variable names.
SUMMARY_PREFIXES = ("weights", "means", "covariances")


def map_vs_posterior(
    posterior: xr.Dataset,
    map_params: MixtureParams,
    *,
    ci_prob: float = 0.89,
    feature_names: list[str] | None = None,
    bootstrap=None,
    noise_weight: float | None = None,
) -> pd.DataFrame:
    """The MAP (EM) estimate beside posterior summaries, one row per free parameter.

    Parameters
    ----------
    posterior : xarray.Dataset
        See the module docstring; components already relabelled consistently.
    map_params : MixtureParams
        MAP-EM estimate; relabelled here to match the posterior (:func:`align_to_posterior`).
    ci_prob : float, default=0.89
        Probability of the equal-tailed credible interval.
    feature_names : list of str, optional
    bootstrap : BootstrapResult, optional
        Bootstrap replicates of the EM fit (:meth:`bayesgmm.GaussianMixture.bootstrap`),
        relabelled here to the posterior by the same rule: adds the frequentist columns
        ``boot_se`` and ``boot_lower``, ``boot_upper`` (percentile interval at ``ci_prob``)
        beside the Bayesian ones.
    noise_weight : float, optional
        The MAP noise weight of a model with a noise component (the posterior then has
        ``noise_weight`` and absolute ``weights``; ``map_params`` conditional ones): adds
        the row ``noise_weight`` and compares absolute weights.

    Returns
    -------
    DataFrame
        Columns ``kind`` (weights, means, covariances), ``parameter``, ``map``, ``mean``,
        ``median``, ``sd``, ``lower``, ``upper`` (the interval's ends) and
        ``map_in_interval`` (and the bootstrap columns). ``attrs`` record ``ci_prob``,
        ``interval`` (equal-tailed) and, with a bootstrap, ``bootstrap`` (its kind and
        number of successful replicates).
        Covariance rows cover the lower triangle (full, tied once), the diagonal (diag)
        or one variance per component (spherical).
    """
    aligned = align_to_posterior(map_params, posterior)
    weights, means, covs = stack_draws(posterior)
    n_features = means.shape[-1]
    names = feature_names or [str(j) for j in range(n_features)]
    draws = {"weights": weights, "means": means, "covariances": covs}
    point = {
        "weights": aligned.weights,
        "means": aligned.means,
        "covariances": aligned.full_covariances(),
    }
    entries = _parameter_entries(aligned.n_components, n_features, aligned.covariance_type, names)
    if noise_weight is not None:
        k = aligned.n_components
        noise = posterior["noise_weight"].transpose("chain", "draw").to_numpy().reshape(-1, 1)
        draws["weights"] = np.concatenate([weights, noise], axis=1)
        point["weights"] = np.append((1.0 - noise_weight) * aligned.weights, noise_weight)
        entries.insert(k, ("weights", "noise_weight", (k,)))
    rows = []
    for kind, label, index in entries:
        values = draws[kind][(slice(None), *index)]
        lower, upper = equal_tailed_interval(values, ci_prob)
        median = np.quantile(values, 0.5)
        value = float(point[kind][index])
        rows.append(
            {
                "kind": kind,
                "parameter": label,
                "map": value,
                "mean": float(values.mean()),
                "median": float(median),
                "sd": float(values.std(ddof=1)),
                "lower": float(lower),
                "upper": float(upper),
                "map_in_interval": bool(lower <= value <= upper),
            }
        )
    table = pd.DataFrame(rows)
    table.attrs.update(ci_prob=ci_prob, interval=INTERVAL_KIND)
    if bootstrap is not None:
        _add_bootstrap_columns(table, bootstrap, posterior, ci_prob)
    return table


def _add_bootstrap_columns(table: pd.DataFrame, bootstrap, posterior: xr.Dataset, ci_prob):
    """``boot_se``, ``boot_lower``, ``boot_upper`` of a bootstrap relabelled to the posterior."""
    mean = posterior[["means", "covariances"]].mean(("chain", "draw"))
    estimate = bootstrap.estimate
    cost = gaussian_kl_cost(
        estimate.means[None],
        estimate.full_covariances()[None],
        mean["means"].transpose("component", "feature").to_numpy(),
        mean["covariances"].transpose("component", "feature", "feature_bis").to_numpy(),
    )
    aligned = bootstrap.permuted(best_permutations(cost)[0])
    ok = ~aligned.failed
    values = {
        "weights": aligned.weights[ok],
        "means": aligned.means[ok],
        "covariances": aligned.full_covariances()[ok],
    }
    entries = _parameter_entries(  # the rows of the table, in its order
        estimate.n_components,
        estimate.n_features,
        estimate.covariance_type,
        [str(j) for j in range(estimate.n_features)],
    )
    columns = np.stack([values[kind][(slice(None), *index)] for kind, _, index in entries], 1)
    lower, upper = equal_tailed_interval(columns, ci_prob)
    table["boot_se"] = columns.std(axis=0, ddof=1)
    table["boot_lower"], table["boot_upper"] = lower, upper
    table.attrs["bootstrap"] = f"{aligned.kind}, {int(ok.sum())} replicates"


__all__ = [
    "HIGHER_MODE_MARGIN",
    "INTERVAL_KIND",
    "SUMMARY_PREFIXES",
    "align_to_posterior",
    "map_check_by_chains",
    "map_log_density_check",
    "map_vs_posterior",
    "weighted_quantiles",
]
