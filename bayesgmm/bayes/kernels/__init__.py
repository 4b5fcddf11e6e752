"""Hand-written NUTS targets, one per covariance structure, looked up by structure class.

:class:`bayesgmm.bayes.compiled.CompiledMixture` needs three functions of a model of
:func:`bayesgmm.bayes.model.build_model`: the log posterior density and its gradient in the
sampler's unconstrained space, ``expand`` (an unconstrained vector -> the traced values)
and ``unconstrain`` (constrained free values -> the unconstrained vector). PyTensor
compiles them from the model's graph; for the default structures on complete data
(the Normal-Inverse-Wishart prior family, no noise component, no sample weights, no
ordered projection; in one dimension the kernels apply the means' ordered transform)
this package has them without compiling anything in PyTensor: a Numba kernel per
structure (cached on disk by numba) and the model's transforms in NumPy (:mod:`.common`).

:data:`KERNEL_TARGETS` maps a structure class to its :class:`KernelTarget` (looked up along
the class's MRO, like :data:`bayesgmm.bayes.structures.PYMC_COVARIANCES`); a new structure
adds an entry with :func:`register_kernel_target`. :func:`kernel_target` says whether (and
which) one applies to a model; :class:`KernelFunctions` is ``expand``/``unconstrain`` and
the vector's layout.

==============  ===============================================  ========================
structure       kernel                                           covariance variable
==============  ===============================================  ========================
``full``        :func:`bayesgmm.bayes.posterior_kernel.full_niw_logp_dlogp`  ``covariances_z``
``tied``        :func:`.tied.tied_niw_logp_dlogp`                ``covariances_z`` (d, d)
``diag``        :func:`.variances.variances_logp_dlogp`          ``variances_z`` (K, d)
``spherical``   :func:`.variances.variances_logp_dlogp`          ``variances_z`` (K,)
==============  ===============================================  ========================

``bayesgmm.bayes.posterior_kernel.ENABLED = False`` turns them all off for the structures
built afterwards (they then compile the PyTensor graph, as every other model does).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pymc.logprob.transforms import LogTransform

from bayesgmm.bayes import posterior_kernel
from bayesgmm.bayes.kernels.common import (
    DATA_NAMES,
    DIAG_KIND,
    FULL_KIND,
    SPHERICAL_KIND,
    TIED_KIND,
    exp,
    expand_values,
    log,
    ordered_backward,
    ordered_forward,
    simplex_backward,
    simplex_forward,
    spd_backward,
    spd_forward,
)
from bayesgmm.bayes.kernels.tied import tied_kernel
from bayesgmm.bayes.kernels.variances import variances_kernel
from bayesgmm.bayes.structures import SPDCholeskyTransform
from bayesgmm.core.covariance import CovarianceStructure, Diag, Full, Spherical, Tied, get_structure


@dataclass(frozen=True)
class KernelTarget:
    """A structure's hand-written NUTS target and its covariance variable's transform.

    Attributes
    ----------
    covariance_name : str
        The free covariance variable (``covariances_z`` or ``variances_z``).
    transform : type
        The class of its transform in the model.
    size : callable
        ``size(K, d) -> int``: its length in the unconstrained vector.
    backward : callable
        ``backward(y, K, d)``: ``y`` (size,) -> the variable's value (its shape).
    forward : callable
        ``forward(value, K, d)``: the inverse, -> (size,).
    working_covariances : callable
        ``working_covariances(value, K, d)``: the covariances on the working scale, shape
        (K, d, d) or (d, d) (broadcast to every component), as the model's deterministic
        ``covariances`` writes them before rescaling.
    logp_dlogp : callable
        ``logp_dlogp(model) -> callable``: ``x -> (logp, grad)``, reading the model's
        ``pm.Data`` containers at every call.
    expand_kind : int, optional
        The layout code of :func:`~bayesgmm.bayes.kernels.common.expand_values` (one numba
        call per draw, ~10x faster than the NumPy maps above, which a structure without
        one uses).
    """

    covariance_name: str
    transform: type
    size: Callable[[int, int], int]
    backward: Callable[[np.ndarray, int, int], np.ndarray]
    forward: Callable[[np.ndarray, int, int], np.ndarray]
    working_covariances: Callable[[np.ndarray, int, int], np.ndarray]
    logp_dlogp: Callable
    expand_kind: int | None = None


def _n_tri(d: int) -> int:
    return d * (d + 1) // 2


def _diagonal_matrices(variances: np.ndarray, d: int) -> np.ndarray:
    """``var[:, :, None] * eye(d)`` as the model writes it ((K, d) variances)."""
    return variances[:, :, None] * np.eye(d)


FULL = KernelTarget(
    "covariances_z",
    SPDCholeskyTransform,
    lambda K, d: K * _n_tri(d),
    lambda y, K, d: spd_backward(y.reshape(K, _n_tri(d)), d),
    lambda value, K, d: spd_forward(value, d).ravel(),
    lambda value, K, d: value,
    posterior_kernel.PosteriorKernel,
    FULL_KIND,
)
TIED = KernelTarget(
    "covariances_z",
    SPDCholeskyTransform,
    lambda K, d: _n_tri(d),
    lambda y, K, d: spd_backward(y, d),
    lambda value, K, d: spd_forward(value, d).ravel(),
    lambda value, K, d: value,
    tied_kernel,
    TIED_KIND,
)
DIAG = KernelTarget(
    "variances_z",
    LogTransform,
    lambda K, d: K * d,
    lambda y, K, d: exp(y).reshape(K, d),
    lambda value, K, d: log(value).ravel(),
    lambda value, K, d: _diagonal_matrices(value, d),
    variances_kernel,
    DIAG_KIND,
)
SPHERICAL = KernelTarget(
    "variances_z",
    LogTransform,
    lambda K, d: K,
    lambda y, K, d: exp(y),
    lambda value, K, d: log(value).ravel(),
    lambda value, K, d: _diagonal_matrices(value[:, None], d),
    variances_kernel,
    SPHERICAL_KIND,
)

#: Structure class -> its kernel target, looked up along the MRO (:func:`lookup_kernel_target`).
KERNEL_TARGETS: dict[type[CovarianceStructure], KernelTarget] = {
    Full: FULL,
    Tied: TIED,
    Diag: DIAG,
    Spherical: SPHERICAL,
}


def register_kernel_target(structure: type[CovarianceStructure], target: KernelTarget) -> None:
    """Give ``structure`` (and its subclasses) a hand-written NUTS target."""
    if not (isinstance(structure, type) and issubclass(structure, CovarianceStructure)):
        raise TypeError(f"structure must be a CovarianceStructure class, got {structure!r}")
    KERNEL_TARGETS[structure] = target


def lookup_kernel_target(structure: CovarianceStructure) -> KernelTarget | None:
    """The entry of the nearest class on ``structure``'s MRO, or ``None``."""
    for cls in type(structure).__mro__:
        if cls in KERNEL_TARGETS:
            return KERNEL_TARGETS[cls]
    return None


def kernel_target(key, model, X: np.ndarray) -> KernelTarget | None:
    """The kernel target that computes ``model``'s NUTS target, or ``None``.

    Parameters
    ----------
    key : StructureKey
        (:class:`bayesgmm.bayes.compiled.StructureKey`) The Normal-Inverse-Wishart prior
        family, no ordered projection.
    model : pymc.Model
        Of :func:`bayesgmm.bayes.model.build_model`: a proper prior, free variables
        ``weights`` (when K > 1, simplex transform), the structure's covariance variable
        (its transform) and ``means_z`` (untransformed; ordered in one dimension) in that
        order and nothing else (no noise component); deterministics ``weights`` (K = 1),
        ``means``, ``covariances``; no sample weights.
    X : ndarray of shape (n_samples, n_features)
        The data ``model`` was built from: complete.

    Returns
    -------
    KernelTarget or None
        ``None`` also whenever ``bayesgmm.bayes.posterior_kernel.ENABLED`` is false.
    """
    from bayesgmm.bayes.model import OBSERVED, OrderedComponents
    from bayesgmm.core.missing import has_missing

    if not posterior_kernel.ENABLED or key.covariance_prior_family != "niw":
        return None
    if key.ordered_projection or has_missing(X):
        return None
    target = lookup_kernel_target(get_structure(key.covariance_type))
    if target is None:
        return None
    several = key.n_components > 1
    names = ["weights"] * several + [target.covariance_name, "means_z"]
    if [rv.name for rv in model.free_RVs] != names:
        return None
    traced = ["weights"] * (not several) + ["means", "covariances"]
    if [v.name for v in model.deterministics] != traced:
        return None
    if [rv.name for rv in model.observed_RVs] != [OBSERVED] or "sample_weight" in model.named_vars:
        return None
    if any(name not in model.named_vars for name in DATA_NAMES):
        return None
    transforms = [model.rvs_to_transforms.get(rv) for rv in model.free_RVs]
    if not isinstance(transforms[-2], target.transform):
        return None
    if key.n_features == 1:  # the means are ordered
        if not isinstance(transforms[-1], OrderedComponents):
            return None
    elif transforms[-1] is not None:
        return None
    if several and type(transforms[0]).__name__ != "SimplexTransform":
        return None
    return target


def eligible(key, model, X: np.ndarray) -> bool:
    """Whether a hand-written kernel computes ``model``'s NUTS target (:func:`kernel_target`)."""
    return kernel_target(key, model, X) is not None


class KernelFunctions:
    """``expand`` and ``unconstrain`` of a kernel-backed model in NumPy, and its layout.

    Parameters
    ----------
    target : KernelTarget
    model : pymc.Model
        Checked by :func:`kernel_target`; ``expand`` reads its ``location`` and ``scale``
        containers at every call.

    Attributes
    ----------
    free_names : list of str
        The free variables, in the order of the unconstrained vector.
    slices : list of slice
    n_dim : int
    trace_names : list of str
        The free variables, then the deterministics (the model's order).
    trace_shapes : list of tuple
    """

    def __init__(self, target: KernelTarget, model) -> None:
        self.target = target
        n_components = len(model.coords["component"])
        n_features = len(model.coords["feature"])
        self.n_components, self.n_features = n_components, n_features
        self.free_names = [rv.name for rv in model.free_RVs]
        sizes = {
            "weights": n_components - 1,
            target.covariance_name: target.size(n_components, n_features),
            "means_z": n_components * n_features,
        }
        ends = np.cumsum([0, *(sizes[name] for name in self.free_names)])
        self.slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(ends)]
        self.n_dim = int(ends[-1])
        self.trace_names = [*self.free_names, *(v.name for v in model.deterministics)]
        self._location = model["location"].container.storage
        self._scale = model["scale"].container.storage
        at_zero = self.values(np.zeros(self.n_dim))
        self._covariance_shape = np.shape(at_zero[target.covariance_name])
        self.trace_shapes = [np.shape(at_zero[name]) for name in self.trace_names]

    def values(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every traced value at the unconstrained ``x`` (n_dim,), keyed by name (NumPy)."""
        K, d, target = self.n_components, self.n_features, self.target
        blocks = dict(zip(self.free_names, (x[s] for s in self.slices), strict=True))
        weights = simplex_backward(blocks["weights"]) if K > 1 else np.ones(1)
        covariance = target.backward(blocks[target.covariance_name], K, d)
        if d == 1:  # ordered means
            means_z = ordered_backward(blocks["means_z"])
        else:
            means_z = blocks["means_z"].reshape(K, d)
        location, scale = self._location[0], self._scale[0]
        working = np.broadcast_to(target.working_covariances(covariance, K, d), (K, d, d))
        return {
            "weights": weights,
            target.covariance_name: covariance,
            "means_z": means_z,
            "means": location + scale * means_z,
            # the graph's order of the products (the same bits)
            "covariances": working * scale[:, None] * scale[None, :],
        }

    def expand(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """The traced values at ``x`` in :attr:`trace_names`' order (the graph's ``expand``)."""
        kind = self.target.expand_kind
        if kind is None:
            values = self.values(x)
        else:
            weights, covariance, means_z, means, covariances = expand_values(
                x, self.n_components, self.n_features, kind, self._location[0], self._scale[0]
            )
            values = {
                "weights": weights,
                self.target.covariance_name: covariance.reshape(self._covariance_shape),
                "means_z": means_z,
                "means": means,
                "covariances": covariances,
            }
        return tuple(values[name] for name in self.trace_names)

    def unconstrain(self, *free: np.ndarray) -> np.ndarray:
        """The unconstrained vector (n_dim,) of the free variables' constrained values."""
        K, d, target = self.n_components, self.n_features, self.target
        pieces = []
        for name, value in zip(self.free_names, free, strict=True):
            value = np.asarray(value, dtype=np.float64)
            if name == "weights":
                pieces.append(simplex_forward(value))
            elif name == target.covariance_name:
                pieces.append(target.forward(value, K, d))
            elif d == 1:  # ordered means
                pieces.append(ordered_forward(value))
            else:
                pieces.append(value.ravel())
        return np.concatenate(pieces)


__all__ = [
    "DIAG",
    "FULL",
    "KERNEL_TARGETS",
    "SPHERICAL",
    "TIED",
    "KernelFunctions",
    "KernelTarget",
    "eligible",
    "kernel_target",
    "lookup_kernel_target",
    "register_kernel_target",
]
