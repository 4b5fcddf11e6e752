"""Shared fixtures: bundled data sets and seeded synthetic mixtures.

Compilation in the test processes. Most of a run with empty caches is numba compiling
PyTensor's graphs (the models without a hand-written kernel, VI, the references), and a third
of that was LLVM optimising at numba's default level 3. Before numba loads, this sets
``NUMBA_OPT`` to :data:`NUMBA_OPT` (unless it is set already or numba is loaded): without
fast-math the arithmetic is the same, only the speed differs. Measured (2026-12-06, load
3-3.5, empty caches, CPU seconds): the ordered-projection structure of Old Faithful K=2
compiled in 84-90 s against 115 s at level 3, with the same log density, gradient and stored
values, bit for bit, at 50 points; a first galaxies fit on the hand-written kernels compiled
in the same time at both levels (35-37 s) and gave the same draws bit for bit. Level 0 would
save more, but numba then refuses to cache PyTensor's functions on disk. Numba's and
PyTensor's disk caches do not record the level, so the tests keep their compiled code in
caches of their own (a ``tests-numba-opt1`` folder in each): code compiled for the tests
never reaches a fit outside them, nor the reverse.
"""

import os
import sys
from pathlib import Path

#: numba's LLVM optimisation level in the test processes (and the subprocesses they start).
NUMBA_OPT = "1"
#: Folder, inside each usual cache folder, of the code compiled at that level.
TEST_CACHE = f"tests-numba-opt{NUMBA_OPT}"


def _use_test_caches() -> None:
    """Set ``NUMBA_OPT`` and point numba's and PyTensor's caches at the tests' own folders."""
    if "numba" in sys.modules or "NUMBA_OPT" in os.environ:
        return  # numba read its settings already, or the caller chose a level
    os.environ["NUMBA_OPT"] = NUMBA_OPT
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    base = str(Path.home() / ".pytensor")
    for entry in flags.split(","):  # PyTensor keeps the last of repeated keys
        key, _, value = entry.strip().partition("=")
        if key == "base_compiledir" and value:
            base = value
    os.environ["PYTENSOR_FLAGS"] = f"{flags},base_compiledir={base}/{TEST_CACHE}".lstrip(",")
    numba_cache = os.environ.get("NUMBA_CACHE_DIR") or f"{base}/{TEST_CACHE}/numba-kernels"
    if "NUMBA_CACHE_DIR" in os.environ:
        numba_cache = f"{numba_cache}/{TEST_CACHE}"
    os.environ["NUMBA_CACHE_DIR"] = numba_cache


_use_test_caches()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bayesgmm import datasets  # noqa: E402


@pytest.fixture(scope="session")
def faithful() -> np.ndarray:
    return datasets.load_faithful()


@pytest.fixture(scope="session")
def galaxies() -> np.ndarray:
    return datasets.load_galaxies()


@pytest.fixture(scope="session")
def three_blobs() -> tuple[np.ndarray, np.ndarray]:
    X, labels, _ = datasets.make_mixture(300, 3, 2, separation=5.0, random_state=7)
    return X, labels


#: Test modules run after the others: they start processes of their own (a notebook kernel
#: each) that load what the in-process tests compiled into the disk caches instead of
#: compiling it again (notebook 05's ADVI and full-rank ADVI on Old Faithful are the VI tests'
#: models).
LAST_MODULES = ("test_notebooks.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the tests of :data:`LAST_MODULES` to the end, in reverse order (the notebooks
    that take longest, 05, 06 and 08, before the short ones, so that the run does not end on
    one worker running a long notebook); the same order in every xdist worker."""
    last = [item for item in items if item.path.name in LAST_MODULES]
    items[:] = [item for item in items if item.path.name not in LAST_MODULES] + last[::-1]
