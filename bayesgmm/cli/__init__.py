"""Command line: ``bayesgmm fit | compare | report | clusters | predict | demo``.

``DATA`` is a CSV file (one row per observation, a header row; pick columns with
``--columns``) or the name of a bundled data set (``faithful``, ``galaxies``,
``enzyme``, ``acidity``, ``low_dim_gauss_mix``); an existing file wins over a name.

Every command writes its outputs into a temporary sibling of ``--out`` and moves them
into place only when everything succeeded (:func:`bayesgmm.core.io.atomic_directory`), so
a failed or interrupted run leaves no half-written file. Every option is validated
before any work starts. Bad input (missing file, non-numeric or degenerate columns, too
few rows for K, bad option values, unwritable output folder) and data the models cannot
fit end with one line ``bayesgmm: error: ...`` on stderr and exit status 2; anything
else is a bug, reported in one line with exit status 1. ``--debug`` adds the traceback.
Warnings are one line ``bayesgmm: warning: ...``; progress goes to stderr.
``fit`` writes the model as :meth:`BayesianGaussianMixture.save` does (``model.json`` and
``posterior.zarr``, :mod:`bayesgmm.core.persistence`; the ``--scale`` standardisation and the
columns go into its metadata) beside human-readable extras (``params.json``, ``summary.csv``,
``summary.md``, ...); ``predict`` reads it with :func:`bayesgmm.load` and asks the
estimator for the assignment probabilities.
``fit`` prints its verdict first (did the sampler checks pass, and if not, what to
change), then the diagnostics and the summary; with ``--strict`` failed checks give
exit status 3.

Options that the library also has carry its names and defaults (``--n-init auto``,
``--missing``, ``--noise``, ``--weights``, ``--target-accept``, ``--combine-chains``,
``--ci-prob``; ``tests/test_cli_api_parity.py`` compares them by introspection).
``--seed`` left out draws a fresh seed, as ``random_state=None`` does, and adds it to the
command line recorded with the outputs, so every run can be repeated.

Only the standard library is imported at module level: NumPy, pandas, scikit-learn and PyMC
load inside the command that needs them, so ``bayesgmm --help`` answers at once.

Modules: :mod:`~bayesgmm.cli.data` (reading and checking the data),
:mod:`~bayesgmm.cli.options` (option types and shared options), :mod:`~bayesgmm.cli.parser`
(the argument parser), :mod:`~bayesgmm.cli.output` (progress, verdict, JSON and figures),
:mod:`~bayesgmm.cli.commands` (one module per subcommand) and :mod:`~bayesgmm.cli.main`
(signals, errors, exit statuses). This package re-exports what the entry point
(``bayesgmm.cli:main``) and the tests use.
"""

import bayesgmm.cli.start as _start

_start.install()  # before the imports below (NumPy ...): no traceback from an early Ctrl-C

from bayesgmm.cli.commands.demo import demo_figure as _demo_figure  # noqa: E402
from bayesgmm.cli.data import SCALED_NOTE, Dataset, InputError, load_dataset, read_frame  # noqa: E402
from bayesgmm.cli.main import main  # noqa: E402
from bayesgmm.cli.options import parse_covariances, parse_e0, parse_ks  # noqa: E402
from bayesgmm.cli.output import EXIT_DIAGNOSTICS  # noqa: E402
from bayesgmm.cli.parser import build_parser  # noqa: E402

__all__ = [
    "EXIT_DIAGNOSTICS",
    "SCALED_NOTE",
    "Dataset",
    "InputError",
    "_demo_figure",
    "build_parser",
    "load_dataset",
    "main",
    "parse_covariances",
    "parse_e0",
    "parse_ks",
    "read_frame",
]
