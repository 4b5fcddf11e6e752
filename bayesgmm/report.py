"""MAP versus posterior, and the self-contained report a user can hand on.

Analysis (pure functions of arrays and a posterior ``xarray.Dataset`` with ``weights``
(chain, draw, component), ``means`` (chain, draw, component, feature) and
``covariances`` (chain, draw, component, feature, feature_bis), full matrices on the
user's scale), so that everything can be recomputed from a saved posterior:

* :func:`map_vs_posterior`: per parameter, the MAP (EM) value beside the posterior
  mean, median, sd and the **equal-tailed** credible interval (ArviZ 1's default kind,
  89% by default), with the MAP's components relabelled to match the posterior's.
* :func:`assignment_summary`, :func:`marginal_density_band`: per-point assignment
  probabilities and predictive densities with credible intervals over draws.

Document: :class:`Report` collects headings, text, tables and figures and writes
Markdown (figures as PNG files beside it) and HTML (figures embedded as base64), each
written atomically. :func:`build_report` assembles the standard report from a
:class:`~bayesgmm.compare.ModelComparison`.
"""

from __future__ import annotations

import base64
import html
import io
import platform
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from scipy.optimize import linear_sum_assignment
from scipy.special import softmax
from scipy.stats import norm

from bayesgmm import plots
from bayesgmm._io import write_bytes_atomic, write_text_atomic
from bayesgmm.compare import SIGN_CONVENTION, ModelComparison
from bayesgmm.inference import log_joint_densities
from bayesgmm.params import MixtureParams

INTERVAL_KIND = "equal-tailed"
_BOLD = re.compile(r"\*\*(.+?)\*\*")
PACKAGES: tuple[str, ...] = (
    "bayesgmm", "numpy", "scipy", "pandas", "scikit-learn", "pymc", "pytensor", "nutpie",
    "arviz-base", "arviz-stats", "arviz-plots", "xarray", "matplotlib",
)


def posterior_draws(
    posterior: xr.Dataset, max_draws: int | None = None, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack chains and draws, optionally thinned to a random subset.

    Parameters
    ----------
    posterior : xarray.Dataset
        With ``weights``, ``means`` and ``covariances`` (see the module docstring).
    max_draws : int, optional
        Keep at most this many draws (a seeded random subset).
    random_state : int

    Returns
    -------
    weights : ndarray of shape (n_draws, n_components)
    means : ndarray of shape (n_draws, n_components, n_features)
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
    """
    arrays = [
        posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
        for name in ("weights", "means", "covariances")
    ]
    n = arrays[0].shape[0]
    if max_draws is not None and n > max_draws:
        keep = np.sort(np.random.default_rng(random_state).choice(n, max_draws, replace=False))
        arrays = [a[keep] for a in arrays]
    return arrays[0], arrays[1], arrays[2]


def align_to_posterior(params: MixtureParams, posterior: xr.Dataset) -> MixtureParams:
    """Relabel point estimates so that component k matches the posterior's component k.

    Matches the point estimate's means to the posterior means of the means (Hungarian
    algorithm on squared distances, each feature scaled by its average posterior
    component standard deviation).

    Parameters
    ----------
    params : MixtureParams
        With as many components as the posterior.
    posterior : xarray.Dataset

    Returns
    -------
    MixtureParams
    """
    means = posterior["means"].mean(("chain", "draw")).to_numpy()
    if means.shape != params.means.shape:
        raise ValueError(
            f"the point estimate has means of shape {params.means.shape} but the posterior "
            f"{means.shape}: compare fits with the same K and number of features"
        )
    cov = posterior["covariances"].mean(("chain", "draw")).to_numpy()
    scale = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1).mean(axis=0))
    cost = (((params.means[:, None, :] - means[None, :, :]) / scale) ** 2).sum(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty_like(rows)
    order[cols] = rows
    return params.permuted(order)


def _parameter_entries(
    n_components: int, n_features: int, covariance_type: str, names: list[str]
) -> list[tuple[str, str, tuple[int, ...]]]:
    """(kind, label, index) of every free parameter, index into the full-matrix layout."""
    entries = [("weights", f"w[{k}]", (k,)) for k in range(n_components)]
    entries += [
        ("means", f"mu[{k}, {names[j]}]", (k, j))
        for k in range(n_components) for j in range(n_features)
    ]
    cov_components = [0] if covariance_type == "tied" else range(n_components)
    pairs = {
        "full": [(i, j) for i in range(n_features) for j in range(i + 1)],
        "tied": [(i, j) for i in range(n_features) for j in range(i + 1)],
        "diag": [(j, j) for j in range(n_features)],
        "spherical": [(0, 0)],
    }[covariance_type]
    for k in cov_components:
        for i, j in pairs:
            who = "all" if covariance_type == "tied" else str(k)
            label = f"Sigma[{who}, {names[i]}, {names[j]}]"
            entries.append(("covariances", label, (k, i, j)))
    return entries


def map_vs_posterior(
    posterior: xr.Dataset,
    map_params: MixtureParams,
    *,
    ci_prob: float = 0.89,
    feature_names: list[str] | None = None,
) -> pd.DataFrame:
    """The MAP (EM) estimate beside posterior summaries, one row per free parameter.

    Parameters
    ----------
    posterior : xarray.Dataset
        See the module docstring; components already relabelled consistently.
    map_params : MixtureParams
        MAP-EM estimate; relabelled here to match the posterior (:func:`align_to_posterior`).
    ci_prob : float, default=0.89
        Probability of the equal-tailed credible interval.
    feature_names : list of str, optional

    Returns
    -------
    DataFrame
        Columns ``kind`` (weights, means, covariances), ``parameter``, ``map``, ``mean``,
        ``median``, ``sd``, ``lower``, ``upper`` (the interval's ends) and
        ``map_in_interval``. ``attrs`` record ``ci_prob`` and ``interval`` (equal-tailed).
        Covariance rows cover the lower triangle (full, tied once), the diagonal (diag)
        or one variance per component (spherical).
    """
    if not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be in (0, 1), got {ci_prob}")
    aligned = align_to_posterior(map_params, posterior)
    weights, means, covs = posterior_draws(posterior)
    n_features = means.shape[-1]
    names = feature_names or [str(j) for j in range(n_features)]
    draws = {"weights": weights, "means": means, "covariances": covs}
    point = {
        "weights": aligned.weights,
        "means": aligned.means,
        "covariances": aligned.full_covariances(),
    }
    tail = (1 - ci_prob) / 2
    rows = []
    for kind, label, index in _parameter_entries(
        aligned.n_components, n_features, aligned.covariance_type, names
    ):
        values = draws[kind][(slice(None), *index)]
        lower, median, upper = np.quantile(values, [tail, 0.5, 1 - tail])
        value = float(point[kind][index])
        rows.append({
            "kind": kind, "parameter": label, "map": value, "mean": float(values.mean()),
            "median": float(median), "sd": float(values.std(ddof=1)), "lower": float(lower),
            "upper": float(upper), "map_in_interval": bool(lower <= value <= upper),
        })
    table = pd.DataFrame(rows)
    table.attrs.update(ci_prob=ci_prob, interval=INTERVAL_KIND)
    return table


def responsibility_draws(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """Assignment probabilities ``P(z_n = k | x_n, theta_s)`` for every draw.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (n_draws, n_components)
    means : ndarray of shape (n_draws, n_components, n_features)
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)

    Returns
    -------
    ndarray of shape (n_draws, n_samples, n_components)
    """
    return softmax(log_joint_densities(X, weights, means, covariances), axis=-1)


def assignment_summary(
    X: np.ndarray, posterior: xr.Dataset, *, ci_prob: float = 0.89, max_draws: int = 500
) -> pd.DataFrame:
    """Each observation's most probable component and how sure the posterior is of it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    posterior : xarray.Dataset
    ci_prob : float, default=0.89
    max_draws : int, default=500
        Draws used (a seeded random subset).

    Returns
    -------
    DataFrame with one row per observation
        ``component`` (highest posterior-mean probability), ``prob`` (that mean),
        ``lower``, ``upper`` (equal-tailed interval over draws) and ``uncertain``:
        True when the interval reaches below 0.5, i.e. some plausible parameters assign
        the point elsewhere.
    """
    resp = responsibility_draws(X, *posterior_draws(posterior, max_draws))
    mean = resp.mean(axis=0)
    component = mean.argmax(axis=1)
    top = resp[:, np.arange(X.shape[0]), component]
    tail = (1 - ci_prob) / 2
    lower, upper = np.quantile(top, [tail, 1 - tail], axis=0)
    return pd.DataFrame({
        "component": component,
        "prob": mean[np.arange(X.shape[0]), component],
        "lower": lower,
        "upper": upper,
        "uncertain": lower < 0.5,
    })


def marginal_density(
    grid: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """Marginal density of every feature of a mixture, for one or many parameter draws.

    Parameters
    ----------
    grid : ndarray of shape (n_grid, n_features)
    weights : ndarray of shape (..., n_components)
    means : ndarray of shape (..., n_components, n_features)
    covariances : ndarray of shape (..., n_components, n_features, n_features)

    Returns
    -------
    ndarray of shape (..., n_grid, n_features)
    """
    sd = np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))
    dens = norm.pdf(grid[..., :, None, :], means[..., None, :, :], sd[..., None, :, :])
    return np.einsum("...gkj,...k->...gj", dens, weights)


def marginal_density_band(
    grid: np.ndarray, posterior: xr.Dataset, *, ci_prob: float = 0.89, max_draws: int = 500
) -> dict[str, np.ndarray]:
    """Posterior-predictive marginal density of each feature with a credible band.

    Parameters
    ----------
    grid : ndarray of shape (n_grid, n_features)
    posterior : xarray.Dataset
    ci_prob : float, default=0.89
    max_draws : int, default=500

    Returns
    -------
    dict
        ``mean``, ``lower``, ``upper``: ndarrays of shape (n_grid, n_features); the mean is
        the posterior predictive density, the band its equal-tailed interval over draws.
    """
    dens = marginal_density(grid, *posterior_draws(posterior, max_draws))
    tail = (1 - ci_prob) / 2
    lower, upper = np.quantile(dens, [tail, 1 - tail], axis=0)
    return {"mean": dens.mean(axis=0), "lower": lower, "upper": upper}


def data_grid(X: np.ndarray, n_grid: int = 200) -> np.ndarray:
    """Evenly spaced points over each feature's range padded by 10%, shape (n_grid, n_features)."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * (hi - lo)
    return np.linspace(lo - pad, hi + pad, n_grid)


def data_summary(X: np.ndarray, feature_names: list[str]) -> pd.DataFrame:
    """Count, mean, sd, min, quartiles and max of every feature (rows: features)."""
    return pd.DataFrame(X, columns=feature_names).describe().T


def software_versions() -> dict[str, str]:
    """Python and package versions, for the record of how a result was produced."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def markdown_table(frame: pd.DataFrame, *, digits: int = 3) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (floats to ``digits`` significant)."""

    def cell(value) -> str:
        if isinstance(value, float | np.floating):
            return "" if np.isnan(value) else f"{value:.{digits}g}"
        return str(value).replace("|", "\\|")

    header = ["", *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([cell(index), *map(cell, row)]) + " |")
    return "\n".join(lines)


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

    def to_markdown(self) -> str:
        """The report as Markdown; figures referenced as ``figures/<name>.png``."""
        render = {
            "heading": lambda text: f"## {text}",
            "text": lambda text: text,
            "table": lambda payload: markdown_table(payload[0], digits=payload[1]),
            "code": lambda text: f"```\n{text}\n```",
            "figure": lambda payload: f"![{payload[1]}](figures/{payload[0]})\n\n*{payload[1]}*",
        }
        parts = [f"# {self.title}", *(render[kind](payload) for kind, payload in self.blocks)]
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
            "text": lambda text: "<p>" + _BOLD.sub(r"<strong>\1</strong>", html.escape(text))
            + "</p>",
            "table": table,
            "code": lambda text: f"<pre>{html.escape(text)}</pre>",
            "figure": figure,
        }
        body = "\n".join(render[kind](payload) for kind, payload in self.blocks)
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
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


def _describe_draws(bayes) -> str:
    sizes = bayes.idata_.posterior.sizes
    return f"{bayes.method_} ({sizes['chain']} chain(s) x {sizes['draw']} draws)"


def add_posterior_analysis(
    report: Report,
    X: np.ndarray,
    bayes,
    *,
    feature_names: list[str],
    ci_prob: float = 0.89,
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

    Returns
    -------
    DataFrame
        The :func:`map_vs_posterior` table.
    """
    posterior = bayes.idata_.posterior.to_dataset()
    table = map_vs_posterior(posterior, bayes.map_, ci_prob=ci_prob, feature_names=feature_names)
    n_out = int((~table["map_in_interval"]).sum())
    report.heading("MAP versus posterior")
    report.text(
        f"MAP: the MAP-EM estimate (same model and priors). Posterior: {_describe_draws(bayes)}. "
        f"Intervals are {ci_prob:.0%} {INTERVAL_KIND} credible intervals (ArviZ 1's default "
        f"kind). Components of the MAP are relabelled to match the posterior's. "
        f"{n_out} of {len(table)} MAP values lie outside their interval."
    )
    report.table(table.set_index("parameter"), digits=4)
    report.figure(
        "map_vs_posterior", plots.plot_map_vs_posterior(table),
        f"Posterior median and {ci_prob:.0%} interval (blue) versus the MAP (red cross).",
    )
    grid = data_grid(X)
    aligned = align_to_posterior(bayes.map_, posterior)
    map_density = marginal_density(
        grid, aligned.weights, aligned.means, aligned.full_covariances()
    )
    band = marginal_density_band(grid, posterior, ci_prob=ci_prob)
    report.figure(
        "density", plots.plot_density(
            X, grid, map_density, band, feature_names=feature_names, ci_prob=ci_prob
        ),
        "Data with the MAP density (dashed) and the posterior-predictive density "
        f"with its {ci_prob:.0%} band, per feature (marginal densities).",
    )
    assignment = assignment_summary(X, posterior, ci_prob=ci_prob)
    one_d = X.shape[1] == 1
    report.figure(
        "assignment", plots.plot_assignment(
            X[:, 0] if one_d else np.arange(X.shape[0]), assignment,
            xlabel=feature_names[0] if one_d else "observation",
        ),
        f"Probability of each point's most probable component with its {ci_prob:.0%} "
        f"interval; {int(assignment['uncertain'].sum())} uncertain point(s) (interval "
        "reaching below 0.5) drawn large.",
    )
    if X.shape[1] >= 2:
        _, draw_means, draw_covs = posterior_draws(posterior, max_draws=40)
        report.figure(
            "ellipses", plots.plot_ellipses(
                X, aligned.means, aligned.full_covariances(), draw_means, draw_covs,
                feature_names=feature_names,
            ),
            "2-sd ellipses of every component: MAP (red) and 40 posterior draws (blue).",
        )
    report.heading("Sampler diagnostics")
    report.code(str(bayes.diagnose()))
    report.figure("trace", plots.plot_trace(bayes.idata_), "Trace and per-chain densities.")
    report.figure("rank", plots.plot_rank(bayes.idata_), "Rank plots: flat means well mixed.")
    return table


def build_report(
    X: np.ndarray,
    comparison: ModelComparison,
    *,
    feature_names: list[str],
    data_name: str,
    command: str,
    ci_prob: float = 0.89,
) -> Report:
    """The standard report: data, comparison, the chosen model's analysis, provenance.

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

    Returns
    -------
    Report
    """
    report = Report(f"Gaussian mixture analysis: {data_name}")
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
    report.table(comparison.table.drop(columns=["n_components", "covariance_type"]).round(2),
                 digits=8)
    report.text(f"**Recommended: {comparison.recommended}.** {comparison.reason}")
    report.figure(
        "loo_comparison", plots.plot_loo_comparison(comparison.table),
        "LOO elpd difference to the best candidate with its standard error (higher is better).",
    )
    add_posterior_analysis(
        report, X, comparison.best.bayes, feature_names=feature_names, ci_prob=ci_prob
    )
    report.heading("Reproduce")
    report.code(command)
    report.table(pd.DataFrame({"version": software_versions()}))
    return report


__all__ = [
    "INTERVAL_KIND",
    "Report",
    "add_posterior_analysis",
    "align_to_posterior",
    "assignment_summary",
    "build_report",
    "data_grid",
    "data_summary",
    "figure_png",
    "map_vs_posterior",
    "marginal_density",
    "marginal_density_band",
    "markdown_table",
    "posterior_draws",
    "responsibility_draws",
    "software_versions",
]
