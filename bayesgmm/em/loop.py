"""The whole EM loop compiled: E-step, M-step, objective and stopping rule in one call.

For small data (a few hundred rows) a Python EM iteration costs far more than its
arithmetic: building ``MixtureParams``, the M-step's NumPy calls and the kernel's call
overhead take ~0.3 ms where the pass over the data takes ~10 us. Here one Numba call runs
every iteration of one start, so that hundreds of fully converged starts cost what a few
did (:func:`bayesgmm.em.fit.fit_em` uses this for its many-start search).

Each iteration is exactly :func:`bayesgmm.em.fit.run_em`'s: the structure's fused
E-step over row blocks (the same block functions as :mod:`bayesgmm.em.kernels`, summed in
the same order, serially), the centred sufficient statistics, the maximum-likelihood or
MAP M-step of :mod:`bayesgmm.em.steps` / :mod:`bayesgmm.core.covariance`, the precision
Cholesky factors, and the stopping rule of :data:`bayesgmm.em.fit.STOPPING_RULES` on the
per-sample objective. Results equal ``run_em``'s to rounding.

What the Python loop does and this one does not: re-seeding a collapsed component,
and carrying on through a singular covariance or a non-finite objective. The loop then
stops with a status (:data:`COLLAPSED`, :data:`SINGULAR`, :data:`NON_FINITE`) and the
caller reruns that start in Python.

MAP objective: the log prior is computed up to an additive constant (the normalising
constants of the Dirichlet, Inverse-Wishart/Gamma and Normal densities); the stopping
rules use differences only, and the caller adds the constant afterwards
(:func:`log_prior_offset`).

The loop is written once (``_em_template``); each covariance structure has its own
compiled copy (:data:`LOOPS`, keyed like :data:`bayesgmm.em.kernels.KERNELS` by the
structure's ``kernel_layout``) calling that structure's primitives: its serial fused pass
and precision factors (:data:`~bayesgmm.em.kernels.KERNELS`), and below its log
constants, M-step and log prior, the formulas of :mod:`bayesgmm.core.covariance` written
out for Numba.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from bayesgmm._numba.cache import depend_on
from bayesgmm._numba.gaussian import LOG_2PI
from bayesgmm._numba.specialise import specialise
from bayesgmm.em import kernels
from bayesgmm.em.kernels import _EPS, _JIT, KERNELS

#: Status of a compiled EM run: stopped by the rule, or ran ``max_iter`` iterations.
CONVERGED = 0
MAX_ITER = 1
#: A component's soft count fell below the minimum (maximum likelihood: re-seed it).
COLLAPSED = 2
#: An updated covariance is not positive definite.
SINGULAR = 3
#: The objective is not finite.
NON_FINITE = 4

#: Stopping rules the compiled loop knows (codes of :func:`converged`).
RULE_CODES = {"absolute": 0, "aitken": 1}


# ---------------------------------------------------------------------------------------
# Shared pieces.


@numba.njit(**_JIT)
def converged(trace, count, tol, rule):
    """``STOPPING_RULES`` of :mod:`bayesgmm.em.fit` on ``trace[:count]``: 0 absolute, 1 Aitken."""
    if rule == 0:
        return count >= 2 and abs(trace[count - 1] - trace[count - 2]) < tol
    if count < 3:
        return False
    l0, l1, l2 = trace[count - 3], trace[count - 2], trace[count - 1]
    change, before = l2 - l1, l1 - l0
    if abs(change) < 1e-3 * tol:
        return True
    if before == 0.0:
        return abs(change) < tol
    rate = change / before
    if rate < 0.0:
        return abs(change) < tol
    if rate >= 1.0:
        return False
    return abs(change) / (1.0 - rate) < tol


@numba.njit(**_JIT)
def _centre_outer(totals, means, nk, xbar, scatter):
    """``N_k``, ``xbar_k`` and the full ``S_k`` from moments about ``means``
    (:func:`bayesgmm.em.fused.centred_statistics`)."""
    n_components, d = means.shape
    cm = np.empty(d)
    for k in range(n_components):
        nk[k] = totals[k] + _EPS
        for i in range(d):
            cm[i] = totals[n_components + k * d + i] / nk[k]
            xbar[k, i] = means[k, i] + cm[i]
        for i in range(d):
            for j in range(i, d):
                s = totals[n_components * (1 + d) + (k * d + i) * d + j]
                v = s - nk[k] * cm[i] * cm[j]
                scatter[k, i, j] = v
                scatter[k, j, i] = v


@numba.njit(**_JIT)
def _empty_outer(n_components, d):
    return np.empty((n_components, d, d))


@numba.njit(**_JIT)
def _empty_diagonal(n_components, d):
    return np.empty((n_components, d))


@numba.njit(**_JIT)
def _centre_diagonal(totals, means, nk, xbar, scatter):
    """``N_k``, ``xbar_k`` and the diagonal of ``S_k`` from moments about ``means``."""
    n_components, d = means.shape
    for k in range(n_components):
        nk[k] = totals[k] + _EPS
        for i in range(d):
            cm = totals[n_components + k * d + i] / nk[k]
            xbar[k, i] = means[k, i] + cm
            scatter[k, i] = totals[n_components * (1 + d) + k * d + i] - nk[k] * cm * cm


@numba.njit(**_JIT)
def _weights_means(nk, xbar, has_prior, conc, m0, kappa, weights, means):
    """``alpha_k`` and ``mu_k`` of the M-step (:mod:`bayesgmm.em.steps`)."""
    n_components, d = xbar.shape
    total = 0.0
    for k in range(n_components):
        weights[k] = nk[k] + conc[k] - 1.0 if has_prior else nk[k]
        total += weights[k]
    for k in range(n_components):
        weights[k] /= total
        for i in range(d):
            if has_prior:
                means[k, i] = (nk[k] * xbar[k, i] + kappa * m0[i]) / (nk[k] + kappa)
            else:
                means[k, i] = xbar[k, i]


@numba.njit(**_JIT)
def _shift(nk_k, xbar_k, m0, kappa, out):
    """``sqrt(kappa0 N_k / (kappa0 + N_k)) (xbar_k - m0)`` (``covariance._prior_shift``)."""
    c = np.sqrt(kappa * nk_k / (kappa + nk_k))
    for i in range(out.shape[0]):
        out[i] = c * (xbar_k[i] - m0[i])


@numba.njit(**_JIT)
def _quadratic_upper(diff, prec_chol):
    """``|diff^T U|^2`` for an upper-triangular ``U``."""
    d = diff.shape[0]
    q = 0.0
    for j in range(d):
        y = 0.0
        for i in range(j + 1):
            y += diff[i] * prec_chol[i, j]
        q += y * y
    return q


@numba.njit(**_JIT)
def _trace_precision(psi, prec_chol):
    """``tr(Psi U U^T)``."""
    d = psi.shape[0]
    t = 0.0
    for i in range(d):
        for j in range(d):
            p = 0.0
            for q in range(d):
                p += prec_chol[i, q] * prec_chol[j, q]
            t += psi[i, j] * p
    return t


@numba.njit(**_JIT)
def _log_dirichlet_kernel(weights, conc):
    """``sum_k (a_k - 1) log alpha_k`` (the Dirichlet log density without its constant)."""
    s = 0.0
    for k in range(weights.shape[0]):
        if conc[k] != 1.0:
            s += (conc[k] - 1.0) * np.log(weights[k])
    return s


@numba.njit(**_JIT)
def _copy_state(weights, means, covs, prec_chol, new_w, new_m, new_c, new_p):
    weights[:] = new_w
    means[:] = new_m
    covs[:] = new_c
    prec_chol[:] = new_p


# ---------------------------------------------------------------------------------------
# Per structure: log constants, M-step and log prior (the fused pass and the precision
# factors are :data:`bayesgmm.em.kernels.KERNELS`').


@numba.njit(**_JIT)
def _log_const_full(weights, prec_chol, d):
    out = np.empty(weights.shape[0])
    for k in range(weights.shape[0]):
        s = 0.0
        for i in range(d):
            s += np.log(prec_chol[k, i, i])
        out[k] = np.log(weights[k]) + s - 0.5 * d * LOG_2PI
    return out


@numba.njit(**_JIT)
def _log_const_tied(weights, prec_chol, d):
    s = 0.0
    for i in range(d):
        s += np.log(prec_chol[i, i])
    out = np.empty(weights.shape[0])
    for k in range(weights.shape[0]):
        out[k] = np.log(weights[k]) + s - 0.5 * d * LOG_2PI
    return out


@numba.njit(**_JIT)
def _log_const_diag(weights, prec_chol, d):
    out = np.empty(weights.shape[0])
    for k in range(weights.shape[0]):
        s = 0.0
        for i in range(d):
            s += np.log(prec_chol[k, i])
        out[k] = np.log(weights[k]) + s - 0.5 * d * LOG_2PI
    return out


@numba.njit(**_JIT)
def _log_const_spherical(weights, prec_chol, d):
    out = np.empty(weights.shape[0])
    for k in range(weights.shape[0]):
        out[k] = np.log(weights[k]) + d * np.log(prec_chol[k]) - 0.5 * d * LOG_2PI
    return out


@numba.njit(**_JIT)
def _m_step_full(nk, xbar, scatter, has_prior, nu, psi, m0, kappa, reg_covar, covs):
    n_components, d = xbar.shape
    shift = np.empty(d)
    for k in range(n_components):
        if has_prior:
            _shift(nk[k], xbar[k], m0, kappa, shift)
            denom = nu + nk[k] + d + 2.0
            for i in range(d):
                for j in range(d):
                    covs[k, i, j] = (psi[i, j] + scatter[k, i, j] + shift[i] * shift[j]) / denom
        else:
            for i in range(d):
                for j in range(d):
                    covs[k, i, j] = scatter[k, i, j] / nk[k]
        for i in range(d):
            covs[k, i, i] += reg_covar


@numba.njit(**_JIT)
def _m_step_tied(nk, xbar, scatter, has_prior, nu, psi, m0, kappa, reg_covar, covs):
    n_components, d = xbar.shape
    covs[:] = 0.0
    for k in range(n_components):
        for i in range(d):
            for j in range(d):
                covs[i, j] += scatter[k, i, j]
    total = nk.sum()
    if has_prior:
        shift = np.empty(d)
        for k in range(n_components):
            _shift(nk[k], xbar[k], m0, kappa, shift)
            for i in range(d):
                for j in range(d):
                    covs[i, j] += shift[i] * shift[j]
        denom = nu + total + d + 1.0 + n_components
        for i in range(d):
            for j in range(d):
                covs[i, j] = (psi[i, j] + covs[i, j]) / denom
    else:
        for i in range(d):
            for j in range(d):
                covs[i, j] /= total
    for i in range(d):
        covs[i, i] += reg_covar


@numba.njit(**_JIT)
def _m_step_diag(nk, xbar, scatter, has_prior, nu, psi, m0, kappa, reg_covar, covs):
    n_components, d = xbar.shape
    shift = np.empty(d)
    for k in range(n_components):
        if has_prior:
            _shift(nk[k], xbar[k], m0, kappa, shift)
            for i in range(d):
                covs[k, i] = (psi[i] + scatter[k, i] + shift[i] ** 2) / (nu + nk[k] + 3.0)
                covs[k, i] += reg_covar
        else:
            for i in range(d):
                covs[k, i] = scatter[k, i] / nk[k] + reg_covar


@numba.njit(**_JIT)
def _m_step_spherical(nk, xbar, scatter, has_prior, nu, psi, m0, kappa, reg_covar, covs):
    n_components, d = xbar.shape
    shift = np.empty(d)
    for k in range(n_components):
        if has_prior:
            _shift(nk[k], xbar[k], m0, kappa, shift)
            s = psi[0]
            for i in range(d):
                s += scatter[k, i]
            for i in range(d):
                s += shift[i] ** 2
            covs[k] = s / (nu + 2.0 + d + d * nk[k]) + reg_covar
        else:
            s = 0.0
            for i in range(d):
                s += scatter[k, i] / nk[k] + reg_covar
            covs[k] = s / d


@numba.njit(**_JIT)
def log_prior_full(weights, means, prec_chol, conc, nu, psi, m0, kappa):
    """``log p(theta)`` up to a constant: Dirichlet, Inverse-Wishart and Normal terms."""
    n_components, d = means.shape
    s = _log_dirichlet_kernel(weights, conc)
    diff = np.empty(d)
    for k in range(n_components):
        log_det_cov = 0.0
        for i in range(d):
            log_det_cov -= 2.0 * np.log(prec_chol[k, i, i])
            diff[i] = means[k, i] - m0[i]
        s -= 0.5 * (nu + d + 2.0) * log_det_cov + 0.5 * _trace_precision(psi, prec_chol[k])
        s -= 0.5 * kappa * _quadratic_upper(diff, prec_chol[k])
    return s


@numba.njit(**_JIT)
def log_prior_tied(weights, means, prec_chol, conc, nu, psi, m0, kappa):
    """``log p(theta)`` up to a constant (one shared Inverse-Wishart)."""
    n_components, d = means.shape
    s = _log_dirichlet_kernel(weights, conc)
    log_det_cov = 0.0
    for i in range(d):
        log_det_cov -= 2.0 * np.log(prec_chol[i, i])
    s -= 0.5 * (nu + d + 1.0 + n_components) * log_det_cov + 0.5 * _trace_precision(psi, prec_chol)
    diff = np.empty(d)
    for k in range(n_components):
        for i in range(d):
            diff[i] = means[k, i] - m0[i]
        s -= 0.5 * kappa * _quadratic_upper(diff, prec_chol)
    return s


@numba.njit(**_JIT)
def log_prior_diag(weights, means, prec_chol, conc, nu, psi, m0, kappa):
    """``log p(theta)`` up to a constant (Inverse-Gamma variances)."""
    n_components, d = means.shape
    s = _log_dirichlet_kernel(weights, conc)
    for k in range(n_components):
        for i in range(d):
            precision = prec_chol[k, i] * prec_chol[k, i]
            log_var = -2.0 * np.log(prec_chol[k, i])
            diff = means[k, i] - m0[i]
            s -= (0.5 * nu + 1.5) * log_var + 0.5 * (psi[i] + kappa * diff * diff) * precision
    return s


@numba.njit(**_JIT)
def log_prior_spherical(weights, means, prec_chol, conc, nu, psi, m0, kappa):
    """``log p(theta)`` up to a constant (one Inverse-Gamma variance per component)."""
    n_components, d = means.shape
    s = _log_dirichlet_kernel(weights, conc)
    for k in range(n_components):
        precision = prec_chol[k] * prec_chol[k]
        log_var = -2.0 * np.log(prec_chol[k])
        q = 0.0
        for i in range(d):
            q += (means[k, i] - m0[i]) ** 2
        s -= (0.5 * nu + 1.0 + 0.5 * d) * log_var + 0.5 * (psi[0] + kappa * q) * precision
    return s


# ---------------------------------------------------------------------------------------
# The loop, written once: a template whose placeholder names (None here) are bound to one
# structure's primitives by :func:`~bayesgmm._numba.specialise.specialise`. Signature:
# (X, sw, weights, means, covs, prec_chol, trace, tol, max_iter, rule, reg_covar,
#  min_count, has_prior, conc, nu, psi, m0, kappa, block_size) -> (status, n_iter)
# ``weights, means, covs, prec_chol`` hold the start and are overwritten with the
# parameters after the last M-step; ``trace[:n_iter]`` receives the objective per sample
# (the MAP log prior without its constant).

_pass = _log_const = _log_prior = _centre = _empty_scatter = _m_step = _precisions = None


@numba.njit(**_JIT)
def _total_weight(X, sw):
    return sw.sum() if sw.shape[0] > 0 else float(X.shape[0])


def _em_template(
    X, sw, weights, means, covs, prec_chol, trace, tol, max_iter, rule, reg_covar,
    min_count, has_prior, conc, nu, psi, m0, kappa, block_size,
):  # fmt: skip
    """Every EM iteration of one start (signature above)."""
    n_components, d = means.shape
    total = _total_weight(X, sw)
    nk, xbar = np.empty(n_components), np.empty((n_components, d))
    scatter = _empty_scatter(n_components, d)
    new_w, new_m, new_c, new_p = weights.copy(), means.copy(), covs.copy(), prec_chol.copy()
    for it in range(max_iter):
        totals = _pass(X, sw, _log_const(weights, prec_chol, d), means, prec_chol, block_size)
        objective = totals[-1] / total
        if has_prior:
            objective += _log_prior(weights, means, prec_chol, conc, nu, psi, m0, kappa) / total
        if not np.isfinite(objective):
            return NON_FINITE, it
        _centre(totals, means, nk, xbar, scatter)
        if not has_prior and nk.min() < min_count:
            return COLLAPSED, it
        _weights_means(nk, xbar, has_prior, conc, m0, kappa, new_w, new_m)
        _m_step(nk, xbar, scatter, has_prior, nu, psi, m0, kappa, reg_covar, new_c)
        if not _precisions(new_c, new_p):
            return SINGULAR, it
        trace[it] = objective
        _copy_state(weights, means, covs, prec_chol, new_w, new_m, new_c, new_p)
        if converged(trace, it + 1, tol, rule):
            return CONVERGED, it + 1
    return MAX_ITER, max_iter


def _specialise_loop(name: str, log_const, m_step, log_prior):
    """The loop of structure ``name`` (:data:`~bayesgmm.em.kernels.KERNELS`' key)."""
    outer = KERNELS[name].outer
    return specialise(
        _em_template,
        f"_em_{name}",
        globals(),
        _JIT,
        _pass=KERNELS[name].serial_moments,
        _precisions=KERNELS[name].precisions,
        _centre=_centre_outer if outer else _centre_diagonal,
        _empty_scatter=_empty_outer if outer else _empty_diagonal,
        _log_const=log_const,
        _m_step=m_step,
        _log_prior=log_prior,
    )


_em_full = _specialise_loop("full", _log_const_full, _m_step_full, log_prior_full)
_em_tied = _specialise_loop("tied", _log_const_tied, _m_step_tied, log_prior_tied)
_em_diag = _specialise_loop("diag", _log_const_diag, _m_step_diag, log_prior_diag)
_em_spherical = _specialise_loop(
    "spherical", _log_const_spherical, _m_step_spherical, log_prior_spherical
)


class StructureLoop(NamedTuple):
    """The compiled EM loop of one covariance structure.

    Attributes
    ----------
    run : numba dispatcher
        The loop (signature in the comment above ``_em_template``).
    log_prior : numba dispatcher
        ``(weights, means, prec_chol, conc, nu, psi, m0, kappa) -> float``: the log prior
        the loop adds to the objective, without its normalising constants.
    """

    run: object
    log_prior: object


#: ``kernel_layout`` of a structure -> its compiled EM loop.
LOOPS: dict[str, StructureLoop] = {
    "full": StructureLoop(_em_full, log_prior_full),
    "tied": StructureLoop(_em_tied, log_prior_tied),
    "diag": StructureLoop(_em_diag, log_prior_diag),
    "spherical": StructureLoop(_em_spherical, log_prior_spherical),
}

# the loops call em/kernels.py's passes and precision factors (and, through them,
# gaussian.py's): recompile them when either changes
depend_on(globals(), kernels)

__all__ = [
    "COLLAPSED",
    "CONVERGED",
    "LOOPS",
    "MAX_ITER",
    "NON_FINITE",
    "RULE_CODES",
    "SINGULAR",
    "StructureLoop",
]
