"""The sentences of :class:`bayesgmm.posterior.diagnostics.Diagnostics`: what failed and what to do.

Every function here turns numbers already computed into words (problems, remedies, the
verdict, the plain-text summary); :class:`~bayesgmm.posterior.diagnostics.Diagnostics`
exposes them as properties, so callers read ``diag.verdict``, ``diag.problems``, ... .
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayesgmm.posterior.modes import (
    MULTIMODAL_RHAT,
    SOMETIMES_EMPTY_FRACTION,
    Mode,
    stacking_groups,
)

if TYPE_CHECKING:
    from bayesgmm.posterior.diagnostics import Diagnostics

#: More draws are suggested as a remedy only when at most this factor would reach the ESS.
MAX_DRAWS_FACTOR = 8.0
#: A run of fewer draws (all chains) than this many times the ESS threshold is too short to
#: say the chains barely move (unless they sit in different modes): its ESS estimates are
#: noise themselves (2 x 20 Gibbs draws on Old Faithful K=2 showed an ESS of 12).
SHORT_RUN_FACTOR = 2.0


def starts_sentence(chain_starts: tuple[int, ...], given: bool = False) -> str:
    """Which EM optimum (0: the best), or which of the starts the user ``given``, each chain
    started from, in words."""
    groups: dict[int, list[int]] = {}
    for chain, start in enumerate(chain_starts):
        groups.setdefault(start, []).append(chain)
    source = "the start given" if given else "EM optimum"
    return "; ".join(
        f"chain{'s' if len(c) > 1 else ''} {','.join(map(str, c))} from {source} {s}"
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


def stacking_note(diag: Diagnostics) -> str:
    """Why the chains are pooled although they do not mix ("" if that does not apply)."""
    if not diag.stacking_rejected:
        return ""
    return (
        f"Stacking does not tell the chains apart: its weights would raise the LOO log "
        f"score by {diag.stacking_gain:.1f} nats over pooling, not more than the "
        f"{diag.stacking_penalty:.0f} that fitting its free weights gains by chance, so "
        "the chains predict the data equally well and are pooled with equal weights."
    )


def empty_sentence(diag: Diagnostics) -> str:
    """How often a component empties, overall and by chain ("" if never)."""
    if not diag.empty_draws or max(diag.empty_draws) == 0:
        return ""
    by_chain = ", ".join(f"{f:.1%}" for f in diag.empty_draws)
    return (
        f"a component holds fewer than one point in {np.mean(diag.empty_draws):.1%} of "
        f"the draws (by chain: {by_chain})"
    )


def modes_text(diag: Diagnostics) -> str:
    """Where the chains sit, in one or two sentences."""
    parts = []
    if diag.multimodal:
        parts.append(modes_sentence(diag.modes))
    if diag.drift:
        parts.append(drift_sentence(diag.drifting, diag.n_chains))
    if diag.stacking_rejected:
        parts.append(stacking_note(diag))
    elif diag.drift and len(diag.chain_weights) == diag.n_chains:
        units = stacking_groups(diag.modes, diag.drifting)
        parts.append(
            "Stacking weights: "
            + ", ".join(
                f"chain{'s' if len(u) > 1 else ''} {','.join(map(str, u))} "
                f"{sum(diag.chain_weights[c] for c in u):.2f}"
                for u in units
            )
            + "."
        )
    return " ".join(parts) if parts else "The chains sit in one mode."


def problems(diag: Diagnostics) -> list[str]:
    """Every failed check, in words."""
    checks = diag.checks
    found = []
    rhats = f" (max R-hat {diag.max_rhat:.3f}, R-hat of the log posterior {diag.lp_rhat:.3f})"
    for shown, sentence in (
        (diag.multimodal, modes_sentence(diag.modes)),
        (diag.drift, drift_sentence(diag.drifting, diag.n_chains)),
    ):
        if shown:
            found.append(sentence[0].lower() + sentence[1:-1] + rhats)
            rhats = ""
    if diag.sometimes_empty and not diag.mixes:
        found.append(
            empty_sentence(diag) + ": the posterior holds both an occupied and an "
            "empty state of that component and the chains cross between them rarely; "
            "while it is empty its mean and covariance follow their prior, so their "
            "R-hat and ESS cannot settle" + rhats
        )
        rhats = ""
    elif not (diag.multimodal or diag.drift) and not checks["max_rhat"]:
        found.append(f"the chains disagree (max R-hat {diag.max_rhat:.3f} > {diag.rhat_threshold})")
    if not (checks["min_ess_bulk"] and checks["min_ess_tail"]):
        found.append(
            f"too few effective draws (min bulk ESS {diag.min_ess_bulk:.0f}, min tail ESS "
            f"{diag.min_ess_tail:.0f}; need {diag.ess_threshold:g})"
        )
    if not checks["n_divergences"]:
        found.append(f"{diag.n_divergences} divergent transition(s)")
    if not checks["min_bfmi"]:
        found.append(f"low E-BFMI ({diag.min_bfmi:.2f} < {diag.bfmi_threshold})")
    return found


def remedies(diag: Diagnostics) -> list[str]:
    """What to change for each failed check (and for probably empty components)."""
    checks = diag.checks
    found = []
    if not (checks["min_ess_bulk"] and checks["min_ess_tail"]) or not checks["max_rhat"]:
        ess = min(diag.min_ess_bulk, diag.min_ess_tail)
        factor = diag.ess_threshold / ess if np.isfinite(ess) and ess > 0 else 4.0
        if diag.empty_components:
            # the sampler's own rule (bayes/sampling.py, long_enough): such runs stop early
            found.append(
                f"not more draws: component(s) {list(diag.empty_components)} hold fewer "
                "than one point in most draws, which longer chains would not change (a run "
                "that may be extended stops early for this reason)"
            )
        elif factor <= MAX_DRAWS_FACTOR or (
            not diag.multimodal
            and diag.n_chains * diag.n_draws < SHORT_RUN_FACTOR * diag.ess_threshold
        ):
            factor = min(factor, MAX_DRAWS_FACTOR)
            short = SHORT_RUN_FACTOR * diag.ess_threshold / max(diag.n_chains, 1)
            draws = int(np.ceil(max(diag.n_draws * max(2.0, factor), short) / 100.0) * 100)
            found.append(
                f"more draws and tuning (e.g. draws={draws}, tune={draws}; on the command "
                f"line --draws {draws} --tune {draws})"
            )
        else:
            found.append(
                f"not more draws: the chains barely move (min ESS {ess:.0f} in "
                f"{diag.n_chains} x {diag.n_draws} draws) and would need about "
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
    if (diag.multimodal or diag.drift) and not diag.stacking_rejected:
        found.append(
            "combine the chains by stacking (combine_chains='stack' or --combine-chains "
            "stack; the default 'auto' does it when the chains sit in different modes or "
            "drift)"
        )
    multimodal = diag.multimodal or diag.drift or diag.max_rhat > MULTIMODAL_RHAT
    if diag.sometimes_empty and not diag.mixes:
        found.append(
            "fewer components (one that empties in some draws is one the data barely "
            "support), or a prior that keeps every component occupied"
        )
    elif diag.empty_components or multimodal or not checks["n_divergences"]:
        found.append(
            "fewer components (a probably empty or duplicated component makes the "
            "posterior multimodal)"
        )
    return found


def verdict(diag: Diagnostics) -> str:
    """The outcome in one or two sentences, with the remedy when a check failed."""
    if diag.ok:
        note = (
            f" Component(s) {list(diag.empty_components)} are probably empty: fewer "
            "components may describe the data as well."
            if diag.empty_components
            else ""
        )
        return (
            f"Verdict: the sampler checks passed ({diag.n_chains} chains x {diag.n_draws} "
            f"draws: R-hat <= {diag.rhat_threshold}, ESS >= {diag.ess_threshold:g}, no "
            f"divergences); the posterior summaries can be used.{note}"
        )
    if (diag.multimodal or diag.drift) and diag.chain_combination == "stacked":
        others = problems(diag)[int(diag.multimodal) + int(diag.drift) :]
        rest = (" Other problems: " + "; ".join(others) + ".") if others else ""
        what = (
            "of the chains, each covering its own mixture of configurations"
            if diag.drift
            else "of the modes"
        )
        return (
            "Verdict: the chains did not mix. " + modes_text(diag) + " The "
            "posterior combines the chains by Bayesian stacking (draws resampled with "
            f"the chains' stacking weights): use it as a weighted combination {what}, "
            "not as a converged posterior; R-hat and ESS describe the chains as sampled." + rest
        )
    note = stacking_note(diag)
    return (
        "Verdict: the sampler checks FAILED: "
        + "; ".join(problems(diag))
        + ". "
        + (note + " " if note else "")
        + "Do not trust the posterior summaries yet. Remedy: "
        + "; or ".join(remedies(diag))
        + "."
    )


def summary_text(diag: Diagnostics) -> str:
    """The plain-text table of ``str(diag)``: every check, its value and its threshold."""
    status = "OK" if diag.ok else "PROBLEMS FOUND"
    lines = [
        f"Sampling diagnostics ({diag.n_chains} chains x {diag.n_draws} draws): {status}",
        f"  max R-hat      {diag.max_rhat:.4f}  (<= {diag.rhat_threshold})",
        f"  min bulk ESS   {diag.min_ess_bulk:.0f}  (>= {diag.ess_threshold:g})",
        f"  min tail ESS   {diag.min_ess_tail:.0f}  (>= {diag.ess_threshold:g})",
        f"  divergences    {diag.n_divergences}",
        f"  min E-BFMI     {diag.min_bfmi:.3f}  (>= {diag.bfmi_threshold})",
        f"  labels         {diag.label_switching}",
    ]
    if np.isfinite(diag.lp_rhat):
        lines.insert(2, f"  R-hat log post {diag.lp_rhat:.4f}")
    if diag.method_choice:
        lines.insert(1, f"  method         {diag.method_choice}")
    if len(set(diag.chain_starts)) > 1:
        lines.append("  starts         " + starts_sentence(diag.chain_starts, diag.starts_given))
    if 0 < diag.draws_asked < diag.n_draws:
        lines.append(
            f"  length         extended from {diag.draws_asked} to {diag.n_draws} draws per "
            f"chain: R-hat or ESS missed its threshold at {diag.draws_asked}"
        )
    if diag.multimodal or diag.drift:
        lines.append("  modes          " + modes_text(diag))
    lines.append(f"  combination    {diag.chain_combination} chains")
    if diag.empty_draws and max(diag.empty_draws) >= SOMETIMES_EMPTY_FRACTION:
        lines.append("  empty draws    " + empty_sentence(diag))
    if diag.empty_components:
        lines.append(
            f"  note           component(s) {list(diag.empty_components)} are probably "
            "empty (posterior P(N_k < 1) > 0.5): fewer components may describe the data"
        )
    return "\n".join(lines)


__all__ = [
    "MAX_DRAWS_FACTOR",
    "SHORT_RUN_FACTOR",
    "drift_sentence",
    "empty_sentence",
    "modes_sentence",
    "modes_text",
    "problems",
    "remedies",
    "stacking_note",
    "starts_sentence",
    "summary_text",
    "verdict",
]
