"""One compiled function per covariance structure from one template, cached on disk.

A kernel written once for every structure calls the structure's own primitives (its row
log-density, its moments, its M-step) under placeholder names; :func:`specialise` makes,
for each structure, a ``numba.njit`` function with the template's code whose global
names are bound to that structure's primitives. Each gets its own name, so Numba's disk
cache keeps one entry per structure and finds it again in the next process.

The alternatives Numba offers do not cache (measured with numba 0.68): a jitted function
passed as an argument is typed by the dispatcher object itself, so the cache index never
matches in a new process (every process compiles again, and adds files to the cache); a
closure over jitted functions misses the same way.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import numba


def specialise(
    template: Callable, name: str, namespace: dict, jit: dict, **bindings: Callable
) -> numba.core.registry.CPUDispatcher:
    """Compile ``template`` with the global names ``bindings`` bound to other functions.

    Parameters
    ----------
    template : function
        A plain Python function (not jitted), defined in the module whose ``namespace``
        is passed: its source file is the one Numba's cache stamps. Its placeholders are
        module globals set to ``None``; every one it uses must be bound.
    name : str
        Name of the new function (unique in the module: the cache file is named after it).
    namespace : dict
        The defining module's ``globals()``, as it is when this is called (the names the
        template uses must be defined by then).
    jit : dict
        Options of ``numba.njit`` (``cache``, ``nogil``, ``parallel``, ...).
    **bindings : function
        Global name in the template -> the function (jitted, or ``range`` for ``prange``)
        it stands for in this specialisation.

    Returns
    -------
    numba dispatcher
    """
    names = set(template.__code__.co_names)
    unknown = set(bindings) - names
    if unknown:
        raise ValueError(f"{template.__name__} uses no global named {sorted(unknown)}")
    unbound = {n for n in names if n in namespace and namespace[n] is None} - set(bindings)
    if unbound:
        raise ValueError(f"{name}: bind the placeholders {sorted(unbound)} of {template.__name__}")
    scope = {**namespace, **bindings}
    function = types.FunctionType(template.__code__, scope, name, template.__defaults__)
    function.__qualname__ = name
    function.__doc__ = template.__doc__
    return numba.njit(**jit)(function)


__all__ = ["specialise"]
