"""Constrained covariance estimates for ``Sigma_k = lambda_k D_k A_k D_k^T`` (pure NumPy).

Every function here maximises, over covariances of one of mclust's models (Banfield &
Raftery 1993; Celeux & Govaert 1995),

    F(Sigma) = -1/2 sum_k [ n_k log det Sigma_k + tr(Sigma_k^{-1} W_k) ],

given symmetric positive semi-definite matrices ``W_k`` (K, d, d) and positive weights
``n_k`` (K,). With ``W_k`` the weighted scatter ``S_k`` and ``n_k`` the soft counts this is
the maximum-likelihood M-step; with ``W_k = Psi0 + S_k + shift_k shift_k^T`` and
``n_k = N_k + nu0 + d + 2`` it is the MAP M-step under an Inverse-Wishart prior on each
component's covariance, restricted to the model (:mod:`bayesgmm.core.covariance.eigen`).

``lambda_k = det(Sigma_k)^(1/d)`` is the volume, ``A_k`` the diagonal shape (det 1, in
decreasing order where an orientation is free) and ``D_k`` the orientation. A letter E
means equal across components, V varying, I the identity. Closed forms: EII, VII, EEI,
VVI, EVI, EEE, EEV, EVV, VVV. Iterative (alternating exact updates, each raising F, to a
relative tolerance :data:`TOLERANCE`): VEI, VEE, VEV (volumes and the shared shape, as
mclust's ``mstepVEI``/``mstepVEV``) and EVE, VVE (a common orientation by Jacobi plane
rotations; see :func:`_common_orientation`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bayesgmm.core.exceptions import SingularCovarianceError

#: Relative change of ``F`` (or of the volumes) that ends an iterative M-step.
TOLERANCE = 1e-10
#: At most this many passes of an iterative M-step.
MAX_ITER = 500

Solver = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _geometric_mean(values: np.ndarray) -> np.ndarray:
    """Geometric mean over the last axis (``det^(1/d)`` of a diagonal)."""
    with np.errstate(divide="ignore"):
        return np.exp(np.mean(np.log(values), axis=-1))


def _root_det(matrices: np.ndarray) -> np.ndarray:
    """``det(M)^(1/d)`` of symmetric positive semi-definite matrices (..., d, d)."""
    sign, logdet = np.linalg.slogdet(matrices)
    return np.where(sign > 0, np.exp(logdet / matrices.shape[-1]), 0.0)


def _checked(covariances: np.ndarray) -> np.ndarray:
    bad = ~np.all(np.isfinite(covariances), axis=(1, 2)) | (_root_det(covariances) <= 0)
    if np.any(bad):
        raise SingularCovarianceError(int(np.argmax(bad)))
    return covariances


def eigh_descending(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (..., d) of symmetric ``W`` (..., d, d) in decreasing order, clipped at 0,
    and their eigenvectors (..., d, d), column ``j`` for value ``j``."""
    values, vectors = np.linalg.eigh(W)
    return np.clip(values[..., ::-1], 0.0, None), vectors[..., ::-1]


def _diagonal_matrices(diagonals: np.ndarray) -> np.ndarray:
    return diagonals[:, :, None] * np.eye(diagonals.shape[1])[None]


def _objective(covariances: np.ndarray, W: np.ndarray, n: np.ndarray) -> float:
    """``F`` of the module docstring."""
    _, logdet = np.linalg.slogdet(covariances)
    trace = np.einsum("kij,kji->k", np.linalg.inv(covariances), W)
    return float(-0.5 * np.sum(n * logdet + trace))


def _converged(old: np.ndarray | float, new: np.ndarray | float) -> bool:
    old, new = np.asarray(old), np.asarray(new)
    return bool(np.all(np.abs(new - old) <= TOLERANCE * np.maximum(np.abs(new), 1e-300)))


# ---- spherical and diagonal families ---------------------------------------------------------
def eii(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda I``: ``lambda = tr(sum_k W_k) / (d sum_k n_k)``."""
    K, d, _ = W.shape
    lam = np.trace(W.sum(axis=0)) / (d * n.sum())
    return _checked(np.broadcast_to(lam * np.eye(d), (K, d, d)).copy())


def vii(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda_k I``: ``lambda_k = tr(W_k) / (d n_k)``."""
    d = W.shape[1]
    lam = np.trace(W, axis1=1, axis2=2) / (d * n)
    return _checked(lam[:, None, None] * np.eye(d)[None])


def eei(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda A``: ``diag(sum_k W_k) / sum_k n_k``."""
    K = W.shape[0]
    diagonal = np.diagonal(W.sum(axis=0)) / n.sum()
    return _checked(_diagonal_matrices(np.broadcast_to(diagonal, (K, W.shape[1])).copy()))


def vvi(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda_k A_k``: ``diag(W_k) / n_k``."""
    return _checked(_diagonal_matrices(np.diagonal(W, axis1=1, axis2=2) / n[:, None]))


def evi(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda A_k``: ``A_k = diag(W_k) / g_k``, ``lambda = sum_k g_k / sum_k n_k``.

    ``g_k = det(diag(W_k))^(1/d)``.
    """
    w = np.diagonal(W, axis1=1, axis2=2)
    g = _geometric_mean(w)
    lam = g.sum() / n.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return _checked(_diagonal_matrices(lam * w / g[:, None]))


def vei(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda_k A``: alternate ``A ∝ sum_k diag(W_k) / lambda_k`` (det 1) and
    ``lambda_k = tr(A^{-1} W_k) / (d n_k)``."""
    w = np.diagonal(W, axis1=1, axis2=2)
    d = w.shape[1]
    lam = w.sum(axis=1) / (d * n)
    for _ in range(MAX_ITER):
        pooled = (w / lam[:, None]).sum(axis=0)
        shape = pooled / _geometric_mean(pooled)
        new = (w / shape).sum(axis=1) / (d * n)
        done = _converged(lam, new)
        lam = new
        if done:
            break
    return _checked(_diagonal_matrices(lam[:, None] * shape[None]))


# ---- common orientation ----------------------------------------------------------------------
def eee(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = Sigma``: ``sum_k W_k / sum_k n_k``."""
    return _checked(np.broadcast_to(W.sum(axis=0) / n.sum(), W.shape).copy())


def vee(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda_k C`` (det C = 1): alternate ``C ∝ sum_k W_k / lambda_k`` and
    ``lambda_k = tr(C^{-1} W_k) / (d n_k)``."""
    d = W.shape[1]
    lam = np.trace(W, axis1=1, axis2=2) / (d * n)
    for _ in range(MAX_ITER):
        pooled = (W / lam[:, None, None]).sum(axis=0)
        shape = pooled / _root_det(pooled)
        new = np.einsum("ij,kji->k", np.linalg.inv(shape), W) / (d * n)
        done = _converged(lam, new)
        lam = new
        if done:
            break
    return _checked(lam[:, None, None] * shape[None])


def _common_orientation(W: np.ndarray, n: np.ndarray, equal_volume: bool) -> np.ndarray:
    """EVE (``equal_volume``) or VVE: ``Sigma_k = D Delta_k D^T`` with one orientation ``D``.

    Given ``D``, ``Delta_k`` is closed form: with ``a_k = diag(D^T W_k D)``, VVE has
    ``Delta_k = a_k / n_k``; EVE has shapes ``a_k / g_k`` (``g_k`` the geometric mean of
    ``a_k``) and ``lambda = sum_k g_k / sum_k n_k``. What is left to minimise over
    orthogonal ``D`` is ``sum_k n_k sum_j log a_kj`` (VVE; Flury's common principal
    components criterion) or ``sum_k g_k`` (EVE). Jacobi sweeps do so: each plane rotation
    of two columns of ``D`` changes two entries of every ``a_k``, and its angle is chosen
    on nested grids (four levels of :data:`_ANGLES` angles, to about ``4e-5`` rad) and kept
    only when it lowers the criterion, so every sweep raises ``F`` (as Browne & McNicholas's
    2014 majorise-minimise steps do, which converge far more slowly). Starts from the
    eigenvectors of ``sum_k W_k`` (the EEE orientation).
    """
    d = W.shape[1]
    _, vectors = eigh_descending(W.sum(axis=0)[None])
    D = vectors[0].copy()

    def criterion(a: np.ndarray) -> np.ndarray:
        if equal_volume:
            return _geometric_mean(a).sum(axis=-1)
        with np.errstate(divide="ignore"):
            return (n * np.log(a).sum(axis=-1)).sum(axis=-1)

    M = np.einsum("ji,kjl,lm->kim", D, W, D)
    value = criterion(np.diagonal(M, axis1=1, axis2=2))
    for _ in range(MAX_ITER):
        start = value
        for i in range(d - 1):
            for j in range(i + 1, d):
                theta = _best_angle(M, i, j, criterion)
                if theta == 0.0:
                    continue
                c, s = np.cos(theta), np.sin(theta)
                rotation = np.eye(d)
                rotation[[i, j, i, j], [i, i, j, j]] = [c, s, -s, c]
                D = D @ rotation
                M = np.einsum("ji,kjl,lm->kim", rotation, M, rotation)
        value = criterion(np.diagonal(M, axis1=1, axis2=2))
        if not start - value > TOLERANCE * max(abs(value), 1e-300):
            break
    a = np.diagonal(M, axis1=1, axis2=2)
    if equal_volume:
        g = _geometric_mean(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = (g.sum() / n.sum()) * a / g[:, None]
    else:
        delta = a / n[:, None]
    return _checked(np.einsum("ij,kj,lj->kil", D, delta, D))


#: Angles per level of :func:`_best_angle`'s nested grids, and the first level's offsets.
_ANGLES = 24
_OFFSETS = np.linspace(-1.0, 1.0, _ANGLES, endpoint=False)


def _best_angle(M: np.ndarray, i: int, j: int, criterion) -> float:
    """The plane rotation of columns ``i``, ``j`` that lowers ``criterion`` most (or 0).

    The criterion of the diagonals is periodic in the angle with period ``pi / 2`` (a
    quarter turn swaps the two columns), so the first grid spans ``[-pi/4, pi/4)``.
    """
    a = np.diagonal(M, axis1=1, axis2=2)
    aii, ajj, aij = M[:, i, i], M[:, j, j], M[:, i, j]
    best, best_value = 0.0, criterion(a)
    centre, half = 0.0, np.pi / 4
    for _ in range(4):
        angles = centre + half * _OFFSETS
        c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
        trial = np.broadcast_to(a, (_ANGLES, *a.shape)).copy()
        trial[:, :, i] = c * c * aii + 2 * c * s * aij + s * s * ajj
        trial[:, :, j] = s * s * aii - 2 * c * s * aij + c * c * ajj
        values = criterion(trial)
        k = int(np.argmin(values))
        if values[k] < best_value:
            best, best_value = float(angles[k]), float(values[k])
        centre, half = float(angles[k]), 2 * half / _ANGLES
    return best


def eve(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda D A_k D^T`` (see :func:`_common_orientation`)."""
    return _common_orientation(W, n, equal_volume=True)


def vve(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda_k D A_k D^T`` (see :func:`_common_orientation`)."""
    return _common_orientation(W, n, equal_volume=False)


# ---- varying orientation ---------------------------------------------------------------------
def eev(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda D_k A D_k^T``: ``D_k`` the eigenvectors of ``W_k`` (decreasing
    eigenvalues ``omega_k``), ``A ∝ sum_k omega_k`` (det 1), ``lambda = g / sum_k n_k`` with
    ``g = det(diag(sum_k omega_k))^(1/d)`` (Celeux & Govaert 1995)."""
    values, vectors = eigh_descending(W)
    pooled = values.sum(axis=0)
    g = _geometric_mean(pooled)
    diagonal = np.broadcast_to((g / n.sum()) * pooled / g, values.shape)
    return _checked(np.einsum("kij,kj,klj->kil", vectors, diagonal, vectors))


def vev(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda_k D_k A D_k^T``: ``D_k`` as in :func:`eev`; alternate
    ``A ∝ sum_k omega_k / lambda_k`` and ``lambda_k = sum_j omega_kj / A_j / (d n_k)``."""
    values, vectors = eigh_descending(W)
    d = values.shape[1]
    lam = values.sum(axis=1) / (d * n)
    for _ in range(MAX_ITER):
        pooled = (values / lam[:, None]).sum(axis=0)
        shape = pooled / _geometric_mean(pooled)
        new = (values / shape).sum(axis=1) / (d * n)
        done = _converged(lam, new)
        lam = new
        if done:
            break
    diagonal = lam[:, None] * shape[None]
    return _checked(np.einsum("kij,kj,klj->kil", vectors, diagonal, vectors))


def evv(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = lambda C_k`` (det 1): ``C_k = W_k / g_k``, ``lambda = sum_k g_k / sum_k n_k``
    with ``g_k = det(W_k)^(1/d)``."""
    g = _root_det(W)
    lam = g.sum() / n.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return _checked(lam * W / g[:, None, None])


def vvv(W: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``Sigma_k = W_k / n_k`` (unconstrained)."""
    return _checked(W / n[:, None, None])


#: mclust's model name -> its constrained estimate.
SOLVERS: dict[str, Solver] = {
    "EII": eii,
    "VII": vii,
    "EEI": eei,
    "VEI": vei,
    "EVI": evi,
    "VVI": vvi,
    "EEE": eee,
    "VEE": vee,
    "EVE": eve,
    "VVE": vve,
    "EEV": eev,
    "VEV": vev,
    "EVV": evv,
    "VVV": vvv,
}


def n_variance_parameters(model: str, n_components: int, n_features: int) -> int:
    """Free covariance parameters of mclust's ``model`` (mclust's ``nVarParams``)."""
    G, d = n_components, n_features
    rotation = d * (d - 1) // 2
    counts = {
        "EII": 1,
        "VII": G,
        "EEI": d,
        "VEI": G + (d - 1),
        "EVI": 1 + G * (d - 1),
        "VVI": G * d,
        "EEE": d * (d + 1) // 2,
        "VEE": G + (d - 1) + rotation,
        "EVE": 1 + G * (d - 1) + rotation,
        "VVE": G + G * (d - 1) + rotation,
        "EEV": 1 + (d - 1) + G * rotation,
        "VEV": G + (d - 1) + G * rotation,
        "EVV": 1 - G + G * d * (d + 1) // 2,
        "VVV": G * d * (d + 1) // 2,
    }
    try:
        return counts[model]
    except KeyError:
        raise ValueError(f"unknown mclust model {model!r}; choose one of {list(counts)}") from None


__all__ = [
    "MAX_ITER",
    "SOLVERS",
    "TOLERANCE",
    "eee",
    "eei",
    "eev",
    "eigh_descending",
    "eii",
    "eve",
    "evi",
    "evv",
    "n_variance_parameters",
    "vee",
    "vei",
    "vev",
    "vii",
    "vve",
    "vvi",
    "vvv",
]
