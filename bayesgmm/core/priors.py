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
updates) and :func:`bayesgmm.bayes.model.build_model` (the PyMC densities), so the two
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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from bayesgmm.core.covariance import CovarianceStructure, CovarianceType, get_structure
from bayesgmm.core.densities import log_dirichlet
from bayesgmm.core.missing import has_missing, nan_moments
from bayesgmm.core.params import MixtureParams


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
        structure = get_structure(self.covariance_type)
        object.__setattr__(self, "covariance_type", structure.name)
        mean_prior = np.atleast_1d(np.asarray(self.mean_prior, dtype=np.float64))
        d = mean_prior.shape[0]
        psi = np.asarray(self.covariance_prior, dtype=np.float64)
        expected = structure.prior_scale_shape(d)
        if psi.shape != expected:
            raise ValueError(
                f"covariance_prior for covariance_type={structure.name!r} must have shape "
                f"{expected}, got {psi.shape}"
            )
        if not np.all(np.isfinite(mean_prior)):
            raise ValueError("mean_prior must be finite")
        if not (self.mean_precision > 0 and np.isfinite(self.mean_precision)):
            raise ValueError(f"mean_precision must be positive, got {self.mean_precision}")
        min_dof = structure.min_degrees_of_freedom(d)
        if not (self.degrees_of_freedom > min_dof and np.isfinite(self.degrees_of_freedom)):
            raise ValueError(
                f"degrees_of_freedom must exceed {min_dof:g} for covariance_type="
                f"{structure.name!r}, got {self.degrees_of_freedom}"
            )
        structure.check_prior_scale(psi)
        conc = np.asarray(self.weight_concentration, dtype=np.float64)
        if np.any(~(conc > 0)) or not np.all(np.isfinite(conc)):
            raise ValueError(f"weight_concentration must be positive, got {conc}")
        for name, value in (
            ("mean_prior", mean_prior),
            ("covariance_prior", psi),
            ("weight_concentration", conc),
        ):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def structure(self) -> CovarianceStructure:
        """The covariance structure the prior is for."""
        return get_structure(self.covariance_type)

    @property
    def n_features(self) -> int:
        """Dimension d the prior is defined for."""
        return self.mean_prior.shape[0]

    def concentration(self, n_components: int) -> np.ndarray:
        """Dirichlet concentration broadcast to shape (n_components,)."""
        conc = np.broadcast_to(self.weight_concentration, (n_components,)).astype(np.float64)
        return conc

    def to_scale(self, location: np.ndarray, scale: np.ndarray) -> MixturePrior:
        """The same prior for the variable ``(x - location) / scale`` (both (d,)).

        Means shift and shrink with the data; ``Psi0 -> D Psi0 D`` with ``D = diag(1 / scale)``.
        """
        inv = 1.0 / np.asarray(scale, dtype=np.float64)
        return replace(
            self,
            mean_prior=(self.mean_prior - location) * inv,
            covariance_prior=self.structure.rescale(np.asarray(self.covariance_prior), inv),
        )

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
        mean, cov = sample_moments(X)
        return cls.from_moments(
            mean,
            cov,
            n_components,
            covariance_type,
            weight_concentration=weight_concentration,
            mean_precision=mean_precision,
            data=X,
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
        data: np.ndarray | None = None,
    ) -> MixturePrior:
        """The default prior from the data's mean (d,) and covariance (d, d) alone.

        Used when the data are too large to hold in memory: the moments come from one
        pass over chunks.

        Parameters
        ----------
        data : ndarray of shape (n_samples, n_features), optional
            The data, when in memory: only read to name the cause of a singular data
            covariance (too few rows, duplicated rows, values too small or too large).
        """
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        cov = np.atleast_2d(np.asarray(covariance, dtype=np.float64))
        structure = get_structure(covariance_type)
        _check_data_covariance(cov, structure, data)
        return cls(
            weight_concentration=weight_concentration,
            mean_prior=mean,
            mean_precision=mean_precision,
            degrees_of_freedom=mean.shape[0] + 2.0,
            covariance_prior=structure.default_prior_scale(cov, n_components),
            covariance_type=structure.name,
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
            + self.structure.log_prior(self, params)
        )


@dataclass(frozen=True)
class HierarchicalPrior(MixturePrior):
    """The hierarchical covariance-scale prior of Malsiner-Walli, Frühwirth-Schnatter & Grün.

    *Model-based clustering based on sparse finite Gaussian mixtures*, Statistics and
    Computing 26 (2016), 303-324, section 3 (and Frühwirth-Schnatter 2006, ch. 6): the scale
    of the components' Inverse-Wishart prior is not fixed but learned,

    * ``Psi ~ Wishart(nu_g, G0^-1)`` (density ``∝ |Psi|^((nu_g - d - 1) / 2)
      exp(-tr(G0 Psi) / 2)``),
    * ``Sigma_k | Psi ~ InvWishart(nu0, Psi)`` independently, ``mu_k | Sigma_k ~ N(m0,
      Sigma_k / kappa0)`` and ``w ~ Dirichlet(a0)`` as in :class:`MixturePrior`.

    The paper writes ``Sigma_k^-1 ~ W(c0, C0)``, ``C0 ~ W(g0, G0)`` in Frühwirth-Schnatter's
    parametrisation (``W(c, C)`` with density ``∝ |W|^(c - (d+1)/2) exp(-tr(C W))``); in the
    usual one that is ``nu0 = 2 c0``, ``Psi = 2 C0``, ``nu_g = 2 g0`` and the same ``G0``.
    Pooling the components' precisions into ``Psi`` lets the data set the size of a
    component, so a small cluster is not forced up to a fixed prior scale.

    Only ``covariance_type="full"`` (the paper's model). Given ``Psi`` the prior is the
    conjugate :class:`MixturePrior` ``conditional(Psi)``, so every conjugate update still
    applies; given the covariances ``Psi`` is Wishart (:meth:`scale_conditional`).

    Parameters
    ----------
    weight_concentration, mean_prior, mean_precision, degrees_of_freedom
        As in :class:`MixturePrior` (``degrees_of_freedom`` is ``nu0 = 2 c0``).
    covariance_prior : ndarray of shape (d, d)
        Where the learned scale ``Psi`` starts (MAP-EM's first restarts use it as a fixed
        scale); :meth:`from_data` takes its prior mean ``nu_g G0^-1``. Not a fixed
        hyper-parameter.
    covariance_type : "full"
    scale_degrees_of_freedom : float
        ``nu_g = 2 g0 > d - 1``.
    scale_rate : ndarray of shape (d, d)
        ``G0``, symmetric positive definite (the inverse of the Wishart's scale matrix).
    """

    scale_degrees_of_freedom: float | None = None
    scale_rate: np.ndarray | None = None

    def __post_init__(self) -> None:
        if get_structure(self.covariance_type).name != "full":
            raise ValueError(
                "the hierarchical covariance-scale prior (Malsiner-Walli et al. 2016) is "
                f"defined for covariance_type='full' only, got {self.covariance_type!r}: use "
                "prior='default' for other structures"
            )
        super().__post_init__()
        d = self.n_features
        dof = self.scale_degrees_of_freedom
        if dof is None or not (np.isfinite(dof) and dof > d - 1):
            raise ValueError(f"scale_degrees_of_freedom must exceed {d - 1}, got {dof}")
        rate = np.asarray(self.scale_rate, dtype=np.float64)
        if rate.shape != (d, d) or not np.all(np.isfinite(rate)):
            raise ValueError(f"scale_rate must be a finite ({d}, {d}) matrix, got {rate.shape}")
        if not np.allclose(rate, rate.T) or np.linalg.eigvalsh(rate)[0] <= 0:
            raise ValueError("scale_rate (G0) must be symmetric positive definite")
        rate.setflags(write=False)
        object.__setattr__(self, "scale_degrees_of_freedom", float(dof))
        object.__setattr__(self, "scale_rate", rate)

    @classmethod
    def from_data(
        cls,
        X: np.ndarray,
        *,
        weight_concentration: float = 1.0,
        mean_precision: float = 0.01,
        mean: np.ndarray | None = None,
    ) -> HierarchicalPrior:
        """The paper's data-scaled hyper-parameters (its section 3.2 / 4).

        ``c0 = 2.5 + (d - 1) / 2``, ``g0 = 0.5 + (d - 1) / 2`` and
        ``G0 = 100 g0 / c0 diag(1 / R_j^2)`` with ``R_j`` the range of feature ``j``; hence
        ``nu0 = 2 c0 = d + 4``, ``nu_g = 2 g0 = d``. The mean prior is
        :meth:`MixturePrior.default`'s (``m0`` the sample mean, ``kappa0 = 0.01``). The
        ranges make the prior equivariant under rescaling each feature, so it is the same
        model on the user's and the working scale.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            In-memory data (complete rows are read for the ranges).
        mean : ndarray of shape (n_features,), optional
            ``m0`` (default: the sample mean of the complete rows).
        """
        X = np.asarray(X, dtype=np.float64)
        complete = X[np.isfinite(X).all(axis=1)]
        if complete.shape[0] < 2:
            raise ValueError("prior='hierarchical' needs at least two complete rows")
        d = complete.shape[1]
        ranges = np.ptp(complete, axis=0)
        if np.any(~(ranges > 0)) or not np.all(np.isfinite(ranges)):
            constant = np.flatnonzero(~(ranges > 0)).tolist()
            raise ValueError(
                f"data column(s) {constant} are constant: prior='hierarchical' scales "
                "by each feature's range"
            )
        c0, g0 = 2.5 + (d - 1) / 2.0, 0.5 + (d - 1) / 2.0
        rate = np.diag(100.0 * g0 / c0 / ranges**2)
        return cls(
            weight_concentration=weight_concentration,
            mean_prior=complete.mean(axis=0) if mean is None else mean,
            mean_precision=mean_precision,
            degrees_of_freedom=2.0 * c0,
            covariance_prior=2.0 * g0 * np.linalg.inv(rate),
            covariance_type="full",
            scale_degrees_of_freedom=2.0 * g0,
            scale_rate=rate,
        )

    def to_scale(self, location: np.ndarray, scale: np.ndarray) -> HierarchicalPrior:
        """The same prior for ``(x - location) / scale``: ``G0 -> S G0 S``, ``S =
        diag(scale)`` (``Psi`` scales as a covariance, so its rate as a precision)."""
        moved = super().to_scale(location, scale)
        rate = self.structure.rescale(np.asarray(self.scale_rate), np.asarray(scale, float))
        return replace(moved, scale_rate=rate)

    def conditional(self, scale: np.ndarray) -> MixturePrior:
        """The conjugate prior given ``Psi = scale`` (d, d)."""
        return MixturePrior(
            weight_concentration=self.weight_concentration,
            mean_prior=self.mean_prior,
            mean_precision=self.mean_precision,
            degrees_of_freedom=self.degrees_of_freedom,
            covariance_prior=np.asarray(scale, dtype=np.float64),
            covariance_type="full",
        )

    def scale_conditional(self, covariances: np.ndarray) -> tuple[float, np.ndarray]:
        """``Psi | Sigma_1..K ~ Wishart(nu_g + K nu0, (G0 + sum_k Sigma_k^-1)^-1)``.

        Parameters
        ----------
        covariances : ndarray of shape (K, d, d)

        Returns
        -------
        dof : float
        scale_matrix : ndarray of shape (d, d)
        """
        covariances = np.asarray(covariances, dtype=np.float64)
        precision_sum = np.linalg.inv(covariances).sum(axis=0)
        rate = self.scale_rate + 0.5 * (precision_sum + precision_sum.T)
        dof = self.scale_degrees_of_freedom + covariances.shape[0] * self.degrees_of_freedom
        return dof, np.linalg.inv(rate)

    def scale_mode(self, covariances: np.ndarray) -> np.ndarray:
        """The mode of :meth:`scale_conditional`, ``(dof - d - 1) S``, shape (d, d): the
        ``Psi`` that maximises the prior density given the covariances (K, d, d)."""
        dof, scale_matrix = self.scale_conditional(covariances)
        return (dof - self.n_features - 1.0) * scale_matrix

    def scale_log_density(self, scale: np.ndarray) -> float:
        """``log Wishart(Psi | nu_g, G0^-1)`` at ``Psi = scale`` (d, d), w.r.t. the matrix."""
        from scipy.special import multigammaln

        d, nu = self.n_features, self.scale_degrees_of_freedom
        _, logdet = np.linalg.slogdet(scale)
        _, logdet_rate = np.linalg.slogdet(self.scale_rate)
        return float(
            0.5 * (nu - d - 1.0) * logdet
            - 0.5 * np.sum(self.scale_rate * scale)
            + 0.5 * nu * logdet_rate
            - 0.5 * nu * d * np.log(2.0)
            - multigammaln(0.5 * nu, d)
        )

    def log_density(self, params: MixtureParams, scale: np.ndarray | None = None) -> float:
        """``log p(alpha, mu, Sigma, Psi)`` at ``params`` and ``Psi = scale``.

        ``scale=None`` takes ``Psi`` at its conditional mode (:meth:`scale_mode`): the
        profile log density MAP-EM maximises (at a joint mode the two agree).
        """
        if scale is None:
            scale = self.scale_mode(params.full_covariances())
        return self.conditional(scale).log_density(params) + self.scale_log_density(scale)


def _check_data_covariance(
    cov: np.ndarray, structure: CovarianceStructure, data: np.ndarray | None = None
) -> None:
    """Name the data problem that would make the data-scaled prior improper.

    Parameters
    ----------
    cov : ndarray of shape (d, d)
        The data covariance.
    structure : CovarianceStructure
    data : ndarray of shape (n_samples, d), optional
        The data, when in memory, to tell the causes apart.

    Raises
    ------
    ValueError
        Values so large or small that the variances overflow or underflow float64,
        constant columns (zero variance), fewer distinct rows than needed, or, for
        structures with correlations, perfectly collinear columns (a singular covariance).
    """
    variances = np.diag(cov)
    spread = None if data is None or data.shape[0] == 0 else np.ptp(data, axis=0)
    overflow = np.flatnonzero(~np.isfinite(variances))
    if overflow.size:
        raise ValueError(
            f"data column(s) {overflow.tolist()} have values too large for float64 "
            "arithmetic (their variance overflows): rescale the data, e.g. divide by "
            "its standard deviation"
        )
    if spread is not None:
        underflow = np.flatnonzero((spread > 0) & ~(variances > 0))
        if underflow.size:
            raise ValueError(
                f"data column(s) {underflow.tolist()} vary on a scale too small for float64 "
                f"(largest difference {float(spread[underflow[0]]):.3g}, variance underflows "
                "to 0): rescale the data, e.g. divide by its standard deviation"
            )
    constant = np.flatnonzero(~(variances > 0))
    if constant.size:
        raise ValueError(
            f"data column(s) {constant.tolist()} are constant (zero variance): the "
            "data-scaled default prior and every Gaussian density need each column to vary; "
            "drop those columns"
        )
    if not structure.matrix_scatter or cov.shape[0] < 2:
        return
    d = cov.shape[0]
    sd = np.sqrt(variances)
    values, vectors = np.linalg.eigh(cov / np.outer(sd, sd))
    if values[0] > 1e-10 * d:
        return
    if data is not None:
        n_samples = data.shape[0]
        n_distinct = np.unique(data, axis=0).shape[0]
        if n_distinct <= d:
            rows = (
                f"n_samples={n_samples} <= n_features={d}"
                if n_samples <= d
                else f"only {n_distinct} distinct rows among n_samples={n_samples} "
                f"(duplicated rows), for n_features={d}"
            )
            raise ValueError(
                f"the data covariance is singular: {rows}; covariance_type="
                f"{structure.name!r} needs more distinct rows than columns: add rows, drop "
                "columns, or use covariance_type='diag'"
            )
    involved = np.flatnonzero(np.abs(vectors[:, 0]) > 1e-3).tolist()
    raise ValueError(
        f"data columns {involved} are perfectly collinear (their covariance matrix is "
        f"singular): covariance_type={structure.name!r} cannot be estimated; drop one of "
        "those columns or use covariance_type='diag'"
    )


PRIOR_CHOICES = (
    "None (maximum likelihood), 'default' (data-scaled conjugate), 'hierarchical' (learned "
    "covariance scale, covariance_type='full') or a MixturePrior"
)


def resolve_prior(
    prior: MixturePrior | str | None,
    n_components: int,
    covariance_type: str | CovarianceStructure,
    n_features: int,
    moments: Callable[[], tuple[np.ndarray, np.ndarray]],
    data: np.ndarray | None = None,
) -> MixturePrior | None:
    """Turn a ``prior`` argument into a :class:`MixturePrior` (or ``None``, flat).

    Parameters
    ----------
    prior : None, "default", "hierarchical" or MixturePrior
        ``"default"`` builds :meth:`MixturePrior.from_moments`, ``"hierarchical"``
        :meth:`HierarchicalPrior.from_data` (``covariance_type="full"``, in-memory data); a
        given prior is checked against the model.
    n_components : int
    covariance_type : str or CovarianceStructure
    n_features : int
    moments : callable
        Returns the data's mean (d,) and covariance (d, d); called only for ``"default"``.
    data : ndarray of shape (n_samples, n_features), optional
        In-memory data, read only to name the cause of an improper default prior.

    Raises
    ------
    ValueError
        An unknown string, a prior for another covariance type or dimension, or data
        on which the default prior is improper (constant or collinear columns).
    TypeError
        Anything else.
    """
    structure = get_structure(covariance_type)
    if prior is None:
        return None
    if isinstance(prior, str):
        if prior not in ("default", "hierarchical"):
            raise ValueError(f"prior must be {PRIOR_CHOICES}; got {prior!r}")
        if prior == "hierarchical":
            if structure.name != "full":
                raise ValueError(
                    "prior='hierarchical' (Malsiner-Walli et al. 2016) is defined for "
                    f"covariance_type='full' only, got {structure.name!r}: use prior='default'"
                )
            if data is None:
                raise ValueError(
                    "prior='hierarchical' needs the data in memory (it scales by each "
                    "feature's range); for chunked data build a HierarchicalPrior yourself"
                )
            return HierarchicalPrior.from_data(data, mean=moments()[0])
        mean, cov = moments()
        return MixturePrior.from_moments(mean, cov, n_components, structure.name, data=data)
    if not isinstance(prior, MixturePrior):
        raise TypeError(f"prior must be {PRIOR_CHOICES}; got a {type(prior).__name__}")
    if prior.covariance_type != structure.name:
        raise ValueError(
            f"the prior is for covariance_type={prior.covariance_type!r} but the model uses "
            f"{structure.name!r}; build the prior with the same type"
        )
    if prior.n_features != n_features:
        raise ValueError(f"the prior is for {prior.n_features} feature(s), X has {n_features}")
    return prior


def check_default_prior_data(X: np.ndarray, covariance_types: Iterable[str]) -> None:
    """Name the data problem that would make the default (data-scaled) prior improper.

    The checks of :meth:`MixturePrior.from_moments`, run before any fit, for each structure
    to be fitted: values whose variances overflow or underflow float64, constant columns,
    too few distinct rows, and (for structures with correlations) collinear columns.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows with a NaN entry (missing values) are left out: the checks read the complete
        rows. Fewer than two complete rows: nothing to check.
    covariance_types : iterable of str
        The structures to be fitted, checked in this order.

    Raises
    ------
    ValueError
        The first problem found, named.
    """
    X = np.asarray(X, dtype=np.float64)
    complete = X[np.isfinite(X).all(axis=1)]
    if len(complete) < 2:
        return
    with np.errstate(all="ignore"):
        cov = sample_moments(complete)[1]
    for covariance_type in covariance_types:
        _check_data_covariance(cov, get_structure(covariance_type), complete)


def sample_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of in-memory data (n_samples, d).

    NaN entries are missing values: :func:`bayesgmm.core.missing.nan_moments` then gives the
    moments of the observed entries.
    """
    X = np.asarray(X, dtype=np.float64)
    if has_missing(X):
        return nan_moments(X)
    n_samples, d = X.shape
    cov = np.atleast_2d(np.cov(X, rowvar=False)) if n_samples > 1 else np.eye(d)
    return X.mean(axis=0), cov


__all__ = [
    "PRIOR_CHOICES",
    "HierarchicalPrior",
    "MixturePrior",
    "check_default_prior_data",
    "resolve_prior",
    "sample_moments",
]
