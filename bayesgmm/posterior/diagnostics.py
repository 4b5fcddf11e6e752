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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.base import array_stats

POSTERIOR_VARS: tuple[str, ...] = ("weights", "means", "covariances")
#: R-hat above which chains probably sit in different modes (fewer components may help).
MULTIMODAL_RHAT = 1.1
#: Two chains share a mode when the means of the log density and of every parameter
#: differ by at most this many within-chain standard deviations.
MODE_SEPARATION = 2.0
#: Names of the model's log density in ``sample_stats`` (PyMC's sampler, nutpie).
LOG_DENSITY_STATS: tuple[str, ...] = ("lp", "logp")


@dataclass(frozen=True)
class Mode:
    """A group of chains that sit in the same mode of the posterior.

    Attributes
    ----------
    name : str
        ``"A"``, ``"B"``, ... in decreasing mean log posterior density.
    chains : tuple of int
    mean_log_density : float
        Mean over the group's draws of the model's log density (NaN if not stored).
    weight : float
        Stacking weight of the group's chains (NaN if not computed).
    """

    name: str
    chains: tuple[int, ...]
    mean_log_density: float
    weight: float = float("nan")

    def describe(self) -> str:
        chains = ",".join(str(c) for c in self.chains)
        noun = "chain" if len(self.chains) == 1 else "chains"
        density = (
            f" (mean sampler log density {self.mean_log_density:.1f})"
            if np.isfinite(self.mean_log_density)
            else ""
        )
        return f"{noun} {chains} in mode {self.name}{density}"


def starts_sentence(chain_starts: tuple[int, ...]) -> str:
    """Which EM optimum (0: the best) each chain started from, in words."""
    groups: dict[int, list[int]] = {}
    for chain, start in enumerate(chain_starts):
        groups.setdefault(start, []).append(chain)
    return "; ".join(
        f"chain{'s' if len(c) > 1 else ''} {','.join(map(str, c))} from EM optimum {s}"
        for s, c in sorted(groups.items())
    )


def modes_sentence(modes: tuple[Mode, ...]) -> str:
    """One sentence naming the modes, their chains, densities and stacking weights."""
    text = f"The chains sit in {len(modes)} different modes: " + ", ".join(
        m.describe() for m in modes
    )
    if all(np.isfinite(m.weight) for m in modes):
        text += "; stacking weights " + ", ".join(f"{m.name} {m.weight:.2f}" for m in modes)
    return text + "."


def drift_sentence(drifting: tuple[int, ...], n_chains: int) -> str:
    """One sentence saying that (and which) chains drift between configurations."""
    who = (
        "every chain moves"
        if len(drifting) == n_chains
        else f"chain{'s' if len(drifting) > 1 else ''} {','.join(map(str, drifting))} "
        f"move{'' if len(drifting) > 1 else 's'}"
    )
    return (
        f"The chains do not agree: {who} between configurations of the parameters instead "
        "of staying in one mode (a chain's halves, or the chains of one mode, disagree), so "
        "the chains neither sample one mode nor separate into modes that could be named."
    )


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
    chain_combination : {"pooled", "stacked"}
        How the chains were combined into the posterior.
    draws_asked : int
        The draws per chain asked for (0 if not known); fewer than ``n_draws`` when the
        run was extended (``BayesianGaussianMixture(max_draws=...)``).
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
    chain_combination: str = "pooled"
    draws_asked: int = 0
    drifting: tuple[int, ...] = ()
    chain_weights: tuple[float, ...] = ()
    stacking_gain: float = float("nan")
    stacking_penalty: float = float("nan")
    empty_draws: tuple[float, ...] = ()

    @property
    def stacking_rejected(self) -> bool:
        """Whether stacking was tried and did not beat pooling (then the chains are pooled)."""
        return bool(self.stacking_gain <= self.stacking_penalty)

    def stacking_note(self) -> str:
        """Why the chains are pooled although they do not mix ("" if that does not apply)."""
        if not self.stacking_rejected:
            return ""
        return (
            f"Stacking does not tell the chains apart: its weights would raise the LOO log "
            f"score by {self.stacking_gain:.1f} nats over pooling, not more than the "
            f"{self.stacking_penalty:.0f} that fitting its free weights gains by chance, so "
            "the chains predict the data equally well and are pooled with equal weights."
        )

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

    def empty_sentence(self) -> str:
        """How often a component empties, overall and by chain ("" if never)."""
        if not self.empty_draws or max(self.empty_draws) == 0:
            return ""
        by_chain = ", ".join(f"{f:.1%}" for f in self.empty_draws)
        return (
            f"a component holds fewer than one point in {np.mean(self.empty_draws):.1%} of "
            f"the draws (by chain: {by_chain})"
        )

    @property
    def drift(self) -> bool:
        """Whether some chains drift between configurations (:func:`drifting_chains`)."""
        return bool(self.drifting)

    def modes_text(self) -> str:
        """Where the chains sit, in one or two sentences."""
        parts = []
        if self.multimodal:
            parts.append(modes_sentence(self.modes))
        if self.drift:
            parts.append(drift_sentence(self.drifting, self.n_chains))
        if self.stacking_rejected:
            parts.append(self.stacking_note())
        elif self.drift and len(self.chain_weights) == self.n_chains:
            units = stacking_groups(self.modes, self.drifting)
            parts.append(
                "Stacking weights: "
                + ", ".join(
                    f"chain{'s' if len(u) > 1 else ''} {','.join(map(str, u))} "
                    f"{sum(self.chain_weights[c] for c in u):.2f}"
                    for u in units
                )
                + "."
            )
        return " ".join(parts) if parts else "The chains sit in one mode."

    @property
    def ok(self) -> bool:
        """All checks pass: R-hat, both ESS, no divergences, E-BFMI."""
        return all(self._checks().values())

    @property
    def mixes(self) -> bool:
        """R-hat and both ESS pass (the checks that longer chains can fix)."""
        checks = self._checks()
        return checks["max_rhat"] and checks["min_ess_bulk"] and checks["min_ess_tail"]

    def _checks(self) -> dict[str, bool]:
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
            for name, passed in self._checks().items()
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

    def problems(self) -> list[str]:
        """Every failed check, in words."""
        checks = self._checks()
        found = []
        rhats = f" (max R-hat {self.max_rhat:.3f}, R-hat of the log posterior {self.lp_rhat:.3f})"
        for shown, sentence in (
            (self.multimodal, modes_sentence(self.modes)),
            (self.drift, drift_sentence(self.drifting, self.n_chains)),
        ):
            if shown:
                found.append(sentence[0].lower() + sentence[1:-1] + rhats)
                rhats = ""
        if self.sometimes_empty and not self.mixes:
            found.append(
                self.empty_sentence() + ": the posterior holds both an occupied and an "
                "empty state of that component and the chains cross between them rarely; "
                "while it is empty its mean and covariance follow their prior, so their "
                "R-hat and ESS cannot settle" + rhats
            )
            rhats = ""
        elif not (self.multimodal or self.drift) and not checks["max_rhat"]:
            found.append(
                f"the chains disagree (max R-hat {self.max_rhat:.3f} > {self.rhat_threshold})"
            )
        if not (checks["min_ess_bulk"] and checks["min_ess_tail"]):
            found.append(
                f"too few effective draws (min bulk ESS {self.min_ess_bulk:.0f}, min tail ESS "
                f"{self.min_ess_tail:.0f}; need {self.ess_threshold:g})"
            )
        if not checks["n_divergences"]:
            found.append(f"{self.n_divergences} divergent transition(s)")
        if not checks["min_bfmi"]:
            found.append(f"low E-BFMI ({self.min_bfmi:.2f} < {self.bfmi_threshold})")
        return found

    def remedies(self) -> list[str]:
        """What to change for each failed check (and for probably empty components)."""
        checks = self._checks()
        found = []
        if not (checks["min_ess_bulk"] and checks["min_ess_tail"]) or not checks["max_rhat"]:
            ess = min(self.min_ess_bulk, self.min_ess_tail)
            factor = self.ess_threshold / ess if np.isfinite(ess) and ess > 0 else 4.0
            if factor <= MAX_DRAWS_FACTOR:
                draws = int(np.ceil(self.n_draws * max(2.0, factor) / 100.0) * 100)
                found.append(
                    f"more draws and tuning (e.g. draws={draws}, tune={draws}; on the command "
                    f"line --draws {draws} --tune {draws})"
                )
            else:
                found.append(
                    f"not more draws: the chains barely move (min ESS {ess:.0f} in "
                    f"{self.n_chains} x {self.n_draws} draws) and would need about "
                    f"{factor:.0f}x as many; a model that fits the data with fewer "
                    "components or a more informative prior will mix"
                )
        if not checks["n_divergences"]:
            found.append("a higher target_accept (0.95 or 0.99; --target-accept)")
        if not checks["min_bfmi"]:
            found.append(
                "longer tuning, or standardised data (each column minus its mean, divided by "
                "its sd; --scale)"
            )
        if (self.multimodal or self.drift) and not self.stacking_rejected:
            found.append(
                "combine the chains by stacking (combine_chains='stack' or --combine-chains "
                "stack; the default 'auto' does it when the chains sit in different modes or "
                "drift)"
            )
        multimodal = self.multimodal or self.drift or self.max_rhat > MULTIMODAL_RHAT
        if self.sometimes_empty and not self.mixes:
            found.append(
                "fewer components (one that empties in some draws is one the data barely "
                "support), or a prior that keeps every component occupied"
            )
        elif self.empty_components or multimodal or not checks["n_divergences"]:
            found.append(
                "fewer components (a probably empty or duplicated component makes the "
                "posterior multimodal)"
            )
        return found

    @property
    def verdict(self) -> str:
        """The outcome in one or two sentences, with the remedy when a check failed."""
        if self.ok:
            note = (
                f" Component(s) {list(self.empty_components)} are probably empty: fewer "
                "components may describe the data as well."
                if self.empty_components
                else ""
            )
            return (
                f"Verdict: the sampler checks passed ({self.n_chains} chains x {self.n_draws} "
                f"draws: R-hat <= {self.rhat_threshold}, ESS >= {self.ess_threshold:g}, no "
                f"divergences); the posterior summaries can be used.{note}"
            )
        if (self.multimodal or self.drift) and self.chain_combination == "stacked":
            others = self.problems()[int(self.multimodal) + int(self.drift) :]
            rest = (" Other problems: " + "; ".join(others) + ".") if others else ""
            what = (
                "of the chains, each covering its own mixture of configurations"
                if self.drift
                else "of the modes"
            )
            return (
                "Verdict: the chains did not mix. " + self.modes_text() + " The "
                "posterior combines the chains by Bayesian stacking (draws resampled with "
                f"the chains' stacking weights): use it as a weighted combination {what}, "
                "not as a converged posterior; R-hat and ESS describe the chains as sampled." + rest
            )
        note = self.stacking_note()
        return (
            "Verdict: the sampler checks FAILED: "
            + "; ".join(self.problems())
            + ". "
            + (note + " " if note else "")
            + "Do not trust the posterior summaries yet. Remedy: "
            + "; or ".join(self.remedies())
            + "."
        )

    def __str__(self) -> str:
        status = "OK" if self.ok else "PROBLEMS FOUND"
        lines = [
            f"Sampling diagnostics ({self.n_chains} chains x {self.n_draws} draws): {status}",
            f"  max R-hat      {self.max_rhat:.4f}  (<= {self.rhat_threshold})",
            f"  min bulk ESS   {self.min_ess_bulk:.0f}  (>= {self.ess_threshold:g})",
            f"  min tail ESS   {self.min_ess_tail:.0f}  (>= {self.ess_threshold:g})",
            f"  divergences    {self.n_divergences}",
            f"  min E-BFMI     {self.min_bfmi:.3f}  (>= {self.bfmi_threshold})",
            f"  labels         {self.label_switching}",
        ]
        if np.isfinite(self.lp_rhat):
            lines.insert(2, f"  R-hat log post {self.lp_rhat:.4f}")
        if len(set(self.chain_starts)) > 1:
            lines.append("  starts         " + starts_sentence(self.chain_starts))
        if 0 < self.draws_asked < self.n_draws:
            lines.append(
                f"  length         extended from {self.draws_asked} to {self.n_draws} draws per "
                f"chain: R-hat or ESS missed its threshold at {self.draws_asked}"
            )
        if self.multimodal or self.drift:
            lines.append("  modes          " + self.modes_text())
        lines.append(f"  combination    {self.chain_combination} chains")
        if self.empty_draws and max(self.empty_draws) >= SOMETIMES_EMPTY_FRACTION:
            lines.append("  empty draws    " + self.empty_sentence())
        if self.empty_components:
            lines.append(
                f"  note           component(s) {list(self.empty_components)} are probably "
                "empty (posterior P(N_k < 1) > 0.5): fewer components may describe the data"
            )
        return "\n".join(lines)


#: More draws are suggested as a remedy only when at most this factor would reach the ESS.
MAX_DRAWS_FACTOR = 8.0
#: A chain with a component empty in at least this fraction of its draws is reported.
SOMETIMES_EMPTY_FRACTION = 0.01


def empty_draw_fractions(counts: np.ndarray, min_count: float = 1.0) -> tuple[float, ...]:
    """Per chain, the fraction of draws in which some component holds < ``min_count``.

    Label-invariant (the smallest ``N_k`` of each draw), so it does not depend on the
    relabelling.

    Parameters
    ----------
    counts : ndarray of shape (n_chains, n_draws, n_components)
        Posterior draws of ``N_k = sum_n gamma_nk``.
    min_count : float

    Returns
    -------
    tuple of float, one per chain
    """
    counts = np.asarray(counts, dtype=float)
    return tuple(float(f) for f in (counts.min(axis=-1) < min_count).mean(axis=1))


def empty_components(counts: np.ndarray, min_count: float = 1.0) -> tuple[int, ...]:
    """Components that are more likely than not to hold fewer than ``min_count`` samples.

    Parameters
    ----------
    counts : ndarray of shape (n_draws, n_components)
        Posterior draws of ``N_k = sum_n gamma_nk``.
    min_count : float

    Returns
    -------
    tuple of int
        Indices ``k`` with ``P(N_k < min_count | X) > 0.5``.
    """
    counts = np.asarray(counts, dtype=float)
    return tuple(int(k) for k in np.flatnonzero((counts < min_count).mean(axis=0) > 0.5))


def chain_modes(
    log_density: np.ndarray | None,
    params: np.ndarray,
    *,
    chain_weights: np.ndarray | None = None,
    separation: float = MODE_SEPARATION,
) -> tuple[Mode, ...]:
    """Group chains by the posterior mode they sit in.

    Chains ``i`` and ``j`` are linked when, for the log density and for every parameter,
    ``|mean_i - mean_j| <= separation * sqrt((var_i + var_j) / 2)`` (within-chain means
    and variances); modes are the connected groups (single linkage), named ``A``, ``B``,
    ... in decreasing mean log density (else by their first chain).

    Parameters
    ----------
    log_density : ndarray of shape (n_chains, n_draws) or None
        The model's log density of every draw (``sample_stats.lp``).
    params : ndarray of shape (n_chains, n_draws, n_params)
        Relabelled parameters; entries constant within every chain are ignored.
    chain_weights : ndarray of shape (n_chains,), optional
        Stacking weights; a mode's weight is the sum over its chains.
    separation : float

    Returns
    -------
    tuple of Mode
    """
    values = _chain_values(log_density, params)
    n_chains = values.shape[0]
    parent = _linked_groups(values, separation)
    groups: dict[int, list[int]] = {}
    for c in range(n_chains):
        groups.setdefault(parent[c], []).append(c)
    chains = list(groups.values())
    if log_density is not None:
        lp = np.asarray(log_density, dtype=float)
        density = [float(lp[g].mean()) for g in chains]
    else:
        density = [float("nan")] * len(chains)
    order = sorted(range(len(chains)), key=lambda g: (-np.nan_to_num(density[g]), chains[g][0]))
    weights = None if chain_weights is None else np.asarray(chain_weights, dtype=float)
    return tuple(
        Mode(
            name=_mode_name(rank),
            chains=tuple(chains[g]),
            mean_log_density=density[g],
            weight=float("nan") if weights is None else float(weights[chains[g]].sum()),
        )
        for rank, g in enumerate(order)
    )


def _chain_values(log_density: np.ndarray | None, params: np.ndarray) -> np.ndarray:
    """The log density (if any) and the parameters as shape (n_chains, n_draws, n_columns)."""
    columns = [np.asarray(params, dtype=float)]
    if log_density is not None:
        columns.insert(0, np.asarray(log_density, dtype=float)[:, :, None])
    return np.concatenate(columns, axis=2)


def _linked_groups(values: np.ndarray, separation: float) -> list[int]:
    """Group label of every chain: single linkage of chains whose means are close.

    Chains ``i`` and ``j`` are linked when every column satisfies ``|mean_i - mean_j| <=
    separation * sqrt((var_i + var_j) / 2)``; returns, for each chain, the smallest chain
    index of its connected group.
    """
    n_chains = values.shape[0]
    means = values.mean(axis=1)
    variances = values.var(axis=1, ddof=1)
    parent = list(range(n_chains))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(n_chains):
        for j in range(i + 1, n_chains):
            scale = np.sqrt((variances[i] + variances[j]) / 2)
            gap = np.abs(means[i] - means[j])
            with np.errstate(invalid="ignore", divide="ignore"):
                far = np.where(scale > 0, gap > separation * scale, gap > 0)
            if not far.any():
                a, b = sorted((root(i), root(j)))
                parent[b] = a
    return [root(c) for c in range(n_chains)]


def split_rhat(values: np.ndarray) -> float:
    """Largest rank-normalised split R-hat over the columns of some chains' draws.

    Parameters
    ----------
    values : ndarray of shape (n_chains, n_draws, n_columns)
        One chain is split into its two halves first (R-hat needs two chains).

    Returns
    -------
    float
        NaN when no column varies.
    """
    values = np.asarray(values, dtype=float)
    if values.shape[0] == 1:
        half = values.shape[1] // 2
        values = np.stack([values[0, :half], values[0, half : 2 * half]])
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = np.asarray(array_stats.rhat(np.moveaxis(values, 2, 0)), dtype=float)
    return float(np.nanmax(rhat)) if np.isfinite(rhat).any() else float("nan")


def drifting_chains(
    log_density: np.ndarray | None,
    params: np.ndarray,
    modes: tuple[Mode, ...],
    *,
    threshold: float = MULTIMODAL_RHAT,
    separation: float = MODE_SEPARATION,
) -> tuple[int, ...]:
    """Chains that do not stay in one mode but drift between configurations.

    :func:`chain_modes` compares whole-chain means, so chains that move between two
    configurations at different times have means in between and wide spreads, and are
    linked into one "mode". A chain drifts when

    * its first and second halves fall into different groups when the half-chains are
      grouped like chains (:func:`chain_modes`' rule), or
    * its own halves disagree, or the chains of its mode disagree: the largest
      rank-normalised split R-hat of the log density and of every parameter, over the
      chain's halves or over the mode's chains, exceeds ``threshold``.

    Parameters
    ----------
    log_density : ndarray of shape (n_chains, n_draws) or None
    params : ndarray of shape (n_chains, n_draws, n_params)
    modes : tuple of Mode
        The grouping of :func:`chain_modes`.
    threshold : float
        R-hat within a mode above which its chains drift.
    separation : float

    Returns
    -------
    tuple of int
        The drifting chains, in increasing order (empty when every chain stays in its mode).
    """
    values = _chain_values(log_density, params)
    n_chains, n_draws = values.shape[:2]
    half = n_draws // 2
    drifting: set[int] = set()
    if half >= 2:
        halves = np.concatenate([values[:, :half], values[:, half : 2 * half]], axis=0)
        group = _linked_groups(halves, separation)
        drifting.update(c for c in range(n_chains) if group[c] != group[c + n_chains])
    drifting.update(c for c in range(n_chains) if split_rhat(values[c : c + 1]) > threshold)
    for mode in modes:
        if split_rhat(values[list(mode.chains)]) > threshold:
            drifting.update(mode.chains)
    return tuple(sorted(drifting))


def stacking_groups(modes: tuple[Mode, ...], drifting: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The units that stacking weighs: each mode's chains together, a drifting chain alone.

    Chains that share a stable mode are pooled (stacking them one by one would give
    arbitrary weights among equals); a chain that drifts between configurations covers
    its own mixture of them, so it is weighed on its own (Yao, Vehtari and Gelman 2022
    stack single chains).
    """
    groups: list[tuple[int, ...]] = []
    for mode in modes:
        stable = tuple(c for c in mode.chains if c not in drifting)
        if stable:
            groups.append(stable)
        groups.extend((c,) for c in mode.chains if c in drifting)
    return sorted(groups)


def _mode_name(rank: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[rank] if rank < len(letters) else f"M{rank}"


def log_density_draws(idata: xr.DataTree) -> np.ndarray | None:
    """The log density of every draw, shape (n_chains, n_draws), if the sampler stored it."""
    if "sample_stats" not in idata.children:
        return None
    stats = idata["sample_stats"].to_dataset()
    for name in LOG_DENSITY_STATS:
        if name in stats:
            return stats[name].transpose("chain", "draw").values.astype(float)
    return None


def parameter_matrix(posterior: xr.Dataset, var_names: tuple[str, ...]) -> np.ndarray:
    """Posterior variables flattened to shape (n_chains, n_draws, n_params)."""
    blocks = []
    for name in var_names:
        var = posterior[name]
        rest = [d for d in var.dims if d not in ("chain", "draw")]
        values = var.transpose("chain", "draw", *rest).values
        blocks.append(values.reshape(values.shape[0], values.shape[1], -1))
    return np.concatenate(blocks, axis=2)


def chain_stacking_weights(
    idata: xr.DataTree, groups: list[tuple[int, ...]] | None = None
) -> np.ndarray | None:
    """Stacking weights of the chains from the pointwise log-likelihood (None without it).

    ``groups`` (chains that share a mode, e.g. from :func:`chain_modes`) are stacked as
    units (:func:`bayesgmm.posterior.stacking.mode_stacking_weights`); by default every chain is
    its own group.
    """
    stacking = chain_stacking(idata, groups)
    return None if stacking is None else stacking.stacked


def chain_stacking(idata: xr.DataTree, groups: list[tuple[int, ...]] | None = None):
    """:func:`~bayesgmm.posterior.stacking.stack_chains` on the pointwise log-likelihood (or None).

    Returns
    -------
    ChainStacking or None
        The stacking weights of ``groups`` (default: every chain alone), their gain over
        pooling and whether it is significant.
    """
    from bayesgmm.posterior.stacking import stack_chains

    if "log_likelihood" not in idata.children:
        return None
    log_lik = idata["log_likelihood"].to_dataset()
    (name, *_) = log_lik.data_vars
    var = log_lik[name]
    rest = [d for d in var.dims if d not in ("chain", "draw")]
    values = var.transpose("chain", "draw", *rest).values
    values = values.reshape(values.shape[0], values.shape[1], -1)
    if groups is None:
        groups = [(c,) for c in range(values.shape[0])]
    return stack_chains(values, groups)


def _extreme(stat: xr.Dataset, varying: xr.Dataset, reduce) -> float:
    values = [
        np.asarray(stat[name].where(varying[name]).values, dtype=float).ravel()
        for name in stat.data_vars
    ]
    return float(reduce(np.concatenate(values)))


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
        Posterior variables checked.
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
    posterior = idata["posterior"].to_dataset()[list(var_names)]
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
    with np.errstate(invalid="ignore", divide="ignore"):
        # entries that never vary (the zero off-diagonals of diag covariances, a fixed
        # weight at K=1) give 0/0 in R-hat and ESS; they are masked out by ``varying``.
        rhat = azs.rhat(posterior)
        ess_bulk = azs.ess(posterior, method="bulk")
        ess_tail = azs.ess(posterior, method="tail")
    lp = log_density_draws(idata)
    lp_rhat = float("nan")
    if lp is not None and np.ptp(lp) > 0:
        lp_rhat = float(azs.rhat(xr.DataArray(lp, dims=("chain", "draw"))))
    params = parameter_matrix(posterior, tuple(var_names))
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
        max_rhat=_extreme(rhat, varying, np.nanmax),
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
        draws_asked=int(draws_asked),
        chain_combination=chain_combination,
        drifting=drifting,
        chain_weights=() if weights is None else tuple(float(w) for w in weights),
        stacking_gain=gain[0],
        stacking_penalty=gain[1],
    )


__all__ = [
    "POSTERIOR_VARS",
    "Diagnostics",
    "Mode",
    "chain_modes",
    "chain_stacking_weights",
    "diagnose",
    "drift_sentence",
    "drifting_chains",
    "empty_components",
    "empty_draw_fractions",
    "log_density_draws",
    "modes_sentence",
    "split_rhat",
    "stacking_groups",
    "starts_sentence",
]
