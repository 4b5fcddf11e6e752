"""Wall time of ``compare`` over K=1..6 on galaxies (4 chains x 1000 draws), twice in one process.

The first call is "cold in the process" (nothing compiled yet in this process; PyTensor's
disk cache as the environment leaves it: point ``PYTENSOR_FLAGS=base_compiledir=<new
folder>`` at an empty folder for a cold disk cache too); the second call, same data and
seed, is "warm". Prints one line per call and the time spent compiling PyTensor
functions (``FunctionMaker``) in it.

Usage: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_compare.py [--draws N] [--kmax K]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import pytensor.compile.maker as maker

from bayesgmm import datasets
from bayesgmm.selection.compare import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--kmax", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    spent = [0.0]
    original = maker.FunctionMaker.__init__

    def timed(self, *a, **k):
        start = time.perf_counter()
        try:
            original(self, *a, **k)
        finally:
            spent[0] += time.perf_counter() - start

    maker.FunctionMaker.__init__ = timed
    X = datasets.load_galaxies()
    for repeat in range(args.repeats):
        spent[0] = 0.0
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = compare(
                X, range(1, args.kmax + 1), draws=args.draws, tune=args.draws, chains=args.chains
            )
        wall = time.perf_counter() - start
        label = "cold" if repeat == 0 else "warm"
        print(
            f"compare K=1..{args.kmax} {args.chains}x{args.draws} {label}: {wall:.1f} s "
            f"(PyTensor compilation {spent[0]:.1f} s); recommended {result.recommended}",
            flush=True,
        )


if __name__ == "__main__":
    main()
