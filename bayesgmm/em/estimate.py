"""The maths behind :class:`~bayesgmm.em.estimator.GaussianMixture`, as functions.

EM of validated data under a spec (:func:`em_result`), the E-step of a fitted mixture
(with its noise component or missing entries), conditional-mean imputation, draws,
information criteria, the bootstrap and the persisted state. The estimator validates its
input and delegates here; nothing in this module keeps state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils.validation import check_is_fitted

from bayesgmm.core.missing import has_missing
from bayesgmm.core.noise import NoiseComponent, check_noise_init
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import HierarchicalPrior
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.core.validation import (
    check_data,
    check_feature_combination,
    check_positive_int,
    check_random_state,
)
from bayesgmm.core.weights import check_sample_weight, positive_rows
from bayesgmm.em.chunked import (
    check_chunked_sample_weight,
    data_moments,
    fit_em_chunked,
    is_chunked_store,
    is_dask_array,
)
from bayesgmm.em.fit import (
    EMResult,
    fit_em,
    options_to_working,
    result_to_user,
    warn_if_not_converged,
)
from bayesgmm.em.options import EMOptions
from bayesgmm.em.run import log_responsibilities
from bayesgmm.posterior.draws import sample_mixture

if TYPE_CHECKING:
    from bayesgmm.em.bootstrap import BootstrapResult
    from bayesgmm.em.estimator import GaussianMixture


def em_result(
    X: np.ndarray,
    spec: MixtureSpec,
    options: EMOptions,
    *,
    random_state=None,
    noise_init=None,
    sample_weight: np.ndarray | None = None,
) -> EMResult:
    """EM (MAP-EM under a prior) of validated data under ``spec``.

    With the noise component's updates when ``spec`` has one (then ``noise_init``, if
    given, are the initial noise probabilities, checked by
    :func:`bayesgmm.core.noise.check_noise_init`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    spec : MixtureSpec
    options : EMOptions
    random_state : int, Generator or None
    noise_init : array-like of shape (n_samples,), optional
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights.

    Returns
    -------
    EMResult
    """
    check_feature_combination(
        noise=spec.noise is not None,
        weighted=sample_weight is not None,
        missing=has_missing(X),
    )
    if isinstance(spec.prior, HierarchicalPrior):  # ECM: the scale of the prior is learned
        from bayesgmm.em.hierarchical import fit_ecm

        return fit_ecm(X, spec, options, random_state=random_state, sample_weight=sample_weight)
    if spec.noise is None:
        return fit_em(X, spec, options, random_state=random_state, sample_weight=sample_weight)
    from bayesgmm.em.noise import fit_noise_em

    return fit_noise_em(
        X,
        spec,
        options,
        noise_init=check_noise_init(noise_init, X.shape[0]),
        random_state=random_state,
    )


def chunked_em_result(
    X,
    n_components: int,
    covariance_type: str,
    prior,
    options: EMOptions,
    *,
    random_state=None,
    sample_weight=None,
) -> tuple[EMResult, MixtureSpec]:
    """EM of a Dask array out of core, on the working scale of the in-memory path.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
    n_components : int
    covariance_type : str
    prior : MixturePrior, "default" or None
    options : EMOptions
    random_state : int, Generator or None
    sample_weight : dask array of shape (n_samples,), optional
        Frequency weights.

    Returns
    -------
    result : EMResult
        On the data's scale (warns if EM did not converge).
    spec : MixtureSpec
    """
    check_random_state(random_state)
    sample_weight, n_samples = check_chunked_sample_weight(sample_weight, X)
    moments = data_moments(X, sample_weight=sample_weight)
    spec = MixtureSpec.from_data(
        X,
        n_components,
        covariance_type,
        prior,
        standardize=False,
        moments=moments,
    )
    if isinstance(spec.prior, HierarchicalPrior):
        raise ValueError(
            "prior='hierarchical' (MAP-EM by ECM) runs in memory only: pass a NumPy array"
        )
    # the same working scale as the in-memory path (so reg_covar means the same)
    std = np.sqrt(np.diag(moments[1]) * (n_samples - 1) / max(n_samples, 1))
    scaling = Standardization.from_moments(moments[0], std, spec.structure)
    working_spec = replace(spec, prior=spec.working_prior_for(scaling))
    working = (X - scaling.location) / scaling.scale  # lazy for Dask arrays
    working_options = options_to_working(options, scaling, spec)
    result = fit_em_chunked(
        working,
        working_spec,
        working_options,
        random_state=random_state,
        sample_weight=sample_weight,
    )
    result = result_to_user(result, scaling, spec, working_spec, n_samples)
    warn_if_not_converged(result, options)
    return result, spec


def mixture_e_step(
    data: np.ndarray,
    params: MixtureParams,
    noise: NoiseComponent | None = None,
    noise_weight: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Log-responsibilities and log-likelihood per row of a fitted mixture.

    Parameters
    ----------
    data : ndarray of shape (n_samples, n_features)
        May hold NaN: such a row gets the marginal values over its observed coordinates.
    params : MixtureParams
    noise : NoiseComponent, optional
        The uniform noise component, if the mixture has one.
    noise_weight : float, optional
        Its weight (with ``noise``).

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components) or (n_samples, n_components + 1)
        The noise's column last, if any.
    log_lik : ndarray of shape (n_samples,)
    """
    if noise is not None:
        from bayesgmm.em.noise import noise_e_step

        return noise_e_step(data, params, noise_weight, noise.log_density)
    if has_missing(data):
        from bayesgmm.em.missing import e_step_missing

        return e_step_missing(data, params)
    return log_responsibilities(data, params)


def map_row_blocks(X, fn: Callable[[np.ndarray], np.ndarray], n_features: int, allow_nan: bool):
    """``fn`` applied lazily to each block of rows of the Dask array ``X``.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
    fn : callable
        Maps checked data of shape (n_rows, n_features) to shape (n_rows,) or
        (n_rows, n_columns).
    n_features : int
        The fitted number of features.
    allow_nan : bool
        Let NaN through the check of each block (``missing="marginalize"``).

    Returns
    -------
    dask array of shape (n_samples,) or (n_samples, n_columns)
    """
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(
            f"X has shape {X.shape}, but GaussianMixture is expecting "
            f"{n_features} features as input"
        )
    sample = fn(np.zeros((1, n_features)))
    rows = X.rechunk({1: -1})
    if sample.ndim == 1:
        return rows.map_blocks(
            lambda block: fn(_finite(block, allow_nan)), drop_axis=1, dtype=sample.dtype
        )
    return rows.map_blocks(
        lambda block: fn(_finite(block, allow_nan)),
        chunks=(rows.chunks[0], (sample.shape[1],)),
        dtype=sample.dtype,
    )


def impute_conditional_mean(data: np.ndarray, params: MixtureParams) -> np.ndarray:
    """``data`` with each NaN replaced by its conditional mean given the row's observed entries.

    Parameters
    ----------
    data : ndarray of shape (n_samples, n_features)
    params : MixtureParams

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        ``data`` itself when it has no NaN; observed entries unchanged.
    """
    if not has_missing(data):
        return data
    from bayesgmm.em.missing import conditional_mean_imputation

    filled = conditional_mean_imputation(data, params)
    return np.where(np.isnan(data), filled, data)


def sample_fitted(
    params: MixtureParams,
    n_samples: int,
    random_state,
    noise: NoiseComponent | None = None,
    noise_weight: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draws from a fitted mixture, with its noise component if any.

    Parameters
    ----------
    params : MixtureParams
    n_samples : int
    random_state : int, Generator or None
    noise : NoiseComponent, optional
    noise_weight : float, optional
        The noise component's weight (with ``noise``).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Component labels; ``-1`` for draws from the noise component.
    """
    if noise is None:
        return sample_mixture(
            params.weights,
            params.means,
            params.full_covariances(),
            n_samples,
            random_state,
        )
    rng = np.random.default_rng(random_state)
    is_noise = rng.random(n_samples) < noise_weight
    X = np.empty((n_samples, params.n_features))
    y = np.full(n_samples, -1)
    X[is_noise] = noise.sample(int(is_noise.sum()), rng)
    X[~is_noise], y[~is_noise] = sample_mixture(
        params.weights, params.means, params.full_covariances(), int((~is_noise).sum()), rng
    )
    return X, y


def bayesian_information_criterion(log_lik: float, n_samples: float, n_parameters: int) -> float:
    """Bayesian information criterion ``-2 log L + p log N`` (lower is better)."""
    return float(-2 * log_lik + n_parameters * np.log(n_samples))


def akaike_information_criterion(log_lik: float, n_parameters: int) -> float:
    """Akaike information criterion ``-2 log L + 2 p`` (lower is better)."""
    return float(-2 * log_lik + 2 * n_parameters)


def assignment_entropy(log_resp: np.ndarray) -> float:
    """``-sum_n sum_k gamma_nk log gamma_nk`` from log-responsibilities (``0 log 0 = 0``)."""
    return -np.sum(np.exp(log_resp) * np.where(np.isfinite(log_resp), log_resp, 0.0))


def data_digest(data: np.ndarray, sample_weight: np.ndarray | None) -> str:
    """A fingerprint of the rows of positive weight (and their weights) of a fit.

    Parameters
    ----------
    data : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
    """
    data, sample_weight = positive_rows(np.asarray(data), sample_weight)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(data.shape).encode())
    digest.update(np.ascontiguousarray(data, dtype=np.float64).tobytes())
    if sample_weight is not None:
        digest.update(np.ascontiguousarray(sample_weight, dtype=np.float64).tobytes())
    return digest.hexdigest()


def bootstrap_fitted(
    estimator: GaussianMixture,
    X,
    n_boot: int = 200,
    kind: str = "nonparametric",
    *,
    n_jobs: int | None = None,
    random_state: int | np.random.SeedSequence | np.random.Generator | None = None,
    ci_prob: float = 0.89,
    sample_weight=None,
) -> BootstrapResult:
    """:meth:`GaussianMixture.bootstrap <bayesgmm.em.estimator.GaussianMixture.bootstrap>`
    (fits ``estimator`` to ``X`` first if it is not fitted)."""
    if is_dask_array(X) or is_chunked_store(X):
        raise ValueError("bootstrap needs the data in memory; pass np.asarray(X) (or a subsample)")
    n_boot = check_positive_int(n_boot, "n_boot", minimum=2)
    check_random_state(random_state)
    if not hasattr(estimator, "params_"):
        estimator.fit(X, sample_weight=sample_weight)
    data = estimator._validate_predict_data(X)
    weights = check_sample_weight(sample_weight, data.shape[0])
    if estimator._has_noise:
        raise ValueError(
            "bootstrap does not support a fit with a noise component (noise=True) yet: its "
            "replicates are refits with resampled row weights, or refits to data drawn from the "
            "Gaussians alone, and neither fits the noise component"
        )
    if kind != "parametric" and has_missing(data):
        raise ValueError(
            f"a {kind} bootstrap resamples rows as frequency weights, which a fit with missing "
            'entries (missing="marginalize") cannot take yet: use kind="parametric" (complete '
            "data drawn from the fit), or drop the rows with NaN"
        )
    digest = getattr(estimator, "_fit_digest", None)
    if digest is not None and digest != data_digest(data, weights):
        raise ValueError(
            "X (with sample_weight) is not the data this estimator was fitted to: the bootstrap "
            "refits resamples of the fitted data from the fitted solution; pass the data (and "
            "sample_weight) of the fit, or fit X first"
        )
    names = getattr(estimator, "feature_names_in_", None)
    from bayesgmm.em.bootstrap import bootstrap_mixture  # imports the analysis layer

    return bootstrap_mixture(
        estimator,
        data,
        n_boot=n_boot,
        kind=kind,
        sample_weight=weights,
        n_jobs=n_jobs,
        random_state=random_state,
        ci_prob=ci_prob,
        feature_names=None if names is None else [str(n) for n in names],
    )


def estimator_state(estimator: GaussianMixture) -> tuple[dict, None]:
    """The fitted attributes for :mod:`bayesgmm.core.persistence` (no posterior)."""
    check_is_fitted(estimator, "params_")
    state = {
        "n_features_in": estimator.n_features_in_,
        "spec": estimator.spec_,
        "params": estimator.params_,
        "converged": bool(estimator.converged_),
        "n_iter": int(estimator.n_iter_),
        "lower_bound": float(estimator.lower_bound_),
        "lower_bound_trace": np.asarray(estimator.lower_bound_trace_, dtype=np.float64),
        "n_reseeds": int(estimator.n_reseeds_),
        "degenerate": bool(estimator.degenerate_),
        "optima": tuple((params, float(bound)) for params, bound in estimator.optima_),
    }
    if estimator._has_noise:
        state["noise_weight"] = float(estimator.noise_weight_)
    return state, None


def restore_state(estimator: GaussianMixture, state: dict) -> None:
    """Inverse of :func:`estimator_state` (raises ``ValueError`` on an inconsistent state)."""
    spec, params = state["spec"], state["params"]
    if not isinstance(spec, MixtureSpec) or not isinstance(params, MixtureParams):
        raise ValueError("spec and params must be MixtureSpec and MixtureParams records")
    n_features = int(state["n_features_in"])
    shape = (estimator.n_components, estimator.covariance_type, n_features)
    for name, value in (
        ("spec", (spec.n_components, spec.covariance_type, spec.n_features)),
        ("params", (params.n_components, params.covariance_type, params.n_features)),
    ):
        if value != shape:
            raise ValueError(
                f"{name} has (n_components, covariance_type, n_features) = {value}, the "
                f"settings and n_features_in {shape}"
            )
    if not np.isfinite(state["lower_bound"]):
        raise ValueError(f"lower_bound is {state['lower_bound']}")
    estimator._store(
        EMResult(
            params=params,
            lower_bound=float(state["lower_bound"]),
            converged=bool(state["converged"]),
            n_iter=int(state["n_iter"]),
            trace=np.asarray(state["lower_bound_trace"], dtype=np.float64),
            n_reseeds=int(state["n_reseeds"]),
            degenerate=bool(state["degenerate"]),
            noise_weight=state.get("noise_weight") if spec.noise is not None else None,
            optima=tuple((p, float(b)) for p, b in state["optima"]),
        ),
        spec,
    )
    if spec.noise is not None and not 0.0 <= estimator.noise_weight_ < 1.0:
        raise ValueError(f"noise_weight must lie in [0, 1), got {estimator.noise_weight_}")
    estimator.n_features_in_ = n_features


def _labels(log_resp: np.ndarray, noise: bool) -> np.ndarray:
    """Most probable component per row; ``-1`` where it is the noise (last column)."""
    labels = log_resp.argmax(axis=1)
    if noise:
        labels[labels == log_resp.shape[1] - 1] = -1
    return labels


def _finite(block: np.ndarray, allow_nan: bool = False) -> np.ndarray:
    return check_data(block, min_samples=0, check_constant=False, allow_nan=allow_nan)


__all__ = [
    "akaike_information_criterion",
    "assignment_entropy",
    "bayesian_information_criterion",
    "bootstrap_fitted",
    "chunked_em_result",
    "data_digest",
    "em_result",
    "estimator_state",
    "impute_conditional_mean",
    "map_row_blocks",
    "mixture_e_step",
    "restore_state",
    "sample_fitted",
]
