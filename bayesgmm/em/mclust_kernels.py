"""Compiled maximum-likelihood EM for mclust's fourteen covariance models.

One call of :func:`em_run` runs EM for one model from given responsibilities, entirely in
compiled code: the M-step (weights, means, the weighted scatters ``W_k`` and the model's
constrained covariances) and the E-step (responsibilities and the log-likelihood). The
covariance updates are those of :mod:`bayesgmm.core.covariance.decomposition` (closed forms
for EII, VII, EEI, EVI, VVI, EEE, EEV, EVV, VVV; alternating exact updates for VEI, VEE,
VEV; Jacobi plane rotations of the common orientation for EVE and VVE), written here for
Numba; the iterative ones start from the previous iteration's volumes or orientation, so
an EM iteration costs a few sweeps at most.

Stopping rule (mclust's ``me``): iterate M-step, E-step until the relative change of the
log-likelihood ``|L_t - L_{t-1}| / (1 + |L_t|)`` is at most ``tol``. A run fails (status
:data:`SINGULAR`) when a component's total responsibility falls to ``sqrt(eps)`` or below
or when a covariance is singular by mclust's test: its Cholesky factor on the data's scale
has ``min |U_jj| / (1 + max |U_jj|) <= sqrt(eps)``. Models are numbered as
:data:`MODELS`.
"""

from __future__ import annotations

import numba
import numpy as np

from bayesgmm._numba import gaussian
from bayesgmm._numba.cache import depend_on
from bayesgmm._numba.gaussian import cholesky_lower, inv_lower, log_det_lower
from bayesgmm.core.covariance.base import MCLUST_MODELS

#: mclust's fourteen models, in mclust's order; :func:`em_run` takes the index.
MODELS: tuple[str, ...] = MCLUST_MODELS
#: Status of :func:`em_run`.
CONVERGED, MAX_ITER, SINGULAR = 0, 1, 2

_LOG_2PI = float(np.log(2.0 * np.pi))
_RTEPS = float(np.sqrt(np.finfo(float).eps))
_INNER_TOL = 1e-10
_INNER_MAX = 500
#: ``sweeps`` of :func:`em_run` for exact EVE and VVE M-steps (sweeps to convergence).
EXACT = _INNER_MAX
_ANGLES = 24
_OFFSETS = np.linspace(-1.0, 1.0, _ANGLES, endpoint=False)


@numba.njit(cache=True, error_model="numpy")
def _log_geomean(values):
    total = 0.0
    for v in values:
        if not v > 0.0:
            return -np.inf
        total += np.log(v)
    return total / values.shape[0]


@numba.njit(cache=True, error_model="numpy")
def _eigh_descending(A):
    values, vectors = np.linalg.eigh(A)
    d = A.shape[0]
    out_values = np.empty(d)
    out_vectors = np.empty((d, d))
    for j in range(d):
        out_values[j] = max(values[d - 1 - j], 0.0)
        for i in range(d):
            out_vectors[i, j] = vectors[i, d - 1 - j]
    return out_values, out_vectors


@numba.njit(cache=True, error_model="numpy")
def _alternate_volumes(values, nk, lam, warm):
    """VEI / VEV: volumes ``lam`` (K,) and the shared shape (d,) from per-component
    diagonals or eigenvalues ``values`` (K, d), alternating exact updates."""
    K, d = values.shape
    if not warm:
        for k in range(K):
            lam[k] = values[k].sum() / (d * nk[k])
    shape = np.empty(d)
    pooled = np.empty(d)
    for _ in range(_INNER_MAX):
        for j in range(d):
            pooled[j] = 0.0
            for k in range(K):
                pooled[j] += values[k, j] / lam[k]
        log_g = _log_geomean(pooled)
        if not np.isfinite(log_g):
            return shape, False
        g = np.exp(log_g)
        for j in range(d):
            shape[j] = pooled[j] / g
        done = True
        for k in range(K):
            new = 0.0
            for j in range(d):
                new += values[k, j] / shape[j]
            new /= d * nk[k]
            if abs(new - lam[k]) > _INNER_TOL * abs(new):
                done = False
            lam[k] = new
        if done:
            break
    return shape, True


@numba.njit(cache=True, error_model="numpy")
def _orientation_criterion(M, nk, equal_volume, i, j, theta, logs_rest):
    """EVE (``sum_k g_k``) or VVE (``sum_k n_k sum_j log a_kj``) after rotating columns
    ``i``, ``j`` of the orientation by ``theta``, with its first and second derivatives in
    ``theta`` (``inf`` when a variance would not be positive)."""
    K = M.shape[0]
    d = M.shape[1]
    c2, s2 = np.cos(2.0 * theta), np.sin(2.0 * theta)
    value, first, second = 0.0, 0.0, 0.0
    for k in range(K):
        p, q, m = M[k, i, i], M[k, j, j], M[k, i, j]
        ai = 0.5 * (p + q) + 0.5 * (p - q) * c2 + m * s2
        aj = p + q - ai
        if not (ai > 0.0 and aj > 0.0):
            return np.inf, 0.0, 0.0
        da = -(p - q) * s2 + 2.0 * m * c2  # d ai / d theta = -d aj / d theta
        dda = -2.0 * (p - q) * c2 - 4.0 * m * s2
        u = da * (1.0 / ai - 1.0 / aj)
        du = dda * (1.0 / ai - 1.0 / aj) - da * da * (1.0 / (ai * ai) + 1.0 / (aj * aj))
        if equal_volume:
            g = np.exp((logs_rest[k] + np.log(ai) + np.log(aj)) / d)
            value += g
            first += g * u / d
            second += g * (u / d) ** 2 + g * du / d
        else:
            value += nk[k] * (logs_rest[k] + np.log(ai) + np.log(aj))
            first += nk[k] * u
            second += nk[k] * du
    return value, first, second


@numba.njit(cache=True, error_model="numpy")
def _best_angle(M, nk, equal_volume, i, j, logs_rest, search):
    """The rotation of columns ``i``, ``j`` that lowers the criterion: nested grids over a
    quarter turn (when ``search``; the criterion has period ``pi / 2``), then safeguarded
    Newton steps. Returns ``(angle, criterion at 0, criterion at the angle)``."""
    current = _orientation_criterion(M, nk, equal_volume, i, j, 0.0, logs_rest)[0]
    theta, value = 0.0, current
    if search:
        centre, half = 0.0, np.pi / 4.0
        for _level in range(4):
            level_best, level_value = centre, np.inf
            for offset in _OFFSETS:
                angle = centre + half * offset
                trial = _orientation_criterion(M, nk, equal_volume, i, j, angle, logs_rest)[0]
                if trial < level_value:
                    level_best, level_value = angle, trial
            if level_value < value:
                theta, value = level_best, level_value
            centre, half = level_best, 2.0 * half / _ANGLES
    for _ in range(30):
        f, g, h = _orientation_criterion(M, nk, equal_volume, i, j, theta, logs_rest)
        if not np.isfinite(f) or g == 0.0:
            break
        step = -g / h if h > 0.0 else -np.sign(g) * 1e-2
        step = min(max(step, -0.2), 0.2)
        moved = False
        for _halving in range(40):
            trial = _orientation_criterion(M, nk, equal_volume, i, j, theta + step, logs_rest)[0]
            if trial < f:
                theta, value, moved = theta + step, trial, True
                break
            step *= 0.5
        if not moved or abs(step) < 1e-12:
            break
    return theta, current, value


@numba.njit(cache=True, error_model="numpy")
def _rotate_all(W, D, M):
    for k in range(W.shape[0]):
        M[k] = D.T @ W[k] @ D


@numba.njit(cache=True, error_model="numpy")
def _rotate_pair(D, M, i, j, c, s):
    """Rotate columns ``i``, ``j`` of ``D`` by ``R`` (cosine ``c``, sine ``s``) and update
    every ``M_k = D^T W_k D`` to ``R^T M_k R`` in place."""
    d = D.shape[0]
    for r in range(d):
        di, dj = D[r, i], D[r, j]
        D[r, i] = c * di + s * dj
        D[r, j] = -s * di + c * dj
    for k in range(M.shape[0]):
        for r in range(d):
            mi, mj = M[k, r, i], M[k, r, j]
            M[k, r, i] = c * mi + s * mj
            M[k, r, j] = -s * mi + c * mj
        for r in range(d):
            mi, mj = M[k, i, r], M[k, j, r]
            M[k, i, r] = c * mi + s * mj
            M[k, j, r] = -s * mi + c * mj


@numba.njit(cache=True, error_model="numpy")
def _common_orientation(W, nk, D, warm, sweeps, equal_volume, covs):
    """EVE / VVE: one orientation ``D`` (updated in place) by Jacobi sweeps of plane
    rotations (see :mod:`bayesgmm.core.covariance.decomposition`). A cold start searches
    each angle on grids first and sweeps to convergence; a warm one (``D`` from the
    previous M-step) takes at most ``sweeps`` sweeps of Newton steps, each raising the
    objective: a
    generalised EM step, whose fixed points are the same (the run ends when the
    log-likelihood stops moving, after which a sweep changes ``D`` no more)."""
    K, d, _ = W.shape
    if not warm:
        total = np.zeros((d, d))
        for k in range(K):
            total += W[k]
        _, vectors = _eigh_descending(total)
        D[:, :] = vectors
    M = np.empty((K, d, d))
    _rotate_all(W, D, M)
    logs_rest = np.empty(K)
    for sweep in range(_INNER_MAX):
        improved = 0.0
        reference = 0.0
        for i in range(d - 1):
            for j in range(i + 1, d):
                for k in range(K):
                    rest = 0.0
                    for m in range(d):
                        if m != i and m != j:
                            if not M[k, m, m] > 0.0:
                                return False
                            rest += np.log(M[k, m, m])
                    logs_rest[k] = rest
                theta, current, value = _best_angle(
                    M, nk, equal_volume, i, j, logs_rest, not warm and sweep == 0
                )
                if not np.isfinite(current):
                    return False
                reference = abs(current)
                if theta != 0.0 and value < current:
                    improved += current - value
                    _rotate_pair(D, M, i, j, np.cos(theta), np.sin(theta))
        if (warm and sweep + 1 >= sweeps) or not improved > _INNER_TOL * max(reference, 1e-300):
            break  # warm: at most ``sweeps`` sweeps per M-step (a generalised EM step)
    a = np.empty(d)
    lam = 0.0
    if equal_volume:
        total_n = nk.sum()
        for k in range(K):
            for m in range(d):
                a[m] = M[k, m, m]
            lam += np.exp(_log_geomean(a))
        lam /= total_n
    for k in range(K):
        for m in range(d):
            a[m] = M[k, m, m]
        if equal_volume:
            g = np.exp(_log_geomean(a))
            for m in range(d):
                a[m] = lam * a[m] / g
        else:
            for m in range(d):
                a[m] = a[m] / nk[k]
        for r in range(d):
            for q in range(d):
                value = 0.0
                for m in range(d):
                    value += D[r, m] * a[m] * D[q, m]
                covs[k, r, q] = value
    return True


@numba.njit(cache=True, error_model="numpy")
def _set_diagonal(covs, k, diagonal):
    d = covs.shape[1]
    for a in range(d):
        for b in range(d):
            covs[k, a, b] = 0.0
        covs[k, a, a] = diagonal[a]


@numba.njit(cache=True, error_model="numpy")
def _from_eigen(covs, k, vectors, diagonal):
    d = covs.shape[1]
    for r in range(d):
        for q in range(d):
            value = 0.0
            for m in range(d):
                value += vectors[r, m] * diagonal[m] * vectors[q, m]
            covs[k, r, q] = value


@numba.njit(cache=True, error_model="numpy")
def covariances(model, W, nk, covs, lam, D, warm, sweeps):
    """The model's constrained covariances (K, d, d) from scatters ``W`` and counts ``nk``.

    ``lam`` (K,) and ``D`` (d, d) carry the volumes (VEI, VEE, VEV) and the orientation
    (EVE, VVE) from one call to the next when ``warm``; a warm EVE or VVE update takes at
    most ``sweeps`` sweeps of the orientation. Returns ``False`` when the update is
    undefined (a zero variance or determinant).
    """
    K, d, _ = W.shape
    total_n = nk.sum()
    diag = np.empty((K, d))
    for k in range(K):
        for j in range(d):
            diag[k, j] = W[k, j, j]
    row = np.empty(d)
    if model == 0 or model == 1:  # EII, VII
        pooled = 0.0
        for k in range(K):
            pooled += diag[k].sum()
        for k in range(K):
            value = pooled / (d * total_n) if model == 0 else diag[k].sum() / (d * nk[k])
            row[:] = value
            _set_diagonal(covs, k, row)
    elif model == 2:  # EEI
        for j in range(d):
            row[j] = diag[:, j].sum() / total_n
        for k in range(K):
            _set_diagonal(covs, k, row)
    elif model == 3:  # VEI
        shape, ok = _alternate_volumes(diag, nk, lam, warm)
        if not ok:
            return False
        for k in range(K):
            _set_diagonal(covs, k, lam[k] * shape)
    elif model == 4:  # EVI
        g = np.empty(K)
        for k in range(K):
            g[k] = np.exp(_log_geomean(diag[k]))
            if not g[k] > 0.0:
                return False
        volume = g.sum() / total_n
        for k in range(K):
            _set_diagonal(covs, k, volume * diag[k] / g[k])
    elif model == 5:  # VVI
        for k in range(K):
            _set_diagonal(covs, k, diag[k] / nk[k])
    elif model == 6:  # EEE
        pooled = np.zeros((d, d))
        for k in range(K):
            pooled += W[k]
        for k in range(K):
            covs[k] = pooled / total_n
    elif model == 7:  # VEE
        if not warm:
            for k in range(K):
                lam[k] = diag[k].sum() / (d * nk[k])
        L = np.empty((d, d))
        shape = np.eye(d)
        for _ in range(_INNER_MAX):
            pooled = np.zeros((d, d))
            for k in range(K):
                pooled += W[k] / lam[k]
            if not cholesky_lower(pooled, L, 0.0):
                return False
            log_det = 2.0 * log_det_lower(L)
            shape = pooled / np.exp(log_det / d)
            inverse = np.linalg.inv(shape)
            done = True
            for k in range(K):
                new = 0.0
                for a in range(d):
                    for b in range(d):
                        new += inverse[a, b] * W[k, b, a]
                new /= d * nk[k]
                if abs(new - lam[k]) > _INNER_TOL * abs(new):
                    done = False
                lam[k] = new
            if done:
                break
        for k in range(K):
            covs[k] = lam[k] * shape
    elif model == 8 or model == 9:  # EVE, VVE
        if not _common_orientation(W, nk, D, warm, sweeps, model == 8, covs):
            return False
    elif model == 10 or model == 11:  # EEV, VEV
        values = np.empty((K, d))
        vectors = np.empty((K, d, d))
        for k in range(K):
            values[k], vectors[k] = _eigh_descending(W[k])
        if model == 10:
            for j in range(d):
                row[j] = values[:, j].sum()
            if not np.isfinite(_log_geomean(row)):
                return False
            for k in range(K):  # lambda A = (g / N) (pooled / g)
                _from_eigen(covs, k, vectors[k], row / total_n)
        else:
            shape, ok = _alternate_volumes(values, nk, lam, warm)
            if not ok:
                return False
            for k in range(K):
                _from_eigen(covs, k, vectors[k], lam[k] * shape)
    elif model == 12:  # EVV
        L = np.empty((d, d))
        g = np.empty(K)
        for k in range(K):
            if not cholesky_lower(W[k], L, 0.0):
                return False
            g[k] = np.exp(2.0 * log_det_lower(L) / d)
        volume = g.sum() / total_n
        for k in range(K):
            covs[k] = volume * W[k] / g[k]
    else:  # VVV
        for k in range(K):
            covs[k] = W[k] / nk[k]
    return True


@numba.njit(cache=True, error_model="numpy")
def _factorise(covs, chol, log_det, scale):
    """Cholesky factors and log-determinants; ``False`` when mclust would call it singular."""
    K, d, _ = covs.shape
    for k in range(K):
        if not cholesky_lower(covs[k], chol[k], 0.0):
            return False
        smallest, largest, total = np.inf, 0.0, 0.0
        for j in range(d):
            u = chol[k, j, j] * scale
            smallest = min(smallest, u)
            largest = max(largest, u)
            total += 2.0 * np.log(chol[k, j, j])
        if smallest / (1.0 + largest) <= _RTEPS:
            return False
        log_det[k] = total
    return True


@numba.njit(cache=True, error_model="numpy")
def e_step(X, weights, means, chol, log_det, resp):
    """Responsibilities (in ``resp``) and the log-likelihood of the data."""
    n, d = X.shape
    K = means.shape[0]
    y = np.empty(d)
    lp = np.empty(K)
    log_w = np.log(weights)
    total = 0.0
    for i in range(n):
        peak = -np.inf
        for k in range(K):
            q = 0.0
            for a in range(d):
                s = X[i, a] - means[k, a]
                for b in range(a):
                    s -= chol[k, a, b] * y[b]
                y[a] = s / chol[k, a, a]
                q += y[a] * y[a]
            lp[k] = log_w[k] - 0.5 * (d * _LOG_2PI + log_det[k] + q)
            peak = max(peak, lp[k])
        s = 0.0
        for k in range(K):
            lp[k] = np.exp(lp[k] - peak)
            s += lp[k]
        for k in range(K):
            resp[i, k] = lp[k] / s
        total += peak + np.log(s)
    return total


@numba.njit(cache=True, error_model="numpy")
def _e_step_moments(X, const, means, inv, resp, nk, sums, squares):
    """E-step (``const_k = log w_k - (d log 2 pi + log det Sigma_k) / 2``, ``inv`` the
    inverse Cholesky factors) that also accumulates the next M-step's soft counts ``nk``,
    weighted sums ``sums`` and (lower triangles of) weighted squares ``squares``; returns
    the log-likelihood."""
    n, d = X.shape
    K = means.shape[0]
    diff = np.empty(d)
    lp = np.empty(K)
    nk[:] = 0.0
    sums[:, :] = 0.0
    squares[:, :, :] = 0.0
    total = 0.0
    for i in range(n):
        peak = -np.inf
        for k in range(K):
            for a in range(d):
                diff[a] = X[i, a] - means[k, a]
            q = 0.0
            for a in range(d):
                y = 0.0
                for b in range(a + 1):
                    y += inv[k, a, b] * diff[b]
                q += y * y
            lp[k] = const[k] - 0.5 * q
            if lp[k] > peak:
                peak = lp[k]
        s = 0.0
        for k in range(K):
            lp[k] = np.exp(lp[k] - peak)
            s += lp[k]
        scale = 1.0 / s
        for k in range(K):
            r = lp[k] * scale
            resp[i, k] = r
            nk[k] += r
            for a in range(d):
                ra = r * X[i, a]
                sums[k, a] += ra
                for b in range(a + 1):
                    squares[k, a, b] += ra * X[i, b]
        total += peak + np.log(s)
    return total


@numba.njit(cache=True, error_model="numpy")
def _first_moments(X, resp, nk, sums, squares):
    n, d = X.shape
    K = resp.shape[1]
    nk[:] = 0.0
    sums[:, :] = 0.0
    squares[:, :, :] = 0.0
    for i in range(n):
        for k in range(K):
            r = resp[i, k]
            nk[k] += r
            for a in range(d):
                ra = r * X[i, a]
                sums[k, a] += ra
                for b in range(a + 1):
                    squares[k, a, b] += ra * X[i, b]


#: :func:`_scatter_from_moments` falls back to two passes when ``W_jj`` keeps less than
#: this share of the weighted square it came from (cancellation past ~7 digits).
_CANCELLATION = 1e-9


@numba.njit(cache=True, error_model="numpy")
def _scatter_from_moments(nk, sums, squares, means, W):
    """Means and scatters ``W_k = sum r x x^T - n_k mu_k mu_k^T`` from the moments; returns
    0 when done, 1 when a count is <= sqrt(eps) (mclust's test), 2 when cancellation
    makes the moment form inexact (the caller then takes two passes)."""
    K, d = sums.shape
    for k in range(K):
        if not nk[k] > _RTEPS:
            return 1
        for a in range(d):
            means[k, a] = sums[k, a] / nk[k]
    for k in range(K):
        for a in range(d):
            for b in range(a + 1):
                value = squares[k, a, b] - nk[k] * means[k, a] * means[k, b]
                W[k, a, b] = value
                W[k, b, a] = value
            if not W[k, a, a] > _CANCELLATION * squares[k, a, a]:
                return 2
    return 0


@numba.njit(cache=True, error_model="numpy")
def _scatter(X, resp, nk, sums, means, W):
    """Means from the sums, then the scatters of the centred rows; ``False`` when a soft
    count is <= sqrt(eps) (mclust's test)."""
    n, d = X.shape
    K = resp.shape[1]
    for k in range(K):
        if not nk[k] > _RTEPS:
            return False
        for a in range(d):
            means[k, a] = sums[k, a] / nk[k]
    W[:, :, :] = 0.0
    diff = np.empty(d)
    for i in range(n):
        for k in range(K):
            r = resp[i, k]
            if r == 0.0:
                continue
            for a in range(d):
                diff[a] = X[i, a] - means[k, a]
            for a in range(d):
                ra = r * diff[a]
                for b in range(a + 1):
                    W[k, a, b] += ra * diff[b]
    for k in range(K):
        for a in range(d):
            for b in range(a):
                W[k, b, a] = W[k, a, b]
    return True


@numba.njit(cache=True, error_model="numpy")
def em_run(model, X, resp, weights, means, covs, lam, D, warm, max_iter, tol, scale, sweeps):
    """EM for ``model`` (an index of :data:`MODELS`) from responsibilities ``resp``.

    Parameters
    ----------
    model : int
    X : ndarray of shape (n, d)
    resp : ndarray of shape (n, K)
        The start; holds the final responsibilities on return.
    weights, means, covs : ndarray of shape (K,), (K, d), (K, d, d)
        Filled with the fitted parameters.
    lam, D : ndarray of shape (K,), (d, d)
        Volumes and orientation carried between M-steps (see :func:`covariances`).
    warm : bool
        Whether ``lam`` and ``D`` already hold a previous run's values.
    max_iter : int
    tol : float
        mclust's relative tolerance on the log-likelihood.
    scale : float
        The data's scale (the working data are the original divided by it), for mclust's
        singularity test on the original scale.
    sweeps : int
        EVE, VVE: Jacobi sweeps of the orientation per warm M-step at most (1: a
        generalised EM step; :data:`EXACT`: to convergence).

    Returns
    -------
    (float, int, int)
        Log-likelihood of the working data at the returned parameters, iterations, status
        (:data:`CONVERGED`, :data:`MAX_ITER` or :data:`SINGULAR`).
    """
    n, d = X.shape
    K = resp.shape[1]
    nk = np.empty(K)
    sums = np.empty((K, d))
    squares = np.empty((K, d, d))
    W = np.empty((K, d, d))
    chol = np.zeros((K, d, d))
    inv = np.zeros((K, d, d))
    log_det = np.empty(K)
    const = np.empty(K)
    old = np.inf
    loglik = np.nan
    _first_moments(X, resp, nk, sums, squares)
    for it in range(1, max_iter + 1):
        state = _scatter_from_moments(nk, sums, squares, means, W)
        if state == 1 or (state == 2 and not _scatter(X, resp, nk, sums, means, W)):
            return np.nan, it, SINGULAR
        if not covariances(model, W, nk, covs, lam, D, warm, sweeps):
            return np.nan, it, SINGULAR
        warm = True
        if not _factorise(covs, chol, log_det, scale):
            return np.nan, it, SINGULAR
        for k in range(K):
            inv_lower(chol[k], inv[k])
        for k in range(K):
            weights[k] = nk[k] / n
            const[k] = np.log(weights[k]) - 0.5 * (d * _LOG_2PI + log_det[k])
        loglik = _e_step_moments(X, const, means, inv, resp, nk, sums, squares)
        if not np.isfinite(loglik):
            return np.nan, it, SINGULAR
        if abs(old - loglik) / (1.0 + abs(loglik)) <= tol:
            return loglik, it, CONVERGED
        old = loglik
    return loglik, max_iter, MAX_ITER


@numba.njit(cache=True, error_model="numpy")
def responsibilities_from(model, X_part, resp_part, X, resp, scale):
    """One M-step on part of the data (``X_part``, ``resp_part``), then the E-step on all of
    it into ``resp``: mclust's start when the agglomeration ran on a subset. Returns
    ``False`` when the M-step is singular."""
    K = resp_part.shape[1]
    d = X.shape[1]
    nk = np.empty(K)
    means = np.empty((K, d))
    W = np.empty((K, d, d))
    covs = np.empty((K, d, d))
    chol = np.zeros((K, d, d))
    log_det = np.empty(K)
    sums = np.empty((K, d))
    _first_moments(X_part, resp_part, nk, sums, np.empty((K, d, d)))
    if not _scatter(X_part, resp_part, nk, sums, means, W):
        return False
    if not covariances(model, W, nk, covs, np.ones(K), np.eye(d), False, _INNER_MAX):
        return False
    if not _factorise(covs, chol, log_det, scale):
        return False
    weights = nk / X_part.shape[0]
    return np.isfinite(e_step(X, weights, means, chol, log_det, resp))


depend_on(globals(), gaussian)

__all__ = [
    "CONVERGED",
    "EXACT",
    "MAX_ITER",
    "MODELS",
    "SINGULAR",
    "covariances",
    "e_step",
    "em_run",
    "responsibilities_from",
]
