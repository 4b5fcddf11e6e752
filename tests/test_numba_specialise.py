"""One template compiled per structure (``bayesgmm._numba.specialise``), cached on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from bayesgmm._numba.specialise import specialise

MODULE = """
import numba
from bayesgmm._numba.specialise import specialise

_term = None


@numba.njit(cache=True)
def square(x):
    return x * x


@numba.njit(cache=True)
def cube(x):
    return x * x * x


def _total_template(n):
    s = 0.0
    for i in range(n):
        s += _term(float(i))
    return s


total_square = specialise(_total_template, "total_square", globals(), {"cache": True}, _term=square)
total_cube = specialise(_total_template, "total_cube", globals(), {"cache": True}, _term=cube)
"""

RUN = (
    "import templated as t; print(t.total_square(4), t.total_cube(4), "
    "t.total_square.stats.cache_hits.total(), t.total_square.stats.cache_misses.total(), "
    "t.total_cube.stats.cache_hits.total())"
)


def test_each_specialisation_calls_its_own_primitive_and_is_found_in_the_disk_cache(tmp_path):
    (tmp_path / "templated.py").write_text(textwrap.dedent(MODULE))
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    outputs = [
        subprocess.run(
            [sys.executable, "-c", RUN], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert outputs[0] == ["14.0", "36.0", "0", "1", "0"]  # compiled in the first process
    assert outputs[1] == ["14.0", "36.0", "1", "0", "1"]  # loaded from the cache after


def _template(x):
    return _placeholder(x) + _other(x)


_placeholder = _other = None


def test_every_placeholder_must_be_bound_to_a_name_the_template_uses():
    with pytest.raises(ValueError, match="uses no global named"):
        specialise(_template, "f", globals(), {}, _placeholder=abs, _other=abs, _missing=abs)
    with pytest.raises(ValueError, match=r"bind the placeholders \['_other'\]"):
        specialise(_template, "f", globals(), {}, _placeholder=abs)
