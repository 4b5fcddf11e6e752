"""Posterior maths of a Gaussian mixture on arrays of parameter draws (NumPy only).

Every function takes the mixture's parameters as plain arrays, full covariance
matrices on the user's scale, either for one parameter set or for a stack of draws:

==============  ============================  ===============================
argument        one parameter set             ``S`` posterior draws
==============  ============================  ===============================
``weights``     (K,)                          (S, K)
``means``       (K, d)                        (S, K, d)
``covariances`` (K, d, d)                     (S, K, d, d)
==============  ============================  ===============================

The densities accept any leading batch shape ``(...)`` and return ``(..., N, K)`` or
``(..., N)``; :func:`sample_mixture` takes either layout; :func:`stack_draws` turns a
posterior ``xarray.Dataset`` into the stacked layout and :func:`equal_tailed_interval`
summarises any array of draws. Normalisations are log-sum-exps. Importing this module
imports NumPy only (no PyMC, PyTensor, ArviZ, SciPy or xarray); the densities run
compiled loops from :mod:`bayesgmm.posterior.kernels` (Numba, imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesgmm.core.missing import MissingPatterns, has_missing

if TYPE_CHECKING:
    import xarray as xr

_DIMS = {
    "weights": ("component",),
    "means": ("component", "feature"),
    "covariances": ("component", "feature", "feature_bis"),
}


def log_joint_densities(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """``log w_k + log N(x_n | mu_k, Sigma_k)`` for every draw, sample and component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN marks a missing entry (``missing="marginalize"``): such a row gets the
        marginal density of its observed coordinates, ``N(x_o | mu_k[o], Sigma_k[o, o])``
        (rows grouped by missingness pattern). No row may be entirely missing.
    weights : ndarray of shape (..., n_components)
        ``(n_draws, n_components)`` for posterior draws; a zero weight gives ``-inf``.
    means : ndarray of shape (..., n_components, n_features)
    covariances : ndarray of shape (..., n_components, n_features, n_features)
        Positive definite.

    Returns
    -------
    ndarray of shape (..., n_samples, n_components)
        ``(n_draws, n_samples, n_components)`` for posterior draws.
    """
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    if has_missing(X):
        covariances = np.asarray(covariances, dtype=np.float64)
        patterns = MissingPatterns.from_data(X)
        out = np.empty((*np.shape(weights)[:-1], X.shape[0], np.shape(weights)[-1]))
        for rows, observed in patterns:
            obs = np.flatnonzero(observed)
            out[..., rows, :] = log_joint_densities(
                X[np.ix_(rows, obs)],
                weights,
                means[..., obs],
                covariances[..., obs[:, None], obs],
            )
        return out
    from bayesgmm.posterior.kernels import log_joint_kernel

    return _on_draws(log_joint_kernel, X, weights, means, covariances, per_component=True)


def _on_draws(kernel, X, weights, means, covariances, *, per_component: bool) -> np.ndarray:
    """Run a :mod:`bayesgmm.posterior.kernels` kernel on draws of any batch shape.

    The parameters are broadcast to one batch shape ``(...)`` and flattened to ``S``
    draws; the covariances are factorised here (``numpy.linalg.LinAlgError`` if one is
    not positive definite). Returns ``(..., N, K)`` (``per_component``) or ``(..., N)``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    n_components, d = means.shape[-2:]
    batch = np.broadcast_shapes(weights.shape[:-1], means.shape[:-2], covariances.shape[:-3])
    chol = np.linalg.cholesky(covariances)

    def flat(a, tail):
        return np.ascontiguousarray(np.broadcast_to(a, batch + tail).reshape(-1, *tail))

    out = kernel(
        np.ascontiguousarray(X, dtype=np.float64),
        flat(weights, (n_components,)),
        flat(means, (n_components, d)),
        flat(chol, (n_components, d, d)),
    )
    return out.reshape(batch + out.shape[1:]) if per_component else out.reshape(*batch, -1)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """``log(sum(exp(a), axis))`` without overflow; ``-inf`` where every term is ``-inf``."""
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(a - top), axis=axis)) + np.squeeze(top, axis=axis)


def responsibilities(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """Assignment probabilities ``P(z_n = k | x_n, theta)`` for every draw.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (..., n_components)
    means : ndarray of shape (..., n_components, n_features)
    covariances : ndarray of shape (..., n_components, n_features, n_features)

    Returns
    -------
    ndarray of shape (..., n_samples, n_components)
        Rows sum to one (the softmax of :func:`log_joint_densities` over components).
    """
    log_joint = log_joint_densities(X, weights, means, covariances)
    return np.exp(log_joint - _logsumexp(log_joint, axis=-1)[..., None])


def log_mixture_density(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """Log-density ``log sum_k w_k N(x_n | mu_k, Sigma_k)`` of every sample for every draw.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (..., n_components)
    means : ndarray of shape (..., n_components, n_features)
    covariances : ndarray of shape (..., n_components, n_features, n_features)

    Returns
    -------
    ndarray of shape (..., n_samples)
    """
    X = np.asarray(X, dtype=np.float64)
    if has_missing(X):
        return _logsumexp(log_joint_densities(X, weights, means, covariances), axis=-1)
    from bayesgmm.posterior.kernels import log_density_kernel

    return _on_draws(log_density_kernel, X, weights, means, covariances, per_component=False)


def impute_draws(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Draws of the missing entries given the observed ones, one per parameter draw.

    For draw ``s`` and a row with observed block ``o`` and missing block ``m``: a component
    ``k`` from ``p(z = k | x_o, theta_s)``, then
    ``x_m ~ N(mu_k[m] + Sigma_k[m, o] Sigma_k[o, o]^-1 (x_o - mu_k[o]),
    Sigma_k[m, m] - Sigma_k[m, o] Sigma_k[o, o]^-1 Sigma_k[o, m])``. Over posterior draws
    this samples the posterior predictive distribution of the missing entries (multiple
    imputation).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NaN marks a missing entry.
    weights : ndarray of shape (n_draws, n_components)
    means : ndarray of shape (n_draws, n_components, n_features)
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
    rng : numpy.random.Generator, int or None

    Returns
    -------
    ndarray of shape (n_draws, n_samples, n_features)
        ``X`` completed once per draw (observed entries unchanged).
    """
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    rng = np.random.default_rng(rng)
    n_draws = weights.shape[0]
    out = np.broadcast_to(X, (n_draws, *X.shape)).copy()
    if not has_missing(X):
        return out
    patterns = MissingPatterns.from_data(X)
    for rows, observed in patterns:
        obs, mis = np.flatnonzero(observed), np.flatnonzero(~observed)
        if not mis.size:
            continue
        x_o = X[np.ix_(rows, obs)]
        resp = responsibilities(x_o, weights, means[..., obs], covariances[..., obs[:, None], obs])
        cdf = np.cumsum(resp, axis=-1)  # (S, n, K)
        u = rng.random((n_draws, rows.size, 1))
        labels = np.minimum((cdf < u * cdf[..., -1:]).sum(axis=-1), weights.shape[-1] - 1)
        draw = np.arange(n_draws)[:, None]
        mu, cov = means[draw, labels], covariances[draw, labels]  # (S, n, d), (S, n, d, d)
        chol = np.linalg.cholesky(cov[..., obs[:, None], obs])
        whitened = np.linalg.solve(chol, (x_o - mu[..., obs])[..., None])
        cross = np.linalg.solve(chol, cov[..., obs[:, None], mis])  # (S, n, o, m)
        mean_m = mu[..., mis] + (np.swapaxes(cross, -1, -2) @ whitened)[..., 0]
        cond = cov[..., mis[:, None], mis] - np.swapaxes(cross, -1, -2) @ cross
        noise = rng.standard_normal((n_draws, rows.size, mis.size, 1))
        filled = mean_m + (np.linalg.cholesky(cond) @ noise)[..., 0]
        out[:, rows[:, None], mis] = filled
    return out


def sample_mixture(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    n_samples: int,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw points and their component labels from a mixture or from a stack of draws.

    For a stack of posterior draws each point first picks a draw uniformly at random,
    which samples the posterior predictive distribution. The labels are drawn by
    inverting the cumulative weights with one uniform per point, then one standard
    normal vector per point is coloured by the component's Cholesky factor.

    Parameters
    ----------
    weights : ndarray of shape (n_components,) or (n_draws, n_components)
    means : ndarray of shape (n_components, n_features) or (n_draws, n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features) or
        (n_draws, n_components, n_features, n_features)
    n_samples : int
    rng : numpy.random.Generator, int or None
        Generator, or seed of a new one.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
        Component of each point.
    """
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    if weights.ndim not in (1, 2):
        raise ValueError(
            f"weights must have shape (n_components,) or (n_draws, n_components), got "
            f"{weights.shape}"
        )
    lead = weights.shape[:-1]
    k = weights.shape[-1]
    if means.shape[:-1] != (*lead, k) or covariances.shape != (*means.shape, means.shape[-1]):
        raise ValueError(
            f"weights {weights.shape}, means {means.shape} and covariances "
            f"{covariances.shape} do not describe the same mixture: expected means "
            f"(*lead, K, d) and covariances (*lead, K, d, d) for weights (*lead, K)"
        )
    rng = np.random.default_rng(rng)
    chol = np.linalg.cholesky(covariances)
    if weights.ndim == 1:
        weights, means, chol = weights[None], means[None], chol[None]
        draw = np.zeros(n_samples, dtype=np.intp)
    else:
        draw = rng.integers(weights.shape[0], size=n_samples)
    cdf = np.cumsum(weights[draw], axis=1)
    cdf /= cdf[:, -1:]
    labels = np.minimum((cdf <= rng.random(n_samples)[:, None]).sum(axis=1), k - 1)
    noise = rng.standard_normal((n_samples, means.shape[-1]))
    X = means[draw, labels] + np.einsum("nij,nj->ni", chol[draw, labels], noise)
    return X, labels


def equal_tailed_interval(
    draws: np.ndarray, ci_prob: float = 0.89, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed credible interval of ``draws`` along ``axis``.

    Parameters
    ----------
    draws : ndarray
    ci_prob : float, default=0.89
        Probability inside the interval, in (0, 1); each tail holds ``(1 - ci_prob) / 2``.
    axis : int, default=0
        The draws' axis.

    Returns
    -------
    lower, upper : ndarray
        The ``(1 - ci_prob) / 2`` and ``(1 + ci_prob) / 2`` quantiles; shape of ``draws``
        without ``axis``.
    """
    if not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be in (0, 1), got {ci_prob}")
    tail = (1.0 - ci_prob) / 2.0
    return np.quantile(draws, tail, axis=axis), np.quantile(draws, 1.0 - tail, axis=axis)


def stack_draws(
    posterior: xr.Dataset, max_draws: int | None = None, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack chains and draws of a posterior into arrays, optionally thinned at random.

    Parameters
    ----------
    posterior : xarray.Dataset
        ``weights`` (chain, draw, component), ``means`` (chain, draw, component, feature)
        and ``covariances`` (chain, draw, component, feature, feature_bis), full
        matrices on the user's scale.
    max_draws : int, optional
        Keep at most this many draws: a seeded random subset, in their original order.
    random_state : int, default=0
        Seed of the subset.

    Returns
    -------
    weights : ndarray of shape (n_draws, n_components)
    means : ndarray of shape (n_draws, n_components, n_features)
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
        Draw ``c * n_draws_per_chain + t`` is chain ``c``'s draw ``t`` (before thinning).
    """
    arrays = [
        posterior[name]
        .transpose("chain", "draw", *dims)
        .stack(sample=("chain", "draw"))
        .transpose("sample", *dims)
        .to_numpy()
        for name, dims in _DIMS.items()
    ]
    n = arrays[0].shape[0]
    if max_draws is not None and n > max_draws:
        keep = np.sort(np.random.default_rng(random_state).choice(n, max_draws, replace=False))
        arrays = [a[keep] for a in arrays]
    return arrays[0], arrays[1], arrays[2]


__all__ = [
    "equal_tailed_interval",
    "impute_draws",
    "log_joint_densities",
    "log_mixture_density",
    "responsibilities",
    "sample_mixture",
    "stack_draws",
]
