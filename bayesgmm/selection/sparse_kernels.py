"""Numba kernels of the sparse-mixture Gibbs sampler (:mod:`bayesgmm.selection.sparse`).

One chain (:func:`_run_chain`: ``e0``, weights, Normal-Inverse-Wishart component draws
and allocations per sweep, compiled in :func:`_sweeps` and run in short chunks so that an
interrupt is seen between them); the model and the sweep are described in
:mod:`bayesgmm.selection.sparse`, which drives these kernels. The conjugate pieces (weights,
Normal-Inverse-Wishart draws, allocations) are those of the plain Gibbs sampler,
:mod:`bayesgmm.posterior.gibbs_kernels`.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

from bayesgmm._numba.cache import depend_on
from bayesgmm.posterior import gibbs_kernels
from bayesgmm.posterior.gibbs_kernels import (
    _allocate,
    _component_sums,
    _draw_log_weights,
    _draw_niw,
    _draw_wishart_scale,
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


#: Seconds of compiled sweeps between two returns to Python (where a Ctrl-C or SIGTERM is
#: raised): :func:`_run_chain` sizes its chunks of sweeps to about this long.
CHUNK_SECONDS = 0.2


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
    scale_dof=0.0,
    scale_rate=None,
):
    """One chain of the blocked Gibbs sampler (module docstring); returns kept draws.

    With ``scale_rate`` (``G0``, (d, d)) the Inverse-Wishart scale is learned (the
    hierarchical prior, :class:`~bayesgmm.core.priors.HierarchicalPrior`: ``Psi ~
    Wishart(scale_dof, G0^-1)``, starting at ``psi0``), drawn after the components in every
    sweep, and its kept draws (n_keep, d, d) are returned last.

    The sweeps run compiled (:func:`_sweeps`) in chunks of about :data:`CHUNK_SECONDS`,
    returning to Python between chunks, so that an interrupt is seen within a fraction
    of a second; the chain's state carries over, so the draws do not depend on the chunks.

    Returns
    -------
    log_w : ndarray of shape (n_keep, k_max)
    means : ndarray of shape (n_keep, k_max, d)
    covs : ndarray of shape (n_keep, k_max, d, d)
    e0 : ndarray of shape (n_keep,)
    z : ndarray of shape (n_keep, n_samples), int16
    loglik : ndarray of shape (n_keep,)
    accept_rate : float
        Acceptance rate of the ``e0`` Metropolis step after burn-in (NaN without it).
    """
    n_samples, d = x.shape
    z = np.array(z_init, dtype=np.int64)
    out = (
        np.empty((n_keep, k_max)),
        np.empty((n_keep, k_max, d)),
        np.empty((n_keep, k_max, d, d)),
        np.empty(n_keep),
        np.empty((n_keep, n_samples), np.int16),
        np.empty(n_keep),
    )
    learn_scale = scale_rate is not None
    rate = np.ascontiguousarray(np.eye(d) if scale_rate is None else scale_rate, dtype=np.float64)
    psi = np.array(psi0, dtype=np.float64, order="C")  # the chain's Psi (updated if learned)
    out_psi = np.empty((n_keep, d, d) if learn_scale else (0, d, d))
    # log e0, log step of its proposal, accepted and proposed moves after burn-in
    state = np.array([math.log(e0_init), math.log(0.5), 0.0, 0.0])
    settings = (k_max, m0, kappa0, nu0, psi, sample_e0, a_e, b_e, n_burn, thin, update_z, rng)
    scale = (learn_scale, float(scale_dof), rate)
    n_iter = n_burn + n_keep * thin
    done, chunk = 0, 8
    while done < n_iter:
        stop = min(n_iter, done + chunk)
        started = time.perf_counter()
        _sweeps(x, z, *settings, *scale, state, done, stop, *out, out_psi)
        seconds = time.perf_counter() - started
        # the next chunk: about CHUNK_SECONDS long, at most 4x the last one
        per_sweep = seconds / (stop - done)
        chunk = max(1, min(4 * chunk, int(CHUNK_SECONDS / max(per_sweep, 1e-9))))
        done = stop
    accept_rate = state[2] / state[3] if state[3] > 0 else np.nan
    return (*out, accept_rate, out_psi) if learn_scale else (*out, accept_rate)


@njit(cache=True)
def _sweeps(
    x,
    z,
    k_max,
    m0,
    kappa0,
    nu0,
    psi0,
    sample_e0,
    a_e,
    b_e,
    n_burn,
    thin,
    update_z,
    rng,
    learn_scale,
    scale_dof,
    scale_rate,
    state,
    it_start,
    it_stop,
    out_log_w,
    out_means,
    out_covs,
    out_e0,
    out_z,
    out_loglik,
    out_psi,
):
    """Sweeps ``it_start`` to ``it_stop - 1`` of a chain (:func:`_run_chain`), in place.

    ``z`` (the allocations), ``psi0`` (the Inverse-Wishart scale, redrawn in every sweep
    when ``learn_scale``) and ``state`` (log e0, the log step of its proposal, accepted
    and proposed moves after burn-in) carry the chain from one call to the next; kept draws
    go into the ``out_*`` arrays at their index.
    """
    n_samples, d = x.shape
    log_w = np.empty(k_max)
    means = np.empty((k_max, d))
    covs = np.empty((k_max, d, d))
    chols = np.empty((k_max, d, d))
    counts_int = np.zeros(k_max, np.int64)
    log_e0 = state[0]
    log_step = state[1]
    n_accept = state[2]
    n_prop = state[3]
    kept = max(0, it_start - n_burn) // thin
    for it in range(it_start, it_stop):
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
                n_prop += 1.0
                n_accept += 1.0 if accepted else 0.0
        e0 = math.exp(log_e0)
        _draw_log_weights(counts, np.full(k_max, e0), log_w, rng)
        for k in range(k_max):
            m_n, kappa_n, nu_n, psi_n = _niw_posterior(
                counts[k], xsum[k], xxsum[k], m0, kappa0, nu0, psi0
            )
            _draw_niw(m_n, kappa_n, nu_n, psi_n, means[k], covs[k], chols[k], rng)
        if learn_scale:
            _draw_wishart_scale(chols, nu0, scale_dof, scale_rate, psi0, rng)
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
            if learn_scale:
                out_psi[kept] = psi0
            kept += 1
    state[0] = log_e0
    state[1] = log_step
    state[2] = n_accept
    state[3] = n_prop


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
