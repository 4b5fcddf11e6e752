"""Atomic output: a failed or interrupted run leaves no half-written file behind.

Files are written to a temporary name in the destination's folder and renamed into
place with :func:`os.replace` (atomic on POSIX and Windows within one file system).
:func:`atomic_directory` does the same for a whole output folder: everything is written
into a temporary sibling folder, which becomes the output folder only on success.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def atomic_directory(out: Path | str) -> Iterator[Path]:
    """Yield a temporary folder whose contents become ``out`` when the block succeeds.

    The temporary folder is a hidden sibling of ``out``. On success, a new ``out`` is the
    renamed temporary folder; an existing ``out`` receives each entry by
    :func:`os.replace` (an entry of the same name is replaced whole). On any exception,
    including KeyboardInterrupt, the temporary folder is removed and ``out`` is left as
    it was.

    Raises
    ------
    OSError
        If the parent of ``out`` cannot be created or written.
    """
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if not out.exists():
            os.replace(tmp, out)
            return
        for entry in tmp.iterdir():
            target = out / entry.name
            if target.is_dir() and not entry.is_dir():
                shutil.rmtree(target)
            elif entry.is_dir() and target.exists():
                _replace_tree(entry, target)
                continue
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_tree(source: Path, target: Path) -> None:
    """Swap folder ``target`` for ``source`` (old one renamed aside, then removed)."""
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
    os.replace(target, aside / target.name)
    os.replace(source, target)
    shutil.rmtree(aside, ignore_errors=True)


__all__ = ["atomic_directory", "write_bytes_atomic", "write_text_atomic"]
