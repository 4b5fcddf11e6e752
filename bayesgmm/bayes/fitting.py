"""One fit of :class:`~bayesgmm.bayes.estimator.BayesianGaussianMixture`, as a record.

:func:`fit_posterior` runs the three steps on checked data and returns a frozen
:class:`FitRecord`, from which the estimator sets its fitted attributes once:

1. the start (:func:`bayesgmm.bayes.start.find_start`: MAP-EM, the chains' starts);
2. the draws (:func:`bayesgmm.bayes.sampling.run_nuts`,
   :func:`~bayesgmm.bayes.sampling.run_gibbs` or :func:`~bayesgmm.bayes.sampling.run_vi`,
   or the MAP as one draw), then, for NUTS on the cached model and Gibbs, the MAP
   refined from the draws (:func:`bayesgmm.bayes.postprocess.refine_map`);
3. the post-processing (:func:`bayesgmm.bayes.postprocess.postprocess`, then
   :func:`~bayesgmm.bayes.postprocess.combine_chains` for NUTS and Gibbs).

One seed (``random_state``) gives four: the sampler's, the start jitter's, the predictive
draws' and the chain stacking's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pymc as pm
import xarray as xr

from bayesgmm.bayes.auto import MethodChoice, choose_method
from bayesgmm.bayes.gibbs import check_gibbs
from bayesgmm.bayes.model import build_model, check_model_options
from bayesgmm.bayes.options import Settings
from bayesgmm.bayes.postprocess import combine_chains, map_idata, postprocess, refine_map
from bayesgmm.bayes.sampling import VIFit, run_gibbs, run_nuts, run_vi
from bayesgmm.bayes.start import Start, find_start, is_plain, weighted_spec
from bayesgmm.core.methods import AUTO, MCMC_METHODS
from bayesgmm.core.missing import has_missing
from bayesgmm.core.noise import check_noise_init
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.core.validation import check_feature_combination
from bayesgmm.core.weights import check_sample_weight, positive_rows
from bayesgmm.posterior.relabel import RelabelingRecord

#: ``map_source`` of a MAP that is the best of the EM restarts.
EM_RESTARTS = "EM restarts"


@dataclasses.dataclass(frozen=True, eq=False)
class FitRecord:
    """Everything one fit made (the estimator's fitted attributes).

    Attributes
    ----------
    X : ndarray of shape (n_rows, n_features)
        The rows fitted (positive weight).
    sample_weight : ndarray of shape (n_rows,) or None
    spec : MixtureSpec
    start : Start
        MAP-EM and the chains' starts.
    model : pymc.Model
    method : str
        The method that ran (``method="auto"``: the one it chose).
    idata : DataTree
        The stored posterior.
    relabeling : RelabelingRecord
    map : MixtureParams
        The MAP: ``start.map``, or the better optimum EM reached from a draw.
    map_source : str
    n_draws : int or None
        NUTS and Gibbs: draws per chain of the run (``draws`` or longer); else ``None``.
    chain_weights : ndarray of shape (chains,) or None
        Stacking weights of stacked chains.
    vi : VIFit or None
        VI only.
    method_choice : MethodChoice or None
        ``method="auto"`` only: what it chose and why.
    """

    X: np.ndarray
    sample_weight: np.ndarray | None
    spec: MixtureSpec
    start: Start
    model: pm.Model
    method: str
    idata: xr.DataTree
    relabeling: RelabelingRecord
    map: MixtureParams
    map_source: str
    n_draws: int | None
    chain_weights: np.ndarray | None
    vi: VIFit | None
    method_choice: MethodChoice | None = None


def model_spec(
    data: np.ndarray, sample_weight, settings: Settings
) -> tuple[np.ndarray, np.ndarray | None, MixtureSpec, np.ndarray | None]:
    """The rows fitted, their weights, the spec and the checked ``noise_init``.

    Parameters
    ----------
    data : ndarray of shape (n_samples, n_features)
        Checked data (:func:`bayesgmm.core.validation.check_data`).
    sample_weight : array-like of shape (n_samples,) or None
    settings : Settings

    Raises
    ------
    ValueError
        Weights with minibatch VI, fewer positive-weight rows than components, a feature
        combination not supported, or model options the structure does not take.
    """
    weights = check_sample_weight(sample_weight, data.shape[0])
    if weights is not None and isinstance(settings.batch_size, int):
        raise ValueError(
            "sample_weight with minibatch VI (batch_size) is not supported: set "
            "batch_size=None (full-batch VI) or use method='nuts'"
        )
    data, weights = positive_rows(data, weights)
    if settings.n_components > data.shape[0]:
        raise ValueError(
            f"n_components={settings.n_components} must be <= the number of rows with a "
            f"positive sample_weight ({data.shape[0]})"
        )
    check_feature_combination(
        noise=bool(settings.noise),
        weighted=weights is not None,
        missing=has_missing(data),
    )
    spec = weighted_spec(
        data,
        weights,
        settings.n_components,
        settings.covariance_type,
        settings.prior,
        noise=bool(settings.noise),
        noise_volume=settings.noise_volume,
    )
    noise_init = check_noise_init(settings.noise_init, data.shape[0]) if settings.noise else None
    check_model_options(spec.structure, settings.covariance_prior_family, data.shape[1])
    if settings.method == "gibbs":
        check_gibbs(settings, spec, weighted=weights is not None, missing=has_missing(data))
    return data, weights, spec, noise_init


def fit_posterior(data: np.ndarray, sample_weight, settings: Settings) -> FitRecord:
    """Fit the posterior (or only the MAP) of checked data with ``settings``.

    Parameters
    ----------
    data : ndarray of shape (n_samples, n_features)
        Checked data (NaN only with ``missing="marginalize"``).
    sample_weight : array-like of shape (n_samples,) or None
        Frequency weights; rows of weight 0 are dropped.
    settings : Settings

    Returns
    -------
    FitRecord
    """
    data, weights, spec, noise_init = model_spec(data, sample_weight, settings)
    choice = None
    if settings.method == AUTO:
        choice = choose_method(
            settings, spec, weighted=weights is not None, missing=has_missing(data)
        )
        settings = dataclasses.replace(settings, method=choice.method)
    seeds = np.random.default_rng(settings.random_state).integers(2**31 - 1, size=4)
    start = find_start(data, weights, spec, settings, noise_init)
    model = build_model(
        data,
        spec,
        covariance_prior_family=settings.covariance_prior_family,
        sample_weight=weights,
        order_basis=start.order_basis,
    )
    plain = is_plain(data, weights, spec)
    method = settings.method
    map_params, map_source, vi = start.map, EM_RESTARTS, None
    if method == "map":
        draws = map_idata(model, spec, start.map, start.noise_weight)
    elif method in MCMC_METHODS:
        if method == "gibbs":
            draws = run_gibbs(data, spec, start, settings, seed=seeds[0])
        else:
            draws = run_nuts(
                data,
                spec,
                model,
                start,
                settings,
                plain=plain,
                rng=np.random.default_rng(seeds[1]),
                seed=seeds[0],
            )
        refined = (
            refine_map(draws, data, start.em, start.projection_order, spec.standardization)
            if plain
            else None
        )
        if refined is not None:
            map_params, map_source = refined
    else:
        vi = run_vi(data, spec, model, start, settings, weighted=weights is not None, seed=seeds[0])
        draws = vi.idata
    idata, relabeling = postprocess(
        draws,
        data,
        model,
        reference=map_params,
        map_source=map_source,
        order=start.projection_order,
        method=method,
        seed=seeds[2],
        pointwise=settings.pointwise,
        plain=plain,
        progressbar=settings.progressbar,
    )
    chain_weights, n_draws = None, None
    if method in MCMC_METHODS:
        n_draws = int(draws["posterior"].sizes["draw"])
        idata, chain_weights = combine_chains(
            idata,
            start.chain_starts,
            settings.combine_chains,
            np.random.default_rng(seeds[3]),
            starts_given=start.starts_given,
        )
    if choice is not None:
        idata["posterior"].attrs["method_choice"] = str(choice)
    return FitRecord(
        X=data,
        sample_weight=weights,
        spec=spec,
        start=start,
        model=model,
        method=method,
        idata=idata,
        relabeling=relabeling,
        map=map_params,
        map_source=map_source,
        n_draws=n_draws,
        chain_weights=chain_weights,
        vi=vi,
        method_choice=choice,
    )


#: Fitted attributes that only some fits have (removed when a refit does not make them).
OPTIONAL_ATTRIBUTES = (
    "map_noise_weight_",
    "n_draws_",
    "vi_",
    "approximation_",
    "psis_",
    "psis_correction_",
)


def fitted_attributes(record: FitRecord) -> dict:
    """The estimator's fitted attributes (name -> value) from one fit's record."""
    start = record.start
    fitted = {
        "_X": record.X,
        "sample_weight_": record.sample_weight,
        "spec_": record.spec,
        "em_": start.em,
        "map_": record.map,
        "map_source_": record.map_source,
        "projection_order_": start.projection_order,
        "model_": record.model,
        "start_optima_": start.optima,
        "chain_starts_": start.chain_starts,
        "method_": record.method,
        "idata_": record.idata,
        "relabeling_": record.relabeling,
        "chain_weights_": record.chain_weights,
    }
    if start.noise_weight is not None:
        fitted["map_noise_weight_"] = start.noise_weight
    if record.n_draws is not None:
        fitted["n_draws_"] = record.n_draws
    if record.vi is not None:
        fitted.update(
            vi_=record.vi.result,
            approximation_=record.vi.result.approximation,
            psis_=record.vi.psis,
            psis_correction_=record.vi.psis_correction,
        )
    return fitted


__all__ = [
    "EM_RESTARTS",
    "OPTIONAL_ATTRIBUTES",
    "FitRecord",
    "fit_posterior",
    "fitted_attributes",
    "model_spec",
]
