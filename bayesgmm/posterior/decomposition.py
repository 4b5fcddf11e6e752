"""Volumes, shapes and orientations of mclust's models, per posterior draw (identified).

mclust writes a covariance as ``Sigma_k = lambda_k D_k A_k D_k^T``: the volume ``lambda_k =
det(Sigma_k)^(1/d)``, the diagonal shape ``A_k`` (``det A_k = 1``) and the orientation
``D_k`` (orthogonal). The sampler's own orientation and shape variables
(:mod:`bayesgmm.bayes.eigen_structures`) are identified only up to the signs of the
orientation's columns and a common order of columns and shapes, so the fit reports and
diagnoses this canonical form of every draw's covariances instead (user's scale):

``volumes`` (chain, draw, component)
    ``det(Sigma_k)^(1/d)``.
``shapes`` (chain, draw, component, axis)
    Diagonal models (EII, EEI, VEI, EVI): ``diag(Sigma_k) / lambda_k``, axis ``j`` being
    feature ``j``. The others: the eigenvalues of ``Sigma_k / lambda_k`` in decreasing
    order.
``orientations`` (chain, draw, component, feature, axis)
    The others only: the unit eigenvectors of ``Sigma_k``, column ``j`` that of shape
    ``j``, each with the sign that makes it point the way of the MAP's (a nonnegative inner
    product; the MAP's own columns have their largest entry positive). Where two shapes of
    a component are nearly equal the two axes are not determined by the data, and their
    columns may swap between draws.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayesgmm.core.covariance import Decomposed, get_structure

#: The variables :func:`with_decomposition` adds (those a model has).
DECOMPOSITION_VARS: tuple[str, ...] = ("volumes", "shapes", "orientations")


def _signs(vectors: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Per column of ``vectors`` (..., d, d), +1 or -1 (see the module docstring)."""
    if reference is None:
        rows = np.argmax(np.abs(vectors), axis=-2)
        pivot = np.take_along_axis(vectors, rows[..., None, :], axis=-2)[..., 0, :]
    else:
        pivot = np.sum(vectors * reference, axis=-2)
    return np.where(pivot < 0, -1.0, 1.0)


def canonical_decomposition(
    covariances: np.ndarray, diagonal: bool, reference: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Volumes, shapes and orientations of covariance matrices.

    Parameters
    ----------
    covariances : ndarray of shape (..., d, d)
        Symmetric positive definite.
    diagonal : bool
        A diagonal model (shapes in feature order, no orientation).
    reference : ndarray of shape (..., d, d), optional
        Orientations whose signs the result's columns follow (broadcast against
        ``covariances``); without it, each column's largest entry is positive.

    Returns
    -------
    volumes : ndarray of shape (...)
    shapes : ndarray of shape (..., d)
    orientations : ndarray of shape (..., d, d) or None
        ``None`` for a diagonal model.
    """
    covariances = np.asarray(covariances, dtype=np.float64)
    d = covariances.shape[-1]
    volumes = np.exp(np.linalg.slogdet(covariances)[1] / d)
    if diagonal:
        return volumes, np.diagonal(covariances, axis1=-2, axis2=-1) / volumes[..., None], None
    values, vectors = np.linalg.eigh(covariances)
    values, vectors = values[..., ::-1], vectors[..., ::-1]
    vectors = vectors * _signs(vectors, reference)[..., None, :]
    return volumes, values / volumes[..., None], vectors


def is_diagonal(covariance_type: str, n_features: int) -> bool:
    """Whether a decomposed model's orientation is the identity (or ``d = 1``)."""
    return n_features == 1 or get_structure(covariance_type).mclust_name[2] == "I"


def with_decomposition(posterior: xr.Dataset, reference_covariances: np.ndarray, covariance_type):
    """``posterior`` with :data:`DECOMPOSITION_VARS` added for mclust's decomposed models.

    Parameters
    ----------
    posterior : xarray.Dataset
        With ``covariances`` (chain, draw, component, feature, feature_bis), user's scale.
    reference_covariances : ndarray of shape (n_components, d, d)
        The MAP's covariances (the labelling of the draws), whose orientations fix the
        signs.
    covariance_type : str
        The model; other structures' posteriors are returned unchanged.
    """
    if not isinstance(get_structure(covariance_type), Decomposed):
        return posterior
    covs = posterior["covariances"].transpose(
        "chain", "draw", "component", "feature", "feature_bis"
    )
    d = covs.shape[-1]
    diagonal = is_diagonal(covariance_type, d)
    _, _, reference = canonical_decomposition(reference_covariances, diagonal)
    volumes, shapes, orientations = canonical_decomposition(covs.values, diagonal, reference)
    added = {
        "volumes": (("chain", "draw", "component"), volumes),
        "shapes": (("chain", "draw", "component", "axis"), shapes),
    }
    if orientations is not None:
        added["orientations"] = (("chain", "draw", "component", "feature", "axis"), orientations)
    return posterior.assign(added).assign_coords(axis=np.arange(d))


__all__ = [
    "DECOMPOSITION_VARS",
    "canonical_decomposition",
    "is_diagonal",
    "with_decomposition",
]
