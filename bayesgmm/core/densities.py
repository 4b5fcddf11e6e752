"""Log densities of the conjugate prior families (pure NumPy / SciPy functions).

Densities of covariance matrices are with respect to the matrix itself and those of
variances with respect to the variance, matching the MAP objective of
:mod:`bayesgmm.em.steps` and the PyMC model of :mod:`bayesgmm.bayes.model`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, multigammaln


def log_dirichlet(weights: np.ndarray, concentration: np.ndarray) -> float:
    """Dirichlet log density of ``weights`` (shape (K,)) with ``concentration`` (K,)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(concentration == 1.0, 0.0, (concentration - 1.0) * np.log(weights))
    return float(gammaln(concentration.sum()) - gammaln(concentration).sum() + terms.sum())


def log_inverse_wishart(covariances: np.ndarray, dof: float, scale: np.ndarray) -> np.ndarray:
    """Inverse-Wishart log density of each matrix in ``covariances``.

    Parameters
    ----------
    covariances : ndarray of shape (..., d, d)
    dof : float
        ``nu > d - 1``.
    scale : ndarray of shape (d, d)
        ``Psi``.

    Returns
    -------
    ndarray of shape (...)
    """
    d = scale.shape[0]
    chol = np.linalg.cholesky(covariances)
    logdet_cov = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    inv = np.linalg.inv(covariances)
    trace = np.einsum("ij,...ji->...", scale, inv)
    _, logdet_scale = np.linalg.slogdet(scale)
    return (
        0.5 * dof * logdet_scale
        - 0.5 * dof * d * np.log(2.0)
        - multigammaln(0.5 * dof, d)
        - 0.5 * (dof + d + 1.0) * logdet_cov
        - 0.5 * trace
    )


def log_inverse_gamma(x: np.ndarray, shape: float, scale: np.ndarray) -> np.ndarray:
    """Inverse-gamma log density ``a log b - log Gamma(a) - (a+1) log x - b / x`` elementwise."""
    return shape * np.log(scale) - gammaln(shape) - (shape + 1.0) * np.log(x) - scale / x


def log_normal_precision_scaled(
    means: np.ndarray, location: np.ndarray, covariances: np.ndarray, kappa: float
) -> np.ndarray:
    """Log N(means | location, covariances / kappa) for stacked full covariances.

    Parameters
    ----------
    means : ndarray of shape (K, d)
    location : ndarray of shape (d,)
    covariances : ndarray of shape (K, d, d)
    kappa : float

    Returns
    -------
    ndarray of shape (K,)
    """
    d = means.shape[1]
    chol = np.linalg.cholesky(covariances / kappa)
    diff = means - location
    solved = np.linalg.solve(chol, diff[..., None])[..., 0]
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return -0.5 * (d * np.log(2 * np.pi) + logdet + (solved**2).sum(-1))


__all__ = [
    "log_dirichlet",
    "log_inverse_gamma",
    "log_inverse_wishart",
    "log_normal_precision_scaled",
]
