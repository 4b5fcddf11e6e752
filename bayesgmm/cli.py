"""Command line: ``bayesgmm demo`` (more commands arrive with the reports)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesgmm import GaussianMixture, datasets

    frame = datasets.load_faithful(as_frame=True)
    X = frame.to_numpy()
    model = GaussianMixture(2, prior="default", random_state=args.seed).fit(frame)
    print(f"Old Faithful, K=2, MAP-EM: converged={model.converged_} in {model.n_iter_} iterations")
    for k in np.argsort(model.means_[:, 0]):
        print(
            f"  component {k}: weight {model.weights_[k]:.3f}, mean "
            f"({model.means_[k, 0]:.3f}, {model.means_[k, 1]:.2f})"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(X[:, 0], X[:, 1], c=model.predict(frame), s=12, cmap="coolwarm")
    ax.set(xlabel="eruption duration (min)", ylabel="waiting time (min)",
           title="Old Faithful: MAP-EM clusters")
    path = out / "demo.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"figure written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesgmm`` argument parser."""
    parser = argparse.ArgumentParser(prog="bayesgmm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit the bundled Old Faithful data and write a figure")
    demo.add_argument("--out", default="bayesgmm-demo", help="output folder")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesgmm`` command."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
