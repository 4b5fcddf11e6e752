"""Choose K and the covariance structure: PSIS-LOO on the posterior beside EM criteria.

:func:`compare` fits every candidate ``(n_components, covariance_type)`` twice, by EM
(:class:`~bayesgmm.GaussianMixture`) and by the PyMC posterior
(:class:`~bayesgmm.bayes.estimator.BayesianGaussianMixture`), and returns one
:class:`ModelComparison` whose table has one row per candidate.

Sign conventions
    ``elpd_loo`` (expected log pointwise predictive density, PSIS-LOO): **higher is
    better**; ``elpd_diff <= 0`` is the difference to the best model and ``dse`` its
    standard error. ``bic``, ``aic`` and ``icl`` follow scikit-learn (``-2 log L +
    penalty``): **lower is better**. ``loglik`` is the total EM log-likelihood.

Pareto k
    PSIS-LOO is unreliable for observations whose Pareto shape ``k`` exceeds ArviZ's
    threshold ``good_k = min(1 - 1 / log10(S), 0.7)`` (``S`` posterior draws). Those are
    counted, an :class:`~bayesgmm.core.exceptions.UnreliableLOOWarning` (a ``UserWarning``)
    names the candidates, and, when the PyMC model is at hand,
    :func:`arviz_stats.loo_moment_match` (Paananen et al. 2021: importance weights
    recomputed after moving the draws in the unconstrained space) is applied to them;
    ``loo_method`` records which estimate the row holds. The other fallback that
    ``arviz_stats.loo`` offers, mixture importance sampling (``mixture=True``), needs
    draws from a different (mixture) posterior than the one NUTS targets, so it is not
    used.

Number of clusters
    With ``cluster_count`` on (the default when a posterior method is given),
    :func:`~bayesgmm.selection.sparse.fit_sparse_mixture` runs once on the same data and seed with
    ``K_max = max(max candidate K, min(10, n_samples))``, and the column ``p_kplus`` is
    the posterior probability that the number of occupied clusters ``K+`` equals the
    candidate's K. The sparse mixture always has full covariances, whatever the
    candidate's covariance type. Its answer need not match LOO or BIC: LOO measures
    predictive fit and can prefer extra components that model tails or outliers; ``K+``
    counts occupied clusters under a sparse prior on the weights; BIC is an asymptotic
    approximation to the evidence. :func:`recommend` says whether they agree.

Reuse and parallelism
    The PyMC graph depends only on K, the covariance type, d and the prior family: the
    data, their standardisation and the prior enter as ``pm.Data``
    (:mod:`bayesgmm.bayes.compiled`). Every candidate is a different structure, so a first
    comparison compiles each once; a later comparison, cross-validation fold or refit
    in the same process reuses the compiled functions (nothing is compiled), and a new
    process finds them in PyTensor's on-disk cache whatever the data. Also reused: one
    validated array for all candidates; each candidate's EM fit as the sampler's start
    (inside :class:`BayesianGaussianMixture`); the compiled functions of each fit's
    structure for moment matching (:class:`CompiledDensities`: nothing compiled; ArviZ's
    automatic version, used for fits with noise, weights or missing entries, compiles
    three functions per call); and, in the command line's ``report``, the comparison's
    fit of the chosen model for its MAP-versus-posterior analysis (no refit). Candidates
    run in parallel with ``n_jobs > 1`` (joblib processes, each with its own cache;
    results travel cloudpickled because a PyMC model does not pickle).
"""

from __future__ import annotations

import numbers
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cloudpickle
import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats import compare as az_compare
from arviz_stats import loo as az_loo
from arviz_stats import loo_moment_match as az_loo_moment_match
from arviz_stats.utils import ELPDData
from joblib import Parallel, delayed

from bayesgmm.core.covariance import covariance_types as registered_structures
from bayesgmm.core.exceptions import UnreliableLOOWarning
from bayesgmm.core.methods import POSTERIOR_METHODS, TUNE, PosteriorMethod
from bayesgmm.core.missing import check_missing_option
from bayesgmm.core.validation import (
    RandomState,
    check_data,
    check_positive_int,
    seed_sequence,
)
from bayesgmm.core.weights import check_sample_weight
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.posterior.draws import log_mixture_density
from bayesgmm.selection.sparse import ClusterCountPosterior, fit_sparse_mixture

#: Methods a comparison can use: a posterior method, or ``"map"`` (EM criteria only, as
#: ``BayesianGaussianMixture(method="map")`` fits only the MAP).
METHODS: tuple[str, ...] = (*POSTERIOR_METHODS, "map")
#: Settings of :class:`BayesianGaussianMixture` that :func:`fit_candidate` sets itself.
CANDIDATE_SETTINGS: tuple[str, ...] = (
    "n_components",
    "covariance_type",
    "method",
    "random_state",
    "progressbar",
    "noise",
    "missing",
)

#: Share of observations with high Pareto k above which a candidate's LOO is not trusted.
HIGH_K_SHARE = 0.05
#: ``p_loo`` above this multiple of the parameter count is warned about (misspecification).
P_LOO_RATIO = 1.5

SIGN_CONVENTION = (
    "elpd_loo: higher is better (elpd_diff = elpd - elpd of the best, with standard error "
    "dse); bic, aic, icl: lower is better (scikit-learn convention, -2 log L + penalty)."
)


def candidate_name(n_components: int, covariance_type: str) -> str:
    """Row label of a candidate, e.g. ``"K=3 full"``."""
    return f"K={n_components} {covariance_type}"


def em_criteria(
    model: GaussianMixture, X: np.ndarray, sample_weight: np.ndarray | None = None
) -> dict[str, float]:
    """Information criteria of a fitted EM model.

    Parameters
    ----------
    model : GaussianMixture
        Fitted.
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights: every criterion is that of the replicated rows
        (``log L = sum_n w_n log p(x_n)``, ``N = sum_n w_n``).

    Returns
    -------
    dict
        ``n_parameters``, ``loglik`` (total log-likelihood), ``bic``, ``aic`` and ``icl``
        (all three on the ``-2 log L`` scale: lower is better).
    """
    if sample_weight is None:
        return {
            "n_parameters": model.spec_.n_parameters,
            "loglik": float(model.score_samples(X).sum()),
            "bic": model.bic(X),
            "aic": model.aic(X),
            "icl": model.icl(X),
        }
    resp = model.predict_proba(X)
    log_resp = np.log(resp, where=resp > 0, out=np.zeros_like(resp))
    entropy = -float(np.sum(sample_weight[:, None] * resp * log_resp))
    bic = model.bic(X, sample_weight=sample_weight)
    return {
        "n_parameters": model.spec_.n_parameters,
        "loglik": float(sample_weight @ model.score_samples(X)),
        "bic": bic,
        "aic": model.aic(X, sample_weight=sample_weight),
        "icl": bic + 2.0 * entropy,
    }


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
    if getattr(bayes, "sampler", None) != "nutpie" or not getattr(bayes, "_plain_model", False):
        return None
    from bayesgmm.bayes.compiled import compiled_mixture

    compiled = compiled_mixture(
        bayes._X, bayes.spec_, covariance_prior_family=bayes.covariance_prior_family
    )
    return CompiledDensities(compiled, bayes._X, bayes.spec_)


@dataclass
class CandidateFit:
    """Both fits of one candidate.

    Attributes
    ----------
    n_components : int
    covariance_type : str
    em : GaussianMixture
        EM fit behind the information criteria.
    criteria : dict
        :func:`em_criteria` of ``em``.
    bayes : BayesianGaussianMixture or None
        The posterior fit (``None`` when the comparison is EM-only, ``method="map"``).
    loo : ELPDData or None
        Pointwise PSIS-LOO of ``bayes``.
    loo_method : str
        See :func:`psis_loo`.
    diagnostics_ok : bool or None
        ``bayes.diagnose().ok`` (NUTS only).
    """

    n_components: int
    covariance_type: str
    em: GaussianMixture
    criteria: dict
    bayes: object = None
    loo: ELPDData | None = None
    loo_method: str = ""
    diagnostics_ok: bool | None = None

    @property
    def name(self) -> str:
        """Row label, see :func:`candidate_name`."""
        return candidate_name(self.n_components, self.covariance_type)


def fit_candidate(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    *,
    method: PosteriorMethod | Literal["map"],
    bayes_kwargs: dict,
    em_prior: str | None,
    em_n_init: int | Literal["auto"],
    moment_match: bool,
    random_state: int | None,
    sample_weight: np.ndarray | None = None,
    noise: bool = False,
    missing: Literal["error", "marginalize"] = "error",
) -> CandidateFit:
    """Fit one candidate by EM and (unless ``method="map"``) by the PyMC posterior.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated data.
    n_components : int
    covariance_type : str
    method : {"nuts", "advi", "fullrank_advi", "map"}
        ``"map"``: EM only.
    bayes_kwargs : dict
        Further settings of :class:`BayesianGaussianMixture` (``draws``, ``tune``,
        ``sampler``, ...), all but :data:`CANDIDATE_SETTINGS`.
    em_prior : None or "default"
        Prior of the EM fit behind the criteria (None: maximum likelihood).
    em_n_init : "auto" or int
        EM restarts (see :class:`GaussianMixture`'s ``n_init``).
    moment_match : bool
        See :func:`psis_loo`.
    random_state : int, optional
        Seed of both fits.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights of both fits and of the criteria.
    noise, missing
        As in :class:`GaussianMixture` and :class:`BayesianGaussianMixture`, for both fits.

    Returns
    -------
    CandidateFit
    """
    em = GaussianMixture(
        n_components,
        covariance_type=covariance_type,
        prior=em_prior,
        n_init=em_n_init,
        random_state=random_state,
        noise=noise,
        missing=missing,
    ).fit(X, sample_weight=sample_weight)
    fit = CandidateFit(n_components, covariance_type, em, em_criteria(em, X, sample_weight))
    if method == "map":
        return fit
    from bayesgmm.bayes.estimator import BayesianGaussianMixture

    bayes = BayesianGaussianMixture(
        n_components,
        covariance_type=covariance_type,
        method=method,
        random_state=random_state,
        progressbar=False,
        noise=noise,
        missing=missing,
        **bayes_kwargs,
    ).fit(X, sample_weight=sample_weight)
    fit.bayes = bayes
    fit.loo, fit.loo_method = psis_loo(
        bayes.idata_,
        bayes.model_,
        moment_match=moment_match and method == "nuts",
        densities=compiled_densities(bayes) if method == "nuts" else None,
    )
    if method == "nuts":
        try:
            fit.diagnostics_ok = bool(bayes.diagnose().ok)
        except ValueError:  # too few chains or draws to diagnose
            fit.diagnostics_ok = None
    return fit


def _fit_in_worker(*args, **kwargs) -> bytes:
    """:func:`fit_candidate` in a joblib worker, cloudpickled (a PyMC model does not pickle)."""
    return cloudpickle.dumps(fit_candidate(*args, **kwargs))


def recommend(
    table: pd.DataFrame,
    *,
    n_se: float = 1.0,
    cluster_count: ClusterCountPosterior | None = None,
) -> tuple[str, str]:
    """Pick a model from a comparison table and say why in one sentence.

    With LOO: the simplest candidate (fewest parameters, then highest elpd) whose
    ``elpd_loo`` is within ``n_se`` standard errors (``dse``) of the best, passing over
    candidates whose sampler checks failed or whose LOO is unreliable (more than
    :data:`HIGH_K_SHARE` of the observations with high Pareto k) when an acceptable one
    is within ``n_se`` SE; the sentence names those passed over, says when every
    candidate failed, and warns when the chosen one's ``p_loo`` exceeds
    :data:`P_LOO_RATIO` times its parameter count (see :func:`candidate_problems`,
    :func:`p_loo_warning`). Without LOO (EM-only table): the lowest BIC. With
    ``cluster_count``, a further sentence says whether the posterior mode of ``K+`` equals
    the recommended K (see :func:`cluster_count_sentence`); the pick itself does not change.

    Parameters
    ----------
    table : DataFrame
        :attr:`ModelComparison.table`.
    n_se : float
        How many standard errors of the difference count as "as good as the best".
    cluster_count : ClusterCountPosterior, optional
        Sparse-mixture posterior of ``K+`` on the same data.

    Returns
    -------
    name : str
        Row label of the recommended candidate.
    reason : str
    """
    name, reason = _recommend(table, n_se)
    if cluster_count is not None:
        k = int(table.loc[name, "n_components"])
        reason = f"{reason} {cluster_count_sentence(cluster_count, k)}"
    return name, reason


def cluster_count_sentence(cluster_count: ClusterCountPosterior, n_components: int) -> str:
    """Whether the posterior mode of ``K+`` agrees with a chosen K, and why it may not.

    Parameters
    ----------
    cluster_count : ClusterCountPosterior
    n_components : int
        The recommended K.

    Returns
    -------
    str
    """
    mode, p_mode = cluster_count.mode, cluster_count.mode_probability
    p_k = float(cluster_count.probabilities.get(n_components, 0.0))
    model = f"sparse mixture with full covariances, K_max={cluster_count.max_components}"
    if mode == n_components:
        return (
            f"The sparse-mixture posterior agrees: K+ = {mode} is its mode "
            f"(probability {p_mode:.2f}; {model})."
        )
    return (
        f"The sparse-mixture posterior disagrees: its mode is K+ = {mode} (probability "
        f"{p_mode:.2f}) and P(K+ = {n_components}) = {p_k:.2f} ({model}). They answer "
        "different questions: LOO measures predictive fit and can prefer extra components "
        "for tails or outliers, K+ counts occupied clusters under a sparse prior on the "
        "weights, and BIC is an asymptotic approximation to the evidence."
    )


def _recommend(table: pd.DataFrame, n_se: float) -> tuple[str, str]:
    by_bic = table["bic"].idxmin()
    if "elpd_loo" not in table or table["elpd_loo"].isna().all():
        return by_bic, (
            f"{by_bic} has the lowest BIC ({table.loc[by_bic, 'bic']:.1f}; lower is better)."
        )
    best = table["elpd_loo"].idxmax()
    close = table[table["elpd_diff"] + n_se * table["dse"] >= 0]
    name, qualifier, screening = _screen_candidates(table, close, n_se)
    row = table.loc[name]
    if name == best:
        reason = (
            f"{name} has the highest LOO elpd ({row.elpd_loo:.1f} ± {row.se:.1f}) and no "
            f"simpler {qualifier}candidate is within {n_se:g} SE of it"
        )
    else:
        reason = (
            f"{name} is the simplest {qualifier}candidate whose LOO elpd "
            f"({row.elpd_loo:.1f}) is within {n_se:g} SE of the best ({best}, difference "
            f"{row.elpd_diff:.1f} ± {row.dse:.1f})"
        )
    agrees = "agrees" if by_bic == name else f"prefers {by_bic}"
    flagged = row.k_high + row.k_very_high
    caveat = f", though {flagged} observation(s) keep a high Pareto k" if flagged else ""
    return name, f"{reason}; BIC {agrees}{caveat}.{screening}{p_loo_warning(name, row)}"


def candidate_problems(row: pd.Series, *, high_k_share: float = 0.05) -> list[str]:
    """Why a candidate's LOO row should not be trusted, in words (empty: acceptable).

    Parameters
    ----------
    row : Series
        One row of :attr:`ModelComparison.table`.
    high_k_share : float, default=0.05
        Largest share of observations with Pareto k above ``good_k`` (``k_high +
        k_very_high``) for which the elpd estimate is still accepted.

    Returns
    -------
    list of str
        "its sampler checks failed" when ``sampler_ok`` is False; "<m> of <n>
        observations have high Pareto k" when their share exceeds ``high_k_share``.
    """
    problems = []
    sampler_ok = row.get("sampler_ok")
    if sampler_ok is not None and not pd.isna(sampler_ok) and not bool(sampler_ok):
        problems.append("its sampler checks failed")
    high = int(row.get("k_high", 0)) + int(row.get("k_very_high", 0))
    n_obs = high + int(row["k_ok"]) if "k_ok" in row else 0
    if n_obs and high / n_obs > high_k_share:
        problems.append(f"{high} of {n_obs} observations have high Pareto k")
    return problems


def _screen_candidates(
    table: pd.DataFrame, close: pd.DataFrame, n_se: float
) -> tuple[str, str, str]:
    """The simplest acceptable candidate in ``close``, a qualifier, and a note on the others.

    The qualifier is ``"acceptable "`` when simpler candidates were passed over.
    """
    ordered = list(close.sort_values(["n_parameters", "elpd_loo"], ascending=[True, False]).index)
    problems = {
        name: candidate_problems(table.loc[name], high_k_share=HIGH_K_SHARE) for name in table.index
    }
    acceptable = [name for name in ordered if not problems[name]]
    if acceptable:
        name = acceptable[0]
        passed_over = ordered[: ordered.index(name)]
        notes = [
            f"{other} was passed over: {' and '.join(problems[other])}" for other in passed_over
        ]
        return name, "acceptable " if notes else "", "".join(f" {note}." for note in notes)
    name = ordered[0]
    failures = "; ".join(f"{other}: {' and '.join(problems[other])}" for other in ordered)
    if all(problems.values()):
        return (
            name,
            "",
            (
                f" Caution: every candidate failed a check ({failures}), so no recommendation is "
                "reliable: rerun with more draws and tuning, a higher target_accept or fewer "
                "components."
            ),
        )
    good = ", ".join(other for other in table.index if not problems[other])
    return (
        name,
        "",
        (
            f" Caution: every candidate within {n_se:g} SE of the best failed a check "
            f"({failures}); the acceptable ones ({good}) fit worse by more than {n_se:g} SE."
        ),
    )


def p_loo_warning(name: str, row: pd.Series, *, ratio: float | None = None) -> str:
    """A misspecification warning when ``p_loo`` is far above the parameter count.

    ``p_loo``, the effective number of parameters, is at most about the number of
    parameters for a well-specified model with a weak prior; far above it (by default
    more than :data:`P_LOO_RATIO` times) the model is probably badly misspecified or a
    few observations are very influential (Vehtari, Gelman and Gabry 2017; the ``loo``
    package's "p_loo > p" rule, with a margin for Monte Carlo error).

    Returns
    -------
    str
        The warning sentence (with a leading space), or ``""``.
    """
    ratio = P_LOO_RATIO if ratio is None else ratio
    p_loo = float(row.get("p_loo", np.nan))
    n_parameters = float(row["n_parameters"])
    if not np.isfinite(p_loo) or p_loo <= ratio * n_parameters:
        return ""
    return (
        f" Warning: p_loo of {name} ({p_loo:.1f}) is far above its {n_parameters:.0f} "
        "parameters: the model is probably misspecified (or a few observations are very "
        "influential); check the fit before trusting the comparison."
    )


@dataclass
class ModelComparison:
    """Result of :func:`compare`: one row per candidate, best LOO first.

    Columns of :attr:`table` (index: ``"K=<k> <covariance_type>"``)
        ``n_components``, ``covariance_type``, ``n_parameters``;
        ``rank`` (0 is the best elpd), ``elpd_loo`` and its ``se``, ``elpd_diff`` (to the
        best, <= 0) and its ``dse``, ``p_loo`` (effective number of parameters),
        ``weight`` (stacking weight), Pareto-k counts ``k_ok``, ``k_high``,
        ``k_very_high`` (see :func:`pareto_k_counts`), ``loo_method``,
        ``sampler_ok`` (the posterior's diagnostics verdict); and from EM: ``loglik``,
        ``bic``, ``aic``, ``icl``. Higher elpd is better; lower BIC, AIC, ICL is better.
        With a cluster count: ``p_kplus``, the sparse-mixture ``P(K+ = K | X)``.

    Attributes
    ----------
    table : DataFrame
    recommended : str
        Row label of the recommended candidate (see :func:`recommend`).
    reason : str
        Why, in one sentence.
    fits : dict of str to CandidateFit
    method : str
        Posterior method, ``"map"`` for an EM-only comparison.
    cluster_count : ClusterCountPosterior or None
        Sparse-mixture posterior of ``K+`` (full covariances), when computed.
    """

    table: pd.DataFrame
    recommended: str
    reason: str
    fits: dict[str, CandidateFit] = field(repr=False)
    method: str = "map"
    cluster_count: ClusterCountPosterior | None = field(default=None, repr=False)

    sign_convention = SIGN_CONVENTION

    @property
    def best(self) -> CandidateFit:
        """The recommended candidate's fits."""
        return self.fits[self.recommended]

    @property
    def elpd(self) -> dict[str, ELPDData]:
        """Pointwise LOO results by candidate name (empty for an EM-only comparison)."""
        return {name: fit.loo for name, fit in self.fits.items() if fit.loo is not None}

    def to_frame(self) -> pd.DataFrame:
        """The comparison table (a copy)."""
        return self.table.copy()

    def __str__(self) -> str:
        columns = [c for c in DISPLAY_COLUMNS if c in self.table]
        with pd.option_context("display.width", 160, "display.max_columns", 30):
            text = self.table[columns].round(2).to_string()
        kplus = "" if self.cluster_count is None else f"{self.cluster_count}\n"
        method = "EM only" if self.method == "map" else self.method
        return (
            f"Model comparison ({method})\n{text}\n{kplus}"
            f"{SIGN_CONVENTION}\nRecommended: {self.recommended}. {self.reason}"
        )


DISPLAY_COLUMNS: tuple[str, ...] = (
    "rank",
    "elpd_loo",
    "se",
    "elpd_diff",
    "dse",
    "p_loo",
    "weight",
    "k_ok",
    "k_high",
    "k_very_high",
    "sampler_ok",
    "loglik",
    "bic",
    "aic",
    "icl",
    "p_kplus",
)


def comparison_table(fits: Sequence[CandidateFit]) -> pd.DataFrame:
    """Assemble the table of :class:`ModelComparison` from fitted candidates.

    Parameters
    ----------
    fits : sequence of CandidateFit
        All with LOO results, or all without (EM-only).

    Returns
    -------
    DataFrame
        Sorted by ``elpd_loo`` (descending) when present, else by BIC (ascending).
    """
    rows = {
        fit.name: {
            "n_components": fit.n_components,
            "covariance_type": fit.covariance_type,
            **fit.criteria,
        }
        for fit in fits
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    if any(fit.loo is None for fit in fits):
        return table.sort_values("bic")
    elpds = {fit.name: fit.loo for fit in fits}
    if len(fits) > 1:
        loo_table = az_compare(elpds, method="stacking", round_to="none")
    else:
        ((name, elpd),) = elpds.items()
        loo_table = pd.DataFrame(
            {
                "rank": [0],
                "elpd_diff": [0.0],
                "dse": [0.0],
                "p": [elpd.p],
                "elpd": [elpd.elpd],
                "se": [elpd.se],
                "weight": [1.0],
            },
            index=[name],
        )
    loo_part = pd.DataFrame(
        {
            "rank": loo_table["rank"].astype(int),
            "elpd_loo": loo_table["elpd"].astype(float),
            "se": loo_table["se"].astype(float),
            "elpd_diff": loo_table["elpd_diff"].astype(float),
            "dse": loo_table["dse"].astype(float),
            "p_loo": loo_table["p"].astype(float),
            "weight": loo_table["weight"].astype(float),
        }
    )
    k_part = pd.DataFrame.from_dict(
        {
            fit.name: {
                **pareto_k_counts(fit.loo.pareto_k.values, fit.loo.good_k),
                "loo_method": fit.loo_method,
                "sampler_ok": fit.diagnostics_ok,
            }
            for fit in fits
        },
        orient="index",
    )
    table = table.join(loo_part).join(k_part)
    order = [
        "n_components",
        "covariance_type",
        "n_parameters",
        *loo_part.columns,
        *k_part.columns,
        "loglik",
        "bic",
        "aic",
        "icl",
    ]
    return table[order].sort_values("elpd_loo", ascending=False)


def _warn_high_k(fits: Iterable[CandidateFit]) -> None:
    flagged = {
        fit.name: int(np.sum(~(fit.loo.pareto_k.values <= fit.loo.good_k)))
        for fit in fits
        if fit.loo is not None
    }
    flagged = {name: n for name, n in flagged.items() if n}
    if flagged:
        listing = ", ".join(f"{name}: {n}" for name, n in flagged.items())
        warnings.warn(
            f"PSIS-LOO is unreliable for some observations (Pareto k above ArviZ's good_k "
            f"threshold, at most 0.7), after moment matching where it applied ({listing}); "
            "their elpd is optimistic. Prefer K-fold cross-validation "
            "(arviz_stats.loo_kfold) or more draws before trusting close differences.",
            UnreliableLOOWarning,
            stacklevel=3,
        )


def _integral(value):
    """An integer-valued float (``3.0``) as an int; anything else unchanged (checked later)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value


def _candidate_ks(n_components) -> list[int]:
    """``n_components`` of :func:`compare` as a sorted list of distinct positive ints."""
    if isinstance(n_components, str) or not isinstance(n_components, Iterable):
        if isinstance(n_components, numbers.Real) and not isinstance(n_components, bool):
            return [check_positive_int(_integral(n_components), "n_components")]
        raise TypeError(
            "n_components must be a positive int (one candidate K) or an iterable of them, "
            f"e.g. range(1, 7); got {n_components!r} ({type(n_components).__name__})"
        )
    ks = [check_positive_int(_integral(k), "n_components") for k in n_components]
    if not ks:
        raise ValueError("n_components is empty: give at least one number of components")
    return sorted(set(ks))


def _progress_callback(progressbar) -> Callable[[str], None] | None:
    """``progressbar`` of :func:`compare` as a message callback (``None``: silent)."""
    if callable(progressbar):
        return progressbar
    if isinstance(progressbar, bool | np.bool_):
        return _print_progress if progressbar else None
    raise TypeError(
        "progressbar must be True (messages on stderr), False or a callable taking one "
        f"message; got {progressbar!r}"
    )


def _print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def compare(
    X,
    n_components: int | Iterable[int] = range(1, 7),
    covariance_types: str | Sequence[str] = ("full",),
    method: PosteriorMethod | Literal["map"] = "nuts",
    *,
    draws: int = 1000,
    tune: int = TUNE,
    chains: int = 4,
    bayes_kwargs: dict | None = None,
    em_prior: str | None = None,
    em_n_init: int | Literal["auto"] = "auto",
    sample_weight=None,
    noise: bool = False,
    missing: Literal["error", "marginalize"] = "error",
    moment_match: bool = True,
    n_se: float = 1.0,
    cluster_count: bool | None = None,
    sparse_kwargs: dict | None = None,
    n_jobs: int = 1,
    random_state: RandomState = None,
    progressbar: bool | Callable[[str], None] = False,
) -> ModelComparison:
    """Fit every candidate and compare them by PSIS-LOO and EM information criteria.

    Settings that :class:`~bayesgmm.GaussianMixture` or
    :class:`~bayesgmm.BayesianGaussianMixture` also take have their names and defaults
    (``em_n_init`` is the EM fit's ``n_init``, as in ``BayesianGaussianMixture``).
    ``<fit>_kwargs`` holds further settings of a fit this function runs for you
    (``bayes_kwargs``: every candidate's ``BayesianGaussianMixture``; ``sparse_kwargs``:
    the sparse mixture's Gibbs sampler); ``BayesianGaussianMixture(sampler_kwargs=...)``
    reaches the NUTS or VI function itself, e.g. ``bayes_kwargs={"sampler_kwargs": {...}}``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : int or iterable of int, default=range(1, 7)
        Candidate numbers of components K; an int is one candidate K (``compare(X, 3)``
        compares the covariance structures at K=3), not ``range(1, 4)``.
    covariance_types : str or sequence of str, default=("full",)
        Candidate covariance structures; one name is one structure, ``"all"`` every
        registered one.
    method : {"nuts", "advi", "fullrank_advi", "map"}, default="nuts"
        How the posterior is fitted; ``"map"`` compares by EM criteria only (no posterior,
        as ``BayesianGaussianMixture(method="map")``). LOO on variational draws is plain
        PSIS and less trustworthy than on NUTS draws. ``None`` is a deprecated spelling of
        ``"map"``.
    draws, tune, chains : int
        Sampler settings for every candidate. A run that misses R-hat or ESS goes on to
        2x and 4x ``draws`` as :class:`BayesianGaussianMixture` does (unless its chains
        barely move); ``bayes_kwargs={"max_draws": draws}`` keeps every run fixed.
    bayes_kwargs : dict, optional
        Further settings of :class:`BayesianGaussianMixture` for every candidate (e.g.
        ``sampler``, ``target_accept``, ``sampler_kwargs``); not those in
        :data:`CANDIDATE_SETTINGS`.
    em_prior : None or "default", default=None
        ``None``: BIC, AIC and ICL at the maximum-likelihood EM fit (their textbook
        definition); ``"default"``: at the MAP-EM fit.
    em_n_init : "auto" or int, default="auto"
        EM restarts per candidate, as :class:`GaussianMixture`'s ``n_init`` (``"auto"``:
        60 starts and split-and-merge moves on small data).
    sample_weight : array-like of shape (n_samples,), optional
        Frequency weights of every fit; the criteria are those of the replicated rows.
    noise : bool, default=False
        Add a uniform background component to every candidate (both fits).
    missing : {"error", "marginalize"}, default="error"
        ``"marginalize"``: NaN entries are marginalised (missing at random) in both fits.
    moment_match : bool, default=True
        Moment-match high Pareto-k observations (NUTS only); see the module docstring.
    n_se : float, default=1.0
        Tolerance of the recommendation rule, see :func:`recommend`.
    cluster_count : bool or None, default=None
        Also fit the sparse finite mixture (full covariances) once and add ``p_kplus``
        (module docstring); ``None``: when ``method`` is not ``"map"`` and no weights,
        noise or missing entries are asked for (the sparse mixture has none of them). It
        costs one Gibbs run with ``K_max = max(max K, min(10, n_samples))`` components,
        about a second for a few hundred points with the sampler's defaults.
    sparse_kwargs : dict, optional
        Settings of :func:`~bayesgmm.selection.sparse.fit_sparse_mixture` (``draws``, ``burn``,
        ``chains``, ``e0``, ...); not ``max_components`` or ``random_state``.
    n_jobs : int, default=1
        Candidates fitted in parallel (joblib processes). Each NUTS fit already runs its
        chains in parallel, so more jobs than cores divided by chains rarely helps.
    random_state : int, numpy Generator, SeedSequence or None, default=None
        Seeds every candidate (independent streams), so the same int gives the same
        table; a Generator is consumed (the same generator state gives the same table);
        ``None`` draws fresh seeds.
    progressbar : bool or callable, default=False
        ``True``: a short message on stderr before each candidate is fitted; a callable is
        called with that message instead.

    Returns
    -------
    ModelComparison

    Warns
    -----
    UserWarning
        When observations keep a Pareto k above the reliability threshold.
    DeprecationWarning
        ``method=None``.
    """
    ks = _candidate_ks(n_components)
    if isinstance(covariance_types, str):
        covariance_types = (
            registered_structures() if covariance_types == "all" else [covariance_types]
        )
    covariance_types = list(covariance_types)
    bad = [c for c in covariance_types if c not in registered_structures()]
    if bad or not covariance_types:
        raise ValueError(
            f"covariance_types must be a non-empty subset of {list(registered_structures())} "
            f"(or 'all'), got {covariance_types}"
        )
    if method is None:
        warnings.warn(
            'compare(method=None) is deprecated: use method="map" (EM criteria only)',
            DeprecationWarning,
            stacklevel=2,
        )
        method = "map"
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    owned = sorted(set(bayes_kwargs or {}) & set(CANDIDATE_SETTINGS))
    if owned:
        raise ValueError(
            f"bayes_kwargs sets {owned}, which compare() sets per candidate: pass "
            "n_components, covariance_types, method, random_state, noise and missing to "
            "compare() instead"
        )
    progress = _progress_callback(progressbar)
    missing = check_missing_option(missing)
    if not isinstance(noise, bool | np.bool_):
        raise TypeError(f"noise must be True or False, got {noise!r}")
    features = [
        name
        for name, on in (
            ("sample_weight", sample_weight is not None),
            ("noise=True", noise),
            ('missing="marginalize"', missing == "marginalize"),
        )
        if on
    ]
    if cluster_count is None:
        cluster_count = method != "map" and not features
    elif cluster_count and features:
        raise ValueError(
            f"cluster_count=True with {' and '.join(features)}: the sparse mixture behind "
            "p_kplus has no weights, noise or missing entries; set cluster_count=False"
        )
    owned = sorted(set(sparse_kwargs or {}) & {"max_components", "random_state"})
    if owned:
        raise ValueError(
            f"sparse_kwargs sets {owned}, which compare() sets itself: K_max is "
            "max(max K, min(10, n_samples)) and the seed is random_state"
        )
    data = check_data(X, n_components=max(ks), min_samples=2, allow_nan=missing == "marginalize")
    weights = check_sample_weight(sample_weight, data.shape[0])
    candidates = [(k, c) for c in covariance_types for k in ks]
    # An int seeds as it always did (same tables as before); anything else through one
    # SeedSequence, whose last state seeds the sparse mixture.
    states = seed_sequence(random_state).generate_state(len(candidates) + 1).tolist()
    seeds, sparse_seed = states[:-1], states[-1]
    if isinstance(random_state, numbers.Integral):
        sparse_seed = random_state
    settings = {"draws": draws, "tune": tune, "chains": chains, **(bayes_kwargs or {})}

    jobs = []
    for i, (k, cov) in enumerate(candidates):
        args = (data, k, cov)
        kwargs = {
            "method": method,
            "bayes_kwargs": settings,
            "em_prior": em_prior,
            "em_n_init": em_n_init,
            "moment_match": moment_match,
            "random_state": seeds[i],
            "sample_weight": weights,
            "noise": bool(noise),
            "missing": missing,
        }
        jobs.append((f"fitting {candidate_name(k, cov)} ({i + 1}/{len(candidates)})", args, kwargs))
    if n_jobs == 1:
        fits = []
        for message, args, kwargs in jobs:
            if progress is not None:
                progress(message)
            fits.append(fit_candidate(*args, **kwargs))
    else:
        if progress is not None:
            progress(f"fitting {len(jobs)} candidates with n_jobs={n_jobs}")
        fits = [
            cloudpickle.loads(blob)
            for blob in Parallel(n_jobs=n_jobs)(
                delayed(_fit_in_worker)(*args, **kwargs) for _, args, kwargs in jobs
            )
        ]
    _warn_high_k(fits)
    table = comparison_table(fits)
    kplus = None
    if cluster_count:
        k_max = max(max(ks), min(10, len(data)))
        if progress is not None:
            progress(f"fitting the sparse finite mixture (K_max={k_max}) for P(K+)")
        kplus = fit_sparse_mixture(
            data, k_max, random_state=sparse_seed, **(sparse_kwargs or {})
        ).cluster_count
        table["p_kplus"] = [float(kplus.probabilities.get(k, 0.0)) for k in table["n_components"]]
    name, reason = recommend(table, n_se=n_se, cluster_count=kplus)
    return ModelComparison(
        table, name, reason, {fit.name: fit for fit in fits}, method, cluster_count=kplus
    )


__all__ = [
    "CANDIDATE_SETTINGS",
    "HIGH_K_SHARE",
    "METHODS",
    "P_LOO_RATIO",
    "SIGN_CONVENTION",
    "CandidateFit",
    "ModelComparison",
    "candidate_name",
    "candidate_problems",
    "cluster_count_sentence",
    "compare",
    "comparison_table",
    "em_criteria",
    "fit_candidate",
    "p_loo_warning",
    "pareto_k_counts",
    "psis_loo",
    "recommend",
]
