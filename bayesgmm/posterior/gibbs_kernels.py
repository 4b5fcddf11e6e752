"""Numba kernels of the conjugate (blocked) Gibbs sampler of a full-covariance mixture.

The model is the package's own (:mod:`bayesgmm.core.priors`):
``w ~ Dirichlet(a)``, ``Sigma_k ~ InvWishart(nu0, Psi0)``,
``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)``, ``x_n | z_n = k ~ N(mu_k, Sigma_k)``. One
sweep of :func:`_run_gibbs_chain` draws, given the allocations ``z``, the weights from
``Dirichlet(a + N)`` and each component's ``(mu_k, Sigma_k)`` from its Normal-Inverse-Wishart
posterior (:func:`_niw_posterior`, :func:`_draw_niw`), then every ``z_n`` from its
responsibilities (:func:`_allocate`), which also gives ``log p(X | w, mu, Sigma)`` at the
parameters drawn. Both blocks are exact conditionals, so the chain leaves the posterior of
``(w, mu, Sigma, z)`` invariant; its ``(w, mu, Sigma)`` marginal is the posterior NUTS
samples with the labels summed out.

The pieces are shared with the sparse-mixture sampler (:mod:`bayesgmm.selection.sparse_kernels`,
which adds a Metropolis step on a common Dirichlet parameter ``e0``).
"""

from __future__ import annotations

import math

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
def _draw_log_weights(counts: np.ndarray, conc: np.ndarray, out: np.ndarray, rng) -> None:
    """``log w`` with ``w ~ Dirichlet(conc + counts)`` (both (K,)), normalised by a
    log-sum-exp."""
    k_max = counts.shape[0]
    top = -np.inf
    for k in range(k_max):
        out[k] = _log_gamma_variate(conc[k] + counts[k], rng)
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
def _draw_wishart_scale(chols, nu0, scale_dof, scale_rate, psi_out, rng) -> None:
    """The hierarchical prior's scale given the covariances, in place (``psi_out`` (d, d)):
    ``Psi ~ Wishart(nu_g + K nu0, (G0 + sum_k Sigma_k^-1)^-1)``.

    ``chols`` (K, d, d) are the lower Cholesky factors of the ``Sigma_k``, ``scale_rate``
    is ``G0``. Bartlett: with ``S = M M^T`` and ``A`` lower triangular, ``A_ii^2 ~
    chi2(dof - i)``, ``A_ij ~ N(0, 1)`` below the diagonal, ``M A A^T M^T ~ Wishart(dof, S)``.
    """
    k_max, d = chols.shape[0], chols.shape[1]
    rate = scale_rate.copy()
    for k in range(k_max):
        inv = _inv_lower(chols[k])  # Sigma_k^-1 = inv^T inv
        rate += inv.T @ inv
    for i in range(d):
        for j in range(i):
            sym = 0.5 * (rate[i, j] + rate[j, i])
            rate[i, j] = sym
            rate[j, i] = sym
    rate_inv_chol = _inv_lower(_cholesky(rate))  # rate^-1 = R^-T R^-1
    low = _cholesky(rate_inv_chol.T @ rate_inv_chol)
    dof = scale_dof + k_max * nu0
    a = np.zeros((d, d))
    for i in range(d):
        a[i, i] = math.sqrt(rng.chisquare(dof - i))
        for j in range(i):
            a[i, j] = rng.standard_normal()
    b = low @ a
    psi = b @ b.T
    for i in range(d):
        for j in range(d):
            psi_out[i, j] = 0.5 * (psi[i, j] + psi[j, i])


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


@njit(cache=True)
def _run_gibbs_chain(x, z_init, conc, m0, kappa0, nu0, psi0, n_burn, n_keep, rng):
    """One chain of the conjugate Gibbs sampler (module docstring).

    Parameters
    ----------
    x : ndarray of shape (n_samples, d)
    z_init : ndarray of shape (n_samples,), int
        The first allocations (components ``0 .. K - 1``).
    conc : ndarray of shape (K,)
        Dirichlet concentrations.
    m0, kappa0, nu0, psi0
        The Normal-Inverse-Wishart prior (``m0`` (d,), ``psi0`` (d, d)).
    n_burn, n_keep : int
        Sweeps discarded, then kept.
    rng : numpy.random.Generator

    Returns
    -------
    log_w : ndarray of shape (n_keep, K)
    means : ndarray of shape (n_keep, K, d)
    covs : ndarray of shape (n_keep, K, d, d)
    loglik : ndarray of shape (n_keep,)
        ``log p(X | w, mu, Sigma)`` (labels summed out) at each kept draw.
    counts : ndarray of shape (n_keep, K)
        ``N_k`` of the allocations each kept draw was drawn from.
    """
    out = _gibbs_sweeps(
        x, z_init, conc, m0, kappa0, nu0, psi0, False, 0.0, psi0, n_burn, n_keep, rng
    )
    return out[0], out[1], out[2], out[3], out[4]


@njit(cache=True)
def _gibbs_sweeps(
    x, z_init, conc, m0, kappa0, nu0, psi0, learn_scale, scale_dof, scale_rate, n_burn, n_keep, rng
):
    """The sweeps of :func:`_run_gibbs_chain`; with ``learn_scale`` the Inverse-Wishart
    scale ``Psi`` (starting at ``psi0``) is drawn after the components in every sweep
    (:func:`_draw_wishart_scale`, hyper-parameters ``scale_dof`` ``nu_g`` and
    ``scale_rate`` ``G0``) and returned as a sixth output (n_keep, d, d), the ``Psi`` the
    kept draw's allocations were drawn with."""
    d = x.shape[1]
    k_max = conc.shape[0]
    z = z_init.copy()
    psi = psi0.copy()
    log_w = np.empty(k_max)
    means = np.empty((k_max, d))
    covs = np.empty((k_max, d, d))
    chols = np.empty((k_max, d, d))
    out_log_w = np.empty((n_keep, k_max))
    out_means = np.empty((n_keep, k_max, d))
    out_covs = np.empty((n_keep, k_max, d, d))
    out_loglik = np.empty(n_keep)
    out_counts = np.empty((n_keep, k_max))
    out_psi = np.empty((n_keep, d, d))
    counts_int = np.zeros(k_max, np.int64)
    for it in range(n_burn + n_keep):
        counts, xsum, xxsum = _component_sums(x, z, k_max)
        _draw_log_weights(counts, conc, log_w, rng)
        for k in range(k_max):
            m_n, kappa_n, nu_n, psi_n = _niw_posterior(
                counts[k], xsum[k], xxsum[k], m0, kappa0, nu0, psi
            )
            _draw_niw(m_n, kappa_n, nu_n, psi_n, means[k], covs[k], chols[k], rng)
        if learn_scale:
            _draw_wishart_scale(chols, nu0, scale_dof, scale_rate, psi, rng)
        loglik = _allocate(x, log_w, means, chols, z, counts_int, rng)
        if it >= n_burn:
            kept = it - n_burn
            out_log_w[kept] = log_w
            out_means[kept] = means
            out_covs[kept] = covs
            out_loglik[kept] = loglik
            out_counts[kept] = counts
            out_psi[kept] = psi
    return out_log_w, out_means, out_covs, out_loglik, out_counts, out_psi


def gibbs_chain(
    x: np.ndarray,
    z_init: np.ndarray,
    concentration: np.ndarray,
    mean_prior: np.ndarray,
    mean_precision: float,
    degrees_of_freedom: float,
    covariance_prior: np.ndarray,
    n_burn: int,
    n_keep: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_run_gibbs_chain` with its arguments made the types it is compiled for
    (:func:`_compiled_arguments`). Returns what the kernel returns."""
    leading = _compiled_arguments(
        x, z_init, concentration, mean_prior, mean_precision, degrees_of_freedom, covariance_prior
    )
    return _run_gibbs_chain(*leading, int(n_burn), int(n_keep), rng)


def _compiled_arguments(
    x, z_init, concentration, mean_prior, mean_precision, degrees_of_freedom, scale
) -> tuple:
    """The chain kernels' leading arguments as the types they are compiled for: writable
    contiguous float64 arrays (a prior's read-only arrays would compile another
    specialisation), int64 labels, Python scalars."""
    return (
        np.array(x, dtype=np.float64, order="C"),
        np.array(z_init, dtype=np.int64),
        np.array(concentration, dtype=np.float64),
        np.array(mean_prior, dtype=np.float64),
        float(mean_precision),
        float(degrees_of_freedom),
        np.array(scale, dtype=np.float64, order="C"),
    )


def hierarchical_gibbs_chain(
    x: np.ndarray,
    z_init: np.ndarray,
    concentration: np.ndarray,
    mean_prior: np.ndarray,
    mean_precision: float,
    degrees_of_freedom: float,
    scale_start: np.ndarray,
    scale_degrees_of_freedom: float,
    scale_rate: np.ndarray,
    n_burn: int,
    n_keep: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One chain under the hierarchical prior (:class:`~bayesgmm.core.priors.HierarchicalPrior`:
    ``Psi ~ Wishart(nu_g, G0^-1)``, learned): :func:`gibbs_chain`'s outputs plus the ``Psi``
    draws (n_keep, d, d); ``Psi`` starts at ``scale_start``."""
    leading = _compiled_arguments(
        x, z_init, concentration, mean_prior, mean_precision, degrees_of_freedom, scale_start
    )
    return _gibbs_sweeps(
        *leading,
        True,
        float(scale_degrees_of_freedom),
        np.array(scale_rate, dtype=np.float64, order="C"),
        int(n_burn),
        int(n_keep),
        rng,
    )


# the kernels inline gaussian.py's helpers: recompile them when that file changes
depend_on(globals(), gaussian)
