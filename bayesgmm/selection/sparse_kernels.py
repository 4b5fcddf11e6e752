"""Numba kernels of the sparse-mixture Gibbs sampler (:mod:`bayesgmm.selection.sparse`).

One compiled chain (:func:`_run_chain`: ``e0``, weights, Normal-Inverse-Wishart
component draws and allocations per sweep); the model and the sweep are described in
:mod:`bayesgmm.selection.sparse`, which drives these kernels. The conjugate pieces (weights,
Normal-Inverse-Wishart draws, allocations) are those of the plain Gibbs sampler,
:mod:`bayesgmm.posterior.gibbs_kernels`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bayesgmm._numba.cache import depend_on
from bayesgmm.posterior import gibbs_kernels
from bayesgmm.posterior.gibbs_kernels import (
    _allocate,
    _component_sums,
    _draw_log_weights,
    _draw_niw,
    _niw_posterior,
)

_TARGET_ACCEPT = 0.44  # optimal for a one-dimensional random-walk Metropolis step


@njit(cache=True)
def _log_e0_target(log_e0, counts, n_total, a_e, b_e) -> float:
    """``log p(log e0 | z)`` up to a constant: Gamma prior, Jacobian, weights integrated out."""
    e0 = math.exp(log_e0)
    k_max = counts.shape[0]
    value = a_e * log_e0 - b_e * e0
    value += math.lgamma(k_max * e0) - math.lgamma(n_total + k_max * e0)
    for k in range(k_max):
        value += math.lgamma(counts[k] + e0) - math.lgamma(e0)
    return value


# ------------------------------------------------------------------------ chain


@njit(cache=True)
def _run_chain(
    x,
    z_init,
    k_max,
    m0,
    kappa0,
    nu0,
    psi0,
    e0_init,
    sample_e0,
    a_e,
    b_e,
    n_burn,
    n_keep,
    thin,
    update_z,
    rng,
):
    """One chain of the blocked Gibbs sampler (module docstring); returns kept draws."""
    n_samples, d = x.shape
    z = z_init.copy()
    log_w = np.empty(k_max)
    means = np.empty((k_max, d))
    covs = np.empty((k_max, d, d))
    chols = np.empty((k_max, d, d))
    out_log_w = np.empty((n_keep, k_max))
    out_means = np.empty((n_keep, k_max, d))
    out_covs = np.empty((n_keep, k_max, d, d))
    out_e0 = np.empty(n_keep)
    out_z = np.empty((n_keep, n_samples), np.int16)
    out_loglik = np.empty(n_keep)
    counts_int = np.zeros(k_max, np.int64)
    log_e0 = math.log(e0_init)
    log_step = math.log(0.5)
    n_accept = 0
    n_prop = 0
    n_iter = n_burn + n_keep * thin
    kept = 0
    for it in range(n_iter):
        counts, xsum, xxsum = _component_sums(x, z, k_max)
        if sample_e0:
            current = _log_e0_target(log_e0, counts, n_samples, a_e, b_e)
            proposal = log_e0 + math.exp(log_step) * rng.standard_normal()
            if proposal > -700.0:
                delta = _log_e0_target(proposal, counts, n_samples, a_e, b_e) - current
            else:
                delta = -np.inf
            accepted = math.log(rng.random() + 1e-300) < delta
            if accepted:
                log_e0 = proposal
            if it < n_burn:
                log_step += ((1.0 if accepted else 0.0) - _TARGET_ACCEPT) / math.sqrt(it + 1.0)
            else:
                n_prop += 1
                n_accept += 1 if accepted else 0
        e0 = math.exp(log_e0)
        _draw_log_weights(counts, np.full(k_max, e0), log_w, rng)
        for k in range(k_max):
            m_n, kappa_n, nu_n, psi_n = _niw_posterior(
                counts[k], xsum[k], xxsum[k], m0, kappa0, nu0, psi0
            )
            _draw_niw(m_n, kappa_n, nu_n, psi_n, means[k], covs[k], chols[k], rng)
        if update_z:
            loglik = _allocate(x, log_w, means, chols, z, counts_int, rng)
        else:
            loglik = np.nan
        if it >= n_burn and (it - n_burn) % thin == thin - 1:
            out_log_w[kept] = log_w
            out_means[kept] = means
            out_covs[kept] = covs
            out_e0[kept] = e0
            for n in range(n_samples):
                out_z[kept, n] = z[n]
            out_loglik[kept] = loglik
            kept += 1
    accept_rate = n_accept / n_prop if n_prop > 0 else np.nan
    return out_log_w, out_means, out_covs, out_e0, out_z, out_loglik, accept_rate


@njit(cache=True)
def _weights_kernel(counts, e0, n_draws, rng):
    out = np.empty((n_draws, counts.shape[0]))
    conc = np.full(counts.shape[0], e0)
    for s in range(n_draws):
        _draw_log_weights(counts, conc, out[s], rng)
    return out


# the kernels inline gibbs_kernels.py's helpers (and those gaussian.py's): recompile them
# when either file changes
depend_on(globals(), gibbs_kernels)
