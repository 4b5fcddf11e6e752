"""Fitting a Gaussian mixture by EM or MAP-EM: :func:`fit_em`, and the scale maps around it.

:func:`fit_em` standardises the data, runs the restarts (:mod:`bayesgmm.em.starts`) of one
EM run each (:mod:`bayesgmm.em.run`), makes split-and-merge moves on small data
(:mod:`bayesgmm.em.split_merge`), sets degenerate fits aside (:mod:`bayesgmm.em.degenerate`)
and maps the best fit back to the data's scale. MLE and MAP share every step; they differ
only in the M-step and the objective.

The names of those modules that other code used to import from here are still importable
from this module.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from functools import partial

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from bayesgmm.core.exceptions import NumericalError
from bayesgmm.core.missing import MissingPatterns, has_missing, mean_imputed
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.core.validation import check_feature_combination, check_random_state
from bayesgmm.core.weights import (
    positive_rows,
    relative_weights,
    weight_total,
    weighted_moments,
)
from bayesgmm.em.degenerate import (
    COINCIDENT_ATOL,
    DEGENERATE_VARIANCE_RATIO,
    coincident_components,
    degenerate_components,
    warn_if_degenerate,
)
from bayesgmm.em.options import EMOptions
from bayesgmm.em.run import (
    COMPILED_MAX_ROWS,
    MIN_COMPONENT_COUNT,
    EMResult,
    iterate_em,
    run_em,
)
from bayesgmm.em.split_merge import (
    SPLIT_MERGE_BUDGET,
    SPLIT_MERGE_FROM,
    split_merge,
    split_merge_starts,
)
from bayesgmm.em.starts import (
    AUTO_N_INIT_SMALL,
    Starts,
    auto_starts_for,
    distinct_optima,
    initial_params,
    run_starts,
    same_optimum,
    with_optima,
)
from bayesgmm.em.stopping import STOPPING_RULES


def check_map_prior(spec: MixtureSpec) -> None:
    """Raise ``ValueError`` if MAP-EM is undefined under the spec's prior.

    Below ``weight_concentration = 1`` the Dirichlet density has no interior mode.
    """
    prior = spec.prior
    if prior is not None and np.any(prior.concentration(spec.n_components) < 1.0):
        raise ValueError(
            "MAP-EM needs weight_concentration >= 1 (below 1 the Dirichlet density has no "
            "interior mode); use BayesianGaussianMixture for sparse Dirichlet priors"
        )


def fit_em(
    X: np.ndarray,
    spec: MixtureSpec,
    options: EMOptions | None = None,
    *,
    random_state: int | np.random.Generator | None = None,
    warn_not_converged: bool = True,
    sample_weight: np.ndarray | None = None,
) -> EMResult:
    """Fit a Gaussian mixture by EM (MLE) or MAP-EM, keeping the best of ``n_init`` starts.

    EM runs on standardised data (:meth:`Standardization.from_data`: each feature centred
    and divided by its standard deviation, or by one common scale for structures that need
    an isotropic rescaling), with the prior and explicit starts mapped to that scale. The
    result is mapped back exactly, so the fit does not depend on the data's units, and
    ``options.reg_covar`` is relative: it is added to the standardised covariances, which
    is ``reg_covar * scale_j ** 2`` on feature ``j`` in the data's units.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated data: finite, or with NaN marking missing entries (missing at random;
        no row or column entirely missing). With NaN, EM maximises the observed-data
        likelihood (:mod:`bayesgmm.em.missing`): every start is initialised on the
        mean-imputed data, then iterates on the observed entries only.
    spec : MixtureSpec
        K, the covariance structure and the prior (``None``: maximum likelihood).
    options : EMOptions, optional
        Tolerance, iterations, restarts, initialisation (defaults: :class:`EMOptions`).
    random_state : int, Generator or None
        Seed of every random choice.
    warn_not_converged : bool
        Emit a :class:`~sklearn.exceptions.ConvergenceWarning` if no start converged.
    sample_weight : ndarray of shape (n_samples,), optional
        Validated frequency weights (:func:`bayesgmm.core.weights.check_sample_weight`): row
        ``n`` counts ``w_n`` times, in the standardisation, the initialisation and every
        E-step; rows of weight 0 are dropped. ``N`` below is then ``W = sum_n w_n``.

    Returns
    -------
    EMResult
        Parameters on the data's scale; ``lower_bound`` and ``trace`` are the objective of
        the data (log-likelihood per sample, plus ``log p(theta) / N`` for MAP) on that scale.

    Raises
    ------
    NumericalError
        EM produced non-finite values, or the fitted parameters cannot be represented in
        float64 on the data's scale (variances beyond ``1e308`` or below ``1e-308``).
    """
    options = EMOptions() if options is None else options
    check_map_prior(spec)
    options.check_starts(spec)
    check_random_state(random_state)
    X, sample_weight = positive_rows(X, sample_weight)
    n_total = weight_total(sample_weight, X.shape[0])
    if spec.prior is None:  # only the weights' ratios matter (tiny weights: no false collapse)
        sample_weight = relative_weights(sample_weight)
    scaling = Standardization.from_data(X, spec.structure, sample_weight)
    working_spec = replace(spec, prior=spec.working_prior_for(scaling))
    working_options = options_to_working(options, scaling, spec)
    Z = scaling.to_working(X)
    # missing entries (NaN): EM on the observed-data likelihood, started (and checked for
    # degeneracy) on the mean-imputed data; complete data take the fused kernels
    run, Z_complete, log_jacobian = run_em, Z, scaling.log_jacobian
    if has_missing(Z):
        from bayesgmm.em.missing import run_em_missing

        check_feature_combination(noise=False, weighted=sample_weight is not None, missing=True)
        patterns = MissingPatterns.from_data(Z)
        run = partial(run_em_missing, patterns=patterns)
        Z_complete = mean_imputed(Z)
        log_jacobian = float((patterns.row_mask() @ np.log(scaling.scale)).mean())
    rng = np.random.default_rng(random_state)
    data_covariance = weighted_moments(Z_complete, sample_weight)[1]
    small = (
        Z.shape[0] <= COMPILED_MAX_ROWS
        and Z.shape[0] * spec.n_components * spec.n_features <= SPLIT_MERGE_BUDGET
    )
    n_starts = 1 if options.has_full_start else options.n_starts
    if options.auto_starts and small:
        n_starts = AUTO_N_INIT_SMALL
    elif options.auto_starts and not options.has_full_start:
        n_starts = auto_starts_for(Z.shape[0])
    if spec.n_components == 1:  # every start is the same fit
        n_starts = 1
    starts = run_starts(
        lambda start_options: initial_params(
            Z_complete, working_spec, start_options, rng, sample_weight
        ),
        partial(
            run,
            Z,
            prior=working_spec.prior,
            reg_covar=options.reg_covar,
            tol=options.tol,
            max_iter=options.max_iter,
            stopping=options.stopping,
            sample_weight=sample_weight,
        ),
        working_options,
        n_starts,
        is_degenerate=lambda result: (
            spec.prior is None
            and bool(degenerate_components(result.params, Z_complete, data_covariance).any())
        ),
    )
    best, fallback, error, reached = starts.best, starts.fallback, starts.error, starts.reached
    if (
        best is not None
        and run is run_em
        and options.auto_starts
        and not options.has_full_start
        and small
    ):
        # from each of the best few distinct optima: the best one's neighbours are not
        # always where the global optimum lies
        for start in distinct_optima(reached)[:SPLIT_MERGE_FROM]:
            moved, others = split_merge(
                Z, start, working_spec, options, data_covariance, sample_weight=sample_weight
            )
            reached.extend(others)
            if moved.lower_bound > best.lower_bound:
                best = moved
    best = best if best is not None else fallback
    if best is None:
        assert error is not None
        raise error
    if not (np.isfinite(best.lower_bound) or best.n_iter == 0):
        raise NumericalError(
            f"EM produced a non-finite objective ({best.lower_bound}) on data of shape "
            f"{X.shape}: the data are degenerate for K={spec.n_components}; fit with a "
            "prior (prior='default'), increase reg_covar or decrease n_components"
        )
    result = with_optima(
        best,
        reached,
        partial(
            result_to_user,
            scaling=scaling,
            spec=spec,
            working_spec=working_spec,
            n_samples=n_total,
            log_jacobian=log_jacobian,
        ),
    )
    if spec.prior is None:
        warn_if_degenerate(best.params, options.reg_covar)
    if warn_not_converged:
        warn_if_not_converged(result, options)
    if best.degenerate:
        warnings.warn(
            f"Every start ended with a degenerate component (a variance below "
            f"{DEGENERATE_VARIANCE_RATIO:g} of the data's, or fewer than d + 1 = "
            f"{spec.n_features + 1} distinct rows), e.g. on repeated values: decrease "
            "n_components, fit with a prior (prior='default'), or increase n_init.",
            UserWarning,
            stacklevel=2,
        )
    return result


def options_to_working(
    options: EMOptions, scaling: Standardization, spec: MixtureSpec
) -> EMOptions:
    """``options`` with explicit starting means and precisions on the working scale."""
    means = options.means_init
    precisions = options.precisions_init
    return replace(
        options,
        means_init=None if means is None else scaling.to_working(means),
        precisions_init=(
            None
            if precisions is None
            else scaling.precisions_to_working(precisions, spec.structure)
        ),
    )


def result_to_user(
    result: EMResult,
    scaling: Standardization,
    spec: MixtureSpec,
    working_spec: MixtureSpec,
    n_samples: float,
    *,
    log_jacobian: float | None = None,
) -> EMResult:
    """Map a working-scale result back to the data's scale (parameters and objective).

    ``working_spec`` is ``spec`` with its prior mapped to the working scale; ``n_samples``
    is the number of rows, or the weight total ``W`` of a weighted fit.

    The per-sample log-likelihood shifts by ``-sum(log scale)`` (or by ``-log_jacobian``
    when given: the mean over rows of ``sum(log scale)`` over each row's observed features,
    for data with missing entries); the log prior by the log-Jacobian of the (affine)
    parameter map, a constant computed at the final parameters.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        try:
            params = scaling.params_to_user(result.params)
        except ValueError:  # non-finite, or a covariance that underflowed to singular
            params = None
    if params is None:
        peak = float(np.max(scaling.scale))
        low = float(np.min(scaling.scale))
        raise NumericalError(
            "the fitted covariances cannot be represented in float64 on the data's scale "
            f"(feature standard deviations from {low:.3g} to {peak:.3g}): rescale the data, "
            "for example to unit standard deviation, before fitting"
        )
    shift = -(scaling.log_jacobian if log_jacobian is None else log_jacobian)
    if spec.prior is not None:
        shift += (
            spec.prior.log_density(params) - working_spec.prior.log_density(result.params)
        ) / n_samples
    return replace(
        result,
        params=params,
        lower_bound=result.lower_bound + shift,
        trace=result.trace + shift,
    )


def warn_if_not_converged(result: EMResult, options: EMOptions) -> None:
    """The :class:`~sklearn.exceptions.ConvergenceWarning` of every EM path."""
    if result.converged:
        return
    if options.max_iter == 0:
        warnings.warn(
            "max_iter=0: no EM iteration ran, so the parameters are the initialisation "
            "(lower_bound_ is -inf, converged_ False); give max_iter >= 1 to fit",
            ConvergenceWarning,
            stacklevel=3,
        )
        return
    warnings.warn(
        f"EM did not converge in max_iter={options.max_iter} iterations (tol={options.tol}, "
        f"last change {np.diff(result.trace[-2:]).tolist() or 'n/a'}). Increase max_iter or "
        "tol, or check the initialisation.",
        ConvergenceWarning,
        stacklevel=3,
    )


__all__ = [
    "AUTO_N_INIT_SMALL",
    "COINCIDENT_ATOL",
    "COMPILED_MAX_ROWS",
    "DEGENERATE_VARIANCE_RATIO",
    "MIN_COMPONENT_COUNT",
    "SPLIT_MERGE_BUDGET",
    "SPLIT_MERGE_FROM",
    "STOPPING_RULES",
    "EMResult",
    "Starts",
    "auto_starts_for",
    "check_map_prior",
    "coincident_components",
    "degenerate_components",
    "distinct_optima",
    "fit_em",
    "initial_params",
    "iterate_em",
    "options_to_working",
    "result_to_user",
    "run_em",
    "run_starts",
    "same_optimum",
    "split_merge",
    "split_merge_starts",
    "warn_if_degenerate",
    "warn_if_not_converged",
    "with_optima",
]
