"""Numba kernels of the sparse-mixture Gibbs sampler (:mod:`bayesgmm.selection.sparse`).

One chain (:func:`_run_chain`: ``e0``, weights, Normal-Inverse-Wishart component draws
and allocations per sweep, compiled in :func:`_sweeps` and run in short chunks so that an
interrupt is seen between them) and its pieces; the model and the sweep are
described in :mod:`bayesgmm.selection.sparse`, which drives these kernels.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

from bayesgmm._numba import gaussian
from bayesgmm._numba.cache import depend_on
from bayesgmm._numba.gaussian import (
    cholesky_lower,
    exp_shifted,
    gaussian_log_const,
    inv_lower,
    inverse_diagonal,
    log_sum_exp_shift,
    whiten,
)

_TARGET_ACCEPT = 0.44  # optimal for a one-dimensional random-walk Metropolis step

# ------------------------------------------------------------------ linear algebra


@njit(cache=True)
def _cholesky(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a small positive definite matrix (pivots ``<= 0`` become
    ``1e-300``)."""
    low = np.empty_like(a)
    cholesky_lower(a, low, 1e-300)
    return low


@njit(cache=True)
def _inv_lower(low: np.ndarray) -> np.ndarray:
    """Inverse of a lower-triangular matrix (lower triangular)."""
    inv = np.empty_like(low)
    inv_lower(low, inv)
    return inv


# ------------------------------------------------------------- conditional draws


@njit(cache=True)
def _log_gamma_variate(shape: float, rng) -> float:
    """``log G`` with ``G ~ Gamma(shape, 1)``, accurate for tiny shapes.

    For ``shape < 1``, ``G = G' U^(1/shape)`` with ``G' ~ Gamma(shape + 1)``: on the log
    scale this does not underflow when ``shape`` is 0.01 and ``G`` is ``1e-300``.
    """
    if shape >= 1.0:
        return math.log(rng.gamma(shape, 1.0))
    u = rng.random()
    while u == 0.0:
        u = rng.random()
    return math.log(rng.gamma(shape + 1.0, 1.0)) + math.log(u) / shape


@njit(cache=True)
def _draw_log_weights(counts: np.ndarray, e0: float, out: np.ndarray, rng) -> None:
    """``log w`` with ``w ~ Dirichlet(e0 + counts)``, normalised by a log-sum-exp."""
    k_max = counts.shape[0]
    top = -np.inf
    for k in range(k_max):
        out[k] = _log_gamma_variate(e0 + counts[k], rng)
        top = max(top, out[k])
    total = 0.0
    for k in range(k_max):
        total += math.exp(out[k] - top)
    norm = top + math.log(total)
    for k in range(k_max):
        out[k] -= norm


@njit(cache=True)
def _niw_posterior(n, xsum, xxsum, m0, kappa0, nu0, psi0):
    """Normal-Inverse-Wishart posterior ``(m_n, kappa_n, nu_n, Psi_n)`` from sums.

    ``xsum`` is ``sum x_i`` (d,), ``xxsum`` is ``sum x_i x_i^T`` (d, d) over the ``n``
    points of the component.
    """
    d = m0.shape[0]
    kappa_n = kappa0 + n
    nu_n = nu0 + n
    m_n = (kappa0 * m0 + xsum) / kappa_n
    psi_n = psi0.copy()
    if n > 0:
        xbar = xsum / n
        diff = xbar - m0
        shrink = kappa0 * n / kappa_n
        for i in range(d):
            for j in range(d):
                psi_n[i, j] += xxsum[i, j] - n * xbar[i] * xbar[j] + shrink * diff[i] * diff[j]
    return m_n, kappa_n, nu_n, psi_n


@njit(cache=True)
def _draw_niw(m_n, kappa_n, nu_n, psi_n, mean_out, cov_out, chol_out, rng) -> None:
    """``Sigma ~ InvWishart(nu_n, Psi_n)``, ``mu | Sigma ~ N(m_n, Sigma / kappa_n)``.

    Bartlett: with ``Psi_n = L L^T`` and ``A`` lower triangular, ``A_ii^2 ~ chi2(nu_n - i)``
    and ``A_ij ~ N(0, 1)`` below the diagonal, ``W = L^-T A A^T L^-1 ~ Wishart(nu_n,
    Psi_n^-1)``, so ``Sigma = W^-1 = (L A^-T)(L A^-T)^T``.
    """
    d = m_n.shape[0]
    low = _cholesky(psi_n)
    a = np.zeros((d, d))
    for i in range(d):
        a[i, i] = math.sqrt(rng.chisquare(nu_n - i))
        for j in range(i):
            a[i, j] = rng.standard_normal()
    a_inv = _inv_lower(a)
    b = low @ a_inv.T
    cov = b @ b.T
    for i in range(d):
        for j in range(i):
            sym = 0.5 * (cov[i, j] + cov[j, i])
            cov[i, j] = sym
            cov[j, i] = sym
    chol = _cholesky(cov)
    scale = 1.0 / math.sqrt(kappa_n)
    eps = np.empty(d)
    for i in range(d):
        eps[i] = rng.standard_normal()
    for i in range(d):
        s = 0.0
        for j in range(i + 1):
            s += chol[i, j] * eps[j]
        mean_out[i] = m_n[i] + scale * s
    cov_out[:, :] = cov
    chol_out[:, :] = chol


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


@njit(cache=True)
def _allocate(x, log_w, means, chols, z_out, counts, rng) -> float:
    """Draw ``z_n`` from the responsibilities; return the log-likelihood of the draw."""
    n_samples, d = x.shape
    k_max = log_w.shape[0]
    inv_diag = np.empty((k_max, d))
    const = np.empty(k_max)
    for k in range(k_max):
        inverse_diagonal(chols[k], inv_diag[k])
        const[k] = gaussian_log_const(log_w[k], chols[k])
    lp = np.empty(k_max)
    resid = np.empty(d)
    counts[:] = 0
    loglik = 0.0
    for n in range(n_samples):
        for k in range(k_max):
            lp[k] = const[k] - 0.5 * whiten(x[n], means[k], chols[k], inv_diag[k], resid)
        top = log_sum_exp_shift(lp)
        total = exp_shifted(lp, top)
        loglik += top + math.log(total)
        u = rng.random() * total
        acc = 0.0
        chosen = k_max - 1
        for k in range(k_max):
            acc += lp[k]
            if u < acc:
                chosen = k
                break
        z_out[n] = chosen
        counts[chosen] += 1
    return loglik


@njit(cache=True)
def _component_sums(x, z, k_max):
    n_samples, d = x.shape
    xsum = np.zeros((k_max, d))
    xxsum = np.zeros((k_max, d, d))
    counts = np.zeros(k_max)
    for n in range(n_samples):
        k = z[n]
        counts[k] += 1.0
        for i in range(d):
            xsum[k, i] += x[n, i]
            for j in range(d):
                xxsum[k, i, j] += x[n, i] * x[n, j]
    return counts, xsum, xxsum


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
):
    """One chain of the blocked Gibbs sampler (module docstring); returns kept draws.

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
    # log e0, log step of its proposal, accepted and proposed moves after burn-in
    state = np.array([math.log(e0_init), math.log(0.5), 0.0, 0.0])
    settings = (k_max, m0, kappa0, nu0, psi0, sample_e0, a_e, b_e, n_burn, thin, update_z, rng)
    n_iter = n_burn + n_keep * thin
    done, chunk = 0, 8
    while done < n_iter:
        stop = min(n_iter, done + chunk)
        started = time.perf_counter()
        _sweeps(x, z, *settings, state, done, stop, *out)
        seconds = time.perf_counter() - started
        # the next chunk: about CHUNK_SECONDS long, at most 4x the last one
        per_sweep = seconds / (stop - done)
        chunk = max(1, min(4 * chunk, int(CHUNK_SECONDS / max(per_sweep, 1e-9))))
        done = stop
    accept_rate = state[2] / state[3] if state[3] > 0 else np.nan
    return (*out, accept_rate)


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
    state,
    it_start,
    it_stop,
    out_log_w,
    out_means,
    out_covs,
    out_e0,
    out_z,
    out_loglik,
):
    """Sweeps ``it_start`` to ``it_stop - 1`` of a chain (:func:`_run_chain`), in place.

    ``z`` (the allocations) and ``state`` (log e0, the log step of its proposal, accepted
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
        _draw_log_weights(counts, e0, log_w, rng)
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
    state[0] = log_e0
    state[1] = log_step
    state[2] = n_accept
    state[3] = n_prop


@njit(cache=True)
def _weights_kernel(counts, e0, n_draws, rng):
    out = np.empty((n_draws, counts.shape[0]))
    for s in range(n_draws):
        _draw_log_weights(counts, e0, out[s], rng)
    return out


# the kernels inline gaussian.py's helpers: recompile them when that file changes
depend_on(globals(), gaussian)
