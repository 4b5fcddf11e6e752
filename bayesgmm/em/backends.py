"""Which compiled EM code runs each covariance structure.

The registry (:mod:`bayesgmm.core.covariance`) holds the structures' data and NumPy maths
and knows nothing of this layer. Here the EM layer keeps its own table: structure class ->
*kernel layout*, the key of the fused kernels in :data:`bayesgmm.em.kernels.KERNELS`
(E-step and sufficient statistics in one pass over the data) and of the compiled loop in
:data:`bayesgmm.em.loop.LOOPS` (a whole EM run in one call). A structure is looked up along
its class's MRO, so a subclass of a registered structure inherits its parent's compiled
code, under one condition each:

* the kernels stand in for the NumPy E-step and statistics (:data:`KERNEL_METHODS`), so they
  are inherited only by a subclass that keeps those methods as they are;
* the loop also stands in for the M-step, the log prior and the precision factors
  (:data:`LOOP_METHODS`), so it is inherited only by a subclass that keeps those too.

A structure with no compiled code (no entry on its MRO, an entry of ``None``, or an
overridden method) runs the NumPy E- and M-steps of :mod:`bayesgmm.em.steps`, which call
the structure's own methods: any registered structure can be fitted by EM.

The kernel modules are imported, and their kernels compiled or loaded from Numba's cache,
only when :func:`structure_kernels` or :func:`structure_loop` first needs them.
"""

from __future__ import annotations

from bayesgmm.core.covariance import CovarianceStructure, Diag, Full, Spherical, Tied

#: NumPy methods the fused kernels compute instead (E-step densities, sufficient statistics).
KERNEL_METHODS: tuple[str, ...] = (
    "log_gaussian_prob",
    "_mahalanobis",
    "log_det_cholesky",
    "scatter",
    "second_moments",
)

#: NumPy methods the compiled loop computes instead (the kernels' and the M-step's).
LOOP_METHODS: tuple[str, ...] = (
    *KERNEL_METHODS,
    "precisions_cholesky",
    "m_step",
    "reseed",
    "log_prior",
)

#: Structure class -> key of its kernels in ``KERNELS`` and of its loop in ``LOOPS``
#: (``None``: NumPy E- and M-steps). Looked up along the MRO (:func:`kernel_layout`).
EM_LAYOUTS: dict[type[CovarianceStructure], str | None] = {
    Full: "full",
    Tied: "tied",
    Diag: "diag",
    Spherical: "spherical",
}


def register_em_layout(structure: type[CovarianceStructure], layout: str | None) -> None:
    """Run ``structure`` (and its subclasses) on the compiled code of ``layout``.

    ``layout`` is a key of :data:`bayesgmm.em.kernels.KERNELS` whose parameter layout the
    structure shares, or ``None`` for the NumPy E- and M-steps (e.g. a subclass that
    changes the layout of its parent's parameters).
    """
    if not (isinstance(structure, type) and issubclass(structure, CovarianceStructure)):
        raise TypeError(f"structure must be a CovarianceStructure class, got {structure!r}")
    EM_LAYOUTS[structure] = layout


def _registered(structure: CovarianceStructure) -> type[CovarianceStructure] | None:
    """The nearest class on ``structure``'s MRO with an entry in :data:`EM_LAYOUTS`."""
    return next((cls for cls in type(structure).__mro__ if cls in EM_LAYOUTS), None)


def _inherits(structure: CovarianceStructure, owner: type, methods: tuple[str, ...]) -> bool:
    """Whether ``structure``'s class keeps ``owner``'s ``methods`` unchanged."""
    cls = type(structure)
    return all(getattr(cls, name) is getattr(owner, name) for name in methods)


def kernel_layout(structure: CovarianceStructure) -> str | None:
    """Key of ``structure``'s fused kernels, or ``None`` (NumPy E-step and statistics)."""
    owner = _registered(structure)
    if owner is None or not _inherits(structure, owner, KERNEL_METHODS):
        return None
    return EM_LAYOUTS[owner]


def structure_kernels(structure: CovarianceStructure):
    """The fused kernels of ``structure``, or ``None`` if it has none.

    Returns
    -------
    bayesgmm.em.kernels.StructureKernels or None
        E-step and sufficient statistics in one pass, and per-row log-responsibilities.
    """
    layout = kernel_layout(structure)
    if layout is None:
        return None
    from bayesgmm.em.kernels import KERNELS

    return KERNELS.get(layout)


def structure_loop(structure: CovarianceStructure):
    """The compiled EM loop of ``structure``, or ``None`` if it has none.

    Returns
    -------
    bayesgmm.em.loop.StructureLoop or None
        Every iteration of one start in one Numba call (E-step, M-step, objective,
        stopping rule); :func:`bayesgmm.em.run.run_em` uses it on small data.
    """
    owner = _registered(structure)
    if owner is None or not _inherits(structure, owner, LOOP_METHODS):
        return None
    layout = EM_LAYOUTS[owner]
    if layout is None:
        return None
    from bayesgmm.em.loop import LOOPS

    return LOOPS.get(layout)


__all__ = [
    "EM_LAYOUTS",
    "KERNEL_METHODS",
    "LOOP_METHODS",
    "kernel_layout",
    "register_em_layout",
    "structure_kernels",
    "structure_loop",
]
