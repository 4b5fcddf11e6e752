"""Gaussian log-densities through precision Cholesky factors (pure functions).

The state of every covariance is kept as the Cholesky factor of its precision,
``precisions_cholesky``, in scikit-learn's layout of its structure (see
:mod:`bayesgmm.core.covariance`, which implements the per-structure arithmetic). These
functions take the structure by name for callers that work with plain arrays.
"""

from __future__ import annotations

import numpy as np

from bayesgmm.core.covariance import CovarianceStructure, get_structure
from bayesgmm.core.exceptions import SingularCovarianceError


def compute_precision_cholesky(
    covariances: np.ndarray, covariance_type: str | CovarianceStructure
) -> np.ndarray:
    """Cholesky factors of the precision matrices.

    Parameters
    ----------
    covariances : ndarray
        Shape (K, d, d), (d, d), (K, d) or (K,) for full, tied, diag, spherical.
    covariance_type : str or CovarianceStructure

    Returns
    -------
    ndarray of the same shape as ``covariances``
        Upper-triangular ``U`` with ``U @ U.T`` the precision (scikit-learn's convention),
        or ``1 / sqrt(var)`` for diag and spherical.

    Raises
    ------
    SingularCovarianceError
        If a covariance is not positive definite.
    """
    return get_structure(covariance_type).precisions_cholesky(covariances)


def log_det_cholesky(
    precisions_cholesky: np.ndarray, covariance_type: str | CovarianceStructure, n_features: int
) -> np.ndarray:
    """``log det`` of the precision Cholesky factor (half the precision's log-determinant).

    Returns
    -------
    ndarray of shape (K,), or a scalar for ``tied``
    """
    return get_structure(covariance_type).log_det_cholesky(precisions_cholesky, n_features)


def estimate_log_gaussian_prob(
    X: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str | CovarianceStructure,
) -> np.ndarray:
    """Log ``N(x_n | mu_k, Sigma_k)`` for every sample and component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (n_components, n_features)
    precisions_cholesky : ndarray
        In the layout of ``covariance_type``.
    covariance_type : str or CovarianceStructure

    Returns
    -------
    ndarray of shape (n_samples, n_components)
    """
    return get_structure(covariance_type).log_gaussian_prob(X, means, precisions_cholesky)


__all__ = [
    "SingularCovarianceError",
    "compute_precision_cholesky",
    "estimate_log_gaussian_prob",
    "log_det_cholesky",
]
