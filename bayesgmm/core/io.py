"""Atomic output: nothing half-written, nothing of the user's destroyed.

Files are written to a temporary name in the destination's folder and renamed into
place with :func:`os.replace` (atomic on POSIX and Windows within one file system).
:func:`atomic_directory` does the same for a whole output folder: everything is written
into a temporary sibling folder, which replaces the output folder in one step only when
the run succeeded (an atomic exchange of the two folders where the kernel offers one,
Linux's ``renameat2(RENAME_EXCHANGE)``; otherwise two renames a few microseconds
apart). So a failed or interrupted run leaves the previous output exactly as it was, and
a successful one leaves nothing of the previous run behind.

An output folder given as a symbolic link is followed: the folder it points to is
replaced and the link survives. A previous output that cannot be moved aside is an
:class:`OutputFolderError` that leaves it as it was and no temporary entry behind.

An output folder written by bayesgmm carries a marker file (:data:`MARKER`). An
existing, non-empty folder without it is the user's own and is never replaced unless
``overwrite=True`` (the command line's ``--overwrite``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Marker file in every output folder written by bayesgmm.
MARKER = ".bayesgmm-output"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class OutputFolderError(OSError):
    """The output folder cannot or may not be written (reported in one line)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (usual permissions, not mkstemp's 0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; return ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def check_output_folder(
    out: Path | str, *, overwrite: bool = False, inputs: Iterable[Path | str] = ()
) -> Path:
    """Check, before any work, that ``out`` may be (re)written; return its absolute path.

    Parameters
    ----------
    out : path
        The output folder.
    overwrite : bool
        Allow replacing a non-empty folder that bayesgmm did not write.
    inputs : iterable of paths
        Files and folders the run reads (data, a saved model): replacing ``out`` whole
        must not delete any of them, so none may be ``out`` or lie inside it.

    Raises
    ------
    OutputFolderError
        ``out`` is or holds one of ``inputs``; ``out`` exists and is not a folder; it is a
        non-empty folder that bayesgmm did not write and ``overwrite`` is False; or its
        parent folder is not writable.
    """
    resolved = Path(out).resolve()
    for source in inputs:
        source = Path(source)
        if not source.exists():
            continue
        source = source.resolve()
        if source == resolved or resolved in source.parents:
            raise OutputFolderError(
                f"--out {str(out)!r} would replace {str(source)!r}, an input of this run "
                "(the output folder is replaced whole): choose another output folder"
            )
    given = str(out)
    # A symbolic link is followed: its target is replaced, and the link survives.
    out = Path(os.path.realpath(Path(out).absolute()))
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {given!r} exists and is not a folder")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise OutputFolderError(
            f"--out {given!r} cannot be replaced: the folder is not writable by this user"
        )
    if out.is_dir() and not overwrite and not (out / MARKER).exists() and any(out.iterdir()):
        raise OutputFolderError(
            f"--out {given!r} is a non-empty folder that bayesgmm did not write; choose a "
            "new folder or pass --overwrite to replace it whole"
        )
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputFolderError(f"cannot write into {str(parent or out.parent)!r}")
    return out


def _exchange(first: Path, second: Path) -> bool:
    """Swap two folders atomically (Linux ``renameat2``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    return result == 0


def _replace_folder(new: Path, out: Path) -> None:
    """Make folder ``new`` become ``out``; the previous ``out`` is removed afterwards."""
    if not out.exists():
        os.replace(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the previous output
        return
    aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
    try:
        os.replace(out, aside / out.name)
    except OSError as err:
        os.rmdir(aside)
        raise OutputFolderError(
            f"cannot replace the output folder {str(out)!r} ({err.strerror or err}); "
            "nothing written"
        ) from None
    try:
        os.replace(new, out)
    except BaseException:
        os.replace(aside / out.name, out)  # put the previous output back
        os.rmdir(aside)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _remove_uninterrupted(folder: Path) -> None:
    """Remove ``folder``, finishing even if a Ctrl-C arrives meanwhile: the interrupt is
    dropped (an earlier one is already unwinding, or the output is already committed, and
    the signal handler has recorded it), and no temporary folder is left behind."""
    while True:
        try:
            shutil.rmtree(folder, ignore_errors=True)
            return
        except KeyboardInterrupt:
            continue


#: Set by :func:`cancel_output` (a signal handler): no output folder is committed after it,
#: even when the interrupt it raised was swallowed (e.g. inside a C callback).
_CANCELLED = threading.Event()


def cancel_output() -> None:
    """Refuse to commit any :func:`atomic_directory` from now on (until :func:`reset_output`)."""
    _CANCELLED.set()


def reset_output() -> None:
    """Allow :func:`atomic_directory` to commit again (at the start of a command)."""
    _CANCELLED.clear()


@contextlib.contextmanager
def atomic_directory(out: Path | str, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder whose contents replace ``out`` when the block succeeds.

    The temporary folder is a hidden sibling of ``out``. On success it receives the
    :data:`MARKER` file and replaces ``out`` whole (see the module docstring). On any
    exception, including KeyboardInterrupt, the temporary folder is removed and ``out``
    is left exactly as it was.

    Parameters
    ----------
    out : path
        The output folder.
    overwrite : bool
        Allow replacing a non-empty folder that bayesgmm did not write.

    Raises
    ------
    OutputFolderError
        See :func:`check_output_folder` (checked before the block runs).
    """
    out = check_output_folder(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if _CANCELLED.is_set():
            raise KeyboardInterrupt("interrupted before the output was committed")
        (tmp / MARKER).write_text("written by bayesgmm; replaced whole by the next run\n")
        _replace_folder(tmp, out)
    finally:
        _remove_uninterrupted(tmp)


__all__ = [
    "MARKER",
    "OutputFolderError",
    "atomic_directory",
    "cancel_output",
    "check_output_folder",
    "reset_output",
    "write_bytes_atomic",
    "write_text_atomic",
]
