"""The observed variable of the mixture model: per-row densities with the labels summed out.

One log-density term per observation (what ``compute_log_likelihood`` and LOO read), on the
user's scale: the data are standardised inside the density, which adds the Jacobian
``-sum(log scale)``. :func:`mixture_logp` is the plain mixture (the fused
:func:`bayesgmm.bayes.likelihood.mixture_loglik` op; :func:`mixture_logp_graph` writes it
with PyTensor ops), :func:`weighted_mixture_logp` multiplies each term by the row's frequency
weight, :func:`noisy_mixture_logp` adds a uniform noise component
(:mod:`bayesgmm.core.noise`), and :class:`MarginalMixtureLogp` gives rows with missing
entries the marginal density of their observed coordinates. Each ``*_random`` draws from the
matching distribution; the ``_*OBSERVED_DIST`` tables are the ``pm.CustomDist`` keywords
that :func:`bayesgmm.bayes.model.build_model` passes for each kind of observed variable.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from bayesgmm.bayes.likelihood import mixture_loglik
from bayesgmm.core.missing import MissingPatterns
from bayesgmm.core.noise import sample_region
from bayesgmm.posterior.draws import sample_mixture


def mixture_logp(value, weights, means, chol, location, scale):
    """Log-density of each observation under the mixture, labels summed out.

    Parameters
    ----------
    value : tensor of shape (n_samples, n_features)
        Observations on the user's scale.
    weights : tensor of shape (n_components,)
    means : tensor of shape (n_components, n_features)
        Working-scale means.
    chol : tensor of shape (n_components, n_features, n_features)
        Lower Cholesky factors of the working-scale covariances.
    location, scale : tensor of shape (n_features,)
        The standardisation ``x_z = (x - location) / scale``.

    Returns
    -------
    tensor of shape (n_samples,)
        ``logsumexp_k(log w_k + log N(x_z | mu_k, Sigma_k)) - sum(log scale)``: one
        fused node (:func:`bayesgmm.bayes.likelihood.mixture_loglik`, Numba kernels for the
        density and its gradient); :func:`mixture_logp_graph` is the same density written
        with PyTensor ops.
    """
    inputs = (value, weights, means, chol, location, scale)
    core = [_drop_unit_batch(x, ndim) for x, ndim in zip(inputs, (2, 1, 2, 3, 1, 1), strict=True)]
    if any(x.type.ndim != ndim for x, ndim in zip(core, (2, 1, 2, 3, 1, 1), strict=True)):
        return mixture_logp_graph(*inputs)  # parameters batched beyond the rows
    return mixture_loglik(*core)


def _drop_unit_batch(x, ndim: int) -> pt.TensorVariable:
    """``x`` without its leading dimensions of static length 1 beyond ``ndim`` dimensions.

    PyMC gives a ``CustomDist``'s logp its parameters with a leading dimension of length 1
    (the batch of one distribution).
    """
    x = pt.as_tensor_variable(x)
    while x.type.ndim > ndim and x.type.shape[0] == 1:
        x = x[0]
    return x


def mixture_logp_graph(value, weights, means, chol, location, scale):
    """:func:`mixture_logp` written with PyTensor ops (batched triangular solve, logsumexp).

    The reference for the fused op's tests; PyTensor differentiates it symbolically.
    """
    log_joint = pt.log(weights) + _log_components(value, means, chol, location, scale)
    return pt.logsumexp(log_joint, axis=-1) - pt.log(scale).sum(axis=-1)


def _log_components(value, means, chol, location, scale):
    """``log N(x_z | mu_k, Sigma_k)`` on the working scale, shape (n_samples, n_components)."""
    x_z = (value - location) / scale
    d = x_z.shape[-1]
    diff = x_z[..., None, :] - means
    chol_inv = pt.linalg.solve_triangular(chol, pt.broadcast_to(pt.eye(d), chol.shape), lower=True)
    whitened = (chol_inv * diff[..., None, :]).sum(axis=-1)
    half_logdet = pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    return -0.5 * d * np.log(2.0 * np.pi) - half_logdet - 0.5 * pt.sqr(whitened).sum(-1)


def noisy_mixture_logp(
    value, weights, means, chol, location, scale, noise_weight, log_volume, lower, upper
):
    """Log-density of each observation under the mixture plus a uniform noise component.

    Parameters
    ----------
    value, means, chol, location, scale
        As in :func:`mixture_logp`.
    weights : tensor of shape (n_components,)
        Absolute Gaussian weights (summing to ``1 - noise_weight``).
    noise_weight : scalar tensor
        ``w_0``.
    log_volume : scalar tensor
        ``log V`` on the user's scale.
    lower, upper : tensor of shape (n_features,)
        The noise region's box (used by :func:`noisy_mixture_random` only).

    Returns
    -------
    tensor of shape (n_samples,)
        ``logsumexp(log w_k + log N(x_z | mu_k, Sigma_k), log w_0 - log V + sum(log scale))
        - sum(log scale)``, i.e. ``log(sum_k w_k N(x | ...) + w_0 / V)`` on the user's scale.
    """
    log_scale = pt.log(scale).sum(axis=-1)
    log_joint = pt.log(weights) + _log_components(value, means, chol, location, scale)
    noise = pt.log(noise_weight) - log_volume + log_scale
    noise_column = pt.broadcast_to(noise, (*log_joint.shape[:-1], 1))
    joint = pt.concatenate([log_joint, noise_column], axis=-1)
    return pt.logsumexp(joint, axis=-1) - log_scale


def noisy_mixture_random(
    weights,
    means,
    chol,
    location,
    scale,
    noise_weight,
    log_volume,
    lower,
    upper,
    rng=None,
    size=None,
):
    """Draw observations from the mixture plus noise (parameters of :func:`noisy_mixture_logp`).

    A draw is uniform on the noise region (:func:`bayesgmm.core.noise.sample_region`) with
    probability ``noise_weight``, else from the Gaussians.
    """
    d = np.shape(means)[-1]
    size = tuple(size or ())
    n = int(np.prod(size))
    rng = np.random.default_rng(rng)
    w0 = float(np.ravel(noise_weight)[0])
    is_noise = rng.random(n) < w0
    out = np.empty((n, d))
    n_noise = int(is_noise.sum())
    out[is_noise] = sample_region(
        np.reshape(lower, (d,)),
        np.reshape(upper, (d,)),
        float(np.ravel(log_volume)[0]),
        n_noise,
        rng,
    )
    out[~is_noise] = mixture_random(weights, means, chol, location, scale, rng, (n - n_noise,))
    return out.reshape(*size, d)


class MarginalMixtureLogp:
    """:func:`mixture_logp` of rows with missing entries: each row's observed coordinates.

    ``log p(x_n,o) = logsumexp_k(log w_k + log N(x_o | mu_k[o], Sigma_k[o, o]))
    - sum_{j in o} log scale_j``. Rows are grouped by missingness pattern (fixed when the
    model is built): one vectorised :func:`mixture_logp` per pattern on the observed
    sub-vector of the means and the Cholesky factor of the observed sub-matrix of the
    covariances; the terms are put back in row order, one per observation (what
    ``compute_log_likelihood`` and LOO read). The missing entries of ``value`` are never
    read.

    Parameters
    ----------
    patterns : MissingPatterns
        The missingness patterns of the observed data.
    """

    def __init__(self, patterns: MissingPatterns) -> None:
        self.patterns = patterns
        self.row_order = np.argsort(np.concatenate(patterns.rows), kind="stable")

    def __call__(self, value, weights, means, chol, location, scale):
        """Log-density of each observation (tensor of shape (n_samples,))."""
        covariances = chol @ chol.mT
        terms = []
        for rows, observed in self.patterns:
            obs = np.flatnonzero(observed)
            if obs.size == observed.size:
                sub_chol = chol
            else:
                sub_chol = pt.linalg.cholesky(covariances[..., obs[:, None], obs])
            terms.append(
                mixture_logp(
                    value[rows][:, obs],
                    weights,
                    means[..., obs],
                    sub_chol,
                    location[..., obs],
                    scale[..., obs],
                )
            )
        return pt.concatenate(terms)[self.row_order]


def mixture_random(weights, means, chol, location, scale, rng=None, size=None):
    """Draw observations (shape (*size, n_features)) on the user's scale from the mixture.

    Parameters are those of :func:`mixture_logp` (leading dimensions of size one allowed).
    """
    k, d = np.shape(means)[-2:]
    weights, means, chol = (
        np.reshape(weights, (k,)),
        np.reshape(means, (k, d)),
        np.reshape(chol, (k, d, d)),
    )
    location, scale = np.reshape(location, (d,)), np.reshape(scale, (d,))
    size = tuple(size or ())
    x_z, _ = sample_mixture(
        weights / weights.sum(), means, chol @ np.swapaxes(chol, -1, -2), int(np.prod(size)), rng
    )
    return location + scale * x_z.reshape(*size, d)


def weighted_mixture_logp(value, weights, means, chol, location, scale, row_weight):
    """:func:`mixture_logp` times each row's frequency weight ``w_n`` (shape (n_samples,))."""
    return row_weight * mixture_logp(value, weights, means, chol, location, scale)


def weighted_mixture_random(weights, means, chol, location, scale, row_weight, rng=None, size=None):
    """:func:`mixture_random`: a weight changes how often a row counts, not what is drawn."""
    return mixture_random(weights, means, chol, location, scale, rng=rng, size=size)


#: The observed variable without and with frequency weights (``pm.CustomDist`` keywords).
_OBSERVED_DIST = {
    "logp": mixture_logp,
    "random": mixture_random,
    "signature": "(k),(k,d),(k,d,d),(d),(d)->(d)",
}
_WEIGHTED_OBSERVED_DIST = {
    "logp": weighted_mixture_logp,
    "random": weighted_mixture_random,
    "signature": "(k),(k,d),(k,d,d),(d),(d),()->(d)",
}
#: The observed variable with a uniform noise component (:mod:`bayesgmm.core.noise`).
_NOISY_OBSERVED_DIST = {
    "logp": noisy_mixture_logp,
    "random": noisy_mixture_random,
    "signature": "(k),(k,d),(k,d,d),(d),(d),(),(),(d),(d)->(d)",
}


__all__ = [
    "MarginalMixtureLogp",
    "mixture_logp",
    "mixture_logp_graph",
    "mixture_random",
    "noisy_mixture_logp",
    "noisy_mixture_random",
    "weighted_mixture_logp",
    "weighted_mixture_random",
]
