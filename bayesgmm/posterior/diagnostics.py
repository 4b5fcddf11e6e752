"""Sampling diagnostics of a mixture posterior as one small record.

:func:`diagnose` reads an ArviZ DataTree (after relabelling, so that per-component
statistics mean something) and returns :class:`Diagnostics`: worst rank-normalised
R-hat, smallest bulk and tail ESS (arviz-stats), divergences, smallest E-BFMI and the
label-switching verdict. Entries that are constant across all draws (the zero
off-diagonals of ``diag``/``spherical`` covariances) have no R-hat and are skipped.

Chains that sit in different modes of the posterior (:func:`chain_modes`) are named:
chains whose means of the log posterior density (``sample_stats.lp``) and of every
(relabelled) parameter lie within ``MODE_SEPARATION`` within-chain standard deviations
of each other share a mode (single linkage); each mode carries the stacking weight of
its chains (:mod:`bayesgmm.posterior.stacking`), so a failed R-hat is explained as "chains 0,2 in
mode A, chains 1,3 in mode B; stacking weights A 0.9, B 0.1" rather than a bare number.

Single linkage on whole-chain means cannot tell chains that *drift* between
configurations (each chain's mean then lies between the configurations, with a wide
within-chain spread) from chains that agree. :func:`drifting_chains` checks the grouping:
a chain drifts when its two halves fall into different modes, or when the chains of its
mode, split in halves, disagree (rank-normalised split R-hat of the log density or of a
parameter above ``MULTIMODAL_RHAT``). Drifting chains are reported as such ("the chains
do not agree: they drift between configurations"), never as one mode.

The grouping of chains is computed in :mod:`bayesgmm.posterior.modes` and the record's
sentences (problems, remedies, verdict) are written in :mod:`bayesgmm.posterior.messages`;
their public names are re-exported here.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm.posterior import messages
from bayesgmm.posterior.decomposition import DECOMPOSITION_VARS
from bayesgmm.posterior.messages import drift_sentence, modes_sentence, starts_sentence
from bayesgmm.posterior.modes import (
    LOG_DENSITY_STATS,
    MODE_SEPARATION,
    MULTIMODAL_RHAT,
    SOMETIMES_EMPTY_FRACTION,
    Mode,
    chain_modes,
    chain_stacking,
    chain_stacking_weights,
    drifting_chains,
    empty_components,
    empty_draw_fractions,
    log_density_draws,
    parameter_matrix,
    split_rhat,
    stacking_groups,
)
from bayesgmm.posterior.rhat import rank_split_rhat

POSTERIOR_VARS: tuple[str, ...] = ("weights", "means", "covariances")


@dataclass(frozen=True)
class Diagnostics:
    """Convergence summary of an MCMC run, with the thresholds it is judged by.

    Attributes
    ----------
    max_rhat : float
    min_ess_bulk, min_ess_tail : float
    n_divergences : int
    min_bfmi : float
        Smallest per-chain E-BFMI (NaN when the sampler stores no energy).
    label_switching : str
        Verdict of the relabelling step (:attr:`RelabelingRecord.verdict`).
    n_chains, n_draws : int
    rhat_threshold, ess_threshold, bfmi_threshold : float
    empty_components : tuple of int
    empty_draws : tuple of float
        Per chain, the fraction of draws in which some component holds fewer than one
        point (``N_k < 1``); empty when not computed.
    modes : tuple of Mode
        The chains grouped by the mode they sit in (one group when they agree).
    drifting : tuple of int
        Chains that drift between configurations (:func:`drifting_chains`): then the
        grouping into modes does not describe them.
    chain_weights : tuple of float
        Stacking weight of every chain (empty when not computed, or when stacking did not
        beat pooling).
    stacking_gain, stacking_penalty : float
        LOO log score of stacking over pooling and what its free weights gain by chance
        (:class:`bayesgmm.posterior.stacking.ChainStacking`; NaN when not computed here).
    lp_rhat : float
        Rank-normalised split R-hat of the model's log density (NaN if not stored).
    chain_starts : tuple of int
        Index of the start (EM optimum) of each chain; empty if not known.
    starts_given : bool
        Whether ``chain_starts`` index the starts the user gave (``start``, one per chain)
        rather than EM optima.
    chain_combination : {"pooled", "stacked"}
        How the chains were combined into the posterior.
    draws_asked : int
        The draws per chain asked for (0 if not known); fewer than ``n_draws`` when the
        run was extended (``BayesianGaussianMixture(max_draws=...)``).
    method_choice : str
        What ``method="auto"`` chose and why ("" for a method asked for by name).
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    n_divergences: int
    min_bfmi: float
    label_switching: str
    n_chains: int
    n_draws: int
    rhat_threshold: float = 1.01
    ess_threshold: float = 400.0
    bfmi_threshold: float = 0.3
    empty_components: tuple[int, ...] = ()
    modes: tuple[Mode, ...] = field(default=())
    lp_rhat: float = float("nan")
    chain_starts: tuple[int, ...] = ()
    starts_given: bool = False
    chain_combination: str = "pooled"
    draws_asked: int = 0
    drifting: tuple[int, ...] = ()
    chain_weights: tuple[float, ...] = ()
    stacking_gain: float = float("nan")
    stacking_penalty: float = float("nan")
    empty_draws: tuple[float, ...] = ()
    method_choice: str = ""

    @property
    def stacking_rejected(self) -> bool:
        """Whether stacking was tried and did not beat pooling (then the chains are pooled)."""
        return bool(self.stacking_gain <= self.stacking_penalty)

    @property
    def stacking_note(self) -> str:
        """Why the chains are pooled although they do not mix ("" if that does not apply)."""
        return messages.stacking_note(self)

    @property
    def multimodal(self) -> bool:
        """Whether the chains sit in more than one mode (:func:`chain_modes`)."""
        return len(self.modes) > 1

    @property
    def sometimes_empty(self) -> bool:
        """Whether a chain has a component empty (``N_k < 1``) in at least
        :data:`SOMETIMES_EMPTY_FRACTION` of its draws, without it being probably empty."""
        return bool(
            not self.empty_components
            and self.empty_draws
            and max(self.empty_draws) >= SOMETIMES_EMPTY_FRACTION
        )

    @property
    def empty_sentence(self) -> str:
        """How often a component empties, overall and by chain ("" if never)."""
        return messages.empty_sentence(self)

    @property
    def drift(self) -> bool:
        """Whether some chains drift between configurations (:func:`drifting_chains`)."""
        return bool(self.drifting)

    @property
    def modes_text(self) -> str:
        """Where the chains sit, in one or two sentences."""
        return messages.modes_text(self)

    @property
    def ok(self) -> bool:
        """All checks pass: R-hat, both ESS, no divergences, E-BFMI."""
        return all(self.checks.values())

    @property
    def mixes(self) -> bool:
        """R-hat and both ESS pass (the checks that longer chains can fix)."""
        checks = self.checks
        return checks["max_rhat"] and checks["min_ess_bulk"] and checks["min_ess_tail"]

    @property
    def checks(self) -> dict[str, bool]:
        """Every threshold check by name (R-hat, both ESS, divergences, E-BFMI): passed?"""
        return {
            "max_rhat": self.max_rhat <= self.rhat_threshold,
            "min_ess_bulk": self.min_ess_bulk >= self.ess_threshold,
            "min_ess_tail": self.min_ess_tail >= self.ess_threshold,
            "n_divergences": self.n_divergences == 0,
            "min_bfmi": bool(np.isnan(self.min_bfmi) or self.min_bfmi >= self.bfmi_threshold),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per check: value, threshold, pass."""
        thresholds = {
            "max_rhat": f"<= {self.rhat_threshold}",
            "min_ess_bulk": f">= {self.ess_threshold:g}",
            "min_ess_tail": f">= {self.ess_threshold:g}",
            "n_divergences": "== 0",
            "min_bfmi": f">= {self.bfmi_threshold}",
        }
        values = asdict(self)
        rows = [
            {"check": name, "value": values[name], "threshold": thresholds[name], "ok": passed}
            for name, passed in self.checks.items()
        ]
        rows.append(
            {"check": "label_switching", "value": self.label_switching, "threshold": "", "ok": True}
        )
        rows.append(
            {
                "check": "empty_components",
                "value": list(self.empty_components),
                "threshold": "",
                "ok": True,
            }
        )
        rows.append(
            {
                "check": "empty_draws",
                "value": [round(f, 4) for f in self.empty_draws],
                "threshold": f"< {SOMETIMES_EMPTY_FRACTION:g} per chain",
                "ok": not self.sometimes_empty,
            }
        )
        rows.append(
            {
                "check": "modes",
                "value": "; ".join(m.describe() for m in self.modes)
                + (
                    f"; chains {','.join(map(str, self.drifting))} drift between configurations"
                    if self.drift
                    else ""
                ),
                "threshold": "one mode",
                "ok": not (self.multimodal or self.drift),
            }
        )
        return pd.DataFrame(rows).set_index("check")

    @property
    def problems(self) -> list[str]:
        """Every failed check, in words."""
        return messages.problems(self)

    @property
    def remedies(self) -> list[str]:
        """What to change for each failed check (and for probably empty components)."""
        return messages.remedies(self)

    @property
    def verdict(self) -> str:
        """The outcome in one or two sentences, with the remedy when a check failed."""
        return messages.verdict(self)

    def __str__(self) -> str:
        return messages.summary_text(self)


def _extreme(stat: xr.Dataset, varying: xr.Dataset, reduce) -> float:
    values = [
        np.asarray(stat[name].where(varying[name]).values, dtype=float).ravel()
        for name in stat.data_vars
    ]
    return float(reduce(np.concatenate(values)))


def _varying_columns(params: np.ndarray) -> np.ndarray:
    """Whether each column of (n_chains, n_draws, n_columns) varies over its draws (NaN
    skipped, as ``Dataset.std`` skips them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, not varying
        return np.nanstd(params, axis=(0, 1)) > 0


def diagnose(
    idata: xr.DataTree,
    *,
    var_names: tuple[str, ...] = POSTERIOR_VARS,
    label_switching: str = "not checked",
    component_counts: np.ndarray | None = None,
    rhat_threshold: float = 1.01,
    ess_threshold: float = 400.0,
    chain_weights: np.ndarray | None = None,
    chain_starts: tuple[int, ...] = (),
    starts_given: bool = False,
    chain_combination: str = "pooled",
    draws_asked: int = 0,
) -> Diagnostics:
    """Diagnostics of the posterior in ``idata``.

    Parameters
    ----------
    idata : xarray.DataTree
        With ``posterior`` (dims ``chain``, ``draw``) and ``sample_stats`` (``diverging``
        and, if available, ``energy``).
    var_names : tuple of str
        Posterior variables checked; the identified decomposition of mclust's models
        (:data:`~bayesgmm.posterior.decomposition.DECOMPOSITION_VARS`) is added when the
        posterior holds it.
    label_switching : str
        The relabelling verdict to report.
    component_counts : ndarray of shape (n_chains, n_draws, n_components), optional
        Posterior draws of ``N_k`` of the chains as sampled, to flag empty components and
        components that empty in some draws (shape (n_draws, n_components): the first
        only).
    rhat_threshold, ess_threshold : float
        Limits used by :attr:`Diagnostics.ok`.
    chain_weights : ndarray of shape (n_chains,), optional
        Stacking weights of the chains; when the chains sit in several modes and none are
        given, they are computed from the ``log_likelihood`` group if there is one.
    chain_starts : tuple of int
        The start of each chain, reported by :class:`Diagnostics`.
    starts_given : bool
        Whether those are the user's starts (one per chain), not EM optima.
    chain_combination : str
        How the chains were combined ("pooled" or "stacked").
    draws_asked : int
        The draws per chain asked for, when the run was extended past them
        (``BayesianGaussianMixture(max_draws=...)``); 0 if not known.

    Raises
    ------
    ValueError
        With fewer than 2 chains or 4 draws (R-hat is undefined).
    """
    stored = idata["posterior"].to_dataset()
    # mclust's decomposed models: their identified volumes, shapes and orientations too
    extra = [n for n in DECOMPOSITION_VARS if n in stored.data_vars and n not in var_names]
    var_names = (*var_names, *extra)
    posterior = stored[list(var_names)]
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    if n_chains < 2 or n_draws < 4:
        raise ValueError(
            f"diagnostics need at least 2 chains of 4 draws, got {n_chains} x {n_draws}: "
            "sample with method='nuts' and chains >= 2"
        )
    varying = posterior.std(dim=("chain", "draw")) > 0
    stats = idata["sample_stats"].to_dataset()
    n_div = int(stats["diverging"].sum()) if "diverging" in stats else 0
    if "energy" in stats:
        min_bfmi = float(np.min(azs.bfmi(stats["energy"])))
    else:
        min_bfmi = float("nan")
    params = parameter_matrix(posterior, tuple(var_names))
    with np.errstate(invalid="ignore", divide="ignore"):
        # entries that never vary (the zero off-diagonals of diag covariances, a fixed
        # weight at K=1) give 0/0 in R-hat and ESS; they are masked out by ``varying``.
        # R-hat: arviz-stats' rank-normalised split R-hat, all entries at once
        rhat = np.where(_varying_columns(params), rank_split_rhat(params), np.nan)
        ess_bulk = azs.ess(posterior, method="bulk")
        ess_tail = azs.ess(posterior, method="tail")
    lp = log_density_draws(idata)
    lp_rhat = float("nan")
    if lp is not None and np.ptp(lp) > 0:
        lp_rhat = float(azs.rhat(xr.DataArray(lp, dims=("chain", "draw"))))
    modes = chain_modes(lp, params)
    drifting = drifting_chains(lp, params, modes)
    weights, gain = chain_weights, (float("nan"), float("nan"))
    if (len(modes) > 1 or drifting) and chain_weights is None:
        stacking = chain_stacking(idata, stacking_groups(modes, drifting))
        if stacking is not None:
            gain = (stacking.gain, stacking.penalty)
            weights = stacking.stacked if stacking.significant else None
    if weights is not None and (len(modes) > 1 or drifting):
        modes = chain_modes(lp, params, chain_weights=weights)
    return Diagnostics(
        max_rhat=float(np.nanmax(rhat)) if not np.isnan(rhat).all() else float("nan"),
        min_ess_bulk=_extreme(ess_bulk, varying, np.nanmin),
        min_ess_tail=_extreme(ess_tail, varying, np.nanmin),
        n_divergences=n_div,
        min_bfmi=min_bfmi,
        label_switching=label_switching,
        n_chains=n_chains,
        n_draws=n_draws,
        rhat_threshold=rhat_threshold,
        ess_threshold=ess_threshold,
        empty_components=()
        if component_counts is None
        else empty_components(np.reshape(component_counts, (-1, np.shape(component_counts)[-1]))),
        empty_draws=()
        if component_counts is None or np.ndim(component_counts) != 3
        else empty_draw_fractions(component_counts),
        modes=modes,
        lp_rhat=lp_rhat,
        chain_starts=tuple(chain_starts),
        starts_given=bool(starts_given),
        draws_asked=int(draws_asked),
        chain_combination=chain_combination,
        drifting=drifting,
        chain_weights=() if weights is None else tuple(float(w) for w in weights),
        stacking_gain=gain[0],
        stacking_penalty=gain[1],
    )


__all__ = [
    "LOG_DENSITY_STATS",
    "MODE_SEPARATION",
    "MULTIMODAL_RHAT",
    "POSTERIOR_VARS",
    "SOMETIMES_EMPTY_FRACTION",
    "Diagnostics",
    "Mode",
    "chain_modes",
    "chain_stacking",
    "chain_stacking_weights",
    "diagnose",
    "drift_sentence",
    "drifting_chains",
    "empty_components",
    "empty_draw_fractions",
    "log_density_draws",
    "modes_sentence",
    "parameter_matrix",
    "split_rhat",
    "stacking_groups",
    "starts_sentence",
]
