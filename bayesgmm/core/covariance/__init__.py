"""The covariance structures, one class each, in one registry.

Everything that depends on how the component covariances are constrained, as data and
NumPy maths, lives here: parameter layout and count, expansion to full matrices, precision
Cholesky factors and log-determinants, Gaussian log-densities, the maximum-likelihood and
MAP M-steps from sufficient statistics, the conjugate log prior density and its default
scale, rescaling between the user's and the working scale, and the rows a summary shows.
Code elsewhere asks a structure (``get_structure(name)``); it never compares the name. A
new structure is one new class registered with :func:`register`.

The package: :mod:`~bayesgmm.core.covariance.base` (the base class and the registry),
:mod:`~bayesgmm.core.covariance.classic` (``full``, ``tied``, ``diag``, ``spherical``),
:mod:`~bayesgmm.core.covariance.eigen` (mclust's ten other models, ``Sigma_k = lambda_k D_k
A_k D_k^T`` with shared parts: EII, EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV) and
:mod:`~bayesgmm.core.covariance.decomposition` (their constrained M-steps). mclust's names of
the classic four (``VVV``, ``EEE``, ``VVI``, ``VII``) are aliases: ``get_structure("VVV")``
is the ``full`` structure itself, and fitted parameters and saved files name it ``full``.

The registry knows nothing of its backends. Each backend keeps its own table keyed by the
structure's class and looks a structure up along its MRO, so a subclass of a registered
structure inherits its parent's backends: the compiled EM kernels and loop
(:mod:`bayesgmm.em.backends`; a structure without them runs the NumPy E- and M-steps
below) and the PyMC covariance variables (:mod:`bayesgmm.bayes.structures`).

=============  ==========================  ===============================================
structure      ``covariances`` layout      prior on the covariances (Normal-Inverse-...)
=============  ==========================  ===============================================
``full``       (n_components, d, d)        ``Sigma_k ~ InvWishart(nu0, Psi0)``
``tied``       (d, d)                      one ``Sigma ~ InvWishart(nu0, Psi0)``
``diag``       (n_components, d)           ``sigma2_kj ~ InvGamma(nu0 / 2, psi0_j / 2)``
``spherical``  (n_components,)             ``sigma2_k ~ InvGamma(nu0 / 2, psi0 / 2)``
``EII`` ...   (n_components, d, d)        ``full``'s prior restricted to the model
=============  ==========================  ===============================================

The precision Cholesky factors share the covariance layout (scikit-learn's convention):
upper-triangular ``U`` with ``U U^T`` the precision for ``full``/``tied``, ``1 / sd`` for
``diag``/``spherical``. The MAP updates are the joint posterior modes given in
:mod:`bayesgmm.em.steps`.
"""

from bayesgmm.core.covariance.base import (
    _REGISTRY,  # noqa: F401  (the registry itself, for tests that register a class)
    MCLUST_ALIASES,
    MCLUST_MODELS,
    CovarianceStructure,
    CovarianceType,
    bayesian_covariance_names,
    bayesian_covariance_types,
    covariance_names,
    covariance_types,
    get_structure,
    isotropic_working_scale,
    register,
)
from bayesgmm.core.covariance.classic import Diag, Full, Spherical, Tied
from bayesgmm.core.covariance.eigen import (
    EEI,
    EEV,
    EII,
    EVE,
    EVI,
    EVV,
    VEE,
    VEI,
    VEV,
    VVE,
    Decomposed,
)

__all__ = [
    "EEI",
    "EEV",
    "EII",
    "EVE",
    "EVI",
    "EVV",
    "MCLUST_ALIASES",
    "MCLUST_MODELS",
    "VEE",
    "VEI",
    "VEV",
    "VVE",
    "CovarianceStructure",
    "CovarianceType",
    "Decomposed",
    "Diag",
    "Full",
    "Spherical",
    "Tied",
    "bayesian_covariance_names",
    "bayesian_covariance_types",
    "covariance_names",
    "covariance_types",
    "get_structure",
    "isotropic_working_scale",
    "register",
]
