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
  These two live in :mod:`bayesgmm.posterior.map_check` and are re-exported here.
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
from scipy.stats import norm

from bayesgmm.core.params import MixtureParams
from bayesgmm.posterior.draws import equal_tailed_interval, responsibilities, stack_draws
from bayesgmm.posterior.map_check import (
    HIGHER_MODE_MARGIN,
    INTERVAL_KIND,
    SUMMARY_PREFIXES,
    _parameter_entries,
    align_to_posterior,
    map_check_by_chains,
    map_log_density_check,
    map_vs_posterior,
    weighted_quantiles,
)


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
    mean, lower, upper, component = assignment_intervals(resp, ci_prob)
    rows = np.arange(X.shape[0])
    return pd.DataFrame(
        {
            "component": component,
            "prob": mean[rows, component],
            "lower": lower[rows, component],
            "upper": upper[rows, component],
            "uncertain": lower[rows, component] < 0.5,
        }
    )


def assignment_intervals(
    resp: np.ndarray, ci_prob: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mean and equal-tailed interval of every assignment probability.

    The interval is widened, where needed, to hold the mean (so a reported probability
    always lies inside its own interval).

    Parameters
    ----------
    resp : ndarray of shape (n_draws, n_samples, n_components)
        ``P(z_n = k | x_n, theta)`` per draw.
    ci_prob : float

    Returns
    -------
    mean, lower, upper : ndarrays of shape (n_samples, n_components)
    component : ndarray of shape (n_samples,)
        The component of the largest mean probability.
    """
    mean = resp.mean(axis=0)
    lower, upper = equal_tailed_interval(resp, ci_prob)
    # a mean dragged by a few draws in a long tail can lie outside the equal-tailed interval
    # (0.99999999998 below a lower bound of 0.99999999999): the reported interval holds it
    return mean, np.minimum(lower, mean), np.maximum(upper, mean), mean.argmax(axis=1)


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
    "HIGHER_MODE_MARGIN",
    "INTERVAL_KIND",
    "SUMMARY_PREFIXES",
    "align_to_posterior",
    "assignment_intervals",
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
