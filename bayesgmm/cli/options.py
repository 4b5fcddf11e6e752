"""Option values and shared options of the command line: argparse types (``positive_int``,
``seed``, ``probability``, ``k_spec`` ...), the parsers of ``--k``, ``--covariance`` and
``--e0``, the help formatter, the one-line-error parser and the options that several
commands share (``add_*_option``)."""

from __future__ import annotations

import argparse
import math
import sys

from bayesgmm.cli.data import BUNDLED, InputError
from bayesgmm.core.covariance import (
    bayesian_covariance_types,
    covariance_names,
    covariance_types,
)
from bayesgmm.core.methods import SAMPLERS, TUNE

#: Most components any --k may ask for before the data are read (the data cap it further).
MAX_COMPONENTS = 100_000


def _k_ranges(text: str) -> list[tuple[int, int]]:
    """``"1-3,5"`` -> ``[(1, 3), (5, 5)]``, checked but not expanded."""
    ranges = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            ranges.append((int(lo), int(hi or lo)))
    except ValueError:
        raise InputError(f"--k must look like 3, 1-6 or 1-3,5; got {text!r}") from None
    if not ranges or min(lo for lo, _ in ranges) < 1:
        raise InputError(f"--k needs positive numbers of components, got {text!r}")
    for lo, hi in ranges:
        if hi < lo:
            raise InputError(f"--k range {lo}-{hi} goes down: write it low-high, {hi}-{lo}")
    return ranges


def max_k(text: str) -> int:
    """The largest K of a ``--k`` text, without expanding its ranges."""
    return max(hi for _, hi in _k_ranges(text))


def parse_ks(text: str, max_components: int = MAX_COMPONENTS) -> list[int]:
    """``"3"``, ``"1-6"`` or ``"1-3,5"`` -> sorted list of distinct positive ints.

    Raises :class:`InputError` for bad syntax, a decreasing range, or a K above
    ``max_components`` (checked before any range is expanded).
    """
    ranges = _k_ranges(text)
    top = max(hi for _, hi in ranges)
    if top > max_components:
        raise InputError(
            f"--k {text} asks for K={top}, more than the {max_components} components allowed"
        )
    ks: set[int] = set()
    for lo, hi in ranges:
        ks.update(range(lo, hi + 1))
    return sorted(ks)


def parse_covariances(text: str, method: str | None = None) -> list[str]:
    """``"full,diag"`` -> list of covariance types (validated); ``"all"``: every one ``method``
    fits (mclust's fourteen models, which the Bayesian model fits too)."""
    every = covariance_types() if method == "map" else bayesian_covariance_types()
    if text.strip() == "all":
        return list(every)
    types = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in types if t not in covariance_names()]
    if bad or not types:
        raise InputError(
            f"--covariance must be a comma-separated subset of {', '.join(covariance_names())} "
            f"or 'all'; got {text!r}"
        )
    return types


def parse_e0(text: str) -> float | None:
    """``--e0``: a positive number (fixed), or ``gamma`` for the Gamma hyperprior (None)."""
    if text.strip().lower() == "gamma":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise InputError(f"--e0 must be a positive number or 'gamma', got {text!r}")
    return value


def at_least(value: int, option: str, minimum: int = 1) -> int:
    if value < minimum:
        raise InputError(f"{option} must be at least {minimum}, got {value}")
    return value


def sampler_kwargs(args: argparse.Namespace) -> dict:
    """The settings of :class:`BayesianGaussianMixture` that fit, compare and report share."""
    return {
        "draws": args.draws,
        "tune": args.tune,
        "chains": args.chains,
        "target_accept": args.target_accept,
        "combine_chains": args.combine_chains,
    }


def _integer(text: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0)


def seed(text: str) -> int:
    """argparse type: a seed, an integer from 0 to 2**32 - 1."""
    return _integer(text, 0, 2**32 - 1)


def n_init(text: str) -> int | str:
    """argparse type: ``auto`` or a number of EM restarts >= 1 (``GaussianMixture.n_init``)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _integer(text, 1)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected auto or a positive integer, got {text!r}"
        ) from None


def jobs(text: str) -> int:
    """argparse type: a number of parallel jobs, >= 1, or -1 for one per core."""
    value = _integer(text, -1)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1, or -1 for one job per core; got 0")
    return value


def probability(text: str) -> float:
    """argparse type: a probability strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise argparse.ArgumentTypeError(f"must be a probability in (0, 1), got {text}")
    return value


def k_spec(text: str) -> str:
    """argparse type: a ``--k`` text, checked (syntax, order) without expanding ranges."""
    try:
        _k_ranges(text)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with every option's default, except None/False and defaults already stated."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "(default" in text:
            return text
        return super()._get_help_string(action)


def add_data_options(parser: argparse.ArgumentParser, k_help: str) -> None:
    parser.add_argument("data", metavar="DATA", help=f"CSV file or one of {', '.join(BUNDLED)}")
    parser.add_argument("--k", required=True, type=k_spec, help=k_help)
    parser.add_argument("--columns", help="comma-separated columns to use (default: all)")
    parser.add_argument("--out", required=True, help="output folder")
    add_seed_option(parser)
    parser.add_argument(
        "--draws", type=positive_int, default=1000, help="posterior draws per chain"
    )
    parser.add_argument(
        "--max-draws",
        type=positive_int,
        default=None,
        help="go on to 2x, 4x ... draws, at most this many, while R-hat or ESS miss their "
        "thresholds (default: 4 x draws, for runs of at least 1600 draws in all)",
    )
    parser.add_argument(
        "--tune", type=non_negative_int, default=TUNE, help="tuning steps per chain"
    )
    parser.add_argument(
        "--chains",
        type=positive_int,
        default=4,
        help="NUTS chains (run one after another; in parallel threads when a gradient call "
        "is slow)",
    )
    parser.add_argument("--sampler", choices=SAMPLERS, default="nutpie", help="NUTS implementation")
    parser.add_argument(
        "--target-accept",
        type=probability,
        default=0.9,
        help="target acceptance rate of NUTS (raise to 0.95 or 0.99 against divergences)",
    )
    parser.add_argument(
        "--combine-chains",
        choices=("auto", "pool", "stack"),
        default="auto",
        help="how the NUTS chains make one posterior: pool every draw, stack them (Bayesian "
        "stacking of chains in different modes), or auto (stack when they sit in different "
        "modes or drift)",
    )
    parser.add_argument(
        "--ci-prob",
        type=probability,
        default=0.89,
        help="credible interval probability (equal-tailed)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="standardise every column (mean 0, sd 1) before fitting; results are then on "
        "the standardised scale",
    )
    parser.add_argument(
        "--labels",
        metavar="COLUMN",
        help="column of known classes: left out of the features, cross-tabulated against "
        "the clusters with the adjusted Rand index",
    )
    add_model_options(parser)
    add_overwrite_option(parser)
    add_debug_option(parser, argparse.SUPPRESS)


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed",
        type=seed,
        default=None,
        help="random seed (default: None, a fresh seed for each run, written into the "
        "command line recorded with the outputs, so the run can be repeated)",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Settings of the estimators that every fitting command shares, with their defaults."""
    parser.add_argument(
        "--n-init",
        type=n_init,
        default="auto",
        help="EM restarts per fit (best kept): a positive integer, or auto (60 starts and "
        "split-and-merge moves on small data, as GaussianMixture(n_init='auto'))",
    )
    parser.add_argument(
        "--weights",
        metavar="COLUMN",
        help="column of frequency weights (row n counts w_n times, e.g. counts of binned or "
        "deduplicated data), left out of the features",
    )
    parser.add_argument(
        "--noise",
        action="store_true",
        help="add a uniform background component for outliers over the data's bounding box "
        "(mclust's Vinv); its weight is the summary's noise_weight row",
    )
    parser.add_argument(
        "--missing",
        choices=("error", "marginalize"),
        default="error",
        help="empty cells (NaN): error refuses them; marginalize treats them as missing at "
        "random and fits the observed entries of every row",
    )


def add_debug_option(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="on an error, also print the traceback",
    )


def add_bootstrap_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="add N nonparametric bootstrap replicates of the MAP-EM fit to the "
        "MAP-versus-posterior table (standard errors, percentile intervals); 0: none",
    )


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty --out folder that bayesgmm did not write "
        "(a folder written by bayesgmm is always replaced whole)",
    )


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line ``bayesgmm: error: ...``, exit 2."""

    def error(self, message: str):
        """Print the one-line error (pointing at ``--help``) and exit with status 2."""
        print(
            f"bayesgmm: error: {' '.join(message.split())} (see {self.prog} --help)",
            file=sys.stderr,
        )
        raise SystemExit(2)
