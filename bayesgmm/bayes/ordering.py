"""Identifiability constraints on the component means of the mixture model.

In one dimension the means are kept in increasing order (:class:`OrderedComponents`). With an
identifying basis (``order_basis`` of :func:`bayesgmm.bayes.model.build_model`, d > 1, opt-in)
the free variable ``means_coords_z`` holds the means in an orthogonal basis ``Q`` whose first
vector ``v`` they are ordered along (:class:`OrderedFirstCoordinate`,
:func:`ordered_projection_means`), with the means prior's density at ``mu = c Q'``
(:func:`rotated_mvnormal_logp`).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform

#: Name of the data container of the identifying basis (``build_model(order_basis=...)``).
ORDER_BASIS = "order_basis"
#: Name of the free variable of an ordered-projection model: the means in that basis.
ORDERED_MEANS = "means_coords_z"


class OrderedComponents(Transform):
    """Means of shape (n_components, 1) kept in increasing order along the component axis.

    ``y_0 = mu_0``, ``y_k = log(mu_k - mu_{k-1})``. The log-Jacobian is returned per
    component (``0, y_1, ..., y_{K-1}``), matching the shape of a batched MvNormal logp.
    """

    name = "ordered"
    ndim_supp = 2

    def backward(self, value, *inputs):
        value = pt.as_tensor(value)
        steps = pt.concatenate([value[:1], pt.exp(value[1:])], axis=0)
        return pt.cumsum(steps, axis=0)

    def forward(self, value, *inputs):
        value = pt.as_tensor(value)
        return pt.concatenate([value[:1], pt.log(value[1:] - value[:-1])], axis=0)

    def log_jac_det(self, value, *inputs):
        value = pt.as_tensor(value)
        return pt.concatenate([pt.zeros_like(value[:1, 0]), value[1:, 0]])


class OrderedFirstCoordinate(Transform):
    """Points of shape (n_components, d) whose first coordinates increase along the components.

    ``y_{0,0} = c_{0,0}``, ``y_{k,0} = log(c_{k,0} - c_{k-1,0})`` (the ordered transform of
    :class:`OrderedComponents` on the first column), ``y_{k,j} = c_{k,j}`` for ``j >= 1``.
    The log-Jacobian is returned per component (``0, y_{1,0}, ..., y_{K-1,0}``), matching
    the shape of a batched MvNormal logp. With the means written in an orthogonal basis
    whose first vector is ``v`` (``c = mu Q``, see ``order_basis`` of
    :func:`~bayesgmm.bayes.model.build_model`), it orders the components along ``v``.
    """

    name = "orderedfirst"
    ndim_supp = 2

    def backward(self, value, *inputs):
        value = pt.as_tensor(value)
        steps = pt.concatenate([value[:1, 0], pt.exp(value[1:, 0])])
        return pt.concatenate([pt.cumsum(steps)[:, None], value[:, 1:]], axis=1)

    def forward(self, value, *inputs):
        value = pt.as_tensor(value)
        first = value[:, 0]
        ordered = pt.concatenate([first[:1], pt.log(first[1:] - first[:-1])])
        return pt.concatenate([ordered[:, None], value[:, 1:]], axis=1)

    def log_jac_det(self, value, *inputs):
        value = pt.as_tensor(value)
        return pt.concatenate([pt.zeros_like(value[:1, 0]), value[1:, 0]])


def rotated_mvnormal_logp(value, mean, chol, basis):
    """``log N(value Q' | mean, chol chol')`` per component: the means prior at ``mu = c Q'``.

    ``value`` (K, d) are the means in the orthogonal basis ``Q``; ``mean`` (d,), ``chol``
    (K, d, d) lower Cholesky factors. ``|det Q| = 1``, so no Jacobian. Returns (K,).
    """
    diff = (basis @ value[..., None])[..., 0] - mean  # basis may come batched (K, d, d)
    d = diff.shape[-1]
    chol_inv = pt.linalg.solve_triangular(chol, pt.broadcast_to(pt.eye(d), chol.shape), lower=True)
    whitened = (chol_inv * diff[..., None, :]).sum(axis=-1)
    half_logdet = pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    return -0.5 * d * np.log(2.0 * np.pi) - half_logdet - 0.5 * pt.sqr(whitened).sum(-1)


def _ordered_support_point(rv, size, *inputs):
    """A point of the ordered region: first coordinates ``0, 1, ..., K - 1``, the rest 0."""
    point = pt.zeros(rv.shape)
    return pt.set_subtensor(point[:, 0], pt.arange(rv.shape[0]).astype(point.dtype))


def ordered_projection_means(hyper, chol, basis, n_components: int, n_features: int):
    """Working-scale means constrained to ``mu_1 . v < ... < mu_K . v`` (``v = Q[:, 0]``).

    The free variable ``means_coords_z`` (component, feature) holds the means in the
    orthogonal basis ``Q`` (``pm.Data`` ``order_basis``), ``c_k = Q' mu_k``, with the means
    prior's density at ``mu_k = Q c_k`` (``|det Q| = 1``: the same density), and
    :class:`OrderedFirstCoordinate` orders its first coordinate ``mu_k . v``;
    ``means_z = c Q'`` is a deterministic. The density on the ordered region is the
    unconstrained model's; for a label-symmetric posterior that region holds one of the
    ``K!`` labellings of every mixture, so label-free quantities keep their distribution.
    """
    basis = pm.Data(ORDER_BASIS, basis, dims=("feature", "feature_bis"))
    shape, dims = (n_components, n_features), ("component", "feature")
    transform = OrderedFirstCoordinate()
    if hyper is None:
        coords = pm.Flat(ORDERED_MEANS, shape=shape, dims=dims, transform=transform)
    else:
        coords = pm.CustomDist(
            ORDERED_MEANS,
            hyper.mean_prior,
            chol / pt.sqrt(hyper.mean_precision),
            basis,
            logp=rotated_mvnormal_logp,
            support_point=_ordered_support_point,
            signature="(d),(d,d),(d,d)->(d)",
            transform=transform,
            shape=shape,
            dims=dims,
        )
    return pm.Deterministic("means_z", coords @ basis.T, dims=dims)


def check_order_basis(basis, n_features: int, n_components: int) -> np.ndarray:
    """``basis`` as an orthogonal (d, d) array, or ``ValueError`` naming the problem."""
    if n_features == 1 or n_components == 1:
        raise ValueError(
            "order_basis orders the means of K > 1 components in d > 1 dimensions; in one "
            "dimension the means are always ordered: pass order_basis=None"
        )
    basis = np.asarray(basis, dtype=np.float64)
    if basis.shape != (n_features, n_features):
        raise ValueError(
            f"order_basis must have shape ({n_features}, {n_features}), got {basis.shape}"
        )
    if not np.allclose(basis.T @ basis, np.eye(n_features), atol=1e-8):
        raise ValueError(
            "order_basis must be orthogonal (e.g. ProjectionOrder.basis()); got a matrix "
            "whose columns are not orthonormal"
        )
    return basis


__all__ = [
    "ORDERED_MEANS",
    "ORDER_BASIS",
    "OrderedComponents",
    "OrderedFirstCoordinate",
    "check_order_basis",
    "ordered_projection_means",
    "rotated_mvnormal_logp",
]
