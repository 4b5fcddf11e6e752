"""``bayesgmm demo``: MAP-EM on the bundled Old Faithful data, a figure and (unless
``--no-posterior``) a short MAP-versus-posterior report.

The demo is the last step of the README's set-up command, so it also compiles (into the disk
caches) what the default first runs need beyond its own fits: the sparse mixture's sampler,
which every default ``bayesgmm compare`` (its ``P(K+)`` column) and ``bayesgmm clusters``
run (measured in ``reports/benchmarks.md``, "Cold start": the only compilation left in a
first ``compare`` on penguins after the demo), and the conjugate Gibbs sampler, which
``method="auto"`` (``--method auto``) runs for full covariances (measured from empty
caches, load 3: the demo 85.5 -> 95.6 s, a first ``method="auto"`` fit after it 21.7 ->
6.0 s, compiling nothing). Its own NUTS fit compiles the full structure's kernel, which
every other full fit, any K or d, then loads.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bayesgmm.cli.output import Progress
from bayesgmm.core.io import atomic_directory

if TYPE_CHECKING:
    import numpy as np


def run(args: argparse.Namespace, progress: Progress) -> int:
    import numpy as np

    from bayesgmm import GaussianMixture, datasets
    from bayesgmm.reporting.report import Report

    frame = datasets.load_faithful(as_frame=True)
    X = frame.to_numpy()
    names = [str(c) for c in frame.columns]
    model = GaussianMixture(2, prior="default", random_state=args.seed).fit(X)
    bayes = None
    if not args.no_posterior:
        from bayesgmm.bayes.estimator import BayesianGaussianMixture

        progress("sampling the posterior by NUTS (2 chains x 500 draws)")
        bayes = BayesianGaussianMixture(
            2, draws=500, tune=500, chains=2, random_state=args.seed, progressbar=False
        ).fit(X)
    # one labelling everywhere: the posterior's (else EM's components by their first mean)
    order = np.argsort(model.means_[:, 0]) if bayes is None else _posterior_order(model, bayes)
    relabel = np.argsort(order)  # EM component order[j] is component j here
    print(f"Old Faithful, K=2, MAP-EM: converged={model.converged_} in {model.n_iter_} iterations")
    for j, k in enumerate(order):
        print(
            f"  component {j}: weight {model.weights_[k]:.3f}, mean "
            f"({model.means_[k, 0]:.3f}, {model.means_[k, 1]:.2f})"
        )
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        labels = relabel[model.predict(X)]
        if bayes is None:
            fig = demo_figure(X, labels)
        else:
            uncertain = bayes.assignment_summary(X)["prob_lower"].to_numpy() < 0.5
            fig = demo_figure(X, labels, uncertain=uncertain, posterior=bayes)
        fig.savefig(tmp / "demo.png", dpi=100)
        if bayes is not None:
            from bayesgmm.reporting.report import add_posterior_analysis

            report = Report("bayesgmm demo: Old Faithful, K=2")
            table = add_posterior_analysis(report, X, bayes, feature_names=names)
            report.write(tmp, stem="demo")
            print("\nMAP (EM) versus posterior, 89% equal-tailed intervals:")
            print(table.drop(columns="kind").round(3).to_string(index=False))
    print(f"figure written to {Path(args.out) / 'demo.png'}")
    if bayes is not None:
        print(f"MAP-versus-posterior report written to {Path(args.out) / 'demo.html'}")
        _compile_for_first_runs(progress)
    return 0


def _compile_for_first_runs(progress: Progress) -> None:
    """Compile the sparse mixture's sampler (``compare``, ``clusters``) and the conjugate
    Gibbs sampler (``method="auto"``) into the disk cache: a second or two when they are
    already there (module docstring)."""
    from bayesgmm.selection.warmup import warmup

    progress(
        "compiling the samplers that compare, clusters and --method auto use "
        "(once per machine, then cached)"
    )
    warmup((), posterior=False, clusters=True, gibbs=True)


def _posterior_order(model, bayes) -> np.ndarray:
    """EM's component of each posterior component (by nearest mean, in the data's sds)."""
    from scipy.optimize import linear_sum_assignment

    posterior = bayes.idata_.posterior["means"].mean(("chain", "draw")).to_numpy()
    sd = model.means_.std(axis=0) + 1e-300
    cost = (((posterior[:, None, :] - model.means_[None]) / sd) ** 2).sum(axis=-1)
    return linear_sum_assignment(cost)[1]


#: Posterior draws whose 2-sd ellipses demo.png draws.
ELLIPSE_DRAWS = 40


def demo_figure(X: np.ndarray, labels: np.ndarray, *, uncertain=None, posterior=None):
    """The demo's scatter plot: MAP-EM clusters and, with a posterior, what it adds.

    Parameters
    ----------
    X : ndarray of shape (n_samples, 2)
    labels : ndarray of shape (n_samples,)
        MAP-EM cluster of each point, in the posterior's labelling.
    uncertain : ndarray of shape (n_samples,) of bool, optional
        Points whose assignment interval reaches below 0.5: ringed in black.
    posterior : BayesianGaussianMixture, optional
        Its posterior draws' 2-sd ellipses (:data:`ELLIPSE_DRAWS` of them) are drawn faintly.
    """
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse

    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    for k in np.unique(labels):
        members = labels == k
        ax.scatter(
            X[members, 0],
            X[members, 1],
            s=12,
            color=f"C{int(k) % 10}",
            label=f"component {int(k)} ({int(members.sum())} points)",
        )
    title = "Old Faithful: MAP-EM clusters"
    if posterior is not None:
        draws = posterior.idata_.posterior.to_dataset().stack(sample=("chain", "draw"))
        chosen = np.linspace(0, draws.sizes["sample"] - 1, ELLIPSE_DRAWS).astype(int)
        means = draws["means"].transpose("sample", "component", "feature").to_numpy()[chosen]
        covs = draws["covariances"].transpose("sample", "component", ...).to_numpy()[chosen]
        for mean, cov in zip(means.reshape(-1, 2), covs.reshape(-1, 2, 2), strict=True):
            values, vectors = np.linalg.eigh(cov)
            angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
            width, height = 4.0 * np.sqrt(values[::-1])  # 2 sd either side
            ax.add_patch(
                Ellipse(mean, width, height, angle=angle, fill=False, lw=0.5, alpha=0.2, color="k")
            )
        title = "Old Faithful: MAP-EM clusters, posterior draws' 2-sd ellipses"
    if uncertain is not None and np.any(uncertain):
        n_uncertain = int(np.sum(uncertain))
        ax.scatter(
            X[uncertain, 0],
            X[uncertain, 1],
            s=60,
            facecolors="none",
            edgecolors="k",
            label=f"uncertain assignment ({n_uncertain} point{'s' if n_uncertain > 1 else ''})",
        )
    ax.legend(frameon=False, fontsize="small", title="MAP-EM cluster")
    ax.set(xlabel="eruption duration (min)", ylabel="waiting time (min)", title=title)
    return fig
