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
    counted, a :class:`UserWarning` names the candidates, and, when the PyMC model is
    at hand, :func:`arviz_stats.loo_moment_match` (Paananen et al. 2021: importance
    weights recomputed after moving the draws in the unconstrained space) is applied to
    them; ``loo_method`` records which estimate the row holds. The other fallback that
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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import cloudpickle
import numpy as np
import pandas as pd
from arviz_stats.utils import ELPDData
from joblib import Parallel, delayed

from bayesgmm.core.covariance import covariance_types as registered_structures
from bayesgmm.core.methods import POSTERIOR_METHODS, TUNE, PosteriorMethod
from bayesgmm.core.validation import check_data, check_positive_int
from bayesgmm.em.estimator import GaussianMixture
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

#: Posterior methods a comparison can use (``None``: EM criteria only).
METHODS: tuple[str, ...] = POSTERIOR_METHODS
#: Settings of :class:`BayesianGaussianMixture` that :func:`fit_candidate` sets itself.
CANDIDATE_SETTINGS: tuple[str, ...] = (
    "n_components",
    "covariance_type",
    "method",
    "random_state",
    "progressbar",
)

SIGN_CONVENTION = (
    "elpd_loo: higher is better (elpd_diff = elpd - elpd of the best, with standard error "
    "dse); bic, aic, icl: lower is better (scikit-learn convention, -2 log L + penalty)."
)


def candidate_name(n_components: int, covariance_type: str) -> str:
    """Row label of a candidate, e.g. ``"K=3 full"``."""
    return f"K={n_components} {covariance_type}"


def em_criteria(model: GaussianMixture, X: np.ndarray) -> dict[str, float]:
    """Information criteria of a fitted EM model.

    Parameters
    ----------
    model : GaussianMixture
        Fitted.
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    dict
        ``n_parameters``, ``loglik`` (total log-likelihood), ``bic``, ``aic`` and ``icl``
        (all three on the ``-2 log L`` scale: lower is better).
    """
    return {
        "n_parameters": model.spec_.n_parameters,
        "loglik": float(model.score_samples(X).sum()),
        "bic": model.bic(X),
        "aic": model.aic(X),
        "icl": model.icl(X),
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
        The posterior fit (``None`` when the comparison is EM-only).
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
    method: PosteriorMethod | None,
    bayes_kwargs: dict,
    em_prior: str | None,
    em_n_init: int,
    moment_match: bool,
    random_state: int | None,
) -> CandidateFit:
    """Fit one candidate by EM and (unless ``method`` is None) by the PyMC posterior.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated data.
    n_components : int
    covariance_type : str
    method : {"nuts", "advi", "fullrank_advi"} or None
    bayes_kwargs : dict
        Further settings of :class:`BayesianGaussianMixture` (``draws``, ``tune``,
        ``sampler``, ...), all but :data:`CANDIDATE_SETTINGS`.
    em_prior : None or "default"
        Prior of the EM fit behind the criteria (None: maximum likelihood).
    em_n_init : int
        EM restarts.
    moment_match : bool
        See :func:`psis_loo`.
    random_state : int, optional
        Seed of both fits.

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
    ).fit(X)
    fit = CandidateFit(n_components, covariance_type, em, em_criteria(em, X))
    if method is None:
        return fit
    from bayesgmm.bayes.estimator import BayesianGaussianMixture

    bayes = BayesianGaussianMixture(
        n_components,
        covariance_type=covariance_type,
        method=method,
        random_state=random_state,
        progressbar=False,
        **bayes_kwargs,
    ).fit(X)
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
    method : str or None
        Posterior method, ``None`` for an EM-only comparison.
    cluster_count : ClusterCountPosterior or None
        Sparse-mixture posterior of ``K+`` (full covariances), when computed.
    """

    table: pd.DataFrame
    recommended: str
    reason: str
    fits: dict[str, CandidateFit] = field(repr=False)
    method: str | None = None
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
        return (
            f"Model comparison ({self.method or 'EM only'})\n{text}\n{kplus}"
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


def compare(
    X,
    n_components: Iterable[int] = range(1, 7),
    covariance_types: Sequence[str] = ("full",),
    method: PosteriorMethod | None = "nuts",
    *,
    draws: int = 1000,
    tune: int = TUNE,
    chains: int = 4,
    bayes_kwargs: dict | None = None,
    em_prior: str | None = None,
    em_n_init: int = 5,
    moment_match: bool = True,
    n_se: float = 1.0,
    cluster_count: bool | None = None,
    sparse_kwargs: dict | None = None,
    n_jobs: int = 1,
    random_state: int | None = 0,
    progress: Callable[[str], None] | None = None,
) -> ModelComparison:
    """Fit every candidate and compare them by PSIS-LOO and EM information criteria.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : iterable of int, default=range(1, 7)
        Candidate numbers of components K.
    covariance_types : sequence of str, default=("full",)
        Candidate covariance structures.
    method : {"nuts", "advi", "fullrank_advi"} or None, default="nuts"
        How the posterior is fitted; ``None`` compares by EM criteria only. LOO on
        variational draws is plain PSIS and less trustworthy than on NUTS draws.
    draws, tune, chains : int
        Sampler settings for every candidate. A run that misses R-hat or ESS goes on to
        2x and 4x ``draws`` as :class:`BayesianGaussianMixture` does (unless its chains
        barely move); ``bayes_kwargs={"max_draws": draws}`` keeps every run fixed.
    bayes_kwargs : dict, optional
        Further settings of :class:`BayesianGaussianMixture` for every candidate (e.g.
        ``sampler``, ``target_accept``); not those in :data:`CANDIDATE_SETTINGS`.
    em_prior : None or "default", default=None
        ``None``: BIC, AIC and ICL at the maximum-likelihood EM fit (their textbook
        definition); ``"default"``: at the MAP-EM fit.
    em_n_init : int, default=5
        EM restarts per candidate.
    moment_match : bool, default=True
        Moment-match high Pareto-k observations (NUTS only); see the module docstring.
    n_se : float, default=1.0
        Tolerance of the recommendation rule, see :func:`recommend`.
    cluster_count : bool or None, default=None
        Also fit the sparse finite mixture (full covariances) once and add ``p_kplus``
        (module docstring); ``None``: when ``method`` is not None. It costs one Gibbs run
        with ``K_max = max(max K, min(10, n_samples))`` components, about a second for
        a few hundred points with the sampler's defaults.
    sparse_kwargs : dict, optional
        Settings of :func:`~bayesgmm.selection.sparse.fit_sparse_mixture` (``draws``, ``burn``,
        ``chains``, ``e0``, ...); not ``max_components`` or ``random_state``.
    n_jobs : int, default=1
        Candidates fitted in parallel (joblib processes). Each NUTS fit already runs its
        chains in parallel, so more jobs than cores divided by chains rarely helps.
    random_state : int or None, default=0
        Seeds every candidate (independent streams), so the same call gives the same
        table; ``None`` draws fresh seeds.
    progress : callable, optional
        Called with a short message before each candidate is fitted.

    Returns
    -------
    ModelComparison

    Warns
    -----
    UserWarning
        When observations keep a Pareto k above the reliability threshold.
    """
    ks = [check_positive_int(_integral(k), "n_components") for k in n_components]
    if not ks:
        raise ValueError("n_components is empty: give at least one number of components")
    covariance_types = list(covariance_types)
    bad = [c for c in covariance_types if c not in registered_structures()]
    if bad or not covariance_types:
        raise ValueError(
            f"covariance_types must be a non-empty subset of {list(registered_structures())}, "
            f"got {covariance_types}"
        )
    if method is not None and method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)} or None, got {method!r}")
    owned = sorted(set(bayes_kwargs or {}) & set(CANDIDATE_SETTINGS))
    if owned:
        raise ValueError(
            f"bayes_kwargs sets {owned}, which compare() sets per candidate: pass "
            "n_components, covariance_types, method and random_state to compare() instead"
        )
    if cluster_count is None:
        cluster_count = method is not None
    owned = sorted(set(sparse_kwargs or {}) & {"max_components", "random_state"})
    if owned:
        raise ValueError(
            f"sparse_kwargs sets {owned}, which compare() sets itself: K_max is "
            "max(max K, min(10, n_samples)) and the seed is random_state"
        )
    data = check_data(X, n_components=max(ks), min_samples=2)
    candidates = [(k, c) for c in covariance_types for k in sorted(set(ks))]
    seeds = np.random.SeedSequence(random_state).generate_state(len(candidates)).tolist()
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
            data, k_max, random_state=random_state, **(sparse_kwargs or {})
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
