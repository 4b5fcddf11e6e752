"""Point estimates of a Gaussian mixture as one immutable record.

``MixtureParams`` is what the EM engine produces, what the PyMC model is started
from, and what the relabelling of posterior draws aligns to.  Covariances are
stored in scikit-learn's layout for each covariance type:

============  =========================
type          ``covariances`` shape
============  =========================
full          (n_components, d, d)
tied          (d, d)
diag          (n_components, d)
spherical     (n_components,)
============  =========================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesgmm._types import CovarianceType


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
        Component covariances ``Sigma_k`` in the layout of ``covariance_type``
        (see the module docstring).
    covariance_type : {"full", "tied", "diag", "spherical"}
        Structure of the covariances.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: CovarianceType = "full"
    precisions_cholesky: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from bayesgmm.em.gaussian import compute_precision_cholesky

        for name in ("weights", "means", "covariances"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        prec_chol = compute_precision_cholesky(self.covariances, self.covariance_type)
        prec_chol.setflags(write=False)
        object.__setattr__(self, "precisions_cholesky", prec_chol)

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
        return expand_covariances(
            self.covariances, self.covariance_type, self.n_components, self.n_features
        )

    def permuted(self, order: np.ndarray) -> MixtureParams:
        """Return the same mixture with components reordered as ``order``.

        Parameters
        ----------
        order : ndarray of shape (n_components,)
            New position ``i`` holds old component ``order[i]``.
        """
        order = np.asarray(order)
        tied = self.covariance_type == "tied"
        covariances = self.covariances if tied else self.covariances[order]
        return MixtureParams(
            self.weights[order], self.means[order], covariances, self.covariance_type
        )

    def sorted_by_mean(self) -> MixtureParams:
        """Components ordered by their first mean coordinate (the 1-D identifiability rule)."""
        return self.permuted(np.argsort(self.means[:, 0], kind="stable"))

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


def expand_covariances(
    covariances: np.ndarray, covariance_type: CovarianceType, n_components: int, n_features: int
) -> np.ndarray:
    """Expand covariances of any type to full matrices.

    Parameters
    ----------
    covariances : ndarray
        Covariances in the layout of ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int
        Target sizes (``tied`` has no component axis, ``spherical`` no feature axis).

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)
    """
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return covariances.copy()
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features)).copy()
    if covariance_type == "diag":
        return covariances[:, :, None] * np.eye(n_features)[None]
    return covariances[:, None, None] * np.eye(n_features)[None]


__all__ = ["MixtureParams", "expand_covariances"]
