"""The covariance structures, one class each, in one registry.

Everything that depends on how the component covariances are constrained, as data and
NumPy maths, lives here: parameter layout and count, expansion to full matrices, precision
Cholesky factors and log-determinants, Gaussian log-densities, the maximum-likelihood and
MAP M-steps from sufficient statistics, the conjugate log prior density and its default
scale, rescaling between the user's and the working scale, and the rows a summary shows.
Code elsewhere asks a structure (``get_structure(name)``); it never compares the name. A
new structure (e.g. mclust's shared-orientation models) is one new class registered with
:func:`register`.

The registry knows nothing of its backends. Each backend keeps its own table keyed by the
structure's class and looks a structure up along its MRO, so a subclass of a registered
structure inherits its parent's backends: the compiled EM kernels and loop
(:mod:`bayesgmm.em.backends`; a structure without them runs the NumPy E- and M-steps
below) and the PyMC covariance variables (:mod:`bayesgmm.bayes.structures`).

=============  ==========================  ===============================================
structure      ``covariances`` layout      prior on the covariances (Normal-Inverse-...)
=============  ==========================  ===============================================
``full``       (n_components, d, d)        ``Sigma_k ~ InvWishart(nu0, Psi0)``
``tied``       (d, d)                      one ``Sigma ~ InvWishart(nu0, Psi0)``
``diag``       (n_components, d)           ``sigma2_kj ~ InvGamma(nu0 / 2, psi0_j / 2)``
``spherical``  (n_components,)             ``sigma2_k ~ InvGamma(nu0 / 2, psi0 / 2)``
=============  ==========================  ===============================================

The precision Cholesky factors share the covariance layout (scikit-learn's convention):
upper-triangular ``U`` with ``U U^T`` the precision for ``full``/``tied``, ``1 / sd`` for
``diag``/``spherical``. The MAP updates are the joint posterior modes given in
:mod:`bayesgmm.em.steps`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from bayesgmm.core.exceptions import SingularCovarianceError

# SciPy-based densities (bayesgmm.core.densities) are imported where used, so that the registry,
# and with it the command line's --help, loads nothing heavier than NumPy.

if TYPE_CHECKING:  # pragma: no cover
    from bayesgmm.core.params import MixtureParams
    from bayesgmm.core.priors import MixturePrior
    from bayesgmm.em.steps import SufficientStatistics

_LOG_2PI = np.log(2 * np.pi)

#: Names of the built-in structures, for type hints (the registry is the source of truth).
CovarianceType = Literal["full", "tied", "diag", "spherical"]


def _prior_shift(prior: MixturePrior, nk: np.ndarray, xbar: np.ndarray) -> np.ndarray:
    """``sqrt(kappa0 N_k / (kappa0 + N_k)) (xbar_k - m0)``, shape (K, d)."""
    kappa = prior.mean_precision
    return np.sqrt(kappa * nk / (kappa + nk))[:, None] * (xbar - prior.mean_prior)


def _cholesky_of_precisions(stacked: np.ndarray) -> np.ndarray:
    """Upper precision Cholesky factors of SPD matrices of shape (K, d, d)."""
    try:
        cov_chol = np.linalg.cholesky(stacked)
    except np.linalg.LinAlgError:
        raise SingularCovarianceError(_first_not_pd(stacked)) from None
    eye = np.broadcast_to(np.eye(stacked.shape[-1]), stacked.shape)
    return np.swapaxes(np.tril(np.linalg.solve(cov_chol, eye)), -1, -2)


def _first_not_pd(stacked: np.ndarray) -> int | None:
    for k, cov in enumerate(stacked):
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return k
    return None


def _matrix_scatter(X: np.ndarray, resp: np.ndarray, xbar: np.ndarray) -> np.ndarray:
    """``S_k = sum_n gamma_nk (x_n - xbar_k)(x_n - xbar_k)^T``, shape (K, d, d)."""
    scatter = np.empty((xbar.shape[0], X.shape[1], X.shape[1]))
    for k in range(xbar.shape[0]):
        diff = X - xbar[k]
        scatter[k] = (resp[:, k] * diff.T) @ diff
    return scatter


def _diagonal_scatter(
    X: np.ndarray, resp: np.ndarray, xbar: np.ndarray, nk: np.ndarray
) -> np.ndarray:
    """Diagonal of ``S_k``, shape (K, d)."""
    return resp.T @ (X * X) - 2.0 * xbar * (resp.T @ X) + xbar**2 * nk[:, None]


class CovarianceStructure:
    """Base class of a covariance structure (see the module docstring).

    Subclasses set :attr:`name` and implement the methods that raise
    ``NotImplementedError``; instances are stateless singletons from :func:`get_structure`.
    """

    name: ClassVar[str]
    #: Whether the sufficient statistics keep full scatter matrices (else their diagonals).
    matrix_scatter: ClassVar[bool] = True
    #: Whether one component's covariance can be re-seeded on its own (not ``tied``).
    per_component: ClassVar[bool] = True
    #: Whether the LKJ covariance prior family applies (needs correlations).
    supports_lkj: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"CovarianceStructure({self.name!r})"

    def __reduce__(self):
        return (get_structure, (self.name,))

    # ---- layout -------------------------------------------------------------------------
    def shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of ``covariances`` (and of ``precisions_cholesky``)."""
        raise NotImplementedError

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free covariance parameters (scikit-learn's count)."""
        raise NotImplementedError

    def batch(self, n_components: int) -> tuple[int, ...]:
        """Leading shape of the independent covariance blocks: ``(K,)``, or ``()`` if shared."""
        return (n_components,)

    def expand(self, covariances: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
        """Covariances as full matrices, shape (n_components, d, d)."""
        raise NotImplementedError

    def permute(self, covariances: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Covariances with components reordered (position ``i`` takes ``order[i]``)."""
        return covariances[order]

    def entries(self, n_components: int, n_features: int) -> list[tuple[str, tuple[int, int, int]]]:
        """Free covariance entries as (owner, (k, i, j)) into the full (K, d, d) layout.

        ``owner`` is the component index as a string, or ``"all"`` for a shared matrix;
        summaries show exactly these rows.
        """
        raise NotImplementedError

    # ---- precision Cholesky and Gaussian densities --------------------------------------
    def precisions_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        """Cholesky factors of the precisions, in the covariance layout.

        Raises
        ------
        SingularCovarianceError
            If a covariance is not positive definite (naming the component when known).
        """
        raise NotImplementedError

    def precisions(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        """Precisions from their Cholesky factors, same layout."""
        raise NotImplementedError

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`precisions` composed with its factorisation: covariances."""
        raise NotImplementedError

    def log_det_cholesky(self, precisions_cholesky: np.ndarray, n_features: int) -> np.ndarray:
        """``log det`` of each precision Cholesky factor (half the precision's log-det)."""
        raise NotImplementedError

    def log_gaussian_prob(
        self, X: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray
    ) -> np.ndarray:
        """``log N(x_n | mu_k, Sigma_k)`` for every sample and component, shape (N, K)."""
        n_features = X.shape[1]
        log_det = self.log_det_cholesky(precisions_cholesky, n_features)
        mahalanobis = self._mahalanobis(X, means, precisions_cholesky)
        return -0.5 * (n_features * _LOG_2PI + mahalanobis) + log_det

    def _mahalanobis(self, X, means, precisions_cholesky) -> np.ndarray:
        raise NotImplementedError

    # ---- sufficient statistics and the M-step --------------------------------------------
    def scatter(
        self, X: np.ndarray, resp: np.ndarray, xbar: np.ndarray, nk: np.ndarray
    ) -> np.ndarray:
        """Weighted scatter about ``xbar`` (soft counts ``nk``): (K, d, d) or diagonals (K, d)."""
        if self.matrix_scatter:
            return _matrix_scatter(X, resp, xbar)
        return _diagonal_scatter(X, resp, xbar, nk)

    def second_moments(self, resp: np.ndarray, centred: np.ndarray) -> np.ndarray:
        """``sum_n gamma_nk c_n c_n^T`` (or its diagonal) of already centred rows ``c``."""
        if self.matrix_scatter:
            return np.einsum("nk,ni,nj->kij", resp, centred, centred)
        return resp.T @ (centred * centred)

    def m_step(
        self, stats: SufficientStatistics, prior: MixturePrior | None, reg_covar: float
    ) -> np.ndarray:
        """Covariances after the M-step (MLE if ``prior`` is None, else the MAP update)."""
        raise NotImplementedError

    def reseed(
        self, covariances: np.ndarray, component: int, spread: np.ndarray
    ) -> np.ndarray | None:
        """Covariances with ``component``'s replaced by the data ``spread`` (d, d).

        ``None`` when a single component cannot be re-seeded (a shared covariance).
        """
        covariances = covariances.copy()
        covariances[component] = self._from_full(spread)
        return covariances

    def _from_full(self, matrix: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ---- priors --------------------------------------------------------------------------
    def prior_scale_shape(self, n_features: int) -> tuple[int, ...]:
        """Shape of the prior scale ``Psi0``."""
        raise NotImplementedError

    def min_degrees_of_freedom(self, n_features: int) -> float:
        """``nu0`` must exceed this."""
        return 0.0

    def check_prior_scale(self, scale: np.ndarray) -> None:
        """Raise ``ValueError`` unless ``scale`` is a valid ``Psi0``."""
        if np.any(~(scale > 0)) or not np.all(np.isfinite(scale)):
            raise ValueError("covariance_prior must be positive and finite")

    def default_prior_scale(self, covariance: np.ndarray, n_components: int) -> np.ndarray:
        """Fraley & Raftery's data-scaled ``Psi0`` from the data covariance (d, d)."""
        raise NotImplementedError

    def log_prior(self, prior: MixturePrior, params: MixtureParams) -> float:
        """``sum_k log p(mu_k, Sigma_k)`` under the conjugate prior."""
        raise NotImplementedError

    # ---- scales --------------------------------------------------------------------------
    def working_scale(self, scale: np.ndarray) -> np.ndarray:
        """Per-feature scales (d,) a standardisation may use for this structure."""
        return scale

    def rescale(self, covariances: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Covariances of ``scale * x`` when ``x`` has ``covariances``; also maps ``Psi0``."""
        raise NotImplementedError

    # ---- covariance blocks ---------------------------------------------------------------
    def batched_full(self, covariances: np.ndarray, n_components: int, n_features: int):
        """The independent covariance blocks as full matrices, shape (*batch, d, d)."""
        return self.expand(covariances, n_components, n_features)


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
        # root mean square, computed relative to the largest scale so that it cannot overflow
        peak = float(np.max(scale)) if scale.size and np.max(scale) > 0 else 1.0
        return np.full(scale.shape, peak * np.sqrt(np.mean((scale / peak) ** 2)))

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


_REGISTRY: dict[str, CovarianceStructure] = {}


def register(structure: type[CovarianceStructure]) -> type[CovarianceStructure]:
    """Add a structure class to the registry under its ``name`` (usable as a decorator)."""
    _REGISTRY[structure.name] = structure()
    return structure


for _cls in (Full, Tied, Diag, Spherical):
    register(_cls)


def covariance_types() -> tuple[str, ...]:
    """Names of the registered structures, in registration order."""
    return tuple(_REGISTRY)


def get_structure(covariance_type: str | CovarianceStructure) -> CovarianceStructure:
    """The registered structure called ``covariance_type`` (a structure is returned as is).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the registered ones.
    """
    if isinstance(covariance_type, CovarianceStructure):
        return covariance_type
    try:
        return _REGISTRY[covariance_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"Invalid value for 'covariance_type': {covariance_type!r}; choose one of "
            f"{list(_REGISTRY)}"
        ) from None


__all__ = [
    "CovarianceStructure",
    "CovarianceType",
    "Diag",
    "Full",
    "Spherical",
    "Tied",
    "covariance_types",
    "get_structure",
    "register",
]
