"""Gaussian log-densities through precision Cholesky factors (pure functions).

The state of every covariance is kept as the Cholesky factor of its precision,
``precisions_cholesky``, in scikit-learn's layout: (K, d, d) for ``full``, (d, d)
for ``tied``, (K, d) for ``diag`` and (K,) for ``spherical``. Log-determinants
come from its diagonal and no covariance is ever inverted explicitly.
"""

from __future__ import annotations

import numpy as np

from bayesgmm._types import CovarianceType


class SingularCovarianceError(ValueError):
    """A component covariance is not positive definite (a collapsed component)."""

    def __init__(self, component: int | None = None) -> None:
        where = f"component {component}" if component is not None else "a component"
        super().__init__(
            f"the covariance of {where} is singular or not positive definite: the component "
            "has collapsed onto too few points. Remedies: fit with a prior (MAP, "
            "prior='default'), increase reg_covar, decrease n_components, or standardise the "
            "input data."
        )
        self.component = component


def compute_precision_cholesky(
    covariances: np.ndarray, covariance_type: CovarianceType
) -> np.ndarray:
    """Cholesky factors of the precision matrices.

    Parameters
    ----------
    covariances : ndarray
        Shape (K, d, d), (d, d), (K, d) or (K,) for full, tied, diag, spherical.
    covariance_type : {"full", "tied", "diag", "spherical"}

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
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        stacked = covariances[None] if covariance_type == "tied" else covariances
        try:
            cov_chol = np.linalg.cholesky(stacked)
        except np.linalg.LinAlgError:
            raise SingularCovarianceError(_first_not_pd(stacked, covariance_type)) from None
        eye = np.broadcast_to(np.eye(stacked.shape[-1]), stacked.shape)
        out = np.swapaxes(np.tril(np.linalg.solve(cov_chol, eye)), -1, -2)
        return out[0] if covariance_type == "tied" else out
    if np.any(~(covariances > 0.0)):
        bad = np.argwhere(~(covariances > 0.0))[0][0]
        raise SingularCovarianceError(int(bad))
    return 1.0 / np.sqrt(covariances)


def _first_not_pd(stacked: np.ndarray, covariance_type: CovarianceType) -> int | None:
    if covariance_type == "tied":
        return None
    for k, cov in enumerate(stacked):
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return k
    return None


def log_det_cholesky(
    precisions_cholesky: np.ndarray, covariance_type: CovarianceType, n_features: int
) -> np.ndarray:
    """``log det`` of the precision Cholesky factor (half the precision's log-determinant).

    Returns
    -------
    ndarray of shape (K,), or a scalar for ``tied``
    """
    if covariance_type == "full":
        return np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(precisions_cholesky)).sum()
    if covariance_type == "diag":
        return np.log(precisions_cholesky).sum(axis=1)
    return n_features * np.log(precisions_cholesky)


def estimate_log_gaussian_prob(
    X: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: CovarianceType,
) -> np.ndarray:
    """Log ``N(x_n | mu_k, Sigma_k)`` for every sample and component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (n_components, n_features)
    precisions_cholesky : ndarray
        In the layout of ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray of shape (n_samples, n_components)
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    log_det = log_det_cholesky(precisions_cholesky, covariance_type, n_features)
    if covariance_type == "full":
        log_prob = np.empty((n_samples, n_components))
        for k, (mu, prec_chol) in enumerate(zip(means, precisions_cholesky, strict=True)):
            y = X @ prec_chol - mu @ prec_chol
            log_prob[:, k] = np.sum(np.square(y), axis=1)
    elif covariance_type == "tied":
        log_prob = np.empty((n_samples, n_components))
        for k, mu in enumerate(means):
            y = X @ precisions_cholesky - mu @ precisions_cholesky
            log_prob[:, k] = np.sum(np.square(y), axis=1)
    elif covariance_type == "diag":
        precisions = precisions_cholesky**2
        log_prob = (
            np.sum(means**2 * precisions, 1)
            - 2.0 * (X @ (means * precisions).T)
            + X**2 @ precisions.T
        )
    else:
        precisions = precisions_cholesky**2
        log_prob = (
            np.sum(means**2, 1) * precisions
            - 2 * (X @ means.T * precisions)
            + np.outer(np.einsum("ij,ij->i", X, X), precisions)
        )
    return -0.5 * (n_features * np.log(2 * np.pi) + log_prob) + log_det


__all__ = [
    "SingularCovarianceError",
    "compute_precision_cholesky",
    "estimate_log_gaussian_prob",
    "log_det_cholesky",
]
