"""Exceptions raised by bayesgmm (light module: imports nothing heavy)."""

from __future__ import annotations


class SingularCovarianceError(ValueError):
    """A component covariance is not positive definite (a collapsed component)."""

    def __init__(self, component: int | None = None) -> None:
        where = f"component {component}" if component is not None else "a component"
        super().__init__(
            f"the covariance of {where} is singular or not positive definite: the component "
            "has collapsed onto too few points. Remedies: fit with a prior (MAP, "
            "prior='default'), increase reg_covar, decrease n_components, or standardise the "
            "input data."
        )
        self.component = component


class NumericalError(ValueError):
    """A fit produced non-finite numbers, or results that float64 cannot represent."""


class DegenerateFitWarning(UserWarning):
    """Maximum likelihood put a component on one point (or on identical points)."""


class UnreliableLOOWarning(UserWarning):
    """PSIS-LOO is unreliable for some observations (Pareto k above ArviZ's ``good_k``)."""


class UnreliablePosteriorWarning(UserWarning):
    """A Bayesian fit failed its checks; the message is ``diagnose()``'s verdict.

    NUTS: R-hat, bulk or tail ESS, divergences, E-BFMI (chains in different modes fail
    R-hat). VI: the ELBO did not converge, or the PSIS k-hat of the draws is 0.7 or more.
    Emitted once per ``fit``; turn it into an error with
    ``warnings.simplefilter("error", UnreliablePosteriorWarning)``, or silence it with
    ``"ignore"`` when ``diagnose()`` is read anyway.
    """


class ModelFormatError(ValueError):
    """A saved model cannot be read: missing, damaged, foreign or from another format version.

    The message names the file and the problem (:mod:`bayesgmm.core.persistence`).
    """

    def __init__(self, path, problem: str) -> None:
        super().__init__(f"{str(path)!r}: {problem}")
        self.path = path
        self.problem = problem


__all__ = [
    "DegenerateFitWarning",
    "ModelFormatError",
    "NumericalError",
    "SingularCovarianceError",
    "UnreliableLOOWarning",
    "UnreliablePosteriorWarning",
]
