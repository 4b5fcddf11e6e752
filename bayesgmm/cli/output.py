"""What the commands print and write besides the library's own files: progress lines on
stderr, one-line error text, the ``fit`` verdict, JSON and figure files."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bayesgmm.core.io import write_text_atomic
from bayesgmm.core.methods import MCMC_METHODS

#: Probabilities in the per-row tables (predictions.csv, assignments.csv): 7 significant
#: digits, not float64's 17.
FLOAT_FORMAT = "%.7g"

#: Exit status of ``fit --strict`` when the sampler checks fail (outputs are still written).
EXIT_DIAGNOSTICS = 3


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


class Progress:
    """Timestamped progress messages on stderr (silent when ``quiet``)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(
                f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True
            )


def write_json(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, default=float) + "\n")


def verdict_text(method: str, diagnostics) -> str:
    """The first thing ``fit`` prints: whether the result can be trusted, and what to do."""
    if method not in ("map", *MCMC_METHODS) and diagnostics is not None:
        checked = "PSIS-corrected draws" if diagnostics.posterior == "psis" else "draws of q"
        if diagnostics.ok:
            return (
                f"Verdict: variational approximation ({method}) passed its checks (ELBO "
                f"converged, PSIS k-hat of the {checked} below 0.7); intervals are usable, "
                "confirm with --method nuts for final results."
            )
        return (
            f"Verdict: variational approximation ({method}) failed its checks (see below): "
            "do not rely on its intervals; use --method nuts."
        )
    if diagnostics is not None:
        return diagnostics.verdict
    if method == "map":
        return (
            "Verdict: MAP point estimate only (no posterior, no uncertainty, no sampler "
            "checks); use --method nuts for credible intervals."
        )
    return (
        f"Verdict: variational approximation ({method}): no sampler checks exist, and "
        "intervals are usually too narrow; confirm with --method nuts before relying on them."
    )


def wide_display():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 20)


def write_figure(path: Path, draw) -> None:
    """Write ``draw()`` as PNG; a figure that fails is warned about, the tables still written."""
    from bayesgmm.reporting.report import figure_png

    try:
        path.write_bytes(figure_png(draw()))
    except Exception as err:  # any failure of one figure: keep the tables
        print(
            f"bayesgmm: warning: figure {path.name} not written: {one_line(err)}", file=sys.stderr
        )
