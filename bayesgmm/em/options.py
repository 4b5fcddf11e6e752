"""The settings of an EM fit: :class:`EMOptions`, validated on construction.

The one record of EM settings (tolerance, iterations, restarts, initialisation), passed
whole instead of keyword by keyword to :func:`bayesgmm.em.fit.fit_em` and the other EM
paths. The initialisations and stopping rules it accepts are the EM layer's own tables
(:data:`bayesgmm.em.init.INITIALIZERS`, :data:`bayesgmm.em.stopping.STOPPING_RULES`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bayesgmm.core.covariance import CovarianceStructure
from bayesgmm.core.validation import plain
from bayesgmm.em.init import INITIALIZERS
from bayesgmm.em.stopping import STOPPING_RULES

if TYPE_CHECKING:
    from bayesgmm.core.spec import MixtureSpec


def _check_positive_definite(precisions: np.ndarray, structure: CovarianceStructure) -> None:
    """Raise ``ValueError`` naming the first precision that is not positive definite."""
    if structure.matrix_scatter:
        stacked = precisions.reshape(-1, *precisions.shape[-2:])
        for k, matrix in enumerate(stacked):
            symmetric = np.allclose(matrix, matrix.T, rtol=1e-8, atol=0.0)
            if symmetric and np.all(np.linalg.eigvalsh(matrix) > 0):
                continue
            where = f"precisions_init[{k}]" if precisions.ndim == 3 else "precisions_init"
            raise ValueError(
                f"{where} is not symmetric positive definite (singular, or a negative "
                "eigenvalue): give inverse covariances, e.g. np.linalg.inv of SPD matrices"
            )
    elif not np.all(precisions > 0):
        raise ValueError(
            "precisions_init must be positive (inverse variances); got "
            f"{plain(float(np.min(precisions)))} at the smallest"
        )


#: Starts of ``n_init="auto"`` on data too large for split-and-merge moves.
AUTO_N_INIT = 20


@dataclass(frozen=True)
class EMOptions:
    """Settings of an EM fit, validated on construction.

    Attributes
    ----------
    tol : float
        Convergence threshold on the per-sample objective (see ``stopping``).
    reg_covar : float
        Added to every covariance diagonal in each M-step, on the working (standardised)
        scale of :func:`bayesgmm.em.fit_em`: relative to each feature's variance.
    max_iter : int
    n_init : int or "auto"
        Starts; the best final objective among the non-degenerate fits is kept (see
        :func:`bayesgmm.em.fit.fit_em`). After a ``hierarchical`` first start the others
        take random rows, ``k-means++`` and random responsibilities in turn. ``"auto"``
        (the default): on small data (``N K d`` at most
        :data:`bayesgmm.em.split_merge.SPLIT_MERGE_BUDGET`)
        :data:`bayesgmm.em.starts.AUTO_N_INIT_SMALL` starts, then split-and-merge moves from
        the best few fits until none improves them (:func:`bayesgmm.em.split_merge.split_merge`);
        on larger data :data:`AUTO_N_INIT` starts up to 100,000 rows, fewer above (2 from a
        million rows; :func:`bayesgmm.em.starts.auto_starts_for`).
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "hierarchical"}
    stopping : {"aitken", "absolute"}
        Stopping rule (:data:`bayesgmm.em.stopping.STOPPING_RULES`): ``"absolute"`` is
        scikit-learn's (change below ``tol``), ``"aitken"`` stops when the Aitken-extrapolated
        limit of the objective is within ``tol``.
    weights_init, means_init, precisions_init : ndarray, optional
        Explicit starting values (scikit-learn's shapes).
    """

    tol: float = 1e-8
    reg_covar: float = 1e-6
    max_iter: int = 1000
    n_init: int | str = "auto"
    init_params: str = "hierarchical"
    stopping: str = "aitken"
    weights_init: np.ndarray | None = None
    means_init: np.ndarray | None = None
    precisions_init: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("tol", "reg_covar"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not value >= 0
                or not np.isfinite(value)
            ):
                raise ValueError(f"{name} must be a non-negative finite number, got {plain(value)}")
        for name, minimum in (("max_iter", 0), ("n_init", 1)):
            value = getattr(self, name)
            if name == "n_init" and isinstance(value, str) and value == "auto":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                allowed = ' or "auto"' if name == "n_init" else ""
                raise TypeError(f"{name} must be an integer{allowed}, got {plain(value)}")
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")
        if self.init_params not in INITIALIZERS:
            raise ValueError(
                f"Invalid value for 'init_params': {self.init_params!r}; "
                f"choose one of {sorted(INITIALIZERS)}"
            )
        if self.stopping not in STOPPING_RULES:
            raise ValueError(
                f"Invalid value for 'stopping': {self.stopping!r}; "
                f"choose one of {sorted(STOPPING_RULES)}"
            )

    def check_starts(self, spec: MixtureSpec) -> None:
        """Check explicit starting values against the model's shapes.

        Raises
        ------
        ValueError
            Wrong shape, non-finite values, or weights that are negative or do not sum to 1.
        """
        k, d = spec.n_components, spec.n_features
        expected = {
            "weights_init": (k,),
            "means_init": (k, d),
            "precisions_init": spec.structure.shape(k, d),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape != shape:
                raise ValueError(
                    f"{name} must have shape {shape} for n_components={k}, n_features={d}, "
                    f"covariance_type={spec.covariance_type!r}; got {value.shape}"
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} contains NaN or infinity")
        if self.precisions_init is not None:
            _check_positive_definite(
                np.asarray(self.precisions_init, dtype=np.float64), spec.structure
            )
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
            if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
                raise ValueError(
                    f"weights_init must be non-negative and sum to 1, got {weights.tolist()}"
                )

    @property
    def n_starts(self) -> int:
        """``n_init``, or :data:`AUTO_N_INIT` for ``"auto"`` (fit_em takes more on small data)."""
        return AUTO_N_INIT if self.auto_starts else int(self.n_init)

    @property
    def auto_starts(self) -> bool:
        """Whether ``n_init="auto"`` (starts, then split-and-merge moves on small data)."""
        return isinstance(self.n_init, str)

    @property
    def has_full_start(self) -> bool:
        """Whether means and precisions are both given (nothing to initialise from data)."""
        return self.means_init is not None and self.precisions_init is not None


__all__ = ["AUTO_N_INIT", "EMOptions"]
