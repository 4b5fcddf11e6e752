"""A document of headings, text, tables and figures, written as Markdown and as HTML.

:class:`Report` collects the parts and writes Markdown (figures as PNG files beside it) and
HTML (figures embedded as base64), each written atomically; :func:`markdown_table`,
:func:`readable_summary`, :func:`figure_png` and :func:`software_versions` are its pieces.
What goes into the standard report is :mod:`bayesgmm.reporting.report`'s.
"""

from __future__ import annotations

import base64
import html
import io
import platform
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayesgmm.core.io import write_bytes_atomic, write_text_atomic

_BOLD = re.compile(r"\*\*(.+?)\*\*")
PACKAGES: tuple[str, ...] = (
    "bayesgmm",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "pymc",
    "pytensor",
    "nutpie",
    "arviz-base",
    "arviz-stats",
    "arviz-plots",
    "xarray",
    "matplotlib",
)


def software_versions() -> dict[str, str]:
    """Python and package versions, for the record of how a result was produced."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def escape_markdown(text) -> str:
    """``text`` safe inside a Markdown table cell.

    Raw HTML is neutralised (``&``, ``<``, ``>`` become entities), ``|`` is escaped and
    line breaks become spaces, so a column named ``<script>`` or ``a\\nb`` stays one cell.
    """
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.replace("|", "\\|").splitlines())


def markdown_table(frame: pd.DataFrame, *, digits: int = 3) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (floats to ``digits`` significant).

    Column names, index labels and text cells are escaped (:func:`escape_markdown`).
    """

    def cell(value) -> str:
        if isinstance(value, float | np.floating):
            return "" if np.isnan(value) else f"{value:.{digits}g}"
        return escape_markdown(value)

    header = ["", *map(escape_markdown, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([cell(index), *map(cell, row)]) + " |")
    return "\n".join(lines)


def readable_summary(
    frame: pd.DataFrame, *, min_digits: int = 3, max_digits: int = 8
) -> pd.DataFrame:
    """A parameter summary as text, with enough significant digits for its values to differ.

    Parameters
    ----------
    frame : DataFrame
        :meth:`BayesianGaussianMixture.summary` (posterior or point estimate).
    min_digits, max_digits : int
        Range of significant digits of the estimates and interval ends: per row, the
        fewest at which values that differ are printed differently (a narrow interval
        around 1024.3 reads ``1024.31 .. 1024.36``, not ``1.02e+03 .. 1.02e+03``).

    Returns
    -------
    DataFrame of str
        Same index and columns; ``sd`` to 3 significant digits, ESS as integers, R-hat to
        3 decimals, missing values empty.
    """
    values = [c for c in frame.columns if c in ("mean", "estimate") or c.endswith(("_lb", "_ub"))]
    out = frame.astype(object).copy()
    for index, row in frame[values].iterrows():
        numbers = [float(v) for v in row if np.isfinite(v)]
        for digits in range(min_digits, max_digits + 1):
            if len({f"{v:.{digits}g}" for v in numbers}) == len(set(numbers)):
                break
        for column in values:
            v = float(row[column])
            out.loc[index, column] = f"{v:.{digits}g}" if np.isfinite(v) else ""
    formats = {"sd": "{:.3g}", "ess_bulk": "{:.0f}", "ess_tail": "{:.0f}", "r_hat": "{:.3f}"}
    for column, fmt in formats.items():
        if column in frame:
            out[column] = [fmt.format(v) if np.isfinite(v) else "" for v in frame[column]]
    return out


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of a figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


@dataclass
class Report:
    """An ordered document of headings, text, tables, code and figures.

    Attributes
    ----------
    title : str
    blocks : list of (kind, payload)
        ``kind`` is one of heading, text, table, code, figure.
    figures : dict of str to bytes
        PNG bytes by file name (``figures/<name>.png`` next to the Markdown).
    """

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def heading(self, text: str) -> None:
        """Add a section heading."""
        self.blocks.append(("heading", text))

    def text(self, text: str) -> None:
        """Add a paragraph (plain text; ``**bold**`` is rendered in both formats)."""
        self.blocks.append(("text", text))

    def table(self, frame: pd.DataFrame, *, digits: int = 3) -> None:
        """Add a table."""
        self.blocks.append(("table", (frame, digits)))

    def code(self, text: str) -> None:
        """Add a preformatted block."""
        self.blocks.append(("code", text))

    def figure(self, name: str, fig: Figure, caption: str) -> None:
        """Add a figure (rendered to PNG now, so the Figure can be discarded)."""
        self.figures[f"{name}.png"] = figure_png(fig)
        self.blocks.append(("figure", (f"{name}.png", caption)))

    def figure_or_note(self, name: str, draw: Callable[[], Figure], caption: str) -> bool:
        """Add the figure ``draw()`` returns; if drawing fails, add a note instead.

        One figure that cannot be drawn (a plotting library's limit, degenerate draws)
        must not lose the tables and the other figures of a long run: the error is
        written into the report where the figure would be, and warned about.

        Returns
        -------
        bool
            Whether the figure was added.
        """
        try:
            png = figure_png(draw())
        except Exception as err:  # any failure of one figure is reported, see above
            message = " ".join(str(err).split()) or type(err).__name__
            self.text(
                f"**Figure '{name}' could not be drawn** ({type(err).__name__}: {message}). "
                "The tables and the other figures are not affected."
            )
            warnings.warn(f"figure {name!r} could not be drawn: {message}", stacklevel=2)
            return False
        self.figures[f"{name}.png"] = png
        self.blocks.append(("figure", (f"{name}.png", caption)))
        return True

    def to_markdown(self) -> str:
        """The report as Markdown; figures referenced as ``figures/<name>.png``."""
        render = {
            "heading": lambda text: f"## {text}",
            "text": lambda text: text,
            "table": lambda payload: markdown_table(payload[0], digits=payload[1]),
            "code": lambda text: f"```\n{text}\n```",
            "figure": lambda payload: f"![{payload[1]}](figures/{payload[0]})\n\n*{payload[1]}*",
        }
        parts = [
            f"# {self.title}",
            *(render[kind](payload) for kind, payload in self.blocks),
        ]
        return "\n\n".join(parts) + "\n"

    def to_html(self) -> str:
        """The report as one self-contained HTML page (figures embedded)."""

        def figure(payload) -> str:
            name, caption = payload
            data = base64.b64encode(self.figures[name]).decode("ascii")
            return (
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )

        def table(payload) -> str:
            frame, digits = payload
            return frame.to_html(float_format=lambda v: f"{v:.{digits}g}", border=0)

        render = {
            "heading": lambda text: f"<h2>{html.escape(text)}</h2>",
            "text": lambda text: (
                "<p>" + _BOLD.sub(r"<strong>\1</strong>", html.escape(text)) + "</p>"
            ),
            "table": table,
            "code": lambda text: f"<pre>{html.escape(text)}</pre>",
            "figure": figure,
        }
        body = "\n".join(render[kind](payload) for kind, payload in self.blocks)
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n"
            f"<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, directory: Path | str, stem: str = "report") -> list[Path]:
        """Write ``<stem>.md``, ``<stem>.html`` and ``figures/*.png`` into ``directory``.

        Every file is written atomically. Returns the paths written.
        """
        directory = Path(directory)
        (directory / "figures").mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in self.figures.items():
            written.append(write_bytes_atomic(directory / "figures" / name, data))
        written.append(write_text_atomic(directory / f"{stem}.md", self.to_markdown()))
        written.append(write_text_atomic(directory / f"{stem}.html", self.to_html()))
        return written


_CSS = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.4}"
    "table{border-collapse:collapse;font-size:90%}td,th{padding:2px 8px;text-align:right;"
    "border-bottom:1px solid #ddd}img{max-width:100%}pre{background:#f4f4f4;padding:.5em;"
    "overflow-x:auto}figcaption{font-style:italic;font-size:90%}"
)


__all__ = [
    "PACKAGES",
    "Report",
    "escape_markdown",
    "figure_png",
    "markdown_table",
    "readable_summary",
    "software_versions",
]
