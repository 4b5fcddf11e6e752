"""PSIS-LOO of a fitted candidate, with moment matching on the compiled model's densities.

Moved whole out of :mod:`bayesgmm.selection.compare`, which re-exports every public name.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from arviz_stats import loo as az_loo
from arviz_stats import loo_moment_match as az_loo_moment_match
from arviz_stats.utils import ELPDData

from bayesgmm.posterior.draws import log_mixture_density


def pareto_k_counts(pareto_k: np.ndarray, good_k: float) -> dict[str, int]:
    """Count observations by Pareto shape ``k``.

    Parameters
    ----------
    pareto_k : ndarray of shape (n_samples,)
    good_k : float
        Threshold of reliable importance sampling (ArviZ's ``good_k``).

    Returns
    -------
    dict
        ``k_ok`` (``k <= good_k``), ``k_high`` (``good_k < k <= 1``), ``k_very_high``
        (``k > 1`` or not estimable (NaN): the estimate for that observation is meaningless).
    """
    k = np.asarray(pareto_k, dtype=np.float64).ravel()
    ok = k <= good_k
    high = (k > good_k) & (k <= 1.0)
    return {
        "k_ok": int(ok.sum()),
        "k_high": int(high.sum()),
        "k_very_high": int(k.size - ok.sum() - high.sum()),
    }


def psis_loo(
    idata, model=None, *, moment_match: bool = True, densities=None
) -> tuple[ELPDData, str]:
    """PSIS-LOO of one posterior, moment-matched where Pareto k is high and a model is given.

    Parameters
    ----------
    idata : xarray.DataTree
        With ``posterior`` and ``log_likelihood`` groups.
    model : pymc.Model, optional
        The model behind ``idata``; needed for moment matching (ArviZ compiles its
        log densities, for every call).
    moment_match : bool
        Try :func:`arviz_stats.loo_moment_match` on high-k observations.
    densities : CompiledDensities, optional
        The same log densities from the structure's compiled model
        (:func:`compiled_densities`, nothing compiled); used instead of ``model``.

    Returns
    -------
    elpd : ELPDData
        Pointwise LOO result.
    method : str
        ``"psis"``, ``"psis+moment_matching"``, or ``"psis (moment matching failed: ...)"``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        result = az_loo(idata, pointwise=True)
    if not (moment_match and (model is not None or densities is not None) and result.warning):
        return result, "psis"
    try:
        with warnings.catch_warnings():
            for message in (
                "Estimated shape parameter of Pareto",
                "Observation .* Moment",
                "After Moment Matching",
            ):
                warnings.filterwarnings("ignore", message=message)
            if densities is None:
                matched = az_loo(idata, pointwise=True, moment_match=True, model=model)
            else:
                matched = az_loo_moment_match(
                    idata,
                    result,
                    log_prob_upars_fn=densities.log_prob,
                    log_lik_i_upars_fn=densities.log_lik_i,
                    upars=densities.upars(idata),
                    pointwise=True,
                )
    except (ValueError, KeyError, NotImplementedError, np.linalg.LinAlgError) as err:
        return result, f"psis (moment matching failed: {type(err).__name__})"
    return matched, "psis+moment_matching"


@dataclass
class CompiledDensities:
    """Moment-matching inputs of :func:`arviz_stats.loo_moment_match` from a compiled model.

    ArviZ's automatic version (``loo(..., model=...)``) compiles three PyTensor functions
    for every call (seconds each, a minute or more with a cold disk cache), to evaluate them
    about five times per candidate; these run the structure's compiled NUTS functions
    (:meth:`bayesgmm.bayes.compiled.CompiledMixture.evaluate`: the log posterior density and the
    draws' parameters) and :func:`bayesgmm.posterior.draws.log_mixture_density` (the
    pointwise log-likelihood), and compile nothing.

    Attributes
    ----------
    compiled : CompiledMixture
    X : ndarray of shape (n_samples, n_features)
    spec : MixtureSpec
        The fit's data and spec (swapped into ``compiled`` for every evaluation).
    """

    compiled: object
    X: np.ndarray
    spec: object
    _last: tuple = field(default=(), repr=False)

    def upars(self, idata) -> xr.DataArray:
        """The posterior's draws in the unconstrained space, dims (chain, draw, parameter)."""
        posterior = idata["posterior"].to_dataset()
        values = self.compiled.unconstrained_draws(posterior)
        return xr.DataArray(
            values,
            dims=("chain", "draw", "unconstrained_parameter"),
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values},
        )

    def _densities(self, upars: xr.DataArray) -> tuple[np.ndarray, np.ndarray, xr.DataArray]:
        upars = upars.transpose("chain", "draw", ...)
        flat = np.asarray(upars.values, dtype=np.float64).reshape(-1, self.compiled.n_dim)
        if not (self._last and np.array_equal(self._last[0], flat)):
            with self.compiled.lock:
                self.compiled.set_data(self.X, self.spec)
                logp, stored = self.compiled.evaluate(flat)
            log_lik = log_mixture_density(
                self.X, stored["weights"], stored["means"], stored["covariances"]
            )
            self._last = (flat.copy(), logp, log_lik)
        return self._last[1], self._last[2], upars

    def log_prob(self, upars: xr.DataArray) -> xr.DataArray:
        """Log posterior density (unconstrained space) of each draw, dims (chain, draw)."""
        logp, _, upars = self._densities(upars)
        return _chain_draw(logp, upars)

    def log_lik_i(self, upars: xr.DataArray, i: int) -> xr.DataArray:
        """Log-likelihood of observation ``i`` at each draw, dims (chain, draw)."""
        _, log_lik, upars = self._densities(upars)
        return _chain_draw(log_lik[:, int(i)], upars)


def _chain_draw(values: np.ndarray, upars: xr.DataArray) -> xr.DataArray:
    shape = (upars.sizes["chain"], upars.sizes["draw"])
    return xr.DataArray(
        values.reshape(shape),
        dims=("chain", "draw"),
        coords={"chain": upars["chain"].values, "draw": upars["draw"].values},
    )


def compiled_densities(bayes) -> CompiledDensities | None:
    """:class:`CompiledDensities` of a NUTS fit on a cached compiled model, else ``None``.

    Parameters
    ----------
    bayes : BayesianGaussianMixture
        Fitted with ``sampler="nutpie"`` (fits with noise, weights or missing entries
        sample a model of their own and return ``None``: ArviZ's path applies).
    """
    if getattr(bayes, "sampler", None) != "nutpie" or not bayes.plain_model:
        return None
    from bayesgmm.bayes.compiled import compiled_mixture

    compiled = compiled_mixture(
        bayes._X, bayes.spec_, covariance_prior_family=bayes.covariance_prior_family
    )
    return CompiledDensities(compiled, bayes._X, bayes.spec_)


__all__ = ["CompiledDensities", "compiled_densities", "pareto_k_counts", "psis_loo"]
