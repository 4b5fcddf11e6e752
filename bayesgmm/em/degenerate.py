"""Fits that are not proper optima: degenerate and coincident components.

A degenerate component rests on too few distinct rows or has a vanishing variance (mclust
would report no BIC for it); coincident components are the symmetric saddle point that EM
from random responsibilities can reach. The restarts (:mod:`bayesgmm.em.starts`) and the
split-and-merge moves (:mod:`bayesgmm.em.split_merge`) set such fits aside.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

from bayesgmm.core.exceptions import DegenerateFitWarning
from bayesgmm.core.params import MixtureParams
from bayesgmm.em.run import log_responsibilities

#: A fitted component is *degenerate* when, measured in units of the data's covariance, one
#: of its variances is below this: it sits on repeated values (integer measurements, say)
#: and its likelihood grows without bound as its variance shrinks to ``reg_covar``.
DEGENERATE_VARIANCE_RATIO = 1e-5

#: Responsibility above which a row counts as carrying a component (for the distinct rows).
_CARRIES = 0.01


def degenerate_components(
    params: MixtureParams, X: np.ndarray, data_covariance: np.ndarray
) -> np.ndarray:
    """Which components are degenerate, as mclust would report them (no BIC).

    A component is degenerate if a variance of it, relative to the data's along the same
    direction (the eigenvalues of ``L^-1 Sigma_k L^-T`` with ``L L^T`` the data's
    covariance), is below :data:`DEGENERATE_VARIANCE_RATIO`, or if fewer than ``d + 1``
    distinct rows carry it (responsibility above 1%): its covariance then rests on too few
    points, e.g. on one repeated value.

    Parameters
    ----------
    params : MixtureParams
    X : ndarray of shape (n_samples, n_features)
    data_covariance : ndarray of shape (n_features, n_features)

    Returns
    -------
    ndarray of bool, shape (n_components,)
    """
    k, d = params.n_components, params.n_features
    data_covariance = np.atleast_2d(data_covariance).astype(np.float64)
    try:
        scale = np.linalg.cholesky(data_covariance)
    except np.linalg.LinAlgError:  # fewer rows than features: a singular data covariance
        jitter = 1e-10 * max(float(np.trace(data_covariance)) / d, np.finfo(np.float64).tiny)
        scale = np.linalg.cholesky(data_covariance + jitter * np.eye(d))
    blocks = np.reshape(params.structure.batched_full(params.covariances, k, d), (-1, d, d))
    half = np.linalg.solve(scale, blocks)
    relative = np.linalg.solve(scale, np.swapaxes(half, -1, -2))
    tiny = np.linalg.eigvalsh(relative)[:, 0] < DEGENERATE_VARIANCE_RATIO
    tiny = np.broadcast_to(tiny, (k,)) if tiny.size == 1 else tiny
    log_resp = log_responsibilities(X, params)[0]
    carried = log_resp > np.log(_CARRIES)
    few = np.array([_fewer_distinct_rows(X[carried[:, j]], d + 1) for j in range(k)])
    return tiny | few


#: Largest difference (working scale: standardised data) between two components' means and
#: covariances for them to count as one component written twice.
COINCIDENT_ATOL = 1e-6


def coincident_components(params: MixtureParams, atol: float = COINCIDENT_ATOL) -> bool:
    """Whether two components of ``params`` are the same Gaussian (to ``atol``).

    EM started from random responsibilities can converge to the symmetric stationary point
    where components coincide: a (K-1)-component fit written with K components, a saddle
    of the likelihood rather than a K-component optimum.

    Parameters
    ----------
    params : MixtureParams
        On the working (standardised) scale.
    atol : float

    Returns
    -------
    bool
    """
    k, d = params.n_components, params.n_features
    if k < 2:
        return False
    covariances = np.reshape(params.structure.batched_full(params.covariances, k, d), (-1, d, d))
    covariances = np.broadcast_to(covariances, (k, d, d))
    for i, j in itertools.combinations(range(k), 2):
        if np.allclose(params.means[i], params.means[j], rtol=0.0, atol=atol) and np.allclose(
            covariances[i], covariances[j], rtol=0.0, atol=atol
        ):
            return True
    return False


def _fewer_distinct_rows(rows: np.ndarray, count: int) -> bool:
    """Whether ``rows`` has fewer than ``count`` distinct rows (without sorting them all)."""
    for _ in range(count):
        if rows.shape[0] == 0:
            return True
        rows = rows[np.any(rows != rows[0], axis=1)]
    return False


def warn_if_degenerate(params: MixtureParams, reg_covar: float) -> None:
    """Warn when a maximum-likelihood component rests on (nearly) one point.

    ``params`` are on the working (standardised) scale, where a component whose variance
    in every direction is a few ``reg_covar`` has collapsed onto one point: its covariance
    is set by ``reg_covar`` alone and the likelihood is unbounded there.
    """
    largest = np.linalg.eigvalsh(params.full_covariances())[:, -1]
    collapsed = np.flatnonzero(largest <= max(10.0 * reg_covar, 1e-12))
    if collapsed.size:
        warnings.warn(
            f"maximum likelihood is degenerate: component(s) {collapsed.tolist()} rest on "
            "one point or on identical points (a variance of reg_covar alone). Fit with a "
            "prior (prior='default') to get a proper estimate, or decrease n_components.",
            DegenerateFitWarning,
            stacklevel=3,
        )


__all__ = [
    "COINCIDENT_ATOL",
    "DEGENERATE_VARIANCE_RATIO",
    "coincident_components",
    "degenerate_components",
    "warn_if_degenerate",
]
