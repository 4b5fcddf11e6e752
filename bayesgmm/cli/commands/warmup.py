"""``bayesgmm warmup``: compile the package's kernels once, so that no later fit waits."""

from __future__ import annotations

import argparse

from bayesgmm.cli.output import Progress


def run(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.cli.options import parse_covariances
    from bayesgmm.selection.warmup import warmup

    seconds = warmup(
        parse_covariances(args.covariance),
        posterior=not args.no_posterior,
        clusters=not args.no_posterior,
        progress=progress,
    )
    width = max(map(len, seconds))
    for name, value in seconds.items():
        print(f"{name:<{width}}  {value:6.1f} s")
    print(
        f"{'total':<{width}}  {sum(seconds.values()):6.1f} s (short when the disk caches "
        "already held everything)"
    )
    return 0
