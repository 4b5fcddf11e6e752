"""The model specification every fitting path reads, built once from validated data.

:class:`MixtureSpec` fixes what the model is: the number of components, the covariance
structure (an object of :mod:`bayesgmm.core.covariance`), the resolved prior and the
standardisation the sampler works in. The EM path (:mod:`bayesgmm.em`), the PyMC model
(:func:`bayesgmm.bayes.model.build_model`), :func:`bayesgmm.selection.compare.compare`, the command
line and the report all consume the same spec, so no layer re-validates the data,
re-resolves the prior or recomputes the standardisation.

:class:`bayesgmm.em.options.EMOptions`, the record of EM settings, belongs to the EM layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from bayesgmm.core.covariance import CovarianceStructure, get_structure
from bayesgmm.core.missing import has_missing
from bayesgmm.core.noise import NoiseComponent
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior, resolve_prior, sample_moments


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
        """The same prior expressed on the working scale (:meth:`MixturePrior.to_scale`)."""
        return prior.to_scale(self.location, self.scale)

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


__all__ = ["MixtureSpec", "Standardization"]
