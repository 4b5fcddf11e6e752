"""Sampling diagnostics of a mixture posterior as one small record.

:func:`diagnose` reads an ArviZ DataTree (after relabelling, so that per-component
statistics mean something) and returns :class:`Diagnostics`: worst rank-normalised
R-hat, smallest bulk and tail ESS (arviz-stats), divergences, smallest E-BFMI and the
label-switching verdict. Entries that are constant across all draws (the zero
off-diagonals of ``diag``/``spherical`` covariances) have no R-hat and are skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

POSTERIOR_VARS: tuple[str, ...] = ("weights", "means", "covariances")
#: R-hat above which chains probably sit in different modes (fewer components may help).
MULTIMODAL_RHAT = 1.1


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

    @property
    def ok(self) -> bool:
        """All checks pass: R-hat, both ESS, no divergences, E-BFMI."""
        return all(self._checks().values())

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
        return pd.DataFrame(rows).set_index("check")

    def problems(self) -> list[str]:
        """Every failed check, in words."""
        checks = self._checks()
        found = []
        if not checks["max_rhat"]:
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
            draws = int(np.ceil(self.n_draws * max(2.0, factor) / 100.0) * 100)
            found.append(f"more draws and tuning (e.g. --draws {draws} --tune {draws})")
        if not checks["n_divergences"]:
            found.append("a higher target_accept (0.95 or 0.99)")
        if not checks["min_bfmi"]:
            found.append("longer tuning, or standardised data (--scale)")
        multimodal = self.max_rhat > MULTIMODAL_RHAT
        if self.empty_components or multimodal or not checks["n_divergences"]:
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
        return (
            "Verdict: the sampler checks FAILED: " + "; ".join(self.problems()) + ". Do not "
            "trust the posterior summaries yet. Remedy: " + "; or ".join(self.remedies()) + "."
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
        if self.empty_components:
            lines.append(
                f"  note           component(s) {list(self.empty_components)} are probably "
                "empty (posterior P(N_k < 1) > 0.5): fewer components may describe the data"
            )
        return "\n".join(lines)


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
    component_counts : ndarray of shape (n_draws, n_components), optional
        Posterior draws of ``N_k``, to flag empty components.
    rhat_threshold, ess_threshold : float
        Limits used by :attr:`Diagnostics.ok`.

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
        empty_components=() if component_counts is None else empty_components(component_counts),
    )


__all__ = ["POSTERIOR_VARS", "Diagnostics", "diagnose", "empty_components"]
