"""The comparison table of the candidates and the recommendation drawn from it.

Moved whole out of :mod:`bayesgmm.selection.compare`, which re-exports every public name.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from arviz_stats import compare as az_compare

from bayesgmm.core.exceptions import UnreliableLOOWarning
from bayesgmm.selection.loo import pareto_k_counts
from bayesgmm.selection.sparse import ClusterCountPosterior

if TYPE_CHECKING:
    from bayesgmm.selection.compare import CandidateFit

#: Share of observations with high Pareto k above which a candidate's LOO is not trusted.
HIGH_K_SHARE = 0.05
#: ``p_loo`` above this multiple of the parameter count is warned about (misspecification).
P_LOO_RATIO = 1.5


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
    if cluster_count.reliability:
        model = f"{cluster_count.reliability}; {model}"
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


__all__ = [
    "HIGH_K_SHARE",
    "P_LOO_RATIO",
    "candidate_problems",
    "cluster_count_sentence",
    "comparison_table",
    "p_loo_warning",
    "recommend",
]
