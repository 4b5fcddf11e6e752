"""mclust's ten other models: ``Sigma_k = lambda_k D_k A_k D_k^T`` with shared parts.

The four classic structures are mclust's ``VVV`` (``full``), ``EEE`` (``tied``), ``VVI``
(``diag``) and ``VII`` (``spherical``). The other ten are registered here under mclust's
names: EII, EEI, VEI, EVI (diagonal family), VEE, EVE, VVE (common orientation), EEV, VEV,
EVV (varying orientation). The first letter is the volume ``lambda_k``, the second the
shape ``A_k``, the third the orientation ``D_k``: E equal, V varying, I the identity.

Every one stores full covariance matrices, shape (n_components, d, d), so it subclasses
:class:`~bayesgmm.core.covariance.classic.Full` and keeps its layout, densities, precision
factors and the EM layer's fused E-step kernels; only the M-step differs
(:mod:`bayesgmm.core.covariance.decomposition`), and the EM layer runs it in NumPy.
Parameter counts are mclust's ``nVarParams``.

Prior. MAP-EM uses the ``full`` structure's Normal-Inverse-Wishart prior on each
component (``Sigma_k ~ InvWishart(nu0, Psi0)``, ``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)``,
the same default hyper-parameters) restricted to the model's covariances; its MAP M-step
is the constrained estimate with ``W_k = Psi0 + S_k + shift_k shift_k^T`` and
``n_k = N_k + nu0 + d + 2``, an exact posterior mode like the classic structures'. This
is available for all ten models. mclust's ``priorControl()`` covers EII, VII, EEI, VEI,
EVI, VVI, EEE, EEV, VEV and VVV with per-model formulas whose denominators differ slightly
(as they already do for ``spherical`` and ``tied``); the modes agree as ``N`` grows.

Standardisation. EM works on standardised data. Equal volumes, diagonal shapes and a
shared matrix survive a per-feature rescaling, but a spherical covariance (EII) or a
shape or orientation shared across components while the other varies (EVE, VVE, EEV,
VEV) does not, so those models standardise with one common scale (as ``spherical``).

Bayesian model (NUTS, VI; ``bayesian = True``). :mod:`bayesgmm.bayes.eigen_structures`
gives each model its PyMC variables on the working scale: log volumes (one or K), log
shapes summing to zero over the features (one or K vectors), and, where the orientation is
not tied to the shape, unconstrained matrices ``M`` whose QR factor ``Q`` is the
orientation (one shared, or one per component), under a density of ``M^T M`` whose mode is
every orthogonal ``M`` and under which ``Q`` is Haar distributed; VEE and EVV (shape and
orientation shared alike) use one Cholesky factor of determinant one instead. The prior is
the one above, ``prod_k InvWishart(Sigma_k)`` evaluated at the model's covariances (a
density with respect to Lebesgue measure on those coordinates, Haar measure on ``Q``),
with the same means and weights prior, so the PyMC model's MAP is MAP-EM's. The signs and
order of ``Q``'s columns and shapes are not identified: the posterior's ``covariances``
and their canonical ``volumes``, ``shapes`` (decreasing) and ``orientations`` (signs
following the MAP's; :mod:`bayesgmm.posterior.decomposition`) are what ``diagnose()``
checks, not the raw ``M``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bayesgmm.core.covariance.base import isotropic_working_scale, register
from bayesgmm.core.covariance.classic import Full
from bayesgmm.core.covariance.decomposition import SOLVERS, n_variance_parameters


class Decomposed(Full):
    """Base class of the ten models (full-matrix layout; see the module docstring)."""

    name: ClassVar[str]
    bayesian = True
    supports_lkj = False
    per_component = False
    #: Whether the constraint survives only an isotropic rescaling of the features.
    isotropic: ClassVar[bool] = False

    def n_parameters(self, n_components, n_features):
        return n_variance_parameters(self.name, n_components, n_features)

    def m_step(self, stats, prior, reg_covar):
        """The constrained MLE (``prior=None``) or MAP covariances, shape (K, d, d)."""
        W, n = weighted_scatter(stats, prior)
        covs = SOLVERS[self.name](W, n)
        d = covs.shape[-1]
        covs[:, np.arange(d), np.arange(d)] += reg_covar
        return covs

    def reseed(self, covariances, component, spread):
        # one component's covariance cannot change on its own: a part of it is shared
        return None

    def working_scale(self, scale):
        return isotropic_working_scale(scale) if self.isotropic else scale


def weighted_scatter(stats, prior) -> tuple[np.ndarray, np.ndarray]:
    """``(W_k, n_k)`` of :mod:`~bayesgmm.core.covariance.decomposition` for an M-step.

    Maximum likelihood: the scatter ``S_k`` and the soft counts ``N_k``. MAP (the ``full``
    prior restricted to the model): ``Psi0 + S_k + shift_k shift_k^T`` and
    ``N_k + nu0 + d + 2``, the ``full`` structure's numerator and denominator.
    """
    nk, xbar = stats.nk, stats.xbar
    if prior is None:
        return np.asarray(stats.scatter, dtype=np.float64), nk
    from bayesgmm.core.covariance.base import _prior_shift

    d = xbar.shape[1]
    shift = _prior_shift(prior, nk, xbar)
    W = prior.covariance_prior + stats.scatter + shift[:, :, None] * shift[:, None, :]
    return W, nk + prior.degrees_of_freedom + d + 2.0


def _model(model: str, docstring: str, isotropic: bool = False) -> type[Decomposed]:
    cls = type(model, (Decomposed,), {"__doc__": docstring, "name": model, "isotropic": isotropic})
    cls.mclust_name = model
    cls.__module__ = __name__
    return register(cls)


EII = _model("EII", "Spherical, equal volume: ``Sigma_k = lambda I``.", isotropic=True)
EEI = _model("EEI", "Diagonal, equal volume and shape: ``Sigma_k = lambda A``.")
VEI = _model("VEI", "Diagonal, varying volume, equal shape: ``Sigma_k = lambda_k A``.")
EVI = _model("EVI", "Diagonal, equal volume, varying shape: ``Sigma_k = lambda A_k``.")
VEE = _model("VEE", "Ellipsoidal, equal shape and orientation: ``Sigma_k = lambda_k D A D^T``.")
EVE = _model(
    "EVE",
    "Ellipsoidal, equal volume and orientation: ``Sigma_k = lambda D A_k D^T``.",
    isotropic=True,
)
VVE = _model(
    "VVE", "Ellipsoidal, equal orientation: ``Sigma_k = lambda_k D A_k D^T``.", isotropic=True
)
EEV = _model(
    "EEV",
    "Ellipsoidal, equal volume and shape: ``Sigma_k = lambda D_k A D_k^T``.",
    isotropic=True,
)
VEV = _model("VEV", "Ellipsoidal, equal shape: ``Sigma_k = lambda_k D_k A D_k^T``.", isotropic=True)
EVV = _model("EVV", "Ellipsoidal, equal volume: ``Sigma_k = lambda D_k A_k D_k^T``.")

__all__ = [
    "EEI",
    "EEV",
    "EII",
    "EVE",
    "EVI",
    "EVV",
    "VEE",
    "VEI",
    "VEV",
    "VVE",
    "Decomposed",
    "weighted_scatter",
]
