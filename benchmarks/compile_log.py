"""A pytest plugin that times every top-level numba compilation and names the test it ran in.

Where a run with empty caches spends its time: most of it is numba compiling (PyTensor's
graphs, the package's kernels), and which test pays for a compilation depends on what ran
before it in the same process. Use::

    PYTHONPATH=benchmarks PYTENSOR_FLAGS=base_compiledir=$(mktemp -d) \\
        NUMBA_CACHE_DIR=$(mktemp -d) .venv/bin/python -m pytest -n 2 -p compile_log \\
        --junitxml=junit.xml

Each process writes ``compile_log_<worker>.json`` into ``$COMPILE_LOG_DIR`` (default: the
current directory): a list of ``[test id, compiled function, seconds, key]``, one entry per
top-level compilation (compilations nested in it are included in its seconds; a load from
the disk cache is an entry of a fraction of a second). ``key`` is the PyTensor cache key of
a graph compiled by the package's linker (``None`` otherwise): the same key in two tests is
one graph, compiled by the first and loaded by the other. PyTensor's
graphs appear as ``bayesgmm.bayes.graph.nogil_fgraph`` (the package's mode) or
``pytensor...numba_funcified_fgraph`` (PyTensor's default mode). numba is patched at the first
test's set-up, after ``tests/conftest.py`` has chosen numba's settings.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

_state: dict = {"test": None, "depth": 0, "log": [], "patched": False, "keys": {}}


def _patch() -> None:
    """Wrap numba's ``_compile_for_args`` to time the outermost compilation."""
    if _state["patched"]:
        return
    _state["patched"] = True
    from numba.core import dispatcher

    from bayesgmm.bayes.graph import NogilNumbaLinker

    jit_compile = NogilNumbaLinker.jit_compile

    def keyed(self, fn_and_cache):
        compiled = jit_compile(self, fn_and_cache)
        _state["keys"][id(compiled)] = fn_and_cache[1]
        return compiled

    NogilNumbaLinker.jit_compile = keyed
    original = dispatcher._DispatcherBase._compile_for_args

    def timed(self, *args, **kwargs):
        _state["depth"] += 1
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                func = getattr(self, "py_func", None)
                name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"
                seconds = time.perf_counter() - start
                key = _state["keys"].get(id(self))
                _state["log"].append([_state["test"], name, seconds, key])

    dispatcher._DispatcherBase._compile_for_args = timed


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _patch()
    _state["test"] = item.nodeid


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    folder = Path(os.environ.get("COMPILE_LOG_DIR", "."))
    (folder / f"compile_log_{worker}.json").write_text(json.dumps(_state["log"]))
