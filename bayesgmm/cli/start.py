"""The first moments of the ``bayesgmm`` command: a Ctrl-C or SIGTERM before :func:`main
<bayesgmm.cli.main.main>` installs its handlers (while NumPy and the commands load), and after
it returns (while the interpreter shuts down), ends with one line and status 130/143, never a
traceback or death by the signal. Standard library only: it runs before anything else loads.
"""

from __future__ import annotations

import os
import signal
import sys
from itertools import pairwise

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def is_the_command() -> bool:
    """Whether this process is the ``bayesgmm`` command (console script or ``-m bayesgmm.cli``)."""
    argv = getattr(sys, "orig_argv", [])
    as_module = any(pair == ("-m", "bayesgmm.cli") for pair in pairwise(argv))
    return as_module or os.path.basename(sys.argv[0]).startswith("bayesgmm")


def interrupted_at_start(signum, frame) -> None:
    """Signal handler while the command loads: one line, then exit 130 (SIGINT) or 143."""
    terminated = signum == signal.SIGTERM
    print(
        f"bayesgmm: {'terminated' if terminated else 'interrupted'}; nothing written",
        file=sys.stderr,
    )
    raise SystemExit(143 if terminated else 130)


def install() -> None:
    """:func:`interrupted_at_start` for SIGINT and SIGTERM, in the command's process only."""
    if is_the_command():
        for signum in SIGNALS:
            signal.signal(signum, interrupted_at_start)


def ignore_after_interrupt() -> None:
    """Ignore further signals once the command has been interrupted and is exiting.

    The interpreter's shutdown can take a while (thread pools, compiled-code caches); it
    restores the default action of the handlers Python installed, so a second Ctrl-C there
    would kill the process by the signal (exit status -2) after the one-line message.
    """
    if is_the_command():
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
