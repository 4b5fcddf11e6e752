"""NUTS target of the ``tied`` structure (one covariance matrix shared by every component).

The unconstrained vector is ``(y_w (K-1), y_Sigma (d(d+1)/2), mu (K, d))``: the
:class:`~bayesgmm.bayes.structures.SPDCholeskyTransform` of the one matrix ``Sigma = L L^T``,
and the log density is that of :mod:`bayesgmm.bayes.posterior_kernel` (full) with one
Inverse-Wishart prior and one Jacobian instead of K, the K means priors
``mu_k ~ N(m0, Sigma / kappa0)`` and the likelihood all sharing ``L``. The gradient with
respect to ``L`` is therefore the full kernel's summed over the components: ``tril(A^T M) -
N diag(1 / L_ii)`` with ``A = L^{-1}``, ``M = sum_k S_k + W W^T + kappa0 sum_k z_k z_k^T``
and ``N`` the number of rows; with respect to ``mu_k``, ``A^T (s_k - kappa0 z_k)``.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.special import multigammaln

from bayesgmm._numba import gaussian
from bayesgmm._numba.cache import depend_on
from bayesgmm._numba.gaussian import whiten
from bayesgmm.bayes import kernel_terms, likelihood, posterior_kernel
from bayesgmm.bayes.kernel_terms import add_row_total, add_weights_terms, row_run, simplex_weights
from bayesgmm.bayes.kernels import common
from bayesgmm.bayes.kernels.common import (
    _JIT,
    ContainerKernel,
    contiguous,
    dirichlet_constant,
)
from bayesgmm.bayes.likelihood import _component_constants, _row_log_joint, _scale_terms
from bayesgmm.bayes.posterior_kernel import ordered_gradient, ordered_means


@numba.njit(**_JIT)
def tied_niw_logp_dlogp(
    x, value, location, scale, concentration, mean_prior, kappa, dof, psi_chol, constant
):
    """Log posterior density and gradient of the tied model at the unconstrained ``x``.

    Parameters
    ----------
    x : ndarray of shape (n_dim,)
        ``(y_w (K - 1), y_Sigma (d(d+1)/2,), mu (K, d))``.
    value : ndarray of shape (n_samples, n_features)
    location, scale : ndarray of shape (n_features,)
    concentration : ndarray of shape (n_components,)
    mean_prior : ndarray of shape (n_features,)
    kappa, dof : float
    psi_chol : ndarray of shape (n_features, n_features)
        Lower Cholesky factor of the Inverse-Wishart scale.
    constant : float
        :func:`tied_constant`.

    Returns
    -------
    logp : float
    grad : ndarray of shape (n_dim,)
    """
    n_rows, d = value.shape
    n_components = concentration.shape[0]
    off_cov = n_components - 1
    off_mean = off_cov + d * (d + 1) // 2
    grad = np.zeros(x.shape[0])
    weights = np.empty(n_components)
    log_w = np.empty(n_components)
    simplex_weights(x, n_components, weights, log_w)

    # log|L| terms: Inverse-Wishart -(nu + d + 1), Jacobian d - i + 1, K means priors -1 each
    power = np.empty(d)
    chol = np.zeros((1, d, d))
    logp = constant
    t = off_cov
    for i in range(d):
        for j in range(i):
            chol[0, i, j] = x[t]
            t += 1
        chol[0, i, i] = np.exp(x[t])
        power[i] = d - i + 1.0 - (dof + d + 1.0) - n_components
        logp += power[i] * x[t]
        t += 1
    low = chol[0]

    means = x[off_mean:].reshape((n_components, d))
    if d == 1:  # one dimension: the means are ordered
        means, jacobian = ordered_means(x, off_mean, n_components)
        logp += jacobian
    const, inv_diag = _component_constants(weights, chol, d)
    inv = inv_diag[0]
    log_scale, inv_scale = _scale_terms(scale)
    x_z = np.empty(d)
    z = np.empty((n_components, d))
    log_joint = np.empty(n_components)
    counts = np.zeros(n_components)
    sum_z = np.zeros((n_components, d))
    sum_zz = np.zeros((d, d))  # sum_n sum_k r_nk z_nk z_nk^T (lower triangle)
    loglik = 0.0
    run = row_run(n_rows, n_components)
    product = 1.0
    left = run
    for n in range(n_rows):
        top = _row_log_joint(
            value, n, means, chol, location, inv_scale, const, inv_diag, x_z, z, log_joint
        )
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
                for j in range(i + 1):
                    sum_zz[i, j] += rz * z[k, j]
    logp += loglik - n_rows * log_scale

    # the Inverse-Wishart's trace: W = L^{-1} chol(Psi), column by column
    w_psi = np.zeros((d, d))
    for c in range(d):
        for i in range(c, d):
            s = psi_chol[i, c]
            for j in range(c, i):
                s -= low[i, j] * w_psi[j, c]
            w_psi[i, c] = s * inv[i]
    trace = 0.0
    for i in range(d):
        for c in range(i + 1):
            trace += w_psi[i, c] * w_psi[i, c]
    logp -= 0.5 * trace
    # M = S + W W^T + kappa sum_k z_k z_k^T (lower triangle kept in sum_zz)
    for i in range(d):
        for c in range(i + 1):
            s = 0.0
            for m in range(c + 1):
                s += w_psi[i, m] * w_psi[c, m]
            sum_zz[i, c] += s
    zm = np.empty(d)
    um = np.empty(d)
    for k in range(n_components):
        quad = whiten(means[k], mean_prior, low, inv, zm)
        logp -= 0.5 * kappa * quad
        for i in range(d):
            for c in range(i + 1):
                sum_zz[i, c] += kappa * zm[i] * zm[c]
        # d/dmu_k = L^{-T}(s_k - kappa z_k), by back substitution
        for back in range(d):
            i = d - 1 - back
            s = sum_z[k, i] - kappa * zm[i]
            for j in range(i + 1, d):
                s -= low[j, i] * um[j]
            um[i] = s * inv[i]
            grad[off_mean + k * d + i] = um[i]
    # d/dL = tril(L^{-T} M) - N diag(1 / L_ii)
    v_psi = np.empty((d, d))
    for c in range(d):
        for back in range(d):
            i = d - 1 - back
            s = sum_zz[max(i, c), min(i, c)]
            for j in range(i + 1, d):
                s -= low[j, i] * v_psi[j, c]
            v_psi[i, c] = s * inv[i]
    t = off_cov
    for i in range(d):
        for j in range(i + 1):
            if j < i:
                grad[t] = v_psi[i, j]
            else:
                grad[t] = (v_psi[i, i] - n_rows * inv[i]) * low[i, i] + power[i]
            t += 1
    logp += add_weights_terms(concentration, counts, weights, log_w, grad)
    if d == 1:
        ordered_gradient(x, off_mean, n_components, grad)
    return logp, grad


def tied_constant(concentration: np.ndarray, kappa: float, dof: float, psi_chol: np.ndarray):
    """The terms of :func:`tied_niw_logp_dlogp`'s density that depend on the prior only.

    The Dirichlet's, one Inverse-Wishart normalisation ``nu/2 log|Psi| - nu d/2 log 2 - log
    Gamma_d(nu/2)`` and Cholesky Jacobian ``d log 2``, and K means priors'
    ``-d/2 log 2 pi + d/2 log kappa0``.
    """
    n_components, d = concentration.shape[0], psi_chol.shape[0]
    half_dof = 0.5 * dof
    logdet_psi = 2.0 * np.log(np.diagonal(psi_chol)).sum()
    inverse_wishart = (
        half_dof * logdet_psi - half_dof * d * np.log(2.0) - multigammaln(half_dof, d)
    ) + d * np.log(2.0)
    means = n_components * (0.5 * d * np.log(kappa) - 0.5 * d * np.log(2.0 * np.pi))
    return float(dirichlet_constant(concentration) + inverse_wishart + means)


def prepare_tied(values: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(data, packed)`` of :func:`_packed_tied`: K, kappa0, nu, constant, location, scale,
    mean prior (d each), concentration (K), chol(Psi) (d * d, row-major)."""
    data, location, scale, conc, mean_prior, kappa, dof, psi = values
    conc = contiguous(conc)
    psi_chol = np.linalg.cholesky(contiguous(psi))
    kappa, dof = float(kappa), float(dof)
    head = np.array([conc.shape[0], kappa, dof, tied_constant(conc, kappa, dof, psi_chol)])
    parts = [head, np.ravel(location), np.ravel(scale), np.ravel(mean_prior), conc]
    return contiguous(data), contiguous(np.concatenate([*parts, np.ravel(psi_chol)]))


@numba.njit(**_JIT)
def _packed_tied(x, value, packed):
    """:func:`tied_niw_logp_dlogp` with the arguments after ``value`` in one vector."""
    d = value.shape[1]
    n_components = int(packed[0])
    at = 4 + 3 * d + n_components
    return tied_niw_logp_dlogp(
        x,
        value,
        packed[4 : 4 + d],
        packed[4 + d : 4 + 2 * d],
        packed[4 + 3 * d : at],
        packed[4 + 2 * d : 4 + 3 * d],
        packed[1],
        packed[2],
        packed[at : at + d * d].reshape((d, d)),
        packed[3],
    )


def tied_kernel(model) -> ContainerKernel:
    """The NUTS target of a tied model (checked by the caller)."""
    return ContainerKernel(model, prepare_tied, _packed_tied)


# inlines the row helpers of likelihood.py and gaussian.py and common.py's weights
depend_on(globals(), likelihood, gaussian, common, kernel_terms, posterior_kernel)

__all__ = ["tied_constant", "tied_kernel", "tied_niw_logp_dlogp"]
