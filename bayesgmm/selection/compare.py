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
from arviz_stats.utils import ELPDData
from joblib import Parallel, delayed

from bayesgmm.core.covariance import (
    Decomposed,
    bayesian_covariance_types,
    covariance_names,
    get_structure,
)
from bayesgmm.core.covariance import covariance_types as registered_structures
from bayesgmm.core.exceptions import UnreliablePosteriorWarning
from bayesgmm.core.methods import AUTO, MCMC_METHODS, POSTERIOR_METHODS, TUNE, PosteriorMethod
from bayesgmm.core.missing import check_missing_option
from bayesgmm.core.validation import (
    RandomState,
    check_data,
    check_positive_int,
    seed_sequence,
)
from bayesgmm.core.weights import check_sample_weight
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.em.mclust_table import cell_estimator, fit_table
from bayesgmm.selection.loo import compiled_densities, pareto_k_counts, psis_loo
from bayesgmm.selection.ranking import (
    HIGH_K_SHARE,
    P_LOO_RATIO,
    _warn_high_k,
    candidate_problems,
    cluster_count_sentence,
    comparison_table,
    p_loo_warning,
    recommend,
)
from bayesgmm.selection.sparse import ClusterCountPosterior, fit_sparse_mixture

#: Methods a comparison can use: a posterior method, ``"auto"`` (Gibbs or NUTS per
#: candidate, :mod:`bayesgmm.bayes.auto`), or ``"map"`` (EM criteria only, as
#: ``BayesianGaussianMixture(method="map")`` fits only the MAP).
METHODS: tuple[str, ...] = (*POSTERIOR_METHODS, AUTO, "map")
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


def candidate_structures(covariance_types: str | Sequence[str], method: str) -> list[str]:
    """The covariance structures a comparison fits (``"all"``: every one ``method`` can fit).

    Raises
    ------
    ValueError
        For an unknown name, or one of mclust's models that only EM fits (``method="map"``)
        asked for with a posterior method.
    """
    fittable = registered_structures() if method == "map" else bayesian_covariance_types()
    if isinstance(covariance_types, str):
        covariance_types = list(fittable) if covariance_types == "all" else [covariance_types]
    covariance_types = list(covariance_types)
    bad = [c for c in covariance_types if c not in covariance_names()]
    if bad or not covariance_types:
        raise ValueError(
            f"covariance_types must be a non-empty subset of {list(covariance_names())} "
            f"(or 'all'), got {covariance_types}"
        )
    em_only = [c for c in covariance_types if not get_structure(c).bayesian]
    if em_only and method != "map":
        raise ValueError(
            f"covariance_types {em_only} are not yet available for NUTS/VI (method={method!r}); "
            f"available: {', '.join(bayesian_covariance_types())} (VVV, EEE, VVI, VII), or "
            'compare them by EM with method="map"'
        )
    return covariance_types


def fit_candidate(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    *,
    method: PosteriorMethod | Literal["auto", "map"],
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
    method : {"nuts", "gibbs", "auto", "advi", "fullrank_advi", "map"}
        ``"map"``: EM only; ``"auto"``: Gibbs or NUTS for this candidate
        (:func:`bayesgmm.bayes.auto.choose_method`).
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

    with warnings.catch_warnings():
        # the table's sampler_ok column reports each candidate's checks
        warnings.simplefilter("ignore", UnreliablePosteriorWarning)
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
    ran = bayes.method_  # method="auto": the one it chose for this candidate
    fit.loo, fit.loo_method = psis_loo(
        bayes.idata_,
        bayes.model_,
        moment_match=moment_match and ran == "nuts",
        densities=compiled_densities(bayes) if ran == "nuts" else None,
    )
    if ran in MCMC_METHODS:
        try:
            fit.diagnostics_ok = bool(bayes.diagnose().ok)
        except ValueError:  # too few chains or draws to diagnose
            fit.diagnostics_ok = None
    return fit


def _fit_in_worker(*args, **kwargs) -> bytes:
    """:func:`fit_candidate` in a joblib worker, cloudpickled (a PyMC model does not pickle)."""
    return cloudpickle.dumps(fit_candidate(*args, **kwargs))


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
    def methods_run(self) -> dict[str, str]:
        """The method each candidate's posterior ran (``method="auto"``: Gibbs or NUTS), by
        candidate name (empty for an EM-only comparison)."""
        return {name: fit.bayes.method_ for name, fit in self.fits.items() if fit.bayes is not None}

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
        if self.method == AUTO:
            ran: dict[str, list[str]] = {}
            for name, ran_by in self.methods_run.items():
                ran.setdefault(ran_by, []).append(name)
            method += ": " + "; ".join(f"{m} for {', '.join(n)}" for m, n in ran.items())
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


def uses_table(
    method: str, covariance_types: Sequence[str], em_prior, em_n_init, features: Sequence[str]
) -> bool:
    """Whether :func:`compare` fills its EM cells with :func:`~bayesgmm.em.mclust_table.fit_table`.

    It does for an EM-only, maximum-likelihood comparison (``method="map"``,
    ``em_prior=None``, ``em_n_init="auto"``, no weights, noise or missing entries) whose
    candidates include one of mclust's ten models beyond the classic four (e.g.
    ``covariance_types="all"``): mclust's whole table at about mclust's speed.
    """
    structures = [get_structure(c) for c in covariance_types]
    return (
        method == "map"
        and em_prior is None
        and isinstance(em_n_init, str)
        and em_n_init == "auto"
        and not features
        and all(s.mclust_name is not None for s in structures)
        and any(isinstance(s, Decomposed) for s in structures)
    )


def _table_fits(
    data: np.ndarray, ks: list[int], covariance_types: Sequence[str], random_state: int
) -> dict[tuple[int, str], CandidateFit]:
    """The candidates :func:`fit_table` fills (empty cells are left to :func:`fit_candidate`)."""
    names = {c: get_structure(c).mclust_name for c in covariance_types}
    table = fit_table(data, ks, sorted(set(names.values())), random_state=random_state)
    fits = {}
    for cov, name in names.items():
        for k in ks:
            cell = table.fits.get((k, name))
            if cell is not None:
                em = cell_estimator(cell, data, cov)
                fits[(k, cov)] = CandidateFit(k, cov, em, em_criteria(em, data))
    return fits


def compare(
    X,
    n_components: int | Iterable[int] = range(1, 7),
    covariance_types: str | Sequence[str] = ("full",),
    method: PosteriorMethod | Literal["auto", "map"] = "nuts",
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
        registered one the method can fit: the four classic structures and mclust's ten
        other models (EII, EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV), by MAP-EM or by a
        posterior method (:mod:`bayesgmm.bayes.eigen_structures`). mclust's names of the
        classic four (VVV, EEE, VVI, VII) are accepted too, and the table keeps the names
        given.
    method : {"nuts", "gibbs", "auto", "advi", "fullrank_advi", "map"}, default="nuts"
        How the posterior is fitted; ``"auto"`` picks Gibbs or NUTS per candidate
        (:mod:`bayesgmm.bayes.auto`; each candidate's ``bayes.method_`` says which ran);
        ``"map"`` compares by EM criteria only (no posterior,
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
        60 starts and split-and-merge moves on small data). An EM-only, maximum-likelihood
        comparison that includes mclust's ten other models fits the whole table at once
        instead (:func:`uses_table`: :func:`~bayesgmm.em.mclust_table.fit_table`, mclust's
        hierarchical start, neighbouring models and emEM), at about mclust's speed.
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
    if method is None:
        warnings.warn(
            'compare(method=None) is deprecated: use method="map" (EM criteria only)',
            DeprecationWarning,
            stacklevel=2,
        )
        method = "map"
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    covariance_types = candidate_structures(covariance_types, method)
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

    done: dict[tuple[int, str], CandidateFit] = {}
    if uses_table(method, covariance_types, em_prior, em_n_init, features):
        if progress is not None:
            progress(f"fitting {len(candidates)} candidates as one mclust-style table")
        done = _table_fits(data, ks, covariance_types, sparse_seed)
    jobs = []
    for i, (k, cov) in enumerate(candidates):
        if (k, cov) in done:
            continue
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
    if done:
        rest = iter(fits)
        fits = [done[c] if c in done else next(rest) for c in candidates]
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
    "uses_table",
]
