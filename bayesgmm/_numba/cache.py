"""Numba's disk cache, kept in step with the modules a cached kernel calls into.

Numba keys a cached function on its own source file (the cache index's "source stamp", a
hash of that file's path, modification time and size) and on its own bytecode. A cached
function that calls or inlines functions of *another* module therefore keeps its machine
code after that module changes: after an edit of ``likelihood.py`` alone, the cached
kernels of ``posterior_kernel.py`` would still run the old row helpers, in every later
process, until ``posterior_kernel.py`` itself changed. :func:`depend_on` adds a digest of
those modules' sources to the stamp of each cached function of the calling module, so that
an edit of any of them makes numba recompile (and save again) the functions that depend on
it.

Installing a release rewrites every file, so this matters to a working copy being edited
(and to its test runs), where a stale kernel would otherwise be tested in place of the
code on disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType

from numba.core.registry import CPUDispatcher

#: Where :func:`depend_on` records a module's dependencies (in the module's namespace).
_DEPENDS = "__numba_depends_on__"


def source_digest(*modules: ModuleType) -> str:
    """SHA-256 (hex) of the source files of ``modules`` and of the modules they depend on.

    The dependencies are those registered by :func:`depend_on`, followed transitively (a
    kernel that inlines a helper of ``likelihood.py`` inlines what that helper inlines from
    ``gaussian.py``). Each file counts once, in the order of the modules' names.
    """
    closure: dict[str, ModuleType] = {}
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module.__name__ not in closure:
            closure[module.__name__] = module
            pending.extend(vars(module).get(_DEPENDS, ()))
    digest = hashlib.sha256()
    for name in sorted(closure):
        digest.update(Path(closure[name].__file__).read_bytes())
    return digest.hexdigest()


def depend_on(namespace: dict, *modules: ModuleType) -> int:
    """Make the cached numba functions defined in ``namespace`` depend on ``modules``.

    Parameters
    ----------
    namespace : dict
        The calling module's ``globals()``: its numba functions with ``cache=True``
        (those defined in it, not imported) get ``modules``' digest in their source stamp.
    *modules : module
        The modules whose numba functions they call or inline (recorded in ``namespace``,
        so that the digest of a module that depends on this one covers them too).

    Returns
    -------
    int
        How many functions now carry the digest (0 where numba's cache layout is not the
        one this relies on: then numba's own invalidation is all there is).
    """
    recorded = namespace.setdefault(_DEPENDS, [])
    recorded.extend(m for m in modules if m not in recorded)
    digest = source_digest(*modules)
    marked = 0
    for value in namespace.values():
        if not isinstance(value, CPUDispatcher):
            continue
        if value.py_func.__module__ != namespace["__name__"]:
            continue
        index = getattr(getattr(value, "_cache", None), "_cache_file", None)
        stamp = getattr(index, "_source_stamp", None)
        if stamp is None:
            continue  # not cached (numba's NullCache)
        base = stamp[0] if isinstance(stamp, tuple) and stamp[-1:] == ("bayesgmm",) else stamp
        index._source_stamp = (base, digest, "bayesgmm")
        marked += 1
    return marked
