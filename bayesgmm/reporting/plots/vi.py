"""Figure of a variational fit's ELBO trace (rendering only; the fit: :mod:`bayesgmm.bayes.vi`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from bayesgmm.bayes.vi import VIResult


def plot_elbo(result: VIResult, *, ax: Axes | None = None, log_scale: bool = False) -> Figure:
    """ELBO per iteration, its running mean over the stopping window and the stop.

    Parameters
    ----------
    result : VIResult
        From :func:`bayesgmm.bayes.vi.fit_vi`.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure otherwise.
    log_scale : bool
        Plot ``-ELBO`` on a log scale (useful when the start is far from the optimum).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if ax is None:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    elbo = result.elbo
    y = -elbo if log_scale else elbo
    iters = np.arange(1, len(y) + 1)
    ax.plot(iters, y, color="0.75", lw=0.5, label="ELBO (one draw)")
    w = min(result.window, len(y))
    if w > 1:
        running = np.convolve(y, np.ones(w) / w, mode="valid")
        ax.plot(iters[w - 1 :], running, color="C0", lw=1.5, label=f"mean over {w} iterations")
    if result.converged:
        ax.axvline(result.n_iter, color="C3", ls="--", lw=1, label=f"converged at {result.n_iter}")
    else:
        label = f"not converged ({result.n_iter})"
        ax.axvline(result.n_iter, color="C1", ls=":", lw=1, label=label)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("-ELBO" if log_scale else "ELBO")
    ax.set_title(f"{result.method}: ELBO trace")
    ax.legend(loc="lower right" if not log_scale else "upper right", fontsize="small")
    return fig


__all__ = ["plot_elbo"]
