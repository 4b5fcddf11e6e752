"""The four classic structures: ``full``, ``tied``, ``diag``, ``spherical``.

mclust's ``VVV``, ``EEE``, ``VVI`` and ``VII``. Their MAP updates are the joint posterior
modes of the conjugate priors of :mod:`bayesgmm.core.priors` (see :mod:`bayesgmm.em.steps`).
"""

from __future__ import annotations

import numpy as np

from bayesgmm.core.covariance.base import (
    CovarianceStructure,
    _cholesky_of_precisions,
    _prior_shift,
    isotropic_working_scale,
    register,
)
from bayesgmm.core.exceptions import SingularCovarianceError


class _MatrixStructure(CovarianceStructure):
    """Shared code of ``full`` and ``tied`` (Inverse-Wishart covariance matrices)."""

    supports_lkj = True

    def min_degrees_of_freedom(self, n_features: int) -> float:
        return n_features - 1.0

    def prior_scale_shape(self, n_features: int) -> tuple[int, ...]:
        return (n_features, n_features)

    def check_prior_scale(self, scale: np.ndarray) -> None:
        if not np.all(np.isfinite(scale)):
            raise ValueError("covariance_prior must be finite")
        if not np.allclose(scale, scale.T) or np.any(np.linalg.eigvalsh(scale) <= 0):
            raise ValueError("covariance_prior must be symmetric positive definite")

    def default_prior_scale(self, covariance: np.ndarray, n_components: int) -> np.ndarray:
        d = covariance.shape[0]
        return covariance / float(n_components) ** (2.0 / d)

    def rescale(self, covariances: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return covariances * np.outer(scale, scale)

    def precisions(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        return precisions_cholesky @ np.swapaxes(precisions_cholesky, -1, -2)

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return np.linalg.inv(precisions)

    def _from_full(self, matrix: np.ndarray) -> np.ndarray:
        return matrix


class Full(_MatrixStructure):
    """One unrestricted covariance matrix per component (mclust's ``VVV``)."""

    name = "full"
    mclust_name = "VVV"

    def shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def n_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def expand(self, covariances, n_components, n_features):
        return np.array(covariances, dtype=np.float64)

    def entries(self, n_components, n_features):
        return [
            (str(k), (k, i, j))
            for k in range(n_components)
            for i in range(n_features)
            for j in range(i + 1)
        ]

    def precisions_cholesky(self, covariances):
        return _cholesky_of_precisions(np.asarray(covariances, dtype=np.float64))

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)

    def _mahalanobis(self, X, means, precisions_cholesky):
        out = np.empty((X.shape[0], means.shape[0]))
        for k, (mu, prec_chol) in enumerate(zip(means, precisions_cholesky, strict=True)):
            y = X @ prec_chol - mu @ prec_chol
            out[:, k] = np.sum(np.square(y), axis=1)
        return out

    def m_step(self, stats, prior, reg_covar):
        nk, xbar = stats.nk, stats.xbar
        d = xbar.shape[1]
        if prior is None:
            covs = stats.scatter / nk[:, None, None]
        else:
            shift = _prior_shift(prior, nk, xbar)
            numerator = (
                prior.covariance_prior + stats.scatter + shift[:, :, None] * shift[:, None, :]
            )
            covs = numerator / (prior.degrees_of_freedom + nk + d + 2.0)[:, None, None]
        covs[:, np.arange(d), np.arange(d)] += reg_covar
        return covs

    def log_prior(self, prior, params):
        from bayesgmm.core.densities import log_inverse_wishart, log_normal_precision_scaled

        covs = params.covariances
        return float(
            log_inverse_wishart(covs, prior.degrees_of_freedom, prior.covariance_prior).sum()
            + log_normal_precision_scaled(
                params.means, prior.mean_prior, covs, prior.mean_precision
            ).sum()
        )


class Tied(_MatrixStructure):
    """One covariance matrix shared by all components (mclust's ``EEE``)."""

    name = "tied"
    mclust_name = "EEE"
    per_component = False

    def shape(self, n_components, n_features):
        return (n_features, n_features)

    def n_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def batch(self, n_components):
        return ()

    def expand(self, covariances, n_components, n_features):
        covariances = np.asarray(covariances, dtype=np.float64)
        return np.broadcast_to(covariances, (n_components, n_features, n_features)).copy()

    def batched_full(self, covariances, n_components, n_features):
        return np.array(covariances, dtype=np.float64)

    def permute(self, covariances, order):
        return covariances

    def entries(self, n_components, n_features):
        return [("all", (0, i, j)) for i in range(n_features) for j in range(i + 1)]

    def precisions_cholesky(self, covariances):
        covariances = np.asarray(covariances, dtype=np.float64)
        try:
            return _cholesky_of_precisions(covariances[None])[0]
        except SingularCovarianceError:
            raise SingularCovarianceError(None) from None

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.log(np.diag(precisions_cholesky)).sum()

    def _mahalanobis(self, X, means, precisions_cholesky):
        out = np.empty((X.shape[0], means.shape[0]))
        for k, mu in enumerate(means):
            y = X @ precisions_cholesky - mu @ precisions_cholesky
            out[:, k] = np.sum(np.square(y), axis=1)
        return out

    def m_step(self, stats, prior, reg_covar):
        nk, xbar = stats.nk, stats.xbar
        n_components, d = xbar.shape
        scatter = stats.scatter.sum(axis=0)
        if prior is None:
            cov = scatter / nk.sum()
        else:
            shift = _prior_shift(prior, nk, xbar)
            numerator = prior.covariance_prior + scatter + shift.T @ shift
            cov = numerator / (prior.degrees_of_freedom + nk.sum() + d + 1.0 + n_components)
        cov.flat[:: d + 1] += reg_covar
        return cov

    def reseed(self, covariances, component, spread):
        return None

    def log_prior(self, prior, params):
        from bayesgmm.core.densities import log_inverse_wishart, log_normal_precision_scaled

        cov = params.covariances
        stacked = np.broadcast_to(cov, (params.n_components, *cov.shape))
        return float(
            log_inverse_wishart(cov, prior.degrees_of_freedom, prior.covariance_prior)
            + log_normal_precision_scaled(
                params.means, prior.mean_prior, stacked, prior.mean_precision
            ).sum()
        )


class _VarianceStructure(CovarianceStructure):
    """Shared code of ``diag`` and ``spherical`` (Inverse-Gamma variances)."""

    matrix_scatter = False

    def precisions_cholesky(self, covariances):
        covariances = np.asarray(covariances, dtype=np.float64)
        if np.any(~(covariances > 0.0)):
            raise SingularCovarianceError(int(np.argwhere(~(covariances > 0.0))[0][0]))
        return 1.0 / np.sqrt(covariances)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky**2

    def covariances_from_precisions(self, precisions):
        return 1.0 / np.asarray(precisions, dtype=np.float64)


class Diag(_VarianceStructure):
    """Diagonal covariances, one variance per component and feature (mclust's ``VVI``)."""

    name = "diag"
    mclust_name = "VVI"

    def shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_parameters(self, n_components, n_features):
        return n_components * n_features

    def expand(self, covariances, n_components, n_features):
        covariances = np.asarray(covariances, dtype=np.float64)
        return covariances[:, :, None] * np.eye(n_features)[None]

    def entries(self, n_components, n_features):
        return [(str(k), (k, j, j)) for k in range(n_components) for j in range(n_features)]

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.log(precisions_cholesky).sum(axis=1)

    def _mahalanobis(self, X, means, precisions_cholesky):
        precisions = precisions_cholesky**2
        return (
            np.sum(means**2 * precisions, 1)
            - 2.0 * (X @ (means * precisions).T)
            + X**2 @ precisions.T
        )

    def m_step(self, stats, prior, reg_covar):
        nk = stats.nk
        if prior is None:
            return stats.scatter / nk[:, None] + reg_covar
        shift = _prior_shift(prior, nk, stats.xbar)
        numerator = prior.covariance_prior + stats.scatter + shift**2
        return numerator / (prior.degrees_of_freedom + nk + 3.0)[:, None] + reg_covar

    def _from_full(self, matrix):
        return np.diag(matrix)

    def prior_scale_shape(self, n_features):
        return (n_features,)

    def default_prior_scale(self, covariance, n_components):
        d = covariance.shape[0]
        return np.diag(covariance) / float(n_components) ** (2.0 / d)

    def rescale(self, covariances, scale):
        return covariances * scale**2

    def log_prior(self, prior, params):
        from bayesgmm.core.densities import log_inverse_gamma

        var = params.covariances
        nu, psi, kappa = prior.degrees_of_freedom, prior.covariance_prior, prior.mean_precision
        log_var_prior = log_inverse_gamma(var, 0.5 * nu, 0.5 * psi).sum()
        diff2 = (params.means - prior.mean_prior) ** 2
        log_mean_prior = (-0.5 * (np.log(2 * np.pi * var / kappa) + kappa * diff2 / var)).sum()
        return float(log_var_prior + log_mean_prior)


class Spherical(_VarianceStructure):
    """One variance per component, the same in every direction (mclust's ``VII``)."""

    name = "spherical"
    mclust_name = "VII"

    def shape(self, n_components, n_features):
        return (n_components,)

    def n_parameters(self, n_components, n_features):
        return n_components

    def expand(self, covariances, n_components, n_features):
        covariances = np.asarray(covariances, dtype=np.float64)
        return covariances[:, None, None] * np.eye(n_features)[None]

    def entries(self, n_components, n_features):
        return [(str(k), (k, 0, 0)) for k in range(n_components)]

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return n_features * np.log(precisions_cholesky)

    def _mahalanobis(self, X, means, precisions_cholesky):
        precisions = precisions_cholesky**2
        return (
            np.sum(means**2, 1) * precisions
            - 2 * (X @ means.T * precisions)
            + np.outer(np.einsum("ij,ij->i", X, X), precisions)
        )

    def m_step(self, stats, prior, reg_covar):
        nk = stats.nk
        d = stats.xbar.shape[1]
        if prior is None:
            return (stats.scatter / nk[:, None] + reg_covar).mean(axis=1)
        shift = _prior_shift(prior, nk, stats.xbar)
        numerator = prior.covariance_prior + stats.scatter.sum(axis=1) + (shift**2).sum(axis=1)
        return numerator / (prior.degrees_of_freedom + 2.0 + d + d * nk) + reg_covar

    def _from_full(self, matrix):
        return np.trace(matrix) / matrix.shape[0]

    def prior_scale_shape(self, n_features):
        return ()

    def default_prior_scale(self, covariance, n_components):
        d = covariance.shape[0]
        return np.asarray(np.trace(covariance) / d / float(n_components) ** (2.0 / d))

    def working_scale(self, scale):
        # a spherical covariance stays spherical only under an isotropic rescaling
        return isotropic_working_scale(scale)

    def rescale(self, covariances, scale):
        return covariances * scale[0] ** 2

    def log_prior(self, prior, params):
        from bayesgmm.core.densities import log_inverse_gamma

        var = params.covariances
        d = params.n_features
        nu, psi, kappa = prior.degrees_of_freedom, prior.covariance_prior, prior.mean_precision
        log_var_prior = log_inverse_gamma(var, 0.5 * nu, 0.5 * psi).sum()
        diff2 = ((params.means - prior.mean_prior) ** 2).sum(-1)
        log_mean_prior = (-0.5 * (d * np.log(2 * np.pi * var / kappa) + kappa * diff2 / var)).sum()
        return float(log_var_prior + log_mean_prior)


for _cls in (Full, Tied, Diag, Spherical):
    register(_cls)

__all__ = ["Diag", "Full", "Spherical", "Tied"]
