"""MAP-EM under the hierarchical covariance-scale prior: an ECM algorithm.

Under :class:`~bayesgmm.core.priors.HierarchicalPrior` the MAP is the joint mode of
``(w, mu, Sigma, Psi)``: ``log p(X | w, mu, Sigma) + log p(w, mu, Sigma | Psi) + log p(Psi)``.
Expectation-conditional maximisation (Meng & Rubin 1993) splits the M-step in two
conditional maximisations, each in closed form:

1. given ``Psi``, the usual conjugate MAP M-step (:func:`bayesgmm.em.steps.m_step` under
   ``prior.conditional(Psi)``);
2. given the covariances, ``Psi`` at the mode of its Wishart conditional
   (:meth:`~bayesgmm.core.priors.HierarchicalPrior.scale_mode`,
   ``(nu_g + K nu0 - d - 1) (G0 + sum_k Sigma_k^-1)^-1``).

Each step can only increase the objective, so ECM ascends it monotonically; since the
second step maximises over ``Psi`` exactly, the objective after it is the profile
``max_Psi`` (:meth:`HierarchicalPrior.log_density` with ``scale=None``), which is what
:attr:`EMResult.lower_bound` reports (per sample, as for MAP-EM).

Starts: the restarts of :func:`bayesgmm.em.fit.fit_em` (with split-and-merge moves on small
data) under the default data-scaled prior and under the hierarchical prior with ``Psi``
fixed at its starting value, then ECM from every distinct optimum they reached; the best ECM
optimum that converges with every component holding a point (:data:`MIN_POINTS`) is the
MAP. With components left empty the joint density can grow
without bound as ``Psi`` and their covariances shrink together (MASS crabs K=4 from a
one-component start: ``Psi`` shrinks by a constant factor per iteration), so a run that
does not settle within ``max_iter`` (or whose ``Psi`` becomes singular) is not a mode.
``full`` covariances, complete data, no noise component (frequency weights are supported).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from bayesgmm.core.exceptions import NumericalError
from bayesgmm.core.missing import has_missing
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import HierarchicalPrior, MixturePrior
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.core.weights import positive_rows, weight_total, weighted_moments
from bayesgmm.em.fit import (
    check_map_prior,
    fit_em,
    result_to_user,
    warn_if_not_converged,
)
from bayesgmm.em.options import EMOptions
from bayesgmm.em.run import EMResult
from bayesgmm.em.starts import with_optima
from bayesgmm.em.steps import e_step, m_step

#: An ECM optimum counts as a mode when every component holds at least this many points.
MIN_POINTS = 1.0
#: What MAP-EM under the hierarchical prior fits, for the error messages.
ECM_SCOPE = "covariance_type='full', complete data (no NaN) and no noise component"


def check_hierarchical(spec: MixtureSpec, X: np.ndarray | None = None) -> None:
    """Raise ``ValueError`` naming what MAP-EM under the hierarchical prior does not fit."""
    problems = []
    if spec.structure.name != "full":
        problems.append(f"covariance_type={spec.structure.name!r}")
    if spec.noise is not None:
        problems.append("noise=True")
    if X is not None and has_missing(X):
        problems.append("missing entries (NaN)")
    if problems:
        raise ValueError(
            f"prior='hierarchical' supports {ECM_SCOPE}; got {', '.join(problems)}: use "
            "prior='default' for this model"
        )


def ecm_objective(
    log_lik: np.ndarray,
    params: MixtureParams,
    scale: np.ndarray,
    prior: HierarchicalPrior,
    sample_weight: np.ndarray | None = None,
) -> float:
    """Per-sample objective: mean log-likelihood plus ``log p(theta, Psi) / N``.

    Parameters
    ----------
    log_lik : ndarray of shape (n_samples,)
    params : MixtureParams
    scale : ndarray of shape (d, d)
        ``Psi``.
    prior : HierarchicalPrior
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (``N`` is then their total).
    """
    if sample_weight is None:
        total, loglik = float(log_lik.shape[0]), float(np.sum(log_lik))
    else:
        total, loglik = float(np.sum(sample_weight)), float(sample_weight @ log_lik)
    return (loglik + prior.log_density(params, scale)) / total


def run_ecm(
    Z: np.ndarray,
    start: MixtureParams,
    prior: HierarchicalPrior,
    *,
    reg_covar: float = 0.0,
    tol: float = 1e-8,
    max_iter: int = 1000,
    sample_weight: np.ndarray | None = None,
) -> EMResult:
    """ECM from ``start`` (module docstring), all on one scale (``prior`` on ``Z``'s).

    Parameters
    ----------
    Z : ndarray of shape (n_samples, d)
    start : MixtureParams
        ``full`` parameters; ``Psi`` starts at its conditional mode given them.
    prior : HierarchicalPrior
    reg_covar : float
        Added to every covariance's diagonal by the M-step.
    tol : float
        Stop when the per-sample objective changes by less than this.
    max_iter : int
    sample_weight : ndarray of shape (n_samples,), optional

    Returns
    -------
    EMResult
        ``trace`` holds the objective (profile over ``Psi``) before every M-step.
    """
    params = start
    scale = prior.scale_mode(params.full_covariances())
    trace: list[float] = []
    converged = False
    while True:
        log_resp, log_lik = e_step(Z, params)
        trace.append(ecm_objective(log_lik, params, scale, prior, sample_weight))
        if len(trace) > 1 and abs(trace[-1] - trace[-2]) < tol:
            converged = True
            break
        if len(trace) > max_iter:
            break
        resp = np.exp(log_resp)
        if sample_weight is not None:
            resp = resp * sample_weight[:, None]
        params = m_step(Z, resp, "full", prior.conditional(scale), reg_covar)
        scale = prior.scale_mode(params.covariances)
    n_iter = len(trace) - 1
    return EMResult(params, trace[-1], converged, n_iter, np.asarray(trace))


def fit_ecm(
    X: np.ndarray,
    spec: MixtureSpec,
    options: EMOptions | None = None,
    *,
    random_state: int | np.random.Generator | None = None,
    warn_not_converged: bool = True,
    sample_weight: np.ndarray | None = None,
) -> EMResult:
    """MAP-EM (ECM) under ``spec``'s :class:`HierarchicalPrior`, best of the restarts.

    Parameters as :func:`bayesgmm.em.fit.fit_em`.

    Returns
    -------
    EMResult
        On the data's scale; ``optima``: every distinct ECM optimum, best first.
    """
    prior = spec.prior
    if not isinstance(prior, HierarchicalPrior):
        raise TypeError(f"fit_ecm needs a HierarchicalPrior, got {type(prior).__name__}")
    check_hierarchical(spec, X)
    options = EMOptions() if options is None else options
    check_map_prior(spec)
    X, sample_weight = positive_rows(X, sample_weight)
    n_total = weight_total(sample_weight, X.shape[0])
    # candidate optima: the restarts under the default (data-scaled) prior and under the
    # hierarchical one with Psi fixed at its start; ECM from each distinct optimum
    mean, cov = weighted_moments(X, sample_weight)
    default = MixturePrior.from_moments(mean, cov, spec.n_components, "full", data=X)
    starts: list[MixtureParams] = []
    for anchor in (default, prior.conditional(prior.covariance_prior)):
        first = fit_em(
            X,
            spec.with_prior(anchor),
            options,
            random_state=random_state,
            warn_not_converged=False,
            sample_weight=sample_weight,
        )
        starts += [params for params, _ in first.optima] or [first.params]
    scaling = Standardization.from_data(X, spec.structure, sample_weight)
    working_spec = replace(spec, prior=spec.working_prior_for(scaling))
    Z = scaling.to_working(X)
    reached, failed = [], []
    for params in starts:
        try:
            result = run_ecm(
                Z,
                scaling.params_to_working(params),
                working_spec.prior,
                reg_covar=options.reg_covar,
                tol=options.tol,
                max_iter=max(options.max_iter, 1),
                sample_weight=sample_weight,
            )
        except (ValueError, np.linalg.LinAlgError):  # Psi collapsed to singular
            continue
        settled = result.converged and np.isfinite(result.lower_bound)
        occupied = float(np.min(result.params.weights)) * n_total >= MIN_POINTS
        (reached if settled and occupied else failed).append(result)
    # components left empty let Psi and their covariances shrink together: the joint
    # density grows without bound there (the run does not settle) or peaks at a spike of
    # empty components (MASS crabs K=4: weights (1, 0, 0, 0), above every clustering); a
    # mode is one where every component holds a point
    reached = reached or failed
    if not reached:
        raise NumericalError(
            "MAP-EM under prior='hierarchical' found no mode: every ECM run let the "
            "covariance scale collapse (components left empty); decrease n_components"
        )
    best = max(reached, key=lambda r: r.lower_bound)
    result = with_optima(
        best,
        reached,
        partial(
            result_to_user,
            scaling=scaling,
            spec=spec,
            working_spec=working_spec,
            n_samples=n_total,
        ),
    )
    if warn_not_converged:
        warn_if_not_converged(result, options)
    return result


__all__ = ["ECM_SCOPE", "MIN_POINTS", "check_hierarchical", "ecm_objective", "fit_ecm", "run_ecm"]
