"""What a fitted posterior says about data: pure functions of the posterior draws.

The query methods of :class:`~bayesgmm.bayes.estimator.BayesianGaussianMixture`
(:meth:`responsibilities`, :meth:`predict`, :meth:`score_samples`, :meth:`impute`,
:meth:`summary`, :meth:`diagnose`, ...) delegate here. Every function takes the
``posterior`` dataset (``weights`` (chain, draw, component), ``means`` (..., feature),
``covariances`` (..., feature, feature_bis) on the user's scale, ``noise_weight`` (chain,
draw) with a noise component) and checked data; ``noise`` is the model's
:class:`~bayesgmm.core.noise.NoiseComponent`, or ``None``. ``S`` is the number of draws
(all chains).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from bayesgmm.bayes.postprocess import draw_params
from bayesgmm.core.noise import NoiseComponent, with_noise_column
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.core.validation import check_positive_int
from bayesgmm.posterior.diagnostics import POSTERIOR_VARS, Diagnostics, diagnose
from bayesgmm.posterior.draws import (
    equal_tailed_interval,
    impute_draws,
    log_joint_densities,
    log_mixture_density,
    sample_mixture,
    stack_draws,
)
from bayesgmm.posterior.partitions import Loss, PartitionSummary, summarize_partitions
from bayesgmm.posterior.relabel import RelabelingRecord
from bayesgmm.posterior.summaries import (
    assignment_intervals,
    parameter_draws,
    point_estimate_table,
    posterior_summary,
)


def draws(posterior: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Weights (S, K), means (S, K, d), covariances (S, K, d, d) and (chains, draws)."""
    weights, means, covs = stack_draws(posterior)
    return weights, means, covs, (posterior.sizes["chain"], posterior.sizes["draw"])


def noise_draws(posterior: xr.Dataset) -> np.ndarray:
    """Posterior draws of the noise weight, shape (S,) (zeros without noise)."""
    if "noise_weight" not in posterior.data_vars:
        return np.zeros(posterior.sizes["chain"] * posterior.sizes["draw"])
    return posterior["noise_weight"].transpose("chain", "draw").to_numpy().ravel()


def log_joint(
    posterior: xr.Dataset,
    X: np.ndarray,
    noise: NoiseComponent | None,
    max_draws: int | None = None,
    seed: int = 0,
    stacked: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Log joint densities per draw, (S, n, K), plus the noise's column (K + 1) if any.

    ``max_draws``: at most this many draws, a subset seeded by ``seed``
    (:func:`bayesgmm.posterior.draws.stack_draws`); ``stacked``: that subset's weights,
    means and covariances when the caller has them already.
    """
    if stacked is None:
        stacked = stack_draws(posterior, max_draws=max_draws, random_state=seed)
    weights, means, covs = stacked
    joint = log_joint_densities(X, weights, means, covs)
    if noise is None:
        return joint
    weight = posterior["noise_weight"].transpose("chain", "draw").stack(sample=("chain", "draw"))
    weight = weight.to_numpy()
    if max_draws is not None and weight.size > max_draws:
        keep = np.sort(np.random.default_rng(seed).choice(weight.size, max_draws, replace=False))
        weight = weight[keep]
    return with_noise_column(joint, weight, noise.log_density)


def nearest_components(X: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray):
    """The nearest component (Mahalanobis distance) of every row under every draw, (S, n).

    As :func:`bayesgmm.em.steps.e_step` does for one fit: the distance is computed on each
    row's difference divided by its largest entry, ``log d^2 = 2 log c + log ||(x - mu) /
    c||^2_{Sigma^-1}``, so it stays finite however far the row is. Components of weight 0 are
    never nearest; a row with missing entries (NaN) is measured on its observed coordinates.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    weights : ndarray of shape (S, K)
    means : ndarray of shape (S, K, d)
    covs : ndarray of shape (S, K, d, d)
    """
    incomplete = np.isnan(X).any(axis=1)
    if incomplete.any():
        nearest = np.empty((weights.shape[0], X.shape[0]), dtype=np.intp)
        for i in range(X.shape[0]):
            obs = np.flatnonzero(~np.isnan(X[i]))
            nearest[:, i] = nearest_components(
                X[i : i + 1, obs], weights, means[..., obs], covs[..., obs[:, None], obs]
            )[:, 0]
        return nearest
    diff = X[None, :, None, :] - means[:, None]  # (S, n, K, d)
    scale = np.abs(diff).max(axis=-1)
    scale = np.where(scale > 0, scale, 1.0)
    chol = np.linalg.cholesky(covs)[:, None]  # (S, 1, K, d, d)
    solved = np.linalg.solve(chol, (diff / scale[..., None])[..., None])[..., 0]
    with np.errstate(divide="ignore"):
        log_distance = 2.0 * np.log(scale) + np.log((solved**2).sum(axis=-1))
    log_distance = np.where(weights[:, None, :] > 0, log_distance, np.inf)
    return log_distance.argmin(axis=-1)


def softmax_or_nearest(
    joint: np.ndarray, X: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray
) -> np.ndarray:
    """Responsibilities from log joint densities (S, n, K[+1]); never NaN.

    Where every density of a row underflows (a row ``1e200`` away from every component),
    the row goes wholly to its nearest Gaussian (:func:`nearest_components`) under that draw,
    as in the EM estimator.
    """
    joint = np.where(np.isnan(joint), -np.inf, joint)
    total = logsumexp(joint, axis=-1, keepdims=True)
    lost = ~np.isfinite(total[..., 0])
    with np.errstate(invalid="ignore"):
        resp = np.exp(joint - total)
    if lost.any():
        rows = np.flatnonzero(lost.any(axis=0))
        nearest = nearest_components(X[rows], weights, means, covs)  # (S, rows)
        draw, row = np.nonzero(lost[:, rows])
        resp[draw, rows[row]] = 0.0
        resp[draw, rows[row], nearest[draw, row]] = 1.0
    return resp


def finite_responsibilities(
    posterior: xr.Dataset,
    X: np.ndarray,
    noise: NoiseComponent | None,
    max_draws: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Responsibilities over the K components (and the noise, last), shape (S, n, K[+1]).

    Draws as in :func:`log_joint`; far rows as in :func:`softmax_or_nearest`.
    """
    stacked = stack_draws(posterior, max_draws=max_draws, random_state=seed)
    joint = log_joint(posterior, X, noise, max_draws, seed, stacked)
    return softmax_or_nearest(joint, X, *stacked)


def all_responsibilities(
    posterior: xr.Dataset, X: np.ndarray, noise: NoiseComponent | None
) -> np.ndarray:
    """Responsibilities over the K components and the noise (last), shape (S, n, K + 1)."""
    return finite_responsibilities(posterior, X, noise)


def responsibilities(
    posterior: xr.Dataset, X: np.ndarray, noise: NoiseComponent | None
) -> xr.DataArray:
    """Draws of ``gamma_nk = p(z_n = k | x_n, theta)``, dims (chain, draw, obs, component).

    With a noise component the Gaussians' probabilities among all K + 1 components.
    """
    shape = (posterior.sizes["chain"], posterior.sizes["draw"])
    n_components = posterior.sizes["component"]
    resp = finite_responsibilities(posterior, X, noise)[..., :n_components]
    resp = resp.reshape(*shape, len(X), n_components)
    return xr.DataArray(
        resp,
        dims=("chain", "draw", "obs", "component"),
        coords={"obs": np.arange(len(X)), "component": np.arange(n_components)},
        name="responsibilities",
    )


#: Responsibilities held at once by :func:`component_counts` (about 128 MiB of float64).
COUNT_CHUNK_ELEMENTS = 2**24


def component_counts(
    posterior: xr.Dataset, X: np.ndarray, noise: NoiseComponent | None
) -> xr.DataArray:
    """Draws of ``N_k = sum_n gamma_nk``, dims (chain, draw, component).

    :func:`responsibilities` summed over the rows, for a few draws at a time, so that at most
    about :data:`COUNT_CHUNK_ELEMENTS` responsibilities exist at once (all draws at once
    would be chains x draws x rows x K: 4 GB at 5,000 rows and K = 3).
    """
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    n_components = posterior["weights"].sizes["component"] + (noise is not None)
    step = max(1, COUNT_CHUNK_ELEMENTS // max(1, n_chains * len(X) * n_components))
    pieces = [
        responsibilities(posterior.isel(draw=slice(start, start + step)), X, noise).sum("obs")
        for start in range(0, n_draws, step)
    ]
    return xr.concat(pieces, dim="draw").transpose("chain", "draw", "component")


def noise_probability(
    posterior: xr.Dataset, X: np.ndarray, noise: NoiseComponent, ci_prob: float
) -> pd.DataFrame:
    """Posterior mean and equal-tailed interval of ``p(z_n = noise | x_n, theta)``."""
    probability = all_responsibilities(posterior, X, noise)[..., -1]
    lower, upper = equal_tailed_interval(probability, ci_prob)
    return pd.DataFrame(
        {"mean": probability.mean(axis=0), "lower": lower, "upper": upper},
        index=pd.Index(np.arange(probability.shape[1]), name="obs"),
    )


def assignment_probabilities(resp: xr.DataArray, ci_prob: float) -> pd.DataFrame:
    """Posterior mean and interval of each responsibility, indexed by (obs, component).

    ``resp``: :func:`responsibilities`.
    """
    resp = resp.stack(sample=("chain", "draw")).transpose("sample", ...)
    lower, upper = equal_tailed_interval(resp.values, ci_prob)
    n_obs, k = lower.shape
    index = pd.MultiIndex.from_product([range(n_obs), range(k)], names=["obs", "component"])
    return pd.DataFrame(
        {
            "mean": resp.values.mean(axis=0).ravel(),
            "lower": lower.ravel(),
            "upper": upper.ravel(),
        },
        index=index,
    )


def assignment_summary(
    posterior: xr.Dataset,
    X: np.ndarray,
    noise: NoiseComponent | None,
    *,
    ci_prob: float,
    max_draws: int | None,
    random_state,
) -> pd.DataFrame:
    """Each row's most probable component and its assignment probabilities with intervals.

    ``p(z_n = k | x_n, theta)`` over ``max_draws`` draws (a subset seeded by
    ``random_state``), summarised by the posterior mean and the equal-tailed ``ci_prob``
    interval; the estimator's ``assignment_summary`` describes the table.
    """
    rng = np.random.default_rng(random_state)
    resp = finite_responsibilities(posterior, X, noise, max_draws, int(rng.integers(2**31 - 1)))
    mean, lower, upper, component = assignment_intervals(resp, ci_prob)
    rows = np.arange(len(X))
    table = pd.DataFrame(
        {
            "component": component,
            "prob": mean[rows, component],
            "prob_lower": lower[rows, component],
            "prob_upper": upper[rows, component],
        },
        index=pd.RangeIndex(len(X), name="row"),
    )
    n_components = posterior.sizes["component"]
    for k in range(mean.shape[1]):
        label = f"p{k}" if k < n_components else "p_noise"
        table[label] = mean[:, k]
        table[f"{label}_lower"] = lower[:, k]
        table[f"{label}_upper"] = upper[:, k]
    table.loc[table["component"] == n_components, "component"] = -1
    return table


def partitions(
    posterior: xr.Dataset,
    X: np.ndarray,
    noise: NoiseComponent | None,
    *,
    loss: Loss,
    ci_prob: float,
    max_points: int,
    max_draws: int,
    random_state,
) -> PartitionSummary:
    """:func:`bayesgmm.posterior.partitions.summarize_partitions` of ``max_draws`` draws
    (a subset seeded by ``random_state``); with noise, the noise is one more cluster."""
    max_draws = check_positive_int(max_draws, "max_draws")
    rng = np.random.default_rng(random_state)
    seed = int(rng.integers(2**31 - 1))
    joint = log_joint(posterior, X, noise, max_draws, seed)
    return summarize_partitions(
        joint, loss=loss, ci_prob=ci_prob, max_points=max_points, random_state=rng
    )


def log_density(posterior: xr.Dataset, X: np.ndarray, noise: NoiseComponent | None) -> np.ndarray:
    """``log p(x_n | theta_s)`` per draw (noise included), shape (S, n)."""
    if noise is not None:
        return logsumexp(log_joint(posterior, X, noise), axis=-1)
    return log_mixture_density(X, *draws(posterior)[:3])


def predictive_density(
    posterior: xr.Dataset, grid: np.ndarray, noise: NoiseComponent | None, ci_prob: float
) -> xr.Dataset:
    """Posterior mean and equal-tailed band of the mixture density at ``grid`` (point, d)."""
    density = np.exp(log_density(posterior, grid, noise))
    lower, upper = equal_tailed_interval(density, ci_prob)
    return xr.Dataset(
        {
            "mean": ("point", density.mean(axis=0)),
            "lower": ("point", lower),
            "upper": ("point", upper),
        },
        coords={"grid": (("point", "feature"), grid)},
        attrs={"ci_prob": ci_prob},
    )


def predict(posterior: xr.Dataset, X: np.ndarray, noise: NoiseComponent | None) -> np.ndarray:
    """Most probable component of each row (posterior mean), ``-1`` for the noise."""
    if noise is None:
        return responsibilities(posterior, X, None).mean(("chain", "draw")).values.argmax(axis=1)
    mean = all_responsibilities(posterior, X, noise).mean(axis=0)
    labels = mean.argmax(axis=1)
    labels[labels == mean.shape[1] - 1] = -1
    return labels


def score_samples(posterior: xr.Dataset, X: np.ndarray, noise: NoiseComponent | None):
    """``log mean_s p(x_n | theta_s)``, shape (n,)."""
    log_lik = log_density(posterior, X, noise)
    return logsumexp(log_lik, axis=0) - np.log(log_lik.shape[0])


def impute(posterior: xr.Dataset, X: np.ndarray, n_draws: int, random_state) -> xr.DataArray:
    """Completed copies of ``X``, one per draw of a subset of ``n_draws`` (draw, obs, feature).

    One generator seeded by ``random_state`` picks the subset, then draws the missing
    entries (:func:`bayesgmm.posterior.draws.impute_draws`).
    """
    n_draws = check_positive_int(n_draws, "n_draws")
    rng = np.random.default_rng(random_state)
    weights, means, covs = stack_draws(
        posterior, max_draws=n_draws, random_state=int(rng.integers(2**31 - 1))
    )
    completed = impute_draws(X, weights, means, covs, rng)
    return xr.DataArray(
        completed,
        dims=("draw", "obs", "feature"),
        coords={"obs": np.arange(len(X)), "feature": np.arange(X.shape[1])},
        name="imputed",
    )


def sample(
    posterior: xr.Dataset, noise: NoiseComponent | None, n_samples: int, random_state
) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` points of the posterior predictive and their components (``-1``: noise)."""
    if noise is None:
        return sample_mixture(*draws(posterior)[:3], n_samples, random_state)
    weights, means, covs, _ = draws(posterior)
    rng = np.random.default_rng(random_state)
    draw = rng.integers(weights.shape[0], size=n_samples)
    is_noise = rng.random(n_samples) < noise_draws(posterior)[draw]
    X = np.empty((n_samples, means.shape[-1]))
    labels = np.full(n_samples, -1)
    X[is_noise] = noise.sample(int(is_noise.sum()), rng)
    for s in np.unique(draw[~is_noise]):  # Gaussian points from their own draw
        rows = np.flatnonzero(~is_noise & (draw == s))
        X[rows], labels[rows] = sample_mixture(weights[s], means[s], covs[s], rows.size, rng)
    return X, labels


def summary(
    idata: xr.DataTree,
    map_params: MixtureParams,
    method: str,
    ci_prob: float,
    feature_names: Sequence[str] | None,
    map_noise_weight: float | None,
) -> pd.DataFrame:
    """The posterior summary of every free parameter, or the MAP table (``method="map"``).

    Raises
    ------
    ValueError
        ``feature_names`` does not name every feature once.
    """
    n_features = map_params.means.shape[1]
    names = None if feature_names is None else [str(n) for n in feature_names]
    if names is not None and len(names) != n_features:
        raise ValueError(
            f"feature_names has {len(names)} names for {n_features} features: "
            "give one name per column"
        )
    if method == "map":
        return point_estimate_table(map_params, names, noise_weight=map_noise_weight)
    table = parameter_draws(idata["posterior"].to_dataset(), map_params.covariance_type, names)
    return posterior_summary(table, ci_prob=ci_prob)


def nuts_diagnostics(
    idata: xr.DataTree,
    X: np.ndarray,
    noise: NoiseComponent | None,
    *,
    relabeling: RelabelingRecord,
    chain_weights: np.ndarray | None,
    chain_starts: np.ndarray,
    draws_asked: int,
) -> Diagnostics:
    """:func:`bayesgmm.posterior.diagnostics.diagnose` of a NUTS fit (the chains as sampled).

    Parameters
    ----------
    idata : DataTree
        The stored posterior (``posterior_chains`` when the chains were stacked).
    X : ndarray of shape (n_samples, n_features)
        The training data (component counts).
    noise : NoiseComponent or None
    relabeling : RelabelingRecord
    chain_weights : ndarray of shape (chains,) or None
    chain_starts : ndarray of shape (chains,)
    draws_asked : int
        The ``draws`` setting (a longer run is reported as extended).
    """
    names = POSTERIOR_VARS + (("noise_weight",) if noise is not None else ())
    stored = idata["posterior"].to_dataset()
    tree = idata
    if "posterior_chains" not in idata.children:
        counts = component_counts(stored, X, noise).values
    else:
        chains = idata["posterior_chains"].to_dataset()
        tree = xr.DataTree.from_dict(
            {"posterior": chains, "sample_stats": idata["sample_stats"].to_dataset()}
        )
        if noise is not None:  # the stacked draws' counts: not per chain as sampled
            counts = component_counts(stored, X, noise).values
            counts = counts.reshape(-1, counts.shape[-1])
        else:
            counts = component_counts(chains, X, None).values
    return diagnose(
        tree,
        var_names=names,
        label_switching=relabeling.verdict,
        component_counts=counts,
        chain_weights=chain_weights,
        chain_starts=tuple(int(c) for c in chain_starts),
        starts_given=idata["posterior"].attrs.get("chain_start_source") == "given",
        chain_combination=str(idata["posterior"].attrs.get("chain_combination", "pooled")),
        draws_asked=draws_asked,
    )


def log_posterior_density(
    idata: xr.DataTree,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    spec: MixtureSpec,
    map_params: MixtureParams,
) -> tuple[np.ndarray, float, int]:
    """The MAP-EM objective at every draw (chains as sampled) and at the MAP.

    Returns
    -------
    draws : ndarray of shape (n_chains, n_draws)
    map : float
    n_free : int
        Free parameters of the mixture (weights, means, covariance entries).
    """
    group = "posterior_chains" if "posterior_chains" in idata.children else "posterior"
    posterior = idata[group].to_dataset()
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    weights, means, covs = stack_draws(posterior)
    prior = spec.map_prior()
    structure = map_params.structure
    n_components, n_features = map_params.means.shape

    def objective(params: MixtureParams) -> float:
        rows = log_mixture_density(X, params.weights, params.means, params.full_covariances())
        log_lik = rows.sum() if sample_weight is None else sample_weight @ rows
        return float(log_lik + (0.0 if prior is None else prior.log_density(params)))

    values = np.empty(len(weights))
    for s, (w, m, c) in enumerate(zip(weights, means, covs, strict=True)):
        values[s] = objective(draw_params(w, m, c, map_params.covariance_type))
    n_free = int(structure.n_parameters(n_components, n_features))
    n_free += n_components - 1 + n_components * n_features
    return values.reshape(n_chains, n_draws), objective(map_params), n_free


__all__ = [
    "all_responsibilities",
    "assignment_probabilities",
    "draws",
    "impute",
    "log_density",
    "log_joint",
    "log_posterior_density",
    "noise_draws",
    "noise_probability",
    "nuts_diagnostics",
    "partitions",
    "predict",
    "predictive_density",
    "sample",
    "score_samples",
    "summary",
]
