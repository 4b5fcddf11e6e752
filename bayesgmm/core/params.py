"""Point estimates of a Gaussian mixture as one immutable, validated record.

``MixtureParams`` is what the EM engine produces, what the PyMC model is started
from, and what the relabelling of posterior draws aligns to. Covariances are stored
in scikit-learn's layout of their structure (:mod:`bayesgmm.core.covariance`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesgmm.core.covariance import CovarianceStructure, CovarianceType, get_structure

#: Tolerance on ``sum(weights) == 1``.
WEIGHTS_ATOL = 1e-6


@dataclass(frozen=True)
class MixtureParams:
    """Weights, means and covariances of a K-component Gaussian mixture.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Mixing proportions ``alpha_k``; non-negative, summing to one.
    means : ndarray of shape (n_components, n_features)
        Component means ``mu_k``.
    covariances : ndarray
        Component covariances ``Sigma_k`` in the layout of ``covariance_type``:
        (K, d, d) full, (d, d) tied, (K, d) diag, (K,) spherical.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Name of a registered covariance structure.

    Raises
    ------
    ValueError
        Unknown structure, inconsistent shapes, non-finite values, weights that are
        negative or do not sum to one, or covariances that are not positive definite
        (:class:`~bayesgmm.core.exceptions.SingularCovarianceError`).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: CovarianceType = "full"
    precisions_cholesky: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        structure = get_structure(self.covariance_type)
        object.__setattr__(self, "covariance_type", structure.name)
        arrays = {}
        for name in ("weights", "means", "covariances"):
            array = np.array(getattr(self, name), dtype=np.float64)
            if not np.all(np.isfinite(array)):
                raise ValueError(f"MixtureParams.{name} contains NaN or infinity")
            arrays[name] = array
        weights, means = arrays["weights"], arrays["means"]
        if weights.ndim != 1 or weights.size == 0:
            raise ValueError(
                f"MixtureParams.weights must have shape (n_components,), got {weights.shape}"
            )
        n_components = weights.shape[0]
        if means.ndim != 2 or means.shape[0] != n_components or means.shape[1] == 0:
            raise ValueError(
                f"MixtureParams.means must have shape (n_components={n_components}, n_features), "
                f"got {means.shape}"
            )
        expected = structure.shape(n_components, means.shape[1])
        if arrays["covariances"].shape != expected:
            raise ValueError(
                f"MixtureParams.covariances for covariance_type={structure.name!r} with "
                f"{n_components} components and {means.shape[1]} features must have shape "
                f"{expected}, got {arrays['covariances'].shape}"
            )
        if np.any(weights < 0) or abs(weights.sum() - 1.0) > WEIGHTS_ATOL:
            raise ValueError(
                f"MixtureParams.weights must be non-negative and sum to 1, got sum "
                f"{weights.sum():.6g} and minimum {weights.min():.6g}"
            )
        for name, array in arrays.items():
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        prec_chol = structure.precisions_cholesky(self.covariances)
        prec_chol.setflags(write=False)
        object.__setattr__(self, "precisions_cholesky", prec_chol)

    def __reduce__(self):
        """Pickle the defining fields only: unpickling rebuilds (and re-checks) the record, so
        ``precisions_cholesky`` has the memory layout of a fresh one and densities computed
        from a copy equal the original's bit for bit."""
        return (
            type(self),
            (self.weights, self.means, self.covariances, self.covariance_type),
        )

    @property
    def structure(self) -> CovarianceStructure:
        """The covariance structure object (:func:`bayesgmm.core.covariance.get_structure`)."""
        return get_structure(self.covariance_type)

    @property
    def n_components(self) -> int:
        """Number of mixture components K."""
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        """Dimension d of the data."""
        return self.means.shape[1]

    def full_covariances(self) -> np.ndarray:
        """Covariances expanded to full matrices, shape (n_components, d, d)."""
        return self.structure.expand(self.covariances, self.n_components, self.n_features)

    def precisions(self) -> np.ndarray:
        """Inverses of the covariances, in the covariance layout."""
        return self.structure.precisions(self.precisions_cholesky)

    def permuted(self, order: np.ndarray) -> MixtureParams:
        """Return the same mixture with components reordered as ``order``.

        Parameters
        ----------
        order : ndarray of shape (n_components,)
            New position ``i`` holds old component ``order[i]``.
        """
        order = np.asarray(order)
        covariances = self.structure.permute(self.covariances, order)
        return MixtureParams(
            self.weights[order], self.means[order], covariances, self.covariance_type
        )

    def sorted_by_mean(self) -> MixtureParams:
        """Components ordered by their first mean coordinate (the 1-D identifiability rule)."""
        return self.permuted(np.argsort(self.means[:, 0], kind="stable"))

    def rescaled(self, shift: np.ndarray, scale: np.ndarray) -> MixtureParams:
        """Parameters of the mixture of ``shift + scale * x`` when ``x`` follows ``self``.

        Parameters
        ----------
        shift, scale : ndarray of shape (n_features,)
        """
        return MixtureParams(
            self.weights,
            shift + scale * self.means,
            self.structure.rescale(self.covariances, scale),
            self.covariance_type,
        )

    def to_dict(self) -> dict:
        """JSON-serialisable representation."""
        return {
            "covariance_type": self.covariance_type,
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> MixtureParams:
        """Inverse of :meth:`to_dict`."""
        return cls(
            np.asarray(data["weights"]),
            np.asarray(data["means"]),
            np.asarray(data["covariances"]),
            data["covariance_type"],
        )


__all__ = ["MixtureParams"]
