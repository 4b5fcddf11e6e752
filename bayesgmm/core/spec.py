"""The model specification every fitting path reads, built once from validated data.

:class:`MixtureSpec` fixes what the model is: the number of components, the covariance
structure (an object of :mod:`bayesgmm.core.covariance`), the resolved prior and the
standardisation the sampler works in. The EM path (:mod:`bayesgmm.em`), the PyMC model
(:func:`bayesgmm.bayes.model.build_model`), :func:`bayesgmm.selection.compare.compare`, the command
line and the report all consume the same spec, so no layer re-validates the data,
re-resolves the prior or recomputes the standardisation.

:class:`EMOptions` is the one record of EM settings (tolerance, iterations, restarts,
initialisation), passed whole instead of keyword by keyword.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace

import numpy as np

from bayesgmm.core.covariance import CovarianceStructure, get_structure
from bayesgmm.core.missing import has_missing
from bayesgmm.core.noise import NoiseComponent
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior, resolve_prior, sample_moments
from bayesgmm.core.validation import plain


@dataclass(frozen=True)
class Standardization:
    """Affine map from the user's scale to the working scale, ``x_z = (x - location) / scale``.

    Parameters
    ----------
    location : ndarray of shape (n_features,)
    scale : ndarray of shape (n_features,)
        Positive; all entries equal for structures that need an isotropic rescaling
        (``spherical``).
    """

    location: np.ndarray
    scale: np.ndarray

    @classmethod
    def identity(cls, n_features: int) -> Standardization:
        """The map that changes nothing."""
        return cls(np.zeros(n_features), np.ones(n_features))

    @classmethod
    def from_moments(
        cls, mean: np.ndarray, std: np.ndarray, structure: CovarianceStructure
    ) -> Standardization:
        """Standardisation to zero mean and unit (per-feature, or common) scale."""
        scale = structure.working_scale(np.asarray(std, dtype=np.float64))
        scale = np.where(scale > 0, scale, 1.0)
        return cls(np.asarray(mean, dtype=np.float64), scale)

    @classmethod
    def from_data(
        cls,
        X: np.ndarray,
        structure: CovarianceStructure,
        sample_weight: np.ndarray | None = None,
    ) -> Standardization:
        """Standardisation of in-memory data ``X`` (n_samples, n_features), overflow-safe.

        The location is each feature's mean and the scale its population standard deviation
        (per feature, or common for structures that need an isotropic rescaling). Both are
        computed on ``X`` divided by each feature's largest magnitude, so that data near the
        limits of float64 (``1e200`` or ``1e-300``) give finite moments. With
        ``sample_weight`` (n_samples,) they are the weighted mean and standard deviation,
        those of the data with row ``n`` repeated ``w_n`` times. NaN entries
        (missing values) are left out of each feature's moments.
        """
        X = np.asarray(X, dtype=np.float64)
        if has_missing(X):  # NaN marks a missing entry: moments of the observed entries
            peak = np.nanmax(np.abs(X), axis=0)
            peak = np.where(peak > 0, peak, 1.0)
            unit = X / peak
            mean, std = np.nanmean(unit, axis=0), np.nanstd(unit, axis=0)
            return cls.from_moments(mean * peak, std * peak, structure)
        peak = np.abs(X).max(axis=0) if X.shape[0] else np.ones(X.shape[1])
        peak = np.where(peak > 0, peak, 1.0)
        unit = X / peak
        if sample_weight is None:
            return cls.from_moments(unit.mean(axis=0) * peak, unit.std(axis=0) * peak, structure)
        total = float(np.sum(sample_weight))
        mean = sample_weight @ unit / total
        std = np.sqrt(sample_weight @ (unit - mean) ** 2 / total)
        return cls.from_moments(mean * peak, std * peak, structure)

    def to_working(self, X: np.ndarray) -> np.ndarray:
        """Data on the working scale, ``(X - location) / scale``, shape (n_samples, d)."""
        return (np.asarray(X, dtype=np.float64) - self.location) / self.scale

    def precisions_to_working(
        self, precisions: np.ndarray, structure: CovarianceStructure
    ) -> np.ndarray:
        """Precisions (in ``structure``'s layout) of the working-scale variable.

        ``x_z = (x - location) / scale`` has covariance ``D^-1 Sigma D^-1`` with
        ``D = diag(scale)``, hence precision ``D P D``.
        """
        return structure.rescale(np.asarray(precisions, dtype=np.float64), self.scale)

    @property
    def log_jacobian(self) -> float:
        """``sum(log scale)``: ``log p_user(x) = log p_working(x_z) - log_jacobian``."""
        return float(np.log(self.scale).sum())

    def prior_to_working(self, prior: MixturePrior) -> MixturePrior:
        """The same prior expressed on the working scale."""
        inv = 1.0 / self.scale
        return MixturePrior(
            weight_concentration=prior.weight_concentration,
            mean_prior=(prior.mean_prior - self.location) * inv,
            mean_precision=prior.mean_precision,
            degrees_of_freedom=prior.degrees_of_freedom,
            covariance_prior=prior.structure.rescale(np.asarray(prior.covariance_prior), inv),
            covariance_type=prior.covariance_type,
        )

    def params_to_working(self, params: MixtureParams) -> MixtureParams:
        """Mixture parameters mapped from the user's scale to the working scale."""
        return params.rescaled(-self.location / self.scale, 1.0 / self.scale)

    def params_to_user(self, params: MixtureParams) -> MixtureParams:
        """Mixture parameters mapped from the working scale back to the user's scale."""
        return params.rescaled(self.location, self.scale)


@dataclass(frozen=True)
class MixtureSpec:
    """What the model is: K, the covariance structure, the prior and the working scale.

    Build it with :meth:`from_data` (validated data) so that the prior and the
    standardisation come from the same data.

    Attributes
    ----------
    n_components : int
    structure : CovarianceStructure
    n_features : int
    prior : MixturePrior or None
        ``None``: flat (maximum likelihood).
    standardization : Standardization
    noise : NoiseComponent or None
        The uniform background component (:mod:`bayesgmm.core.noise`), if the model has one.
    """

    n_components: int
    structure: CovarianceStructure
    n_features: int
    prior: MixturePrior | None
    standardization: Standardization = field(repr=False)
    noise: NoiseComponent | None = field(default=None, repr=False)

    @classmethod
    def from_data(
        cls,
        X,
        n_components: int,
        covariance_type: str | CovarianceStructure = "full",
        prior: MixturePrior | str | None = "default",
        *,
        standardize: bool = True,
        moments: tuple[np.ndarray, np.ndarray] | None = None,
        noise: bool = False,
        noise_volume: float | None = None,
    ) -> MixtureSpec:
        """The spec of a model for validated data ``X`` (n_samples, n_features).

        Parameters
        ----------
        X : ndarray or chunked array of shape (n_samples, n_features)
            Validated data (only its shape is read when ``moments`` are given).
        n_components : int
        covariance_type : str or CovarianceStructure
        prior : None, "default" or MixturePrior
        standardize : bool
            Whether the PyMC model works on standardised data.
        moments : (mean (d,), covariance (d, d)), optional
            The data's moments, when they were computed elsewhere (out-of-core data).
        noise : bool
            Add a uniform background component (:class:`bayesgmm.core.noise.NoiseComponent`,
            in-memory data only).
        noise_volume : float, optional
            Its hypervolume on the user's scale (default: the data's bounding box).
        """
        structure = get_structure(covariance_type)
        n_features = int(X.shape[1])
        cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        def data_moments() -> tuple[np.ndarray, np.ndarray]:
            if "value" not in cache:
                cache["value"] = moments if moments is not None else sample_moments(X)
            return cache["value"]

        in_memory = X if isinstance(X, np.ndarray) else None
        resolved = resolve_prior(
            prior, n_components, structure, n_features, data_moments, data=in_memory
        )
        if standardize and X.shape[0] >= 2:
            mean, cov = data_moments()
            n = X.shape[0]
            std = np.sqrt(np.diag(cov) * (n - 1) / n)  # population sd, as numpy's X.std()
            standardization = Standardization.from_moments(mean, std, structure)
        else:
            standardization = Standardization.identity(n_features)
        noise_component = NoiseComponent.from_data(X, noise_volume) if noise else None
        return cls(n_components, structure, n_features, resolved, standardization, noise_component)

    @property
    def covariance_type(self) -> str:
        """Name of the covariance structure."""
        return self.structure.name

    @property
    def n_parameters(self) -> int:
        """Free parameters: weights, means and covariances (scikit-learn's count).

        A noise component adds one weight (its volume is fixed, as in mclust).
        """
        k, d = self.n_components, self.n_features
        noise = 0 if self.noise is None else 1
        return self.structure.n_parameters(k, d) + k * d + k - 1 + noise

    def with_prior(self, prior: MixturePrior | None) -> MixtureSpec:
        """The same spec under another (already resolved) prior."""
        return replace(self, prior=prior)

    def map_prior(self) -> MixturePrior | None:
        """The prior MAP-EM can use: Dirichlet concentrations below one raised to one.

        MAP-EM has no interior mode for ``a0 < 1``; a sampler still uses :attr:`prior`.
        """
        prior = self.prior
        if prior is None:
            return None
        conc = prior.concentration(self.n_components)
        if np.all(conc >= 1.0):
            return prior
        return replace(prior, weight_concentration=np.maximum(conc, 1.0))

    def working_prior_for(self, scaling: Standardization) -> MixturePrior | None:
        """The prior expressed on the scale of ``scaling`` (``None`` stays ``None``)."""
        return None if self.prior is None else scaling.prior_to_working(self.prior)

    @property
    def working_prior(self) -> MixturePrior | None:
        """The prior expressed on the working (standardised) scale."""
        if self.prior is None:
            return None
        return self.standardization.prior_to_working(self.prior)


def _check_positive_definite(precisions: np.ndarray, structure: CovarianceStructure) -> None:
    """Raise ``ValueError`` naming the first precision that is not positive definite."""
    if structure.matrix_scatter:
        stacked = precisions.reshape(-1, *precisions.shape[-2:])
        for k, matrix in enumerate(stacked):
            symmetric = np.allclose(matrix, matrix.T, rtol=1e-8, atol=0.0)
            if symmetric and np.all(np.linalg.eigvalsh(matrix) > 0):
                continue
            where = f"precisions_init[{k}]" if precisions.ndim == 3 else "precisions_init"
            raise ValueError(
                f"{where} is not symmetric positive definite (singular, or a negative "
                "eigenvalue): give inverse covariances, e.g. np.linalg.inv of SPD matrices"
            )
    elif not np.all(precisions > 0):
        raise ValueError(
            "precisions_init must be positive (inverse variances); got "
            f"{plain(float(np.min(precisions)))} at the smallest"
        )


#: Starts of ``n_init="auto"`` on data too large for split-and-merge moves.
AUTO_N_INIT = 20


@dataclass(frozen=True)
class EMOptions:
    """Settings of an EM fit, validated on construction.

    Attributes
    ----------
    tol : float
        Convergence threshold on the per-sample objective (see ``stopping``).
    reg_covar : float
        Added to every covariance diagonal in each M-step, on the working (standardised)
        scale of :func:`bayesgmm.em.fit_em`: relative to each feature's variance.
    max_iter : int
    n_init : int or "auto"
        Starts; the best final objective among the non-degenerate fits is kept (see
        :func:`bayesgmm.em.fit.fit_em`). After a ``hierarchical`` first start the others
        take random rows, ``k-means++`` and random responsibilities in turn. ``"auto"``
        (the default): on small data (``N K d`` at most
        :data:`bayesgmm.em.fit.SPLIT_MERGE_BUDGET`)
        :data:`bayesgmm.em.fit.AUTO_N_INIT_SMALL` starts, then split-and-merge moves from
        the best few fits until none improves them (:func:`bayesgmm.em.fit.split_merge`);
        on larger data :data:`AUTO_N_INIT` starts up to 100,000 rows, fewer above (2 from a
        million rows; :func:`bayesgmm.em.fit.auto_starts_for`).
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "hierarchical"}
    stopping : {"aitken", "absolute"}
        Stopping rule (:data:`bayesgmm.em.fit.STOPPING_RULES`): ``"absolute"`` is
        scikit-learn's (change below ``tol``), ``"aitken"`` stops when the Aitken-extrapolated
        limit of the objective is within ``tol``.
    weights_init, means_init, precisions_init : ndarray, optional
        Explicit starting values (scikit-learn's shapes).
    """

    tol: float = 1e-8
    reg_covar: float = 1e-6
    max_iter: int = 1000
    n_init: int | str = "auto"
    init_params: str = "hierarchical"
    stopping: str = "aitken"
    weights_init: np.ndarray | None = None
    means_init: np.ndarray | None = None
    precisions_init: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("tol", "reg_covar"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not value >= 0
                or not np.isfinite(value)
            ):
                raise ValueError(f"{name} must be a non-negative finite number, got {plain(value)}")
        for name, minimum in (("max_iter", 0), ("n_init", 1)):
            value = getattr(self, name)
            if name == "n_init" and isinstance(value, str) and value == "auto":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                allowed = ' or "auto"' if name == "n_init" else ""
                raise TypeError(f"{name} must be an integer{allowed}, got {plain(value)}")
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")
        from bayesgmm.em.init import INITIALIZERS  # bayesgmm.em imports this module

        if self.init_params not in INITIALIZERS:
            raise ValueError(
                f"Invalid value for 'init_params': {self.init_params!r}; "
                f"choose one of {sorted(INITIALIZERS)}"
            )
        from bayesgmm.em.fit import STOPPING_RULES

        if self.stopping not in STOPPING_RULES:
            raise ValueError(
                f"Invalid value for 'stopping': {self.stopping!r}; "
                f"choose one of {sorted(STOPPING_RULES)}"
            )

    def check_starts(self, spec: MixtureSpec) -> None:
        """Check explicit starting values against the model's shapes.

        Raises
        ------
        ValueError
            Wrong shape, non-finite values, or weights that are negative or do not sum to 1.
        """
        k, d = spec.n_components, spec.n_features
        expected = {
            "weights_init": (k,),
            "means_init": (k, d),
            "precisions_init": spec.structure.shape(k, d),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape != shape:
                raise ValueError(
                    f"{name} must have shape {shape} for n_components={k}, n_features={d}, "
                    f"covariance_type={spec.covariance_type!r}; got {value.shape}"
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} contains NaN or infinity")
        if self.precisions_init is not None:
            _check_positive_definite(
                np.asarray(self.precisions_init, dtype=np.float64), spec.structure
            )
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
            if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
                raise ValueError(
                    f"weights_init must be non-negative and sum to 1, got {weights.tolist()}"
                )

    @property
    def n_starts(self) -> int:
        """``n_init``, or :data:`AUTO_N_INIT` for ``"auto"`` (fit_em takes more on small data)."""
        return AUTO_N_INIT if self.auto_starts else int(self.n_init)

    @property
    def auto_starts(self) -> bool:
        """Whether ``n_init="auto"`` (starts, then split-and-merge moves on small data)."""
        return isinstance(self.n_init, str)

    @property
    def has_full_start(self) -> bool:
        """Whether means and precisions are both given (nothing to initialise from data)."""
        return self.means_init is not None and self.precisions_init is not None


__all__ = ["EMOptions", "MixtureSpec", "Standardization"]
