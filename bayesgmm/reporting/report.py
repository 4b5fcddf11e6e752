"""The self-contained report a user can hand on: a document of text, tables and figures.

:class:`Report` (:mod:`bayesgmm.reporting.document`, re-exported here) collects headings, text,
tables and figures and writes Markdown (figures as PNG files beside it) and HTML (figures
embedded as base64), each written atomically. :func:`add_posterior_analysis` appends the
MAP-versus-posterior section of one fitted model, :func:`add_unsettled_candidates` the modes of
the compared candidates whose sampler checks failed, and :func:`build_report` assembles the
standard report from a :class:`~bayesgmm.selection.compare.ModelComparison`. The numbers come
from :mod:`bayesgmm.posterior.summaries` and the figures from :mod:`bayesgmm.reporting.plots`;
nothing is computed here.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bayesgmm.core.methods import MCMC_METHODS
from bayesgmm.posterior.diagnostics import stacking_groups
from bayesgmm.posterior.draws import stack_draws
from bayesgmm.posterior.summaries import (
    INTERVAL_KIND,
    align_to_posterior,
    assignment_summary,
    data_grid,
    data_summary,
    map_check_by_chains,
    map_log_density_check,
    map_vs_posterior,
    marginal_density,
    marginal_density_band,
    parameter_draws,
    posterior_summary,
)
from bayesgmm.reporting import plots
from bayesgmm.reporting.document import (
    Report,
    figure_png,
    markdown_table,
    readable_summary,
    software_versions,
)
from bayesgmm.selection.compare import SIGN_CONVENTION, ModelComparison


def _describe_draws(bayes) -> str:
    tree = bayes.idata_
    attrs = tree.posterior.attrs
    if attrs.get("chain_combination") == "stacked":
        sizes = tree["posterior_chains"].sizes
        weights = ", ".join(f"{w:.2f}" for w in attrs["chain_weights"])
        return (
            f"{bayes.method_} ({sizes['chain']} chain(s) x {sizes['draw']} draws, combined by "
            f"Bayesian stacking of the chains with weights {weights}: "
            f"{sizes['chain'] * sizes['draw']} draws resampled)"
        )
    sizes = tree.posterior.sizes
    pooled = ", chains pooled" if "chain_combination" in attrs else ""
    if "stacking_gain" in attrs:
        pooled += (
            f" because stacking them would raise the LOO log score by only "
            f"{attrs['stacking_gain']:.1f} nats, not more than the "
            f"{attrs['stacking_penalty']:.0f} its free weights gain by chance"
        )
    return f"{bayes.method_} ({sizes['chain']} chain(s) x {sizes['draw']} draws{pooled})"


_WHERE = {
    "same": "in the MAP's mode",
    "lower": "in another mode, lower than the MAP's",
    "higher": "in a mode higher than the MAP's",
}


def _by_chains_text(by_chains: pd.DataFrame) -> str:
    """Where each group of chains sits, in one sentence (see map_check_by_chains)."""
    parts = []
    for chains, row in by_chains.iterrows():
        noun = "chains" if "," in str(chains) else "chain"
        weight = f", stacking weight {row['weight']:.2f}" if np.isfinite(row["weight"]) else ""
        side = "below" if row["gap"] >= 0 else "above"
        top = row["max"] - (row["median"] + row["gap"])  # highest draw minus the MAP
        reach = f", highest draw {top:.1f} above it" if row["mode"] == "higher" else ""
        parts.append(
            f"{noun} {chains} ({_WHERE[row['mode']]}: median {row['median']:.1f}, "
            f"{abs(row['gap']):.1f} {side} the MAP{reach}{weight})"
        )
    return "Chain by chain: " + "; ".join(parts) + "."


def _map_mode_text(
    check: dict, n_out: int, diagnostics, by_chains: pd.DataFrame | None = None
) -> str:
    """Whether the posterior mass sits in the MAP's mode, in words (see map_log_density_check).

    ``by_chains`` (:func:`map_check_by_chains` of the modes or drifting chains) adds
    where each group of chains sits, with its stacking weight.
    """
    stacked = getattr(diagnostics, "chain_combination", "") == "stacked"
    draws = "the draws (each chain weighted by its stacking weight)" if stacked else "the draws"
    numbers = (
        f"The log posterior density (unnormalised: log-likelihood plus log prior, the "
        f"objective that MAP-EM maximises) is "
        f"{check['map']:.1f} at the MAP; over {draws} its median is {check['median']:.1f} "
        f"(5%-95%: {check['q05']:.1f} to {check['q95']:.1f}, highest {check['max']:.1f}). "
        f"Draws from the MAP's own mode would lie about {check['expected_gap']:.1f} below "
        f"it (half the number of free parameters; at most {check['gap_limit']:.1f} for the "
        f"median), and they lie {check['gap']:.1f} below. "
    )
    where = {
        "same": "The posterior mass sits in the MAP's mode",
        "lower": "The posterior mass sits in another mode, lower at its peak than the MAP's "
        "but wider",
        "higher": f"Draws reach {check['max'] - check['map']:.1f} above the MAP's log "
        "density: the posterior holds a mode of higher density than the MAP, which EM's "
        "restarts missed (raise em_n_init)",
    }[check["mode"]]
    if diagnostics is not None and (diagnostics.multimodal or diagnostics.drift):
        where += ". " + diagnostics.modes_text[:-1]
    if by_chains is not None:
        where += ". " + _by_chains_text(by_chains)[:-1]
    unsettled = diagnostics is not None and (diagnostics.multimodal or diagnostics.drift)
    if n_out == 0 and unsettled:
        reason = "; every MAP value lies inside its interval."
    elif n_out == 0:
        reason = "; every MAP value lies inside its interval: a unimodal posterior around the MAP."
    elif check["mode"] == "same":
        reason = (
            f"; the {n_out} MAP value(s) outside their intervals come from the posterior's "
            "asymmetry around its mode (typically the variances of small components, "
            "whose posterior is skewed), not from another mode."
        )
    else:
        reason = (
            f", which is why {n_out} MAP value(s) lie outside their intervals: the table "
            "shows both, the MAP's mode (map) and the posterior's (mean, median, interval)."
        )
    return numbers + where + reason


def _add_map_mode(report: Report, bayes, diagnostics, n_out: int, figure: str) -> None:
    """Where the posterior mass sits against the MAP: text, per-mode table, figure."""
    draws_lp, map_lp, n_free = bayes.log_posterior_density()
    weights = bayes.chain_weights_
    check = map_log_density_check(map_lp, draws_lp, n_free, weights)
    by_chains = None
    if diagnostics.multimodal or diagnostics.drift or check["mode"] != "same":
        groups = stacking_groups(diagnostics.modes, diagnostics.drifting)
        by_chains = map_check_by_chains(map_lp, draws_lp, n_free, groups, weights)
    report.text(_map_mode_text(check, n_out, diagnostics, by_chains))
    if by_chains is not None:
        shown = by_chains.rename(index=lambda c: f"chain{'s' if ',' in c else ''} {c}")
        report.table(shown.dropna(axis=1, how="all"), digits=4)
    report.figure_or_note(
        figure,
        lambda: plots.plot_log_density_vs_map(draws_lp, check, chain_weights=weights),
        "Log posterior density of every chain's draws against the MAP's (red line); "
        "draws from the MAP's own mode lie in the shaded range, about p/2 below the "
        "MAP (dashed), p the number of free parameters.",
    )


def add_unsettled_candidates(
    report: Report, comparison: ModelComparison, *, feature_names: list[str], ci_prob: float
) -> list[str]:
    """A section on the compared candidates (not the recommended one) whose checks failed.

    For each NUTS candidate whose sampler checks failed: where its chains sit (modes,
    drifting chains, stacking or pooling, :attr:`Diagnostics.modes_text`), how many of
    its MAP values lie outside their posterior intervals, and whether the posterior mass
    sits in the MAP's mode (the same text, table and figure as the recommended model's
    MAP-versus-posterior section). Nothing is added when every candidate passed.

    Returns
    -------
    list of str
        The candidates described.
    """
    shown = []
    for name, fit in comparison.fits.items():
        bayes = fit.bayes
        if (
            name == comparison.recommended
            or bayes is None
            or getattr(bayes, "method_", None) not in MCMC_METHODS
            or getattr(bayes, "map_noise_weight_", None) is not None
        ):
            continue
        diagnostics = bayes.diagnose()
        if diagnostics.ok:
            continue
        if not shown:
            report.heading("Candidates whose sampler checks failed")
            report.text(
                "The posteriors of these candidates are not converged; for each, where its "
                "chains sit and where the posterior mass lies against its MAP-EM estimate "
                f"({ci_prob:.0%} {INTERVAL_KIND} intervals)."
            )
        shown.append(name)
        table = map_vs_posterior(
            bayes.idata_.posterior.to_dataset(),
            bayes.map_,
            ci_prob=ci_prob,
            feature_names=feature_names,
        )
        n_out = int((~table["map_in_interval"]).sum())
        report.text(
            f"**{name}** ({_describe_draws(bayes)}): "
            + "; ".join(diagnostics.problems)
            + f". {n_out} of {len(table)} MAP values lie outside their interval."
        )
        slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()
        _add_map_mode(report, bayes, diagnostics, n_out, f"log_density_{slug}")
    return shown


def add_posterior_analysis(
    report: Report,
    X: np.ndarray,
    bayes,
    *,
    feature_names: list[str],
    ci_prob: float = 0.89,
    bootstrap=None,
) -> pd.DataFrame:
    """Append the MAP-versus-posterior section of one fitted model to ``report``.

    Parameters
    ----------
    report : Report
    X : ndarray of shape (n_samples, n_features)
    bayes : BayesianGaussianMixture
        Fitted (``idata_``, ``map_``, ``diagnose()``).
    feature_names : list of str
    ci_prob : float, default=0.89
    bootstrap : BootstrapResult, optional
        Bootstrap of the MAP-EM fit: its standard errors and percentile intervals are
        shown beside the posterior's (frequentist and Bayesian uncertainty side by side).

    Returns
    -------
    DataFrame
        The :func:`map_vs_posterior` table.
    """
    posterior = bayes.idata_.posterior.to_dataset()
    chains = (
        bayes.idata_["posterior_chains"].to_dataset()
        if "posterior_chains" in bayes.idata_.children
        else posterior
    )
    noise_weight = getattr(bayes, "map_noise_weight_", None)
    table = map_vs_posterior(
        posterior,
        bayes.map_,
        ci_prob=ci_prob,
        feature_names=feature_names,
        bootstrap=bootstrap,
        noise_weight=noise_weight,
    )
    n_out = int((~table["map_in_interval"]).sum())
    diagnostics = bayes.diagnose() if bayes.method_ in MCMC_METHODS else None
    report.heading("MAP versus posterior")
    report.text(
        f"MAP: the MAP-EM estimate (same model and priors). Posterior: {_describe_draws(bayes)}. "
        f"Intervals are {ci_prob:.0%} {INTERVAL_KIND} credible intervals (ArviZ 1's default "
        f"kind). Components of the MAP are relabelled to match the posterior's. "
        f"{n_out} of {len(table)} MAP values lie outside their interval."
        + (
            ""
            if bootstrap is None
            else f" boot_se, boot_lower, boot_upper: {bootstrap.kind} bootstrap of the MAP-EM "
            f"fit ({int((~bootstrap.failed).sum())} replicates, each refitted from the MAP "
            f"and relabelled to it): standard error and {ci_prob:.0%} percentile interval."
        )
    )
    report.table(table.set_index("parameter"), digits=4)
    if bayes.method_ in MCMC_METHODS and getattr(bayes, "map_noise_weight_", None) is None:
        _add_map_mode(report, bayes, diagnostics, n_out, "log_density")
    report.figure_or_note(
        "map_vs_posterior",
        lambda: plots.plot_map_vs_posterior(table),
        f"Posterior median and {ci_prob:.0%} interval (blue) versus the MAP (red cross).",
    )
    grid = data_grid(X)
    aligned = align_to_posterior(bayes.map_, posterior)
    report.figure_or_note(
        "density",
        lambda: plots.plot_density(
            X,
            grid,
            marginal_density(
                grid,
                aligned.weights * (1.0 - (noise_weight or 0.0)),  # absolute, as the posterior's
                aligned.means,
                aligned.full_covariances(),
            ),
            marginal_density_band(grid, posterior, ci_prob=ci_prob),
            feature_names=feature_names,
            ci_prob=ci_prob,
        ),
        "Data with the MAP density (dashed) and the posterior-predictive density "
        f"with its {ci_prob:.0%} band, per feature (marginal densities).",
    )
    assignment = assignment_summary(X, posterior, ci_prob=ci_prob)
    one_d = X.shape[1] == 1
    report.figure_or_note(
        "assignment",
        lambda: plots.plot_assignment(
            X[:, 0] if one_d else np.arange(X.shape[0]),
            assignment,
            xlabel=feature_names[0] if one_d else "observation",
        ),
        f"Probability of each point's most probable component with its {ci_prob:.0%} "
        f"interval; {int(assignment['uncertain'].sum())} uncertain point(s) (interval "
        "reaching below 0.5) drawn large.",
    )
    if X.shape[1] >= 2:
        _, draw_means, draw_covs = stack_draws(posterior, max_draws=40)
        which = (
            "the two features"
            if X.shape[1] == 2
            else "the pairs of the three features that separate the components most"
        )
        report.figure_or_note(
            "ellipses",
            lambda: plots.plot_ellipses(
                X,
                aligned.means,
                aligned.full_covariances(),
                draw_means,
                draw_covs,
                feature_names=feature_names,
                map_weights=aligned.weights,
            ),
            f"2-sd ellipses of every component on {which}: MAP (red) and 40 posterior "
            "draws (blue).",
        )
    report.heading("Sampler diagnostics")
    if diagnostics is not None:
        report.text(diagnostics.verdict)
        report.code(str(diagnostics))
    draws = parameter_draws(chains, bayes.map_.covariance_type, feature_names)
    summary = posterior_summary(draws, ci_prob=ci_prob)
    report.figure_or_note(
        "trace",
        lambda: plots.plot_trace(draws, summary),
        "Traces and per-chain densities, one row per parameter group (its worst-mixing "
        "parameters, standardised).",
    )
    report.figure_or_note(
        "rank",
        lambda: plots.plot_rank(draws, summary),
        f"Rank plots of the (at most {plots.MAX_RANK_PARAMETERS}) parameters with the "
        "highest R-hat: each chain's fractional-rank ECDF minus the uniform one, flat means "
        "well mixed; p (in the titles): arviz-plots' multi-chain uniformity test (which allows for "
        "autocorrelation) at level alpha, black points: the ranks that deviate most.",
    )
    return table


def answer_text(comparison: ModelComparison) -> str:
    """The report's first paragraph: the recommended K and structure, why, and whether its
    posterior can be used (the sampler's verdict)."""
    best = comparison.best
    text = (
        f"**Recommended: {comparison.recommended}** (K={best.n_components}, "
        f"{best.covariance_type} covariances). {comparison.reason}"
    )
    bayes = best.bayes
    if bayes is None:
        return text
    try:
        verdict = bayes.diagnose().verdict
    except ValueError:  # a MAP, or chains too short to diagnose
        return text
    return f"{text} Its posterior: {verdict.removeprefix('Verdict: ')}"


def build_report(
    X: np.ndarray,
    comparison: ModelComparison,
    *,
    feature_names: list[str],
    data_name: str,
    command: str,
    ci_prob: float = 0.89,
    known_classes: tuple[str, pd.DataFrame] | None = None,
    n_boot: int = 0,
    random_state: int | None = None,
) -> Report:
    """The standard report: data, comparison, the chosen model's analysis, provenance.

    After the chosen model's analysis, the candidates whose sampler checks failed are
    described (:func:`add_unsettled_candidates`: their modes or drifting chains, and where
    their posterior mass sits against their MAP).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    comparison : ModelComparison
        With posterior fits (not EM-only).
    feature_names : list of str
    data_name : str
        How the data are called in the title.
    command : str
        The exact command line that produced the report.
    ci_prob : float, default=0.89
    known_classes : (str, DataFrame), optional
        A sentence (with the adjusted Rand index) and the cross-tabulation of known
        classes against the chosen model's clusters, shown after the recommendation.
    n_boot : int, default=0
        Nonparametric bootstrap replicates of the chosen model's MAP-EM fit, shown beside
        the posterior (0: none; about 2 s per 100 replicates on faithful, K=2).
    random_state : int, optional
        Seed of the bootstrap.

    Returns
    -------
    Report
    """
    report = Report(f"Gaussian mixture analysis: {data_name}")
    report.heading("Answer")
    report.text(answer_text(comparison))
    report.heading("Data")
    report.text(f"{X.shape[0]} observations of {X.shape[1]} feature(s).")
    report.table(data_summary(X, feature_names))
    report.heading("Model comparison")
    report.text(
        f"Candidates fitted by {comparison.method} (posterior, PSIS-LOO) and by EM "
        f"(information criteria). {SIGN_CONVENTION} weight: stacking weight. k_ok, k_high, "
        "k_very_high: observations with Pareto k below ArviZ's good_k threshold, between "
        "it and 1, above 1; loo_method psis+moment_matching: those above the threshold were "
        "moment-matched (arviz_stats.loo_moment_match). sampler_ok: every NUTS diagnostic "
        "(R-hat, bulk and tail ESS, divergences, E-BFMI) passed."
    )
    report.table(
        comparison.table.drop(columns=["n_components", "covariance_type"]).round(2), digits=8
    )
    report.text(f"Recommended: {comparison.recommended} (the answer above).")
    report.figure_or_note(
        "loo_comparison",
        lambda: plots.plot_loo_comparison(comparison.table),
        "LOO elpd of each candidate and its difference to the best, with standard errors "
        "(higher is better); candidates with high Pareto k or failed sampler checks in red.",
    )
    report.figure_or_note(
        "bic_by_model",
        lambda: plots.plot_bic_models(comparison),
        "BIC of the EM fits against K, one line per covariance structure, in the table's sign "
        "(-2 log L + p log n, lower is better; mclust plots its negative, higher is better); "
        "the recommended candidate circled, the lowest BIC squared where it is another.",
    )
    if known_classes is not None:
        report.heading("Known classes")
        report.text(known_classes[0])
        report.table(known_classes[1])
    bayes = comparison.best.bayes
    bootstrap = None
    if n_boot:
        bootstrap = bayes.em_.bootstrap(X, n_boot=n_boot, random_state=random_state)
    add_posterior_analysis(
        report, X, bayes, feature_names=feature_names, ci_prob=ci_prob, bootstrap=bootstrap
    )
    add_unsettled_candidates(report, comparison, feature_names=feature_names, ci_prob=ci_prob)
    report.heading("Reproduce")
    report.code(command)
    report.table(pd.DataFrame({"version": software_versions()}))
    return report


__all__ = [
    "Report",
    "add_posterior_analysis",
    "add_unsettled_candidates",
    "answer_text",
    "build_report",
    "figure_png",
    "markdown_table",
    "readable_summary",
    "software_versions",
]
