"""NUTS target of the ``diag`` and ``spherical`` structures as one Numba kernel.

The model (:func:`bayesgmm.bayes.model.build_model`, default prior family) has the free
variables ``weights`` (K > 1), ``variances_z`` ((K, d) for diag, (K,) for spherical) and
``means_z`` (K, d); the unconstrained vector is ``(y_w (K-1), u, mu (K, d))`` with ``u`` the
log variances (PyMC's log transform, log-Jacobian ``sum u``), and the log density is the
sum of

- the Dirichlet(``a``) prior with the simplex transform (:mod:`.common`);
- per variance ``v = exp(u)``, the Inverse-Gamma(``alpha = nu / 2``, ``beta = psi / 2``)
  prior ``alpha log beta - log Gamma(alpha) - (alpha + 1) u - beta / v`` (``psi`` the
  covariance prior, (d,) for diag, a scalar for spherical), and the Jacobian ``u``;
- per component, ``mu_k ~ N(m0, diag(v_k) / kappa0)``;
- the likelihood ``sum_n log sum_k w_k N(x_z,n | mu_k, diag(v_k)) - N sum_i log scale_i``.

The gradient is analytic: with ``z_nki = (x_z,ni - mu_ki) / sd_ki``, responsibilities
``r_nk`` and their sums ``N_k``, ``s_ki = sum_n r_nk z_nki``, ``S_ki = sum_n r_nk z_nki^2``:
``d/dmu_ki = s_ki / sd_ki - kappa0 (mu_ki - m0_i) / v_ki`` and ``d/du_ki = (S_ki - N_k)/2 -
1/2 + kappa0 (mu_ki - m0_i)^2 / (2 v_ki) - alpha + beta_i / v_ki`` (spherical: the first
three terms summed over ``i``, the prior's once). One pass over the rows, O(K d) per row.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.special import gammaln

from bayesgmm._numba import gaussian
from bayesgmm._numba.cache import depend_on
from bayesgmm._numba.gaussian import log_sum_exp_shift
from bayesgmm.bayes import kernel_terms, likelihood, posterior_kernel
from bayesgmm.bayes.kernel_terms import add_row_total, add_weights_terms, row_run, simplex_weights
from bayesgmm.bayes.kernels import common
from bayesgmm.bayes.kernels.common import (
    _JIT,
    ContainerKernel,
    contiguous,
    dirichlet_constant,
)
from bayesgmm.bayes.likelihood import _scale_terms
from bayesgmm.bayes.posterior_kernel import ordered_gradient, ordered_means

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


@numba.njit(**_JIT)
def variances_logp_dlogp(
    x, value, location, scale, concentration, mean_prior, kappa, alpha, beta, constant
):
    """Log posterior density and gradient of the diag (``beta`` (d,)) or spherical model.

    Parameters
    ----------
    x : ndarray of shape (n_dim,)
        ``(y_w (K - 1), u (K, n_var), mu (K, d))``, ``n_var`` = ``beta.shape[0]``: d (diag)
        or 1 (spherical).
    value : ndarray of shape (n_samples, n_features)
        Observations on the user's scale.
    location, scale : ndarray of shape (n_features,)
    concentration : ndarray of shape (n_components,)
    mean_prior : ndarray of shape (n_features,)
    kappa, alpha : float
        ``kappa0`` and the Inverse-Gamma shape ``nu / 2``.
    beta : ndarray of shape (n_var,)
        Inverse-Gamma scales ``psi / 2``.
    constant : float
        The terms that depend on the prior only (:func:`variances_constant`).

    Returns
    -------
    logp : float
    grad : ndarray of shape (n_dim,)
    """
    n_rows, d = value.shape
    n_components = concentration.shape[0]
    n_var = beta.shape[0]
    off_var = n_components - 1
    off_mean = off_var + n_components * n_var
    grad = np.zeros(x.shape[0])
    weights = np.empty(n_components)
    log_w = np.empty(n_components)
    simplex_weights(x, n_components, weights, log_w)
    means = x[off_mean:].reshape((n_components, d))
    jacobian = 0.0
    if d == 1:  # one dimension: the means are ordered
        means, jacobian = ordered_means(x, off_mean, n_components)

    # per component: log w_k - sum_i log sd_ki - d/2 log 2 pi, and 1 / sd
    inv_sd = np.empty((n_components, d))
    const = np.empty(n_components)
    for k in range(n_components):
        c = log_w[k] - d * _HALF_LOG_2PI
        for i in range(d):
            u = x[off_var + k * n_var + (i if n_var > 1 else 0)]
            inv_sd[k, i] = 1.0 / np.sqrt(np.exp(u))
            c -= 0.5 * u
        const[k] = c

    log_scale, inv_scale = _scale_terms(scale)
    x_z = np.empty(d)
    z = np.empty((n_components, d))
    log_joint = np.empty(n_components)
    counts = np.zeros(n_components)
    sum_z = np.zeros((n_components, d))
    sum_zz = np.zeros((n_components, d))
    loglik = 0.0
    run = row_run(n_rows, n_components)
    product = 1.0
    left = run
    for n in range(n_rows):
        for i in range(d):
            x_z[i] = (value[n, i] - location[i]) * inv_scale[i]
        for k in range(n_components):
            q = 0.0
            for i in range(d):
                zi = (x_z[i] - means[k, i]) * inv_sd[k, i]
                z[k, i] = zi
                q += zi * zi
            log_joint[k] = const[k] - 0.5 * q
        top = log_sum_exp_shift(log_joint)
        # exp(log_joint - top) in place, one exponential fewer per row
        total = gaussian.exp_shifted(log_joint, top)
        loglik += top
        loglik, product, left = add_row_total(loglik, product, left, total, run, n == n_rows - 1)
        inv_total = 1.0 / total
        for k in range(n_components):
            r = log_joint[k] * inv_total
            counts[k] += r
            for i in range(d):
                rz = r * z[k, i]
                sum_z[k, i] += rz
                sum_zz[k, i] += rz * z[k, i]
    logp = constant + jacobian + loglik - n_rows * log_scale

    for k in range(n_components):
        # Inverse-Gamma priors and the log transform's Jacobian
        for v in range(n_var):
            at = off_var + k * n_var + v
            u = x[at]
            inv_var = np.exp(-u)
            logp += -alpha * u - beta[v] * inv_var
            grad[at] = -alpha + beta[v] * inv_var
        # means prior N(m0, diag(v_k) / kappa0), and the likelihood's terms
        quad = 0.0
        for i in range(d):
            at = off_var + k * n_var + (i if n_var > 1 else 0)
            dm = means[k, i] - mean_prior[i]
            w = dm * inv_sd[k, i]
            quad += w * w
            logp -= 0.5 * x[at]
            grad[at] += 0.5 * (sum_zz[k, i] - counts[k]) - 0.5 + 0.5 * kappa * w * w
            grad[off_mean + k * d + i] = (sum_z[k, i] - kappa * w) * inv_sd[k, i]
        logp -= 0.5 * kappa * quad
    logp += add_weights_terms(concentration, counts, weights, log_w, grad)
    if d == 1:
        ordered_gradient(x, off_mean, n_components, grad)
    return logp, grad


def variances_constant(
    concentration: np.ndarray, kappa: float, alpha: float, beta: np.ndarray, d: int
) -> float:
    """The terms of :func:`variances_logp_dlogp`'s density that depend on the prior only.

    The Dirichlet's and the simplex Jacobian's, per component and variance the
    Inverse-Gamma's ``alpha log beta - log Gamma(alpha)``, per component the means prior's
    ``-d/2 log 2 pi + d/2 log kappa0``.
    """
    n_components = concentration.shape[0]
    inverse_gamma = n_components * float(np.sum(alpha * np.log(beta) - gammaln(alpha)))
    means = n_components * d * (0.5 * np.log(kappa) - _HALF_LOG_2PI)
    return dirichlet_constant(concentration) + inverse_gamma + means


def prepare_variances(values: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(data, packed)`` of :func:`_packed_variances` from the containers' values.

    ``packed``: K, n_var, kappa0, alpha, constant, then location, scale, mean prior (d
    each), concentration (K), beta (n_var).
    """
    data, location, scale, conc, mean_prior, kappa, dof, psi = values
    conc = contiguous(conc)
    d = np.shape(data)[1]
    kappa, alpha = float(kappa), 0.5 * float(dof)
    beta = 0.5 * np.atleast_1d(contiguous(psi))
    constant = variances_constant(conc, kappa, alpha, beta, d)
    head = np.array([conc.shape[0], beta.shape[0], kappa, alpha, constant], dtype=np.float64)
    parts = [head, np.ravel(location), np.ravel(scale), np.ravel(mean_prior), conc, beta]
    return contiguous(data), contiguous(np.concatenate(parts))


@numba.njit(**_JIT)
def _packed_variances(x, value, packed):
    """:func:`variances_logp_dlogp` with the arguments after ``value`` in one vector."""
    d = value.shape[1]
    n_components, n_var = int(packed[0]), int(packed[1])
    at = 5 + 3 * d
    return variances_logp_dlogp(
        x,
        value,
        packed[5 : 5 + d],
        packed[5 + d : 5 + 2 * d],
        packed[at : at + n_components],
        packed[5 + 2 * d : at],
        packed[2],
        packed[3],
        packed[at + n_components : at + n_components + n_var],
        packed[4],
    )


def variances_kernel(model) -> ContainerKernel:
    """The NUTS target of a diag or spherical model (checked by the caller)."""
    return ContainerKernel(model, prepare_variances, _packed_variances)


# inlines the row helpers of likelihood.py and gaussian.py and common.py's weights
depend_on(globals(), likelihood, gaussian, common, kernel_terms, posterior_kernel)

__all__ = ["variances_constant", "variances_kernel", "variances_logp_dlogp"]
