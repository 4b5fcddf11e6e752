"""The numbers of a mixture analysis: MAP versus posterior, assignments, densities.

Pure functions of arrays and of a posterior ``xarray.Dataset`` with ``weights``
(chain, draw, component), ``means`` (chain, draw, component, feature) and
``covariances`` (chain, draw, component, feature, feature_bis), full matrices on the
user's scale, so that everything can be recomputed from a saved posterior. Nothing here
draws or renders: :mod:`bayesgmm.reporting.plots` draws these numbers and
:mod:`bayesgmm.reporting.report` writes them into a document.

* :func:`map_vs_posterior`: per parameter, the MAP (EM) value beside the posterior
  mean, median, sd and the **equal-tailed** credible interval (ArviZ 1's default kind,
  89% by default), with the MAP's components relabelled to match the posterior's
  (:func:`align_to_posterior`, the KL-Hungarian rule of :mod:`bayesgmm.posterior.relabel`).
* :func:`map_log_density_check`: the log posterior density at the MAP against its
  distribution over the draws (weighted by the chains' stacking weights when the chains
  were stacked), which tells whether the posterior mass sits in the MAP's mode, in a
  lower (wider) one or in a higher one that EM missed; :func:`map_check_by_chains` asks
  the same of every mode (group of chains) separately.
* :func:`assignment_summary`, :func:`marginal_density_band`: per-point assignment
  probabilities and predictive densities with credible intervals over draws.
* :func:`data_grid`, :func:`data_summary`: the data's evaluation grid and description.

The array maths (densities, responsibilities, intervals, stacking draws) lives in
:mod:`bayesgmm.posterior.draws`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import chi2, norm

from bayesgmm.core.covariance import get_structure
from bayesgmm.core.params import MixtureParams
from bayesgmm.posterior.draws import equal_tailed_interval, responsibilities, stack_draws
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


def assignment_summary(
    X: np.ndarray, posterior: xr.Dataset, *, ci_prob: float = 0.89, max_draws: int = 500
) -> pd.DataFrame:
    """Each observation's most probable component and how sure the posterior is of it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    posterior : xarray.Dataset
    ci_prob : float, default=0.89
    max_draws : int, default=500
        Draws used (a seeded random subset).

    Returns
    -------
    DataFrame with one row per observation
        ``component`` (highest posterior-mean probability), ``prob`` (that mean),
        ``lower``, ``upper`` (equal-tailed interval over draws) and ``uncertain``:
        True when the interval reaches below 0.5, i.e. some plausible parameters assign
        the point elsewhere.
    """
    resp = responsibilities(X, *stack_draws(posterior, max_draws))
    mean = resp.mean(axis=0)
    component = mean.argmax(axis=1)
    top = resp[:, np.arange(X.shape[0]), component]
    lower, upper = equal_tailed_interval(top, ci_prob)
    return pd.DataFrame(
        {
            "component": component,
            "prob": mean[np.arange(X.shape[0]), component],
            "lower": lower,
            "upper": upper,
            "uncertain": lower < 0.5,
        }
    )


def marginal_density(
    grid: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """Marginal density of every feature of a mixture, for one or many parameter draws.

    Parameters
    ----------
    grid : ndarray of shape (n_grid, n_features)
    weights : ndarray of shape (..., n_components)
    means : ndarray of shape (..., n_components, n_features)
    covariances : ndarray of shape (..., n_components, n_features, n_features)

    Returns
    -------
    ndarray of shape (..., n_grid, n_features)
    """
    sd = np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))
    dens = norm.pdf(grid[..., :, None, :], means[..., None, :, :], sd[..., None, :, :])
    return np.einsum("...gkj,...k->...gj", dens, weights)


def marginal_density_band(
    grid: np.ndarray, posterior: xr.Dataset, *, ci_prob: float = 0.89, max_draws: int = 500
) -> dict[str, np.ndarray]:
    """Posterior-predictive marginal density of each feature with a credible band.

    Parameters
    ----------
    grid : ndarray of shape (n_grid, n_features)
    posterior : xarray.Dataset
    ci_prob : float, default=0.89
    max_draws : int, default=500

    Returns
    -------
    dict
        ``mean``, ``lower``, ``upper``: ndarrays of shape (n_grid, n_features); the mean is
        the posterior predictive density, the band its equal-tailed interval over draws.
    """
    dens = marginal_density(grid, *stack_draws(posterior, max_draws))
    lower, upper = equal_tailed_interval(dens, ci_prob)
    return {"mean": dens.mean(axis=0), "lower": lower, "upper": upper}


def data_grid(X: np.ndarray, n_grid: int = 200) -> np.ndarray:
    """Evenly spaced points over each feature's range padded by 10%, shape (n_grid, n_features)."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * (hi - lo)
    return np.linspace(lo - pad, hi + pad, n_grid)


def data_summary(X: np.ndarray, feature_names: list[str]) -> pd.DataFrame:
    """Count, mean, sd, min, quartiles and max of every feature (rows: features)."""
    return pd.DataFrame(X, columns=feature_names).describe().T


def parameter_draws(
    posterior: xr.Dataset, covariance_type: str, feature_names: list[str] | None = None
) -> xr.DataArray:
    """Draws of every free parameter, one labelled entry each.

    The weights, the means and the covariance entries the structure frees
    (:meth:`CovarianceStructure.entries`: the lower triangle of each full matrix, a
    tied matrix once, the diagonal of ``diag``, one variance per ``spherical``
    component), so structural zeros and duplicated symmetric entries never appear.

    Parameters
    ----------
    posterior : xarray.Dataset
        See the module docstring.
    covariance_type : str
        The fitted structure.
    feature_names : list of str, optional

    Returns
    -------
    DataArray of dims (chain, draw, parameter)
        Coordinates ``parameter`` (labels such as ``means[0, alcohol]``, or
        ``means[0, 1]`` without feature names) and ``kind``
        (weights, means, covariances) along ``parameter``. A posterior with a noise
        component (``noise_weight``) gets the row ``noise_weight`` (kind ``weights``)
        after the Gaussians' weights.
    """
    arrays = {
        name: posterior[name].transpose("chain", "draw", *dims).to_numpy()
        for name, dims in (
            ("weights", ("component",)),
            ("means", ("component", "feature")),
            ("covariances", ("component", "feature", "feature_bis")),
        )
    }
    n_components, n_features = arrays["means"].shape[-2:]
    names = feature_names or [str(j) for j in range(n_features)]
    entries = _parameter_entries(n_components, n_features, covariance_type, names, SUMMARY_PREFIXES)
    if "noise_weight" in posterior.data_vars:
        arrays["noise_weight"] = posterior["noise_weight"].transpose("chain", "draw").to_numpy()
        entries.insert(n_components, ("noise_weight", "noise_weight", ()))
    values = np.stack(
        [arrays[kind][(slice(None), slice(None), *index)] for kind, _, index in entries], axis=-1
    )
    kinds = ["weights" if kind == "noise_weight" else kind for kind, _, _ in entries]
    return xr.DataArray(
        values,
        dims=("chain", "draw", "parameter"),
        coords={
            "chain": np.arange(values.shape[0]),
            "draw": np.arange(values.shape[1]),
            "parameter": [label for _, label, _ in entries],
            "kind": ("parameter", kinds),
        },
    )


def posterior_summary(draws: xr.DataArray, *, ci_prob: float = 0.89) -> pd.DataFrame:
    """Mean, sd, equal-tailed interval, ESS and R-hat of every parameter of ``draws``.

    Parameters
    ----------
    draws : DataArray of dims (chain, draw, parameter)
        From :func:`parameter_draws`.
    ci_prob : float, default=0.89

    Returns
    -------
    DataFrame indexed by parameter
        ``kind``, ``mean``, ``sd``, ``eti<pct>_lb``, ``eti<pct>_ub`` (ArviZ's names),
        ``ess_bulk``, ``ess_tail`` and ``r_hat`` (rank-normalised; NaN with one chain,
        where they are undefined).
    """
    import arviz_stats as azs

    values = draws.transpose("chain", "draw", "parameter").to_numpy()
    flat = values.reshape(-1, values.shape[-1])
    lower, upper = equal_tailed_interval(flat, ci_prob)
    pct = f"{100 * ci_prob:g}"
    frame = pd.DataFrame(
        {
            "kind": draws["kind"].to_numpy(),
            "mean": flat.mean(axis=0),
            "sd": flat.std(axis=0, ddof=1) if len(flat) > 1 else np.nan,
            f"eti{pct}_lb": lower,
            f"eti{pct}_ub": upper,
        },
        index=pd.Index(draws["parameter"].to_numpy(), name="parameter"),
    )
    if values.shape[0] >= 2 and values.shape[1] >= 4:
        with np.errstate(invalid="ignore", divide="ignore"):
            frame["ess_bulk"] = azs.ess(draws, method="bulk").to_numpy()
            frame["ess_tail"] = azs.ess(draws, method="tail").to_numpy()
            frame["r_hat"] = azs.rhat(draws).to_numpy()
    else:
        frame["ess_bulk"] = frame["ess_tail"] = frame["r_hat"] = np.nan
    return frame


def point_estimate_table(
    params: MixtureParams,
    feature_names: list[str] | None = None,
    *,
    noise_weight: float | None = None,
) -> pd.DataFrame:
    """A point estimate (MAP or MLE) as one row per free parameter.

    Parameters
    ----------
    params : MixtureParams
    feature_names : list of str, optional
    noise_weight : float, optional
        With a noise component: its weight. ``params`` then hold the conditional weights,
        shown as absolute ones (``(1 - noise_weight) * w_k``), and the row
        ``noise_weight`` (kind ``weights``) follows them.

    Returns
    -------
    DataFrame indexed by parameter
        ``kind`` and ``estimate``; rows as in :func:`parameter_draws`.
    """
    names = feature_names or [str(j) for j in range(params.n_features)]
    point = {
        "weights": params.weights,
        "means": params.means,
        "covariances": params.full_covariances(),
    }
    entries = _parameter_entries(
        params.n_components, params.n_features, params.covariance_type, names, SUMMARY_PREFIXES
    )
    if noise_weight is not None:
        point["weights"] = np.append((1.0 - noise_weight) * params.weights, noise_weight)
        entries.insert(params.n_components, ("weights", "noise_weight", (params.n_components,)))
    return pd.DataFrame(
        {
            "kind": [kind for kind, _, _ in entries],
            "estimate": [float(point[kind][index]) for kind, _, index in entries],
        },
        index=pd.Index([label for _, label, _ in entries], name="parameter"),
    )


def worst_mixing(summary: pd.DataFrame, max_parameters: int = 12) -> list[str]:
    """The parameters that mixed worst: highest R-hat first, then lowest bulk ESS.

    Parameters
    ----------
    summary : DataFrame
        :func:`posterior_summary`.
    max_parameters : int, default=12

    Returns
    -------
    list of str
        At most ``max_parameters`` labels; parameters without R-hat (constant, or one
        chain) come last.
    """
    order = summary.assign(
        _rhat=summary["r_hat"].fillna(-np.inf), _ess=summary["ess_bulk"].fillna(np.inf)
    ).sort_values(["_rhat", "_ess"], ascending=[False, True], kind="stable")
    return list(order.index[:max_parameters])


def separating_features(
    means: np.ndarray, covariances: np.ndarray, weights: np.ndarray, n_features: int = 3
) -> list[int]:
    """The features along which the components are most separated.

    Each feature's score is the weighted variance of the component means divided by the
    weighted mean of the component variances (a one-feature Fisher ratio).

    Parameters
    ----------
    means : ndarray of shape (n_components, d)
    covariances : ndarray of shape (n_components, d, d)
    weights : ndarray of shape (n_components,)
    n_features : int, default=3
        How many features to return.

    Returns
    -------
    list of int
        Feature indices, most separating first.
    """
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    centre = weights @ means
    between = weights @ (means - centre) ** 2
    within = weights @ np.diagonal(covariances, axis1=-2, axis2=-1)
    score = between / np.maximum(within, np.finfo(float).tiny)
    return [int(j) for j in np.argsort(-score, kind="stable")[:n_features]]


def posterior_mean_params(posterior: xr.Dataset) -> MixtureParams:
    """The posterior means of the weights, means and covariances, as one parameter set.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws with dims ``(chain, draw, ...)``: ``weights`` (K), ``means`` (K, d),
        ``covariances`` (structure's layout) and, for a fit with a noise component,
        ``noise_weight``.

    Returns
    -------
    MixtureParams
        With a noise component, the weights are the Gaussians' weights given "not noise"
        (the posterior mean weights renormalised to sum to 1).
    """
    mean = posterior.mean(("chain", "draw"))
    weights = mean["weights"].to_numpy()
    if "noise_weight" in mean:
        weights = weights / weights.sum()
    return MixtureParams(weights, mean["means"].to_numpy(), mean["covariances"].to_numpy())


def posterior_mean_noise_weight(posterior: xr.Dataset) -> float | None:
    """The posterior mean of ``noise_weight`` (None for a fit without a noise component)."""
    if "noise_weight" not in posterior:
        return None
    return float(posterior["noise_weight"].mean())


def label_agreement(labels: np.ndarray, clusters: np.ndarray) -> tuple[pd.DataFrame, float]:
    """Cross-tabulation of known classes against clusters, and the adjusted Rand index.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Known classes (any values).
    clusters : ndarray of shape (n_samples,)
        Assigned components.

    Returns
    -------
    table : DataFrame
        Counts; rows the classes, columns ``cluster <k>``.
    ari : float
        :func:`sklearn.metrics.adjusted_rand_score` (1: same partition; about 0: chance).
    """
    from sklearn.metrics import adjusted_rand_score

    table = pd.crosstab(pd.Series(labels, name="class"), pd.Series(clusters, name="cluster"))
    table.columns = [f"cluster {k}" for k in table.columns]
    return table, float(adjusted_rand_score(labels, clusters))


__all__ = [
    "INTERVAL_KIND",
    "align_to_posterior",
    "assignment_summary",
    "data_grid",
    "data_summary",
    "label_agreement",
    "map_check_by_chains",
    "map_log_density_check",
    "map_vs_posterior",
    "marginal_density",
    "marginal_density_band",
    "parameter_draws",
    "point_estimate_table",
    "posterior_mean_noise_weight",
    "posterior_mean_params",
    "posterior_summary",
    "separating_features",
    "weighted_quantiles",
    "worst_mixing",
]
