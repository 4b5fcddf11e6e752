"""The package's layer rules, checked on its import graph (ARCHITECTURE.md, "Rules").

The graph is read from the source with :mod:`ast`, not by importing anything: one node per
module (``bayesgmm/em/fit.py`` is ``bayesgmm.em.fit``, a package's ``__init__.py`` is the
package), one edge per ``import`` statement that names a module of the package, wherever it
stands (module level or inside a function; imports under ``if TYPE_CHECKING:`` are left out,
since they never run). ``from bayesgmm.em import kernels`` is an edge to ``bayesgmm.em.kernels``
when ``kernels`` is a submodule, else to the package ``bayesgmm.em`` itself (its
``__init__.py``); a package ``__init__`` importing its own submodules is an edge like any other.

Two rules:

* **Layers.** Low -> high: ``_numba``, ``core``, ``posterior``, ``em``, ``bayes``,
  ``selection``, ``reporting``, ``cli``. A module imports only its own layer or lower ones.
  ``bayesgmm/__init__.py`` (lazy public exports) may import anything, and it counts as the
  top of the order: only ``cli`` may import it (``from bayesgmm import GaussianMixture``).
  ``datasets`` is beside the layers: it may import ``core`` and ``posterior`` (and itself),
  and only ``cli`` may import it. A module in no known layer (a new top-level module or
  package) is reported as a violation until it is given a place here.
* **No cycles.** No two modules import each other, directly or through others (no strongly
  connected component of more than one module, no module importing itself).
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "bayesgmm"

#: Layer order, low -> high.
LAYERS: tuple[str, ...] = (
    "_numba",
    "core",
    "posterior",
    "em",
    "bayes",
    "selection",
    "reporting",
    "cli",
)

#: Packages beside the layers: package -> the layers (and packages) it may import.
SIDE_PACKAGES: dict[str, frozenset[str]] = {"datasets": frozenset({"core", "posterior"})}

#: Layers that may import a side package (beside ``bayesgmm/__init__.py``).
SIDE_PACKAGE_USERS: dict[str, frozenset[str]] = {"datasets": frozenset({"cli"})}

#: Layers that may import the top-level package itself (its lazy public exports).
PUBLIC_API_USERS: frozenset[str] = frozenset({"cli"})


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` imports ``target`` at ``line`` of ``source``'s file."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package at ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every Import / ImportFrom node of ``tree`` outside ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is a module of the package, or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph(root: Path) -> tuple[list[str], list[Edge]]:
    """Modules and import edges of the package at ``root`` (see the module docstring)."""
    modules = module_files(root)
    edges = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [_resolve(alias.name, modules) for alias in node.names]
            else:
                if node.level:
                    # the package a relative import starts from
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    origin = node.module or ""
                targets = []
                for alias in node.names:
                    submodule = f"{origin}.{alias.name}"
                    targets.append(submodule if submodule in modules else _resolve(origin, modules))
            edges.extend(
                Edge(module, target, node.lineno) for target in targets if target is not None
            )
    return list(modules), sorted(set(edges), key=lambda e: (e.source, e.line, e.target))


def _layer(module: str) -> str | None:
    """The layer or side package of a module (None for the top-level package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_violations(edges: list[Edge], package: str = "bayesgmm") -> list[Edge]:
    """Edges that go up the layer order, or to or from a module in no known place."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    bad = []
    for edge in edges:
        if edge.source == package:
            continue  # the top-level __init__ exports lazily from anywhere
        source, target = _layer(edge.source), _layer(edge.target)
        if source == target:
            continue
        if edge.target == package:
            allowed = source in PUBLIC_API_USERS
        elif source in SIDE_PACKAGES:
            allowed = target in SIDE_PACKAGES[source]
        elif target in SIDE_PACKAGES:
            allowed = source in SIDE_PACKAGE_USERS.get(target, frozenset())
        elif source in rank and target in rank:
            allowed = rank[target] <= rank[source]
        else:
            allowed = False  # a module in no known layer
        if not allowed:
            bad.append(edge)
    return bad


def import_cycles(modules: list[str], edges: list[Edge]) -> list[list[Edge]]:
    """The edges inside each strongly connected component of more than one module.

    A module importing itself is a component of its own. Tarjan's algorithm, iterative.
    """
    successors: dict[str, list[str]] = {module: [] for module in modules}
    for edge in edges:
        successors[edge.source].append(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    for start in modules:
        if start in index:
            continue
        work = [(start, iter(successors[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(successors[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    cycles = []
    for component in components:
        inside = [e for e in edges if e.source in component and e.target in component]
        if len(component) > 1 or inside:
            cycles.append(inside)
    return cycles


def _report(title: str, edges: list[Edge]) -> str:
    return f"{title}:\n" + "\n".join(f"  {edge}" for edge in edges)


def check_package(root: Path) -> list[str]:
    """Every layer violation and import cycle of the package at ``root``, as messages."""
    modules, edges = import_graph(root)
    problems = []
    upward = layer_violations(edges, package=root.name)
    if upward:
        problems.append(_report("imports up the layer order (or from no known layer)", upward))
    for cycle in import_cycles(modules, edges):
        members = sorted({e.source for e in cycle})
        problems.append(_report(f"import cycle among {', '.join(members)}", cycle))
    return problems


# ---- the rules on bayesgmm ---------------------------------------------------------------


def test_every_module_is_in_a_known_layer():
    modules = module_files(PACKAGE_ROOT)
    places = set(LAYERS) | set(SIDE_PACKAGES)
    strays = [m for m in modules if m != "bayesgmm" and _layer(m) not in places]
    assert not strays, f"modules in no layer (add them to LAYERS or SIDE_PACKAGES): {strays}"


def test_no_import_goes_up_the_layers():
    _, edges = import_graph(PACKAGE_ROOT)
    bad = layer_violations(edges)
    assert not bad, _report("imports up the layer order (or from no known layer)", bad)


def test_no_import_cycles():
    modules, edges = import_graph(PACKAGE_ROOT)
    cycles = import_cycles(modules, edges)
    messages = [
        _report(f"import cycle among {', '.join(sorted({e.source for e in c}))}", c) for c in cycles
    ]
    assert not cycles, "\n".join(messages)


def test_the_graph_sees_function_level_imports_and_skips_type_checking_ones():
    # guards the checker itself on the real package: the edges the rules rely on are found
    modules, edges = import_graph(PACKAGE_ROOT)
    assert {"bayesgmm", "bayesgmm.em", "bayesgmm.em.fit", "bayesgmm.core.covariance"} <= set(
        modules
    )
    pairs = {(e.source, e.target) for e in edges}
    assert ("bayesgmm.core.params", "bayesgmm.core.covariance") in pairs  # module level
    assert ("bayesgmm.em.fit", "bayesgmm.em.missing") in pairs  # inside fit_em
    assert ("bayesgmm.em", "bayesgmm.em.fit") in pairs  # a package __init__
    # covariance.py names em.steps' SufficientStatistics for type hints only
    assert ("bayesgmm.core.covariance", "bayesgmm.em.steps") not in pairs
    # the top-level package imports at module level only its version; the rest lazily
    assert {e.target for e in edges if e.source == "bayesgmm"} <= {
        "bayesgmm.core.version",
        "bayesgmm.core.persistence",
    }


# ---- the checker can fail --------------------------------------------------------------


def _write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "bayesgmm"
    for name, source in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    for directory in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    return package


def test_checker_reports_an_upward_import_inside_a_function(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "core/registry.py": """\
                def backend():
                    from bayesgmm.em.kernels import KERNELS

                    return KERNELS
            """,
            "em/kernels.py": "KERNELS = {}\n",
        },
    )
    (problem,) = check_package(package)
    assert "bayesgmm.core.registry -> bayesgmm.em.kernels (line 2)" in problem


def test_checker_reports_an_upward_relative_import(tmp_path):
    package = _write_package(
        tmp_path,
        {"posterior/draws.py": "from ..bayes import model\n", "bayes/model.py": "X = 1\n"},
    )
    (problem,) = check_package(package)
    assert "bayesgmm.posterior.draws -> bayesgmm.bayes.model (line 1)" in problem


def test_checker_ignores_type_checking_imports(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "core/params.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from bayesgmm.em.steps import Stats
            """,
            "em/steps.py": "from bayesgmm.core import params\n",
        },
    )
    assert check_package(package) == []


def test_checker_reports_a_cycle_with_each_edge(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "em/fit.py": """\
                import numpy as np


                def run():
                    from bayesgmm.em.missing import run_missing

                    return run_missing
            """,
            "em/missing.py": "from bayesgmm.em.fit import run\n",
        },
    )
    (problem,) = check_package(package)
    assert "import cycle among bayesgmm.em.fit, bayesgmm.em.missing" in problem
    assert "bayesgmm.em.fit -> bayesgmm.em.missing (line 5)" in problem
    assert "bayesgmm.em.missing -> bayesgmm.em.fit (line 1)" in problem


def test_checker_reports_a_cycle_through_a_package_init(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "em/__init__.py": "from bayesgmm.em.fit import run\n",
            "em/fit.py": "def run():\n    pass\n",
            "em/loop.py": "from bayesgmm.em import run\n",
            "em/kernels.py": "from bayesgmm.em import loop\n",
        },
    )
    # loop -> em (the __init__, since run is no submodule) -> fit: no cycle yet
    assert check_package(package) == []
    (package / "em/fit.py").write_text("from bayesgmm.em import loop\n", encoding="utf-8")
    (problem,) = check_package(package)
    assert "bayesgmm.em -> bayesgmm.em.fit (line 1)" in problem
    assert "bayesgmm.em.fit -> bayesgmm.em.loop (line 1)" in problem
    assert "bayesgmm.em.loop -> bayesgmm.em (line 1)" in problem
    assert "bayesgmm.em.kernels" not in problem


def test_checker_places_datasets_and_the_public_api(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "datasets/__init__.py": "from bayesgmm.core import weights\n",
            "core/weights.py": "W = 1\n",
            "em/fit.py": "from bayesgmm import datasets\n",
            "stray.py": "X = 1\n",
            "cli/main.py": (
                "from bayesgmm.datasets import load\nfrom bayesgmm import stray\n"
                "from bayesgmm import GaussianMixture\n"
            ),
            "reporting/plots.py": "from bayesgmm import GaussianMixture\n",
        },
    )
    (problem,) = check_package(package)
    assert "bayesgmm.em.fit -> bayesgmm.datasets (line 1)" in problem
    assert "bayesgmm.cli.main -> bayesgmm.stray (line 2)" in problem
    assert "bayesgmm.reporting.plots -> bayesgmm (line 1)" in problem
    assert "bayesgmm.cli.main -> bayesgmm (line" not in problem
    assert "datasets -> bayesgmm.core" not in problem
    assert "cli.main -> bayesgmm.datasets" not in problem


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_may_import_itself_and_lower_ones(tmp_path, layer):
    rank = LAYERS.index(layer)
    lower = LAYERS[:rank]
    files = {f"{other}/m.py": "X = 1\n" for other in LAYERS}
    files[f"{layer}/user.py"] = "".join(
        f"from bayesgmm.{other} import m as m{i}\n" for i, other in enumerate((*lower, layer))
    )
    assert check_package(_write_package(tmp_path, files)) == []
