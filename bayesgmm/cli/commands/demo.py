"""``bayesgmm demo``: MAP-EM on the bundled Old Faithful data, a figure and (unless
``--no-posterior``) a short MAP-versus-posterior report."""

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
    print(f"Old Faithful, K=2, MAP-EM: converged={model.converged_} in {model.n_iter_} iterations")
    for k in np.argsort(model.means_[:, 0]):
        print(
            f"  component {k}: weight {model.weights_[k]:.3f}, mean "
            f"({model.means_[k, 0]:.3f}, {model.means_[k, 1]:.2f})"
        )
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        fig = demo_figure(X, model.predict(X))
        fig.savefig(tmp / "demo.png", dpi=100)
        if not args.no_posterior:
            from bayesgmm.bayes.estimator import BayesianGaussianMixture
            from bayesgmm.reporting.report import add_posterior_analysis

            progress("sampling the posterior by NUTS (2 chains x 500 draws)")
            bayes = BayesianGaussianMixture(
                2, draws=500, tune=500, chains=2, random_state=args.seed, progressbar=False
            ).fit(X)
            report = Report("bayesgmm demo: Old Faithful, K=2")
            table = add_posterior_analysis(report, X, bayes, feature_names=names)
            report.write(tmp, stem="demo")
            print("\nMAP (EM) versus posterior, 89% equal-tailed intervals:")
            print(table.drop(columns="kind").round(3).to_string(index=False))
    print(f"figure written to {Path(args.out) / 'demo.png'}")
    if not args.no_posterior:
        print(f"MAP-versus-posterior report written to {Path(args.out) / 'demo.html'}")
    return 0


def demo_figure(X: np.ndarray, labels: np.ndarray):
    import numpy as np
    from matplotlib.figure import Figure

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
    ax.legend(frameon=False, fontsize="small", title="MAP-EM cluster")
    ax.set(
        xlabel="eruption duration (min)",
        ylabel="waiting time (min)",
        title="Old Faithful: MAP-EM clusters",
    )
    return fig
