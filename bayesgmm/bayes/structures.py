"""The PyMC variables of each covariance structure, in one table keyed by structure class.

The registry (:mod:`bayesgmm.core.covariance`) holds the structures' data and NumPy maths
and knows nothing of PyMC; this module is the Bayesian layer's side of it.
:data:`PYMC_COVARIANCES` maps a structure class to its :class:`PyMCCovariances`: how to create
the working-scale covariance variables in the current model, and their values at given
covariances (an initial point). :func:`covariance_variables` and
:func:`covariance_initial_values` look a structure up along its class's MRO, so a subclass of
a registered structure inherits its parent's variables; a genuinely new structure registers
its own with :func:`register_pymc_covariances`. :func:`bayesgmm.bayes.model.build_model` and
:func:`~bayesgmm.bayes.model.initial_point` call them.

=============  ==================================================================
structure      variables
=============  ==================================================================
``full``       ``covariances_z`` (component, feature, feature_bis), Inverse-Wishart
``tied``       ``covariances_z`` (feature, feature_bis), one Inverse-Wishart
``diag``       ``variances_z`` (component, feature), Inverse-Gamma
``spherical``  ``variances_z`` (component), Inverse-Gamma
``EII`` ...    volumes, shapes, orientations: :mod:`bayesgmm.bayes.eigen_structures`
=============  ==================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform
from scipy import stats

from bayesgmm.core.covariance import CovarianceStructure, Decomposed, Diag, Full, Spherical, Tied
from bayesgmm.core.priors import MixturePrior

#: The hierarchical prior's learned covariance scale ``Psi`` (working scale) in the model.
SCALE_NAME = "covariance_scale_z"


class SPDCholeskyTransform(Transform):
    """Unconstrained vector of length ``d(d+1)/2`` <-> symmetric positive definite matrix.

    ``y`` fills the lower triangle of ``L`` row by row (``numpy.tril_indices``) with the
    diagonal exponentiated, and ``Sigma = L L^T``. The log-Jacobian of ``y -> Sigma`` is
    ``d log 2 + sum_i (d - i + 2) log L_ii`` (``i`` 1-indexed), so densities stay with
    respect to ``Sigma`` itself. Batched over leading dimensions.
    """

    name = "spdcholesky"
    ndim_supp = 2

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        rows, cols = np.tril_indices(n_features)
        self._rows, self._cols = rows, cols
        self._diag = np.flatnonzero(rows == cols)
        self._off = np.flatnonzero(rows != cols)

    def _cholesky(self, value):
        value = pt.as_tensor(value)
        d = self.n_features
        chol = pt.zeros((*value.shape[:-1], d, d))
        chol = pt.set_subtensor(
            chol[..., self._rows[self._off], self._cols[self._off]], value[..., self._off]
        )
        diag = np.arange(d)
        return pt.set_subtensor(chol[..., diag, diag], pt.exp(value[..., self._diag]))

    def backward(self, value, *inputs):
        chol = self._cholesky(value)
        # lets PyTensor's ``cholesky_ldotlt`` rewrite cholesky(L L^T) to L (the diagonal is
        # positive); :mod:`bayesgmm.bayes.compiled` applies it before differentiating
        chol.tag.lower_triangular = True
        return chol @ chol.mT

    def forward(self, value, *inputs):
        chol = pt.linalg.cholesky(pt.as_tensor(value))
        packed = chol[..., self._rows, self._cols]
        return pt.set_subtensor(packed[..., self._diag], pt.log(packed[..., self._diag]))

    def log_jac_det(self, value, *inputs):
        value = pt.as_tensor(value)
        d = self.n_features
        powers = d - np.arange(d) + 1.0
        return d * np.log(2.0) + (powers * value[..., self._diag]).sum(axis=-1)


def inverse_wishart_logp(value, dof, scale):
    """Inverse-Wishart log-density of ``value`` (shape (..., d, d)) w.r.t. the matrix itself.

    Returns a tensor of shape (...).
    """
    d = value.shape[-1]
    chol = pt.linalg.cholesky(value)
    scale_chol = pt.linalg.cholesky(scale)
    logdet = 2.0 * pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    logdet_scale = 2.0 * pt.log(pt.diagonal(scale_chol, axis1=-2, axis2=-1)).sum(axis=-1)
    whitened = pt.linalg.solve_triangular(
        chol, pt.broadcast_to(scale_chol, value.shape), lower=True
    )
    trace = pt.sqr(whitened).sum(axis=(-2, -1))
    half_dof = 0.5 * dof
    log_multigamma = 0.25 * d * (d - 1) * np.log(np.pi) + pt.gammaln(
        half_dof[..., None] + 0.5 * (1 - pt.arange(1, d + 1))
    ).sum(axis=-1)
    return (
        half_dof * logdet_scale
        - half_dof * d * np.log(2.0)
        - log_multigamma
        - 0.5 * (dof + d + 1.0) * logdet
        - 0.5 * trace
    )


def _inverse_wishart_random(dof, scale, rng=None, size=None):
    d = np.shape(scale)[-1]
    size = tuple(size or ())
    draws = stats.invwishart.rvs(
        df=float(np.ravel(dof)[0]),
        scale=np.reshape(scale, (-1, d, d))[0],
        size=int(np.prod(size)),
        random_state=rng,
    )
    return np.reshape(draws, (*size, d, d))


def _inverse_wishart_mode(rv, size, dof, scale):
    d = scale.shape[-1]
    return pt.broadcast_to(scale / (dof + d + 1.0), rv.shape)


def _flat_spd_logp(value, *inputs):
    return pt.zeros(value.shape[:-2])


def wishart_logp(value, dof, rate):
    """Wishart log-density of ``value`` (d, d) w.r.t. the matrix itself: ``Wishart(dof,
    rate^-1)``, ``∝ |value|^((dof - d - 1) / 2) exp(-tr(rate value) / 2)``."""
    d = value.shape[-1]
    chol = pt.linalg.cholesky(value)
    rate_chol = pt.linalg.cholesky(rate)
    logdet = 2.0 * pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    logdet_rate = 2.0 * pt.log(pt.diagonal(rate_chol, axis1=-2, axis2=-1)).sum(axis=-1)
    trace = (rate * value).sum(axis=(-2, -1))
    half_dof = 0.5 * dof
    log_multigamma = 0.25 * d * (d - 1) * np.log(np.pi) + pt.gammaln(
        half_dof[..., None] + 0.5 * (1 - pt.arange(1, d + 1))
    ).sum(axis=-1)
    return (
        0.5 * (dof - d - 1.0) * logdet
        - 0.5 * trace
        + half_dof * logdet_rate
        - half_dof * d * np.log(2.0)
        - log_multigamma
    )


def _wishart_random(dof, rate, rng=None, size=None):
    d = np.shape(rate)[-1]
    size = tuple(size or ())
    draws = stats.wishart.rvs(
        df=float(np.ravel(dof)[0]),
        scale=np.linalg.inv(np.reshape(rate, (-1, d, d))[0]),
        size=int(np.prod(size)) or 1,
        random_state=rng,
    )
    return np.reshape(draws, (*size, d, d))


def _wishart_mean(rv, size, dof, rate):
    return pt.broadcast_to(dof * pt.linalg.inv(rate), rv.shape)


def wishart_scale(dof, rate, n_features: int):
    """The learned Inverse-Wishart scale ``covariance_scale_z ~ Wishart(dof, rate^-1)``.

    The hierarchical prior's ``Psi`` (:class:`~bayesgmm.core.priors.HierarchicalPrior`) on
    the working scale, (feature, feature_bis). Like the covariances it moves in the
    unconstrained Cholesky space of :class:`SPDCholeskyTransform` (lower factor, log
    diagonal), with its density w.r.t. the matrix, so ``find_MAP`` without the Jacobian
    maximises the objective of MAP-EM's ECM.
    """
    return pm.CustomDist(
        SCALE_NAME,
        dof,
        rate,
        logp=wishart_logp,
        random=_wishart_random,
        support_point=_wishart_mean,
        signature="(),(d,d)->(d,d)",
        transform=SPDCholeskyTransform(n_features),
        shape=(n_features, n_features),
        dims=("feature", "feature_bis"),
    )


def inverse_wishart_covariances(
    prior: MixturePrior | None, batch: tuple[int, ...], n_features: int, n_components: int
):
    """Inverse-Wishart (or flat) SPD matrices ``covariances_z`` in the current model.

    Parameters
    ----------
    prior : MixturePrior, PriorInputs or None
        Working-scale prior (``None``: flat, for ``find_MAP`` only).
    batch : tuple of int
        ``(K,)`` for one matrix per component, ``()`` for a shared one.
    n_features, n_components : int

    Returns
    -------
    covariances : tensor of shape (*batch, d, d)
    cholesky : tensor of shape (n_components, d, d)
    """
    dims = ("component",) * len(batch) + ("feature", "feature_bis")
    shape = (*batch, n_features, n_features)
    transform = SPDCholeskyTransform(n_features)
    if prior is None:
        cov = pm.CustomDist(
            "covariances_z",
            np.eye(n_features),
            logp=_flat_spd_logp,
            support_point=lambda rv, size, reference: pt.broadcast_to(reference, rv.shape),
            signature="(d,d)->(d,d)",
            transform=transform,
            shape=shape,
            dims=dims,
        )
    else:
        cov = pm.CustomDist(
            "covariances_z",
            prior.degrees_of_freedom,
            prior.covariance_prior,
            logp=inverse_wishart_logp,
            random=_inverse_wishart_random,
            support_point=_inverse_wishart_mode,
            signature="(),(d,d)->(d,d)",
            transform=transform,
            shape=shape,
            dims=dims,
        )
    chol = pt.linalg.cholesky(cov)
    return cov, pt.broadcast_to(chol, (n_components, n_features, n_features))


def inverse_gamma_covariances(
    prior: MixturePrior | None,
    structure: CovarianceStructure,
    n_components: int,
    n_features: int,
):
    """Inverse-Gamma (or flat) variances ``variances_z`` and the diagonal covariances.

    The variances have the structure's layout ((K, d) diag, (K,) spherical).

    Returns
    -------
    covariances : tensor of shape (n_components, d, d)
    cholesky : tensor of shape (n_components, d, d)
    """
    shape = structure.shape(n_components, n_features)
    dims = ("component", "feature")[: len(shape)]
    if prior is None:
        var = pm.HalfFlat("variances_z", shape=shape, dims=dims)
    else:
        var = pm.InverseGamma(
            "variances_z",
            alpha=0.5 * prior.degrees_of_freedom,
            beta=0.5 * prior.covariance_prior,
            shape=shape,
            dims=dims,
        )
    sd = pt.sqrt(var)
    if len(shape) == 1:  # one variance per component, the same in every direction
        var, sd = var[:, None], sd[:, None]
    eye = pt.eye(n_features)
    return var[:, :, None] * eye, sd[:, :, None] * eye


@dataclass(frozen=True)
class PyMCCovariances:
    """How one covariance structure appears in the PyMC model.

    Attributes
    ----------
    variables : callable
        ``variables(structure, prior_z, n_components, n_features) -> (covariances,
        cholesky)``: creates the working-scale covariance variables in the current model
        (``prior_z`` a :class:`~bayesgmm.core.priors.MixturePrior` or the model's
        ``PriorInputs``, or ``None`` for flat priors) and returns the covariances, shape
        (*batch, d, d), and lower Cholesky factors broadcast to every component, shape
        (n_components, d, d).
    initial_values : callable
        ``initial_values(structure, covariances) -> {name: value}``: the values of those
        variables at working-scale ``covariances`` (the structure's layout).
    """

    variables: Callable[..., tuple[pt.TensorVariable, pt.TensorVariable]]
    initial_values: Callable[[CovarianceStructure, np.ndarray], dict[str, np.ndarray]]


def _matrix_variables(structure, prior_z, n_components, n_features):
    return inverse_wishart_covariances(
        prior_z, structure.batch(n_components), n_features, n_components
    )


def _variance_variables(structure, prior_z, n_components, n_features):
    return inverse_gamma_covariances(prior_z, structure, n_components, n_features)


_INVERSE_WISHART = PyMCCovariances(
    _matrix_variables, lambda structure, covariances: {"covariances_z": covariances}
)
_INVERSE_GAMMA = PyMCCovariances(
    _variance_variables, lambda structure, covariances: {"variances_z": covariances}
)


def _unregistered(structure, *args):
    raise ValueError(
        f"covariance structure {structure.name!r}: its PyMC variables are registered by "
        "bayesgmm.bayes.eigen_structures; import it (bayesgmm.bayes.model does) first"
    )


#: mclust's ten decomposed models subclass ``Full`` but must not inherit its variables: this
#: entry stands in until :mod:`bayesgmm.bayes.eigen_structures` registers theirs.
_DECOMPOSED_PLACEHOLDER = PyMCCovariances(_unregistered, _unregistered)

#: Structure class -> its PyMC variables, looked up along the MRO (:func:`pymc_covariances`).
PYMC_COVARIANCES: dict[type[CovarianceStructure], PyMCCovariances] = {
    Full: _INVERSE_WISHART,
    Tied: _INVERSE_WISHART,
    Diag: _INVERSE_GAMMA,
    Spherical: _INVERSE_GAMMA,
    Decomposed: _DECOMPOSED_PLACEHOLDER,
}


def register_pymc_covariances(
    structure: type[CovarianceStructure], covariances: PyMCCovariances
) -> None:
    """Give ``structure`` (and its subclasses) its PyMC covariance variables."""
    if not (isinstance(structure, type) and issubclass(structure, CovarianceStructure)):
        raise TypeError(f"structure must be a CovarianceStructure class, got {structure!r}")
    PYMC_COVARIANCES[structure] = covariances


def pymc_covariances(structure: CovarianceStructure) -> PyMCCovariances:
    """The entry of the nearest class on ``structure``'s MRO in :data:`PYMC_COVARIANCES`.

    Raises
    ------
    ValueError
        If no class of the structure has PyMC variables (naming the remedy).
    """
    for cls in type(structure).__mro__:
        if cls in PYMC_COVARIANCES:
            return PYMC_COVARIANCES[cls]
    raise ValueError(
        f"covariance structure {structure.name!r} has no PyMC variables: register them with "
        "bayesgmm.bayes.structures.register_pymc_covariances, or subclass a structure that "
        f"has them ({sorted(cls.__name__ for cls in PYMC_COVARIANCES)})"
    )


def covariance_variables(
    structure: CovarianceStructure,
    prior_z: MixturePrior | None,
    n_components: int,
    n_features: int,
):
    """Create ``structure``'s working-scale covariance variables in the current PyMC model.

    Returns
    -------
    covariances : tensor of shape (*batch, d, d)
    cholesky : tensor of shape (n_components, d, d)
        Lower Cholesky factors broadcast to every component.
    """
    return pymc_covariances(structure).variables(structure, prior_z, n_components, n_features)


def covariance_initial_values(
    structure: CovarianceStructure, covariances: np.ndarray
) -> dict[str, np.ndarray]:
    """Values of ``structure``'s PyMC covariance variables at working-scale ``covariances``."""
    return pymc_covariances(structure).initial_values(structure, covariances)


__all__ = [
    "PYMC_COVARIANCES",
    "SCALE_NAME",
    "PyMCCovariances",
    "SPDCholeskyTransform",
    "covariance_initial_values",
    "covariance_variables",
    "inverse_gamma_covariances",
    "inverse_wishart_covariances",
    "inverse_wishart_logp",
    "pymc_covariances",
    "register_pymc_covariances",
    "wishart_logp",
    "wishart_scale",
]
