"""Conjugate priors shared by MAP-EM and the PyMC model.

One prior type, :class:`MixturePrior`, parameterises

* ``alpha ~ Dirichlet(weight_concentration)`` on the mixing weights, and
* a Normal-Inverse-Wishart family on each component's mean and covariance:

  ``full``
      ``Sigma_k ~ InvWishart(nu0, Psi0)``, ``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)``.
  ``tied``
      one shared ``Sigma ~ InvWishart(nu0, Psi0)``, ``mu_k | Sigma ~ N(m0, Sigma / kappa0)``.
  ``diag``
      ``sigma2_kj ~ InvGamma(nu0 / 2, psi0_j / 2)`` per feature,
      ``mu_kj | sigma2_kj ~ N(m0_j, sigma2_kj / kappa0)`` (Normal-Inverse-Gamma).
  ``spherical``
      ``sigma2_k ~ InvGamma(nu0 / 2, psi0 / 2)``, ``mu_k | sigma2_k ~ N(m0, sigma2_k I / kappa0)``.

In one dimension ``InvWishart(nu, psi) == InvGamma(nu / 2, psi / 2)``, so the four
types agree there.  The same object is consumed by :func:`bayesgmm.em.m_step` (MAP
updates) and :func:`bayesgmm.model.build_model` (the PyMC densities), so the two
fitting paths optimise and sample the same posterior.

Default hyper-parameters (:meth:`MixturePrior.default`) are the data-scaled
"conjugate prior for regularisation" of Fraley & Raftery (2007), *Bayesian
regularization for normal mixture estimation and model-based clustering*,
J. Classification 24, as used by mclust's ``priorControl()``:

* ``m0`` = the sample mean, ``kappa0 = 0.01`` (a very weak pull on the means),
* ``nu0 = d + 2`` (the smallest integer giving a finite prior mean of ``Sigma``),
* ``Psi0 = cov(X) / K^(2/d)`` (full/tied), ``diag(cov(X)) / K^(2/d)`` (diag),
  ``trace(cov(X)) / d / K^(2/d)`` (spherical): the data spread divided among K
  components of equal volume,
* ``weight_concentration = 1`` (a uniform Dirichlet, so MAP weights are ``N_k / N``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, multigammaln

from bayesgmm._types import COVARIANCE_TYPES, CovarianceType
from bayesgmm.params import MixtureParams


@dataclass(frozen=True)
class MixturePrior:
    """Dirichlet and Normal-Inverse-Wishart priors for a Gaussian mixture.

    Parameters
    ----------
    weight_concentration : float or ndarray of shape (n_components,)
        Dirichlet concentration ``a0`` on the weights. MAP-EM needs ``a0 >= 1``
        (below one the density has no interior mode).
    mean_prior : ndarray of shape (n_features,)
        Prior location ``m0`` of the component means.
    mean_precision : float
        ``kappa0 > 0``: the prior on ``mu_k`` has covariance ``Sigma_k / kappa0``.
    degrees_of_freedom : float
        ``nu0``; must exceed ``n_features - 1`` for ``full``/``tied`` and 0 otherwise.
    covariance_prior : ndarray
        Scale ``Psi0``: shape (d, d) for ``full``/``tied``, (d,) for ``diag``, () for
        ``spherical``.
    covariance_type : {"full", "tied", "diag", "spherical"}
    """

    weight_concentration: float | np.ndarray
    mean_prior: np.ndarray
    mean_precision: float
    degrees_of_freedom: float
    covariance_prior: np.ndarray
    covariance_type: CovarianceType = "full"

    def __post_init__(self) -> None:
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}, got {self.covariance_type!r}"
            )
        mean_prior = np.atleast_1d(np.asarray(self.mean_prior, dtype=np.float64))
        d = mean_prior.shape[0]
        psi = np.asarray(self.covariance_prior, dtype=np.float64)
        expected = {"full": (d, d), "tied": (d, d), "diag": (d,), "spherical": ()}[
            self.covariance_type
        ]
        if psi.shape != expected:
            raise ValueError(
                f"covariance_prior for covariance_type={self.covariance_type!r} must have shape "
                f"{expected}, got {psi.shape}"
            )
        if self.mean_precision <= 0 or not np.isfinite(self.mean_precision):
            raise ValueError(f"mean_precision must be positive, got {self.mean_precision}")
        min_dof = d - 1 if self.covariance_type in ("full", "tied") else 0
        if not self.degrees_of_freedom > min_dof:
            raise ValueError(
                f"degrees_of_freedom must exceed {min_dof} for covariance_type="
                f"{self.covariance_type!r}, got {self.degrees_of_freedom}"
            )
        if psi.ndim == 2:
            if not np.allclose(psi, psi.T) or np.any(np.linalg.eigvalsh(psi) <= 0):
                raise ValueError("covariance_prior must be symmetric positive definite")
        elif np.any(psi <= 0):
            raise ValueError("covariance_prior must be positive")
        conc = np.asarray(self.weight_concentration, dtype=np.float64)
        if np.any(conc <= 0) or not np.all(np.isfinite(conc)):
            raise ValueError(f"weight_concentration must be positive, got {conc}")
        for name, value in (
            ("mean_prior", mean_prior),
            ("covariance_prior", psi),
            ("weight_concentration", conc),
        ):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def n_features(self) -> int:
        """Dimension d the prior is defined for."""
        return self.mean_prior.shape[0]

    def concentration(self, n_components: int) -> np.ndarray:
        """Dirichlet concentration broadcast to shape (n_components,)."""
        conc = np.broadcast_to(self.weight_concentration, (n_components,)).astype(np.float64)
        return conc

    @classmethod
    def default(
        cls,
        X: np.ndarray,
        n_components: int,
        covariance_type: CovarianceType = "full",
        *,
        weight_concentration: float = 1.0,
        mean_precision: float = 0.01,
    ) -> MixturePrior:
        """Data-scaled default prior (Fraley & Raftery 2007; see the module docstring).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Validated data.
        n_components : int
            K, used to share the data spread among components.
        covariance_type : {"full", "tied", "diag", "spherical"}
        weight_concentration, mean_precision : float
            Overrides of ``a0`` and ``kappa0``.
        """
        X = np.asarray(X, dtype=np.float64)
        n_samples, d = X.shape
        cov = np.atleast_2d(np.cov(X, rowvar=False)) if n_samples > 1 else np.eye(d)
        return cls.from_moments(
            X.mean(axis=0),
            cov,
            n_components,
            covariance_type,
            weight_concentration=weight_concentration,
            mean_precision=mean_precision,
        )

    @classmethod
    def from_moments(
        cls,
        mean: np.ndarray,
        covariance: np.ndarray,
        n_components: int,
        covariance_type: CovarianceType = "full",
        *,
        weight_concentration: float = 1.0,
        mean_precision: float = 0.01,
    ) -> MixturePrior:
        """The default prior from the data's mean (d,) and covariance (d, d) alone.

        Used when the data are too large to hold in memory: the moments come from one
        pass over chunks.
        """
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        cov = np.atleast_2d(np.asarray(covariance, dtype=np.float64))
        d = mean.shape[0]
        shrink = float(n_components) ** (2.0 / d)
        scale = {
            "full": lambda: cov / shrink,
            "tied": lambda: cov / shrink,
            "diag": lambda: np.diag(cov) / shrink,
            "spherical": lambda: np.asarray(np.trace(cov) / d / shrink),
        }[covariance_type]()
        return cls(
            weight_concentration=weight_concentration,
            mean_prior=mean,
            mean_precision=mean_precision,
            degrees_of_freedom=d + 2.0,
            covariance_prior=scale,
            covariance_type=covariance_type,
        )

    def log_density(self, params: MixtureParams) -> float:
        """Log prior density ``log p(alpha) + sum_k log p(mu_k, Sigma_k)`` at ``params``.

        Densities are with respect to the covariance matrices themselves (full/tied)
        or the variances (diag/spherical), matching the MAP objective.
        """
        if params.covariance_type != self.covariance_type:
            raise ValueError(
                f"prior is for {self.covariance_type!r} covariances, params are "
                f"{params.covariance_type!r}"
            )
        return float(
            log_dirichlet(params.weights, self.concentration(params.n_components))
            + _LOG_COVARIANCE_PRIOR[self.covariance_type](self, params)
        )


def resolve_prior(
    prior: MixturePrior | str | None, X: np.ndarray, n_components: int, covariance_type: str
) -> MixturePrior | None:
    """Turn a ``prior`` argument into a :class:`MixturePrior` (or ``None``, flat).

    Parameters
    ----------
    prior : None, "default" or MixturePrior
        ``"default"`` builds :meth:`MixturePrior.default` from ``X``; a given prior is
        checked against the model.
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    covariance_type : str

    Raises
    ------
    ValueError
        An unknown string, or a prior for another covariance type or dimension.
    TypeError
        Anything else.
    """
    if prior is None:
        return None
    if isinstance(prior, str):
        if prior != "default":
            raise ValueError(f"prior must be None, 'default' or a MixturePrior, got {prior!r}")
        return MixturePrior.default(X, n_components, covariance_type)
    if not isinstance(prior, MixturePrior):
        raise TypeError(
            f"prior must be None, 'default' or a MixturePrior, got {type(prior).__name__}"
        )
    if prior.covariance_type != covariance_type:
        raise ValueError(
            f"the prior is for covariance_type={prior.covariance_type!r} but the model uses "
            f"{covariance_type!r}; build the prior with the same type"
        )
    if prior.n_features != X.shape[1]:
        raise ValueError(f"the prior is for {prior.n_features} feature(s), X has {X.shape[1]}")
    return prior


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


def _log_prior_full(prior: MixturePrior, params: MixtureParams) -> float:
    covs = params.covariances
    return float(
        log_inverse_wishart(covs, prior.degrees_of_freedom, prior.covariance_prior).sum()
        + log_normal_precision_scaled(
            params.means, prior.mean_prior, covs, prior.mean_precision
        ).sum()
    )


def _log_prior_tied(prior: MixturePrior, params: MixtureParams) -> float:
    cov = params.covariances
    stacked = np.broadcast_to(cov, (params.n_components, *cov.shape))
    return float(
        log_inverse_wishart(cov, prior.degrees_of_freedom, prior.covariance_prior)
        + log_normal_precision_scaled(
            params.means, prior.mean_prior, stacked, prior.mean_precision
        ).sum()
    )


def _log_prior_diag(prior: MixturePrior, params: MixtureParams) -> float:
    var = params.covariances
    nu, psi, kappa = prior.degrees_of_freedom, prior.covariance_prior, prior.mean_precision
    log_var_prior = log_inverse_gamma(var, 0.5 * nu, 0.5 * psi).sum()
    diff2 = (params.means - prior.mean_prior) ** 2
    log_mean_prior = (-0.5 * (np.log(2 * np.pi * var / kappa) + kappa * diff2 / var)).sum()
    return float(log_var_prior + log_mean_prior)


def _log_prior_spherical(prior: MixturePrior, params: MixtureParams) -> float:
    var = params.covariances
    d = params.n_features
    nu, psi, kappa = prior.degrees_of_freedom, prior.covariance_prior, prior.mean_precision
    log_var_prior = log_inverse_gamma(var, 0.5 * nu, 0.5 * psi).sum()
    diff2 = ((params.means - prior.mean_prior) ** 2).sum(-1)
    log_mean_prior = (-0.5 * (d * np.log(2 * np.pi * var / kappa) + kappa * diff2 / var)).sum()
    return float(log_var_prior + log_mean_prior)


_LOG_COVARIANCE_PRIOR = {
    "full": _log_prior_full,
    "tied": _log_prior_tied,
    "diag": _log_prior_diag,
    "spherical": _log_prior_spherical,
}

__all__ = [
    "MixturePrior",
    "log_dirichlet",
    "log_inverse_gamma",
    "log_inverse_wishart",
    "resolve_prior",
]
