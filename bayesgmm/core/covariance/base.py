"""The covariance-structure base class and the registry (see :mod:`bayesgmm.core.covariance`).

:class:`CovarianceStructure` says what every structure provides: parameter layout and count,
expansion to full matrices, precision Cholesky factors and log-determinants, Gaussian
log-densities, the maximum-likelihood and MAP M-steps from sufficient statistics, the
conjugate log prior density and its default scale, rescaling between the user's and the
working scale, and the rows a summary shows. The registry maps names to stateless
singletons; mclust's names of the four classic structures (``VVV``, ``EEE``, ``VVI``,
``VII``) are aliases of the same objects (:data:`MCLUST_ALIASES`).
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


def isotropic_working_scale(scale: np.ndarray) -> np.ndarray:
    """One common scale for every feature: the root mean square of ``scale`` (d,).

    Structures whose constraint survives only an isotropic rescaling (spherical
    covariances, shared shapes or orientations) standardise with it.
    """
    # computed relative to the largest scale so that it cannot overflow
    peak = float(np.max(scale)) if scale.size and np.max(scale) > 0 else 1.0
    return np.full(scale.shape, peak * np.sqrt(np.mean((scale / peak) ** 2)))


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
    #: mclust's name of the model (``"VVV"``, ``"EEV"``, ...), ``None`` if it has none.
    mclust_name: ClassVar[str | None] = None
    #: Whether the Bayesian model (PyMC: NUTS, VI) is available for the structure.
    bayesian: ClassVar[bool] = True

    def __repr__(self) -> str:
        return f"CovarianceStructure({self.name!r})"

    def __reduce__(self):
        return (get_structure, (self.name,))

    # ---- layout -------------------------------------------------------------------------
    def shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of ``covariances`` (and of ``precisions_cholesky``)."""
        raise NotImplementedError

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free covariance parameters (scikit-learn's count, which is mclust's ``nVarParams``)."""
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


_REGISTRY: dict[str, CovarianceStructure] = {}

#: mclust's names of the four classic structures -> their names here (the same objects).
MCLUST_ALIASES: dict[str, str] = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}

#: mclust's fourteen models in mclust's order (``mclust.options("emModelNames")``).
MCLUST_MODELS: tuple[str, ...] = (
    "EII",
    "VII",
    "EEI",
    "VEI",
    "EVI",
    "VVI",
    "EEE",
    "VEE",
    "EVE",
    "VVE",
    "EEV",
    "VEV",
    "EVV",
    "VVV",
)


def register(structure: type[CovarianceStructure]) -> type[CovarianceStructure]:
    """Add a structure class to the registry under its ``name`` (usable as a decorator)."""
    _REGISTRY[structure.name] = structure()
    return structure


def covariance_types() -> tuple[str, ...]:
    """Names of the registered structures, in registration order (aliases not included)."""
    return tuple(_REGISTRY)


def covariance_names() -> tuple[str, ...]:
    """Every name :func:`get_structure` accepts: the registered ones, then mclust's aliases."""
    return (*_REGISTRY, *(alias for alias in MCLUST_ALIASES if MCLUST_ALIASES[alias] in _REGISTRY))


def bayesian_covariance_types() -> tuple[str, ...]:
    """Names of the registered structures the Bayesian model (NUTS, VI) supports."""
    return tuple(name for name, structure in _REGISTRY.items() if structure.bayesian)


def bayesian_covariance_names() -> tuple[str, ...]:
    """:func:`bayesian_covariance_types`, then mclust's names of them (``VVV``, ...)."""
    names = bayesian_covariance_types()
    return (*names, *(alias for alias, name in MCLUST_ALIASES.items() if name in names))


def get_structure(covariance_type: str | CovarianceStructure) -> CovarianceStructure:
    """The registered structure called ``covariance_type`` (a structure is returned as is).

    mclust's names ``VVV``, ``EEE``, ``VVI`` and ``VII`` give the ``full``, ``tied``,
    ``diag`` and ``spherical`` structures themselves (:data:`MCLUST_ALIASES`).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the accepted ones.
    """
    if isinstance(covariance_type, CovarianceStructure):
        return covariance_type
    try:
        return _REGISTRY[MCLUST_ALIASES.get(covariance_type, covariance_type)]
    except (KeyError, TypeError):
        raise ValueError(
            f"Invalid value for 'covariance_type': {covariance_type!r}; choose one of "
            f"{list(covariance_names())}"
        ) from None


__all__ = [
    "MCLUST_ALIASES",
    "MCLUST_MODELS",
    "CovarianceStructure",
    "CovarianceType",
    "bayesian_covariance_names",
    "bayesian_covariance_types",
    "covariance_names",
    "covariance_types",
    "get_structure",
    "isotropic_working_scale",
    "register",
]
