"""``source_digest`` follows the dependencies ``depend_on`` records (``bayesgmm._numba.cache``)."""

from __future__ import annotations

import types

from bayesgmm._numba.cache import depend_on, source_digest


def test_a_dependency_of_a_dependency_reaches_the_digest(tmp_path):
    modules = {}
    for name in ("low", "middle", "top"):
        path = tmp_path / f"{name}.py"
        path.write_text(f"# {name}\n")
        modules[name] = types.ModuleType(name)
        modules[name].__file__ = str(path)
    depend_on(vars(modules["middle"]), modules["low"])
    depend_on(vars(modules["top"]), modules["middle"])
    before = source_digest(modules["top"])
    assert source_digest(modules["top"], modules["low"]) == before  # each file counts once
    (tmp_path / "low.py").write_text("# low, edited\n")
    assert source_digest(modules["top"]) != before
