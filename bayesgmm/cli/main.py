"""The entry point: parse the command line, run the command, and turn every outcome into one
line and an exit status (signals, bad input, bugs)."""

from __future__ import annotations

import secrets
import shlex
import signal
import sys
import traceback
import warnings

from bayesgmm.cli.data import InputError
from bayesgmm.cli.output import Progress, one_line
from bayesgmm.cli.parser import build_parser
from bayesgmm.cli.start import ignore_after_interrupt
from bayesgmm.core.io import cancel_output, check_output_folder, reset_output


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that it unwinds (and cleans up) like Ctrl-C."""


#: Signals received during this command. A library may catch the interrupt and raise its
#: own ``KeyboardInterrupt`` (a sampler cut short), or swallow it inside a C callback: the
#: record still decides the exit status, and :func:`cancel_output` keeps the output unchanged.
_SIGNALS: list[int] = []


#: Set once :func:`main` reports its outcome: a signal then is recorded, not raised, so that
#: a second Ctrl-C cannot break into the message or escape :func:`main` (exit status -2).
_EXITING: list[bool] = []


def _on_signal(signum, frame) -> None:
    """Raise an interrupt (every signal: a first one that a library swallowed must not leave
    the run unstoppable), except once :func:`main` is reporting its outcome."""
    _SIGNALS.append(signum)
    cancel_output()
    if not _EXITING:
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"bayesgmm: warning: {one_line(message)}", file=sys.stderr, flush=True)


def _fail(err: BaseException, debug: bool, prefix: str = "error") -> None:
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    print(f"bayesgmm: {prefix}: {one_line(err)}", file=sys.stderr)


def _interrupted(err: BaseException) -> int:
    """One line and the exit status of an interrupt: 143 after SIGTERM, else 130."""
    terminated = isinstance(err, Terminated) or signal.SIGTERM in _SIGNALS
    name = "terminated" if terminated else "interrupted"
    print(f"bayesgmm: {name}; nothing written", file=sys.stderr)
    return 143 if terminated else 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesgmm`` command; returns the exit status.

    0 on success; 2 with one line ``bayesgmm: error: ...`` for bad options, bad input,
    data the models cannot fit (the library's ``ValueError``/``TypeError``, e.g.
    :class:`~bayesgmm.core.exceptions.SingularCovarianceError`) or an output folder that cannot
    be written (:class:`~bayesgmm.core.io.OutputFolderError`); 130 after Ctrl-C (SIGINT) and
    143 after SIGTERM, with one line and nothing written; 1 with one line for an
    unexpected error (a bug). ``--debug`` prints the traceback before the line.
    3 (:data:`~bayesgmm.cli.output.EXIT_DIAGNOSTICS`) from ``fit --strict`` when the sampler
    checks fail (everything is written all the same).
    """
    try:
        return _run(argv)
    except KeyboardInterrupt as err:
        # a second signal in the few steps between catching the first interrupt and
        # recording that main is exiting raises again inside the handler; uncaught, the
        # interpreter would end by the signal (exit status -2, seen once under load).
        # The handlers are ignoring signals by now (_run's finally), so this is the last.
        _EXITING.append(True)
        return _interrupted(err)


def _run(argv: list[str] | None) -> int:
    """:func:`main` itself (:func:`main` adds the net for an interrupt that escapes it)."""
    _SIGNALS.clear()
    _EXITING.clear()
    reset_output()
    try:
        previous = {
            signum: signal.signal(signum, _on_signal) for signum in (signal.SIGTERM, signal.SIGINT)
        }
    except ValueError:  # not the main thread: leave signal handling to the caller
        previous = {}
    debug = False
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            argv = sys.argv[1:] if argv is None else list(argv)
            args = build_parser().parse_args(argv)
            debug = args.debug
            if "seed" in args and args.seed is None:  # fresh entropy, made repeatable
                args.seed = secrets.randbits(32)
                argv = [*argv, "--seed", str(args.seed)]
            args.command = shlex.join(["bayesgmm", *argv])
            progress = Progress(args.quiet)
            inputs = [getattr(args, name) for name in ("data", "model") if name in args]
            if "out" in args:  # every command that writes (warmup writes nothing)
                check_output_folder(args.out, overwrite=args.overwrite, inputs=inputs)
            return args.func(args, progress)
    except (InputError, OSError, ValueError, TypeError) as err:
        _EXITING.append(True)
        if _SIGNALS:  # raised while unwinding from a signal: report the interrupt
            return _interrupted(err)
        _fail(err, debug)
        return 2
    except SystemExit as exit_:  # argparse: --help (0) or a usage error, already reported
        _EXITING.append(True)
        return exit_.code if isinstance(exit_.code, int) else 2
    except KeyboardInterrupt as err:
        _EXITING.append(True)
        return _interrupted(err)
    except Exception as err:  # a bug: still one line, the traceback behind --debug
        _EXITING.append(True)
        if _SIGNALS:  # e.g. compiled code that fails when a signal handler raises inside it
            return _interrupted(err)
        _fail(err, debug, "internal error (run with --debug for the traceback)")
        return 1
    finally:
        _EXITING.append(True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if _SIGNALS:  # exiting: a second Ctrl-C must not kill the shutting-down interpreter
            ignore_after_interrupt()
