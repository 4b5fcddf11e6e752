"""PyMC variables of mclust's ten models ``Sigma_k = lambda_k D_k A_k D_k^T`` (NUTS, VI).

The ten structures of :mod:`bayesgmm.core.covariance.eigen` (EII, EEI, VEI, EVI, VEE, EVE,
VVE, EEV, VEV, EVV; subclasses of ``Decomposed``) get their variables in
:data:`bayesgmm.bayes.structures.PYMC_COVARIANCES` here, one entry under ``Decomposed``
(replacing the placeholder that keeps them from inheriting ``full``'s);
:mod:`bayesgmm.bayes.model` imports this module. Everything is on the working scale
(:mod:`bayesgmm.bayes.model`); ``E`` parts are one variable shared by the components,
``V`` parts one per component.

Parametrisation
    ``log_volume_z`` () or ``log_volumes_z`` (component)
        ``log lambda``, unconstrained (``lambda = det(Sigma_k)^(1/d)``).
    ``log_shape_z`` (shape_contrast) or ``log_shapes_z`` (component, shape_contrast)
        ``d - 1`` coordinates ``c`` of ``log A = H c`` in an orthonormal basis ``H`` of
        the vectors summing to zero (:func:`zero_sum_basis`), so ``det A = 1``.
    Diagonal family (EII, EEI, VEI, EVI)
        ``Sigma_k = lambda_k diag(A_k)``; EII has no shape (``A = I``).
    Shape and orientation together (VEE, EVV)
        Where shape and orientation are shared alike (both E or both V) they form one
        matrix ``C = D A D^T`` with ``det C = 1``, parametrised by its Cholesky factor:
        ``L`` lower triangular with ``log diag L = H c / 2`` (so ``det L = 1``) and free
        strictly-lower entries ``shape_offdiagonal_z`` (offdiagonal) or
        ``shapes_offdiagonal_z`` (component, offdiagonal); ``Sigma_k = lambda_k L L^T``.
        ``(lambda, c, offdiagonal) -> Sigma`` is one to one: these models need no
        orientation and have no sign or order symmetry.
    Orientation of its own (EVE, VVE: one shared ``D``; EEV, VEV: one ``D_k`` each)
        ``orientation_z`` (feature, feature_bis) or ``orientations_z`` (component, feature,
        feature_bis): an unconstrained matrix ``M`` whose orthogonal factor
        ``Q = M R^-1`` (``M = Q R`` with ``R`` upper triangular with a positive diagonal,
        computed as ``R = chol(M^T M)^T``) is the orientation: ``Sigma_k = Q diag(lambda_k
        A_k) Q^T``. ``M`` has the density ``p(M) = |det M|^a exp(-a ||M||_F^2 / 2) / c_d``
        with ``a`` = :data:`ORIENTATION_CONCENTRATION` (``orientation_density``,
        :func:`orientation_log_density`), which depends on ``M`` through ``M^T M`` only:
        ``O M`` has the density of ``M`` for every orthogonal ``O`` and ``Q(O M) = O
        Q(M)``, so ``Q`` is Haar distributed and independent of ``R`` (a parameter
        expansion, as Jauch, Hoff & Dunson 2021's polar expansion). ``p`` is largest at
        every orthogonal ``M`` (the singular values maximise ``a (log s - s^2 / 2)`` at 1),
        so the joint mode over ``M`` is that over ``Q`` and the MAP is unchanged. ``a``
        keeps ``R`` near the identity (singular values ``1 +- 1 / sqrt(2a)``): with ``a =
        1`` NUTS met the funnel of a polar expansion (the angles' scale in ``M`` shrinks
        with ``M``; VEV, d = 2, 2 x 600 draws: 13 divergences) and sampled without any at
        ``a = 10``. The QR factor replaces the polar factor ``M (M^T M)^-1/2`` that Jauch
        et al. use: PyTensor computes ``(M^T M)^-1/2`` through ``eigh``, whose gradient
        divides by differences of eigenvalues (``pytensor/tensor/linalg/decomposition/
        eigen.py``, ``Eigh.pullback``), and every eigenvalue of ``M^T M`` is 1 at the
        mode; the Cholesky factor's gradient is regular there.

Prior
    The ``full`` structure's Normal-Inverse-Wishart prior restricted to the model, as in
    MAP-EM (:mod:`bayesgmm.core.covariance.eigen`): the potential
    ``covariance_prior_density`` adds ``sum_k log InvWishart(Sigma_k | nu0, Psi0)``
    evaluated at the model's covariances, the means are ``N(m0, Sigma_k / kappa0)`` and the
    weights Dirichlet, as for ``full``.
    The prior density of the covariance parameters is therefore
    ``prod_k InvWishart(Sigma_k(theta))`` (times ``p(M)`` for an orientation) with respect
    to Lebesgue measure on the free coordinates above (``log lambda``, ``c``, the
    off-diagonal entries, ``M``); for an orientation, with respect to Haar measure on
    ``Q``. It is proper: the Inverse-Wishart factor vanishes faster than any power as a
    volume, a shape or an off-diagonal entry goes to either end. All variables are
    untransformed, so the log density without Jacobian (``find_MAP``) is the one NUTS
    samples, and its mode over ``(theta, mu, w)`` is MAP-EM's (tests:
    ``tests/test_eigen_bayes.py``). Without a prior (``prior=None``, for ``find_MAP``) the
    potential is left out.

Identifiability
    ``Q`` and ``Q S`` (``S`` a diagonal of signs) give the same covariances, and so do the
    orientation's columns and the shapes permuted together; the raw ``M`` and ``c`` of
    EVE, VVE, EEV and VEV are not identified and chains may settle in different copies.
    They are kept in the posterior but not diagnosed: the fit reports and diagnoses the
    covariances and, per draw, their canonical decomposition
    (:mod:`bayesgmm.posterior.decomposition`: ``volumes``, ``shapes`` in decreasing order,
    ``orientations`` with signs pointing the MAP's way).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import gammaln

from bayesgmm.bayes.structures import (
    PyMCCovariances,
    inverse_wishart_logp,
    register_pymc_covariances,
)
from bayesgmm.core.covariance import CovarianceStructure, Decomposed
from bayesgmm.core.covariance.decomposition import eigh_descending

#: ``a`` of the orientations' density ``|det M|^a exp(-a ||M||^2 / 2)`` (module docstring).
ORIENTATION_CONCENTRATION = 10
#: Potential of the restricted Inverse-Wishart prior, and of the orientations' density.
PRIOR_POTENTIAL = "covariance_prior_density"
ORIENTATION_POTENTIAL = "orientation_density"
#: Named dims of the shape coordinates and of the Cholesky factors' off-diagonal entries.
SHAPE_DIM = "shape_contrast"
OFFDIAGONAL_DIM = "offdiagonal"


def zero_sum_basis(n_features: int) -> np.ndarray:
    """Orthonormal basis of the vectors of length ``d`` summing to zero (Helmert's).

    Returns
    -------
    ndarray of shape (n_features, n_features - 1)
        Column ``j`` is ``(1, ..., 1, -(j + 1), 0, ...) / sqrt((j + 1)(j + 2))``.
    """
    d = n_features
    basis = np.zeros((d, max(d - 1, 0)))
    for j in range(d - 1):
        basis[: j + 1, j] = 1.0
        basis[j + 1, j] = -(j + 1.0)
        basis[:, j] /= np.sqrt((j + 1.0) * (j + 2.0))
    return basis


def orientation_log_normaliser(n_features: int, a: float = ORIENTATION_CONCENTRATION) -> float:
    """``log c_d`` of :func:`orientation_log_density`.

    With ``M = Z / sqrt(a)``, ``c_d = a^-(d^2 + a d)/2 (2 pi)^(d^2/2) E|det Z|^a`` for a
    standard Gaussian ``d x d`` matrix ``Z``, whose ``|det Z|`` is a product of independent
    ``chi_1, ..., chi_d`` (Bartlett): ``E chi_i^a = 2^(a/2) Gamma((i+a)/2) / Gamma(i/2)``.
    """
    d = n_features
    i = np.arange(1, d + 1)
    log_moment = np.sum(0.5 * a * np.log(2.0) + gammaln((i + a) / 2.0) - gammaln(i / 2.0))
    return float(0.5 * d * d * np.log(2.0 * np.pi) - 0.5 * (d * d + a * d) * np.log(a) + log_moment)


def model_letters(structure: CovarianceStructure) -> tuple[str, str, str]:
    """mclust's three letters of ``structure``: volume, shape, orientation."""
    name = structure.mclust_name
    if not isinstance(structure, Decomposed) or name is None or len(name) != 3:
        raise ValueError(f"{structure.name!r} is not one of mclust's decomposed models")
    return name[0], name[1], name[2]


def family(structure: CovarianceStructure, n_features: int) -> str:
    """How the model is parametrised: ``"diagonal"``, ``"cholesky"`` or ``"orientation"``."""
    _, shape, orientation = model_letters(structure)
    if n_features == 1 or orientation == "I":
        return "diagonal"
    return "cholesky" if shape == orientation else "orientation"


def _names(letter: str, singular: str, plural: str) -> str:
    return plural if letter == "V" else singular


def _dims(letter: str, *rest: str) -> tuple[str, ...]:
    return (("component",) if letter == "V" else ()) + rest


def _flat(name, letter, n_components, core_shape, core_dims, initval=None):
    shape = ((n_components,) if letter == "V" else ()) + core_shape
    kwargs = {} if initval is None else {"initval": np.broadcast_to(initval, shape).copy()}
    dims = _dims(letter, *core_dims) or None
    return pm.Flat(name, shape=shape, dims=dims, **kwargs)


def _add_coord(name: str, size: int) -> None:
    model = pm.modelcontext(None)
    if name not in model.coords:
        model.add_coord(name, np.arange(size))


def orientation_log_density(
    M, n_features: int, a: float = ORIENTATION_CONCENTRATION
) -> pt.TensorVariable:
    """``log p(M) = a log|det M| - a ||M||_F^2 / 2 - log c_d`` summed over leading dims.

    ``M`` (..., d, d); ``log|det M|`` is ``sum log diag chol(M^T M)``.
    """
    chol = pt.linalg.cholesky(M.mT @ M)
    log_abs_det = pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)).sum()
    copies = M.size // (n_features * n_features)
    normaliser = orientation_log_normaliser(n_features, a)
    return a * (log_abs_det - 0.5 * pt.sqr(M).sum()) - copies * normaliser


def orthogonal_factor(M) -> pt.TensorVariable:
    """``Q`` of ``M = Q R`` (``R`` upper triangular, positive diagonal), batched: ``M L^-T``
    with ``L = chol(M^T M)``."""
    chol = pt.linalg.cholesky(M.mT @ M)
    return pt.linalg.solve_triangular(chol, M.mT, lower=True).mT


def _log_shapes(letter, n_components, n_features):
    """``log A`` (n_components, d) from the shape coordinates (zeros for EII)."""
    if letter == "I":
        return pt.zeros((n_components, n_features))
    _add_coord(SHAPE_DIM, n_features - 1)
    coords = _flat(
        _names(letter, "log_shape_z", "log_shapes_z"),
        letter,
        n_components,
        (n_features - 1,),
        (SHAPE_DIM,),
    )
    log_a = coords @ zero_sum_basis(n_features).T
    return pt.broadcast_to(log_a, (n_components, n_features))


def eigen_covariances(
    structure: CovarianceStructure, prior_z, n_components: int, n_features: int
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Create ``structure``'s working-scale variables (module docstring) in the current model.

    Returns
    -------
    covariances : tensor of shape (n_components, d, d)
    cholesky : tensor of shape (n_components, d, d)
        Their lower Cholesky factors.
    """
    volume, shape, orientation = model_letters(structure)
    K, d = n_components, n_features
    kind = family(structure, d)
    log_volume = _flat(_names(volume, "log_volume_z", "log_volumes_z"), volume, K, (), ())
    log_lam = pt.broadcast_to(log_volume, (K,))
    eye = pt.eye(d)
    if kind == "diagonal":
        log_a = _log_shapes(shape if d > 1 else "I", K, d)
        log_var = log_lam[:, None] + log_a
        cov = pt.exp(log_var)[:, :, None] * eye
        chol = pt.exp(0.5 * log_var)[:, :, None] * eye
    elif kind == "cholesky":
        log_a = _log_shapes(shape, K, d)
        _add_coord(OFFDIAGONAL_DIM, d * (d - 1) // 2)
        offdiagonal = _flat(
            _names(shape, "shape_offdiagonal_z", "shapes_offdiagonal_z"),
            shape,
            K,
            (d * (d - 1) // 2,),
            (OFFDIAGONAL_DIM,),
        )
        rows, cols = np.tril_indices(d, -1)
        unit = pt.zeros((K, d, d))
        unit = pt.set_subtensor(unit[:, rows, cols], pt.broadcast_to(offdiagonal, (K, rows.size)))
        unit = pt.set_subtensor(unit[:, np.arange(d), np.arange(d)], pt.exp(0.5 * log_a))
        chol = pt.exp(0.5 * log_lam)[:, None, None] * unit
        # lets ``collapse_cholesky`` (bayes.graph) rewrite cholesky(chol chol^T) to chol
        chol.tag.lower_triangular = True
        cov = chol @ chol.mT
    else:
        log_a = _log_shapes(shape, K, d)
        M = _flat(
            _names(orientation, "orientation_z", "orientations_z"),
            orientation,
            K,
            (d, d),
            ("feature", "feature_bis"),
            initval=np.eye(d),
        )
        pm.Potential(ORIENTATION_POTENTIAL, orientation_log_density(M, d))
        Q = pt.broadcast_to(orthogonal_factor(M), (K, d, d))
        delta = pt.exp(log_lam[:, None] + log_a)
        cov = (Q * delta[:, None, :]) @ Q.mT
        chol = pt.linalg.cholesky(cov)
    if prior_z is not None:
        pm.Potential(
            PRIOR_POTENTIAL,
            inverse_wishart_logp(cov, prior_z.degrees_of_freedom, prior_z.covariance_prior).sum(),
        )
    return cov, chol


def _proper_rotation(Q: np.ndarray) -> np.ndarray:
    """``Q`` (..., d, d) with its last column negated where ``det Q < 0``."""
    Q = np.array(Q, dtype=np.float64)
    flip = np.linalg.det(Q) < 0
    Q[flip, :, -1] *= -1.0
    return Q


def eigen_parameters(structure: CovarianceStructure, covariances: np.ndarray) -> dict:
    """Values of the variables of :func:`eigen_covariances` at working-scale ``covariances``.

    ``covariances`` (K, d, d) of the model (EM's, whose ``reg_covar`` on the diagonal breaks
    the constraints slightly) are projected onto it: log volumes, log shapes and
    orientations averaged over the components where the model shares them. The orientations
    are proper rotations (``det Q = 1``), in decreasing order of shape (EEV, VEV) or of the
    eigenvalues of a weighted sum of the covariances (EVE, VVE: its eigenvectors are the
    common ones whatever the ties of one component).
    """
    volume, shape, orientation = model_letters(structure)
    covs = np.asarray(covariances, dtype=np.float64)
    K, d, _ = covs.shape
    kind = family(structure, d)
    sign, logdet = np.linalg.slogdet(covs)
    if np.any(sign <= 0):
        raise ValueError(f"covariances of {structure.name!r} must be positive definite")
    log_lam = logdet / d
    values = {
        _names(volume, "log_volume_z", "log_volumes_z"): log_lam.mean()
        if volume == "E"
        else log_lam
    }
    unit = covs / np.exp(log_lam)[:, None, None]
    basis = zero_sum_basis(d)

    def shape_coords(log_a: np.ndarray) -> np.ndarray:
        log_a = log_a - log_a.mean(axis=-1, keepdims=True)
        coords = log_a @ basis
        return coords.mean(axis=0) if shape == "E" else coords

    if kind == "diagonal":
        if d > 1 and shape != "I":
            log_a = np.log(np.diagonal(unit, axis1=1, axis2=2))
            values[_names(shape, "log_shape_z", "log_shapes_z")] = shape_coords(log_a)
    elif kind == "cholesky":
        if shape == "E":
            pooled = unit.mean(axis=0, keepdims=True)
            unit = pooled / np.exp(np.linalg.slogdet(pooled)[1] / d)[:, None, None]
        L = np.linalg.cholesky(unit)
        log_a = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2))
        values[_names(shape, "log_shape_z", "log_shapes_z")] = shape_coords(log_a)
        rows, cols = np.tril_indices(d, -1)
        off = L[:, rows, cols]
        values[_names(shape, "shape_offdiagonal_z", "shapes_offdiagonal_z")] = (
            off[0] if shape == "E" else off
        )
    else:
        if orientation == "V":
            values_k, Q = eigh_descending(unit)
            Q = _proper_rotation(Q)
            log_a = np.log(np.clip(values_k, 1e-300, None))
            values["orientations_z"] = Q
        else:
            weights = 1.0 / (np.arange(K) + 1.618)  # generic: breaks one component's ties
            _, D = eigh_descending(np.einsum("k,kij->ij", weights, unit))
            D = _proper_rotation(D)
            log_a = np.log(np.einsum("ji,kjl,li->ki", D, unit, D))
            values["orientation_z"] = D
        values[_names(shape, "log_shape_z", "log_shapes_z")] = shape_coords(log_a)
    return values


EIGEN_COVARIANCES = PyMCCovariances(eigen_covariances, eigen_parameters)

#: one entry for the ten: they are the subclasses of ``Decomposed`` (their MRO finds it)
register_pymc_covariances(Decomposed, EIGEN_COVARIANCES)


__all__ = [
    "EIGEN_COVARIANCES",
    "OFFDIAGONAL_DIM",
    "ORIENTATION_CONCENTRATION",
    "ORIENTATION_POTENTIAL",
    "PRIOR_POTENTIAL",
    "SHAPE_DIM",
    "eigen_covariances",
    "eigen_parameters",
    "family",
    "model_letters",
    "orientation_log_density",
    "orientation_log_normaliser",
    "orthogonal_factor",
    "zero_sum_basis",
]
