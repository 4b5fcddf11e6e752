"""EM and MAP-EM for Gaussian mixtures: pure NumPy functions on arrays."""

from bayesgmm.em.fit import fit_em
from bayesgmm.em.gaussian import (
    SingularCovarianceError,
    compute_precision_cholesky,
    estimate_log_gaussian_prob,
)
from bayesgmm.em.run import EMResult, run_em
from bayesgmm.em.starts import initial_params
from bayesgmm.em.steps import e_step, estimate_weighted_log_prob, log_objective, m_step

__all__ = [
    "EMResult",
    "SingularCovarianceError",
    "compute_precision_cholesky",
    "e_step",
    "estimate_log_gaussian_prob",
    "estimate_weighted_log_prob",
    "fit_em",
    "initial_params",
    "log_objective",
    "m_step",
    "run_em",
]
