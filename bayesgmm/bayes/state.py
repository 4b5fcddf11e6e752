"""The fitted state of a :class:`~bayesgmm.BayesianGaussianMixture`, for saving and pickling.

:func:`fitted_state` gives the fitted attributes as plain records (what
:mod:`bayesgmm.core.persistence` writes to ``model.json``) beside ``idata_`` (written as
``posterior.zarr``); :func:`restored_attributes` checks such a state against the
estimator's settings and returns the attributes to set. Not kept: the PyMC model (rebuilt
on first use by :func:`rebuild_model`), a VI fit's PyMC approximation and the draws behind
its PSIS checks (their verdicts are kept, so ``diagnose()`` works).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from bayesgmm.bayes.model import OBSERVED, build_model
from bayesgmm.core.methods import MCMC_METHODS, METHODS
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.posterior.relabel import ProjectionOrder, RelabelingRecord

#: Scalar fields of a VI fit and of a PSIS check that are saved.
VI_FIELDS = ("hist", "n_iter", "converged", "method", "window", "seconds")
PSIS_FIELDS = ("khat", "verdict", "message", "ess", "likelihood_scale", "proposal")


def fitted_state(estimator) -> tuple[dict, xr.DataTree]:
    """The fitted attributes of ``estimator`` as JSON-able records, and its ``idata_``."""
    order, record = estimator.projection_order_, estimator.relabeling_
    em = estimator.em_
    state = {
        "n_features_in": estimator.n_features_in_,
        "spec": estimator.spec_,
        "sample_weight": estimator.sample_weight_,
        "em": {"params": em.get_params(deep=False), "state": em._get_state()[0]},
        "map": estimator.map_,
        "map_source": estimator.map_source_,
        "map_noise_weight": getattr(estimator, "map_noise_weight_", None),
        "projection_order": None if order is None else dataclasses.asdict(order),
        "start_optima": list(estimator.start_optima_),
        "chain_starts": np.asarray(estimator.chain_starts_),
        "method": estimator.method_,
        "relabeling": {f.name: getattr(record, f.name) for f in dataclasses.fields(record)},
        "n_draws": getattr(estimator, "n_draws_", None),
        "chain_weights": estimator.chain_weights_,
    }
    if "vi_" in estimator.__dict__:
        vi = estimator.vi_
        state["vi"] = {name: getattr(vi, name) for name in VI_FIELDS}
        state["psis"] = _psis_verdict(estimator.psis_)
        state["psis_correction"] = _psis_verdict(estimator.psis_correction_)
    return state, estimator.idata_


def restored_attributes(
    state: dict,
    posterior: xr.DataTree | None,
    *,
    n_components: int,
    covariance_type: str,
    em_class,
) -> dict:
    """The fitted attributes of a saved state (inverse of :func:`fitted_state`).

    Raises
    ------
    ValueError
        The state does not fit the settings (shapes, method, posterior groups), or the
        posterior holds non-finite draws.
    """
    if posterior is None:
        raise ValueError("a BayesianGaussianMixture needs its posterior draws")
    k, d = n_components, int(state["n_features_in"])
    spec, map_ = state["spec"], state["map"]
    if not isinstance(spec, MixtureSpec) or not isinstance(map_, MixtureParams):
        raise ValueError("spec and map must be MixtureSpec and MixtureParams records")
    for name, value in (
        ("spec", (spec.n_components, spec.covariance_type, spec.n_features)),
        ("map", (map_.n_components, map_.covariance_type, map_.n_features)),
    ):
        if value != (k, covariance_type, d):
            raise ValueError(
                f"{name} has (n_components, covariance_type, n_features) = {value}, the "
                f"settings and n_features_in {(k, covariance_type, d)}"
            )
    draws = posterior["posterior"]
    for name, shape in (("weights", (k,)), ("means", (k, d)), ("covariances", (k, d, d))):
        var = draws[name]
        if var.dims[:2] != ("chain", "draw") or var.shape[2:] != shape:
            raise ValueError(
                f"posterior variable {name!r} has dims {var.dims} and shape {var.shape}, "
                f"expected (chain, draw) + {shape}"
            )
        if not np.all(np.isfinite(var.to_numpy())):
            raise ValueError(f"posterior variable {name!r} contains NaN or infinity")
    X = posterior["observed_data"][OBSERVED].transpose("obs", "feature").to_numpy()
    if X.shape[1] != d:
        raise ValueError(f"posterior observed_data has {X.shape[1]} features, expected {d}")
    weights = state["sample_weight"]
    if weights is not None and (
        np.shape(weights) != (len(X),) or not np.all(np.isfinite(weights) & (weights > 0))
    ):
        raise ValueError(f"sample_weight must be {len(X)} positive finite numbers")
    method = state["method"]
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {METHODS}")
    if method in MCMC_METHODS and "sample_stats" not in posterior.children:
        raise ValueError(f"posterior has no sample_stats group ({method} diagnostics)")
    em = em_class(**state["em"]["params"])
    em._set_state(state["em"]["state"])
    order = state["projection_order"]
    chain_weights = state["chain_weights"]
    fitted = {
        "n_features_in_": d,
        "spec_": spec,
        "_X": np.ascontiguousarray(X, dtype=np.float64),
        "sample_weight_": weights,
        "em_": em,
        "map_": map_,
        "map_source_": str(state["map_source"]),
        "projection_order_": None if order is None else ProjectionOrder(**order),
        "start_optima_": list(state["start_optima"]),
        "chain_starts_": np.asarray(state["chain_starts"], dtype=int),
        "method_": method,
        "relabeling_": RelabelingRecord(**state["relabeling"]),
        "chain_weights_": None if chain_weights is None else np.asarray(chain_weights),
        "idata_": posterior,
    }
    if spec.noise is not None:
        fitted["map_noise_weight_"] = float(state["map_noise_weight"])
    if state["n_draws"] is not None:
        fitted["n_draws_"] = int(state["n_draws"])
    if "vi" in state:
        from bayesgmm.bayes.vi import VIResult

        fitted["vi_"] = VIResult(approximation=None, **state["vi"])
        fitted["psis_"] = _psis_result(state["psis"])
        fitted["psis_correction_"] = _psis_result(state["psis_correction"])
    return fitted


def picklable_state(state: dict) -> dict:
    """``__getstate__``'s dict without the compiled PyMC objects."""
    state = dict(state)
    state.pop("model_", None)
    state.pop("approximation_", None)
    vi = state.get("vi_")
    if vi is not None and vi.approximation is not None:
        state["vi_"] = dataclasses.replace(vi, approximation=None)
    return state


def rebuild_model(fitted: dict, covariance_prior_family: str):
    """The PyMC model of a fitted estimator's attributes (after unpickling or loading)."""
    order = fitted.get("projection_order_")
    return build_model(
        fitted["_X"],
        fitted["spec_"],
        covariance_prior_family=covariance_prior_family,
        sample_weight=fitted.get("sample_weight_"),
        order_basis=None if order is None else order.basis(),
    )


def _psis_verdict(result) -> dict | None:
    """The scalar fields of a PSISResult (its draws and weights are not saved)."""
    if result is None:
        return None
    return {name: getattr(result, name) for name in PSIS_FIELDS}


def _psis_result(fields: dict | None):
    """A PSISResult from :func:`_psis_verdict`'s fields, with no draws."""
    if fields is None:
        return None
    from bayesgmm.bayes.vi import PSISResult

    return PSISResult(log_weights=np.empty(0), draws={}, **fields)


#: Where ``diagnose()`` keeps its result for the fit it describes (with the ``draws`` setting
#: it reports against); not saved, not pickled, dropped by a refit.
DIAGNOSTICS_CACHE = "_diagnostics_cache"


class SavedState:
    """What :class:`~bayesgmm.BayesianGaussianMixture` adds for ``save`` and pickling.

    A mixin over the functions above: ``save`` writes the format of
    :mod:`bayesgmm.core.persistence`, ``_get_state``/``_set_state`` are what that module
    calls, and pickling drops the compiled PyMC objects, which ``__getattr__`` rebuilds on
    first use.
    """

    def save(self, path, *, overwrite: bool = False, input_scaling=None, metadata=None):
        """Save the fitted estimator to the folder ``path``; read it with :func:`bayesgmm.load`.

        ``model.json`` (settings, MAP, spec, EM start, relabelling, diagnostics) and
        ``posterior.zarr`` (``idata_``), in the format of :mod:`bayesgmm.core.persistence`,
        written atomically. Not saved: the PyMC model (rebuilt on first use of ``model_``),
        a VI fit's ``approximation_`` and the draws behind its PSIS checks (their verdicts
        are kept, so :meth:`diagnose` works); :mod:`bayesgmm.bayes.state` says what is.

        Parameters
        ----------
        path : str or Path
            The folder; one bayesgmm wrote before is replaced whole.
        overwrite : bool, default=False
            Allow replacing a non-empty folder that bayesgmm did not write.
        input_scaling : Standardization, optional
            An affine map the data went through before ``fit`` (the command line's
            ``--scale``), kept for whoever predicts raw data.
        metadata : dict, optional
            Free JSON data stored with the model.

        Returns
        -------
        Path
        """
        from bayesgmm.core.persistence import save_estimator

        return save_estimator(
            self, path, overwrite=overwrite, input_scaling=input_scaling, metadata=metadata
        )

    def _get_state(self) -> tuple[dict, xr.DataTree]:
        """The fitted attributes for :mod:`bayesgmm.core.persistence`, and ``idata_``."""
        self._check_fitted()
        return fitted_state(self)

    def _set_state(self, saved: dict, posterior: xr.DataTree | None) -> None:
        """Inverse of :meth:`_get_state` (raises ``ValueError`` on an inconsistent state)."""
        from bayesgmm.em.estimator import GaussianMixture

        fitted = restored_attributes(
            saved,
            posterior,
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            em_class=GaussianMixture,
        )
        self.__dict__.update(fitted)

    def __getstate__(self) -> dict:
        """Pickle without the compiled PyMC objects (``model_`` is rebuilt on first use) and
        without the kept diagnostics (computed again on first use)."""
        state = picklable_state(super().__getstate__())
        return {name: value for name, value in state.items() if name != DIAGNOSTICS_CACHE}

    def __getattr__(self, name: str):
        """Rebuild ``model_`` after unpickling or loading; explain a dropped ``approximation_``."""
        fitted = self.__dict__
        if name == "model_" and "spec_" in fitted and "_X" in fitted:
            fitted["model_"] = rebuild_model(fitted, fitted["covariance_prior_family"])
            return fitted["model_"]
        if name == "approximation_" and "vi_" in fitted:
            raise AttributeError(
                "approximation_ (the PyMC approximation of a VI fit) is not kept when the "
                "estimator is pickled or saved; its draws are in idata_: refit to get it back"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


__all__ = ["SavedState", "fitted_state", "picklable_state", "rebuild_model", "restored_attributes"]
