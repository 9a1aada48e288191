"""No package imports itself in a circle, not even through an import deferred into a function.

A deferred import hides a cycle from Python, not from the design: the two modules still
need each other, so neither can be read, tested or moved alone. Only imports under
``if TYPE_CHECKING:`` are left out (they exist for the type checker alone), and so are
``importlib.import_module`` calls (the lazy names of ``graphs/__init__.py``), which name no
module the parser can see. Migrations are generated and never import the app's modules.

To hold another package to this, add its name to the parametrisation at the end.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).parents[1]


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root`` by dotted name, migrations left out."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "migrations" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph(root: Path, package: str) -> nx.DiGraph:
    """Modules of ``package`` as nodes, an edge from each module to each one it imports.

    An edge points at the module itself: ``from a.b import c`` is an import of ``a.b.c``
    when that is a module, else of ``a.b``. Imports of other packages are left out. So is
    the ``__init__`` of the package a module is in, which Python runs before the module: a
    registry (``graphs/nodes/__init__.py``) that imports its node types would otherwise make
    a cycle with every node type that imports ``base`` beside it.
    """
    modules = module_names(root, package)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for target in _imports(ast.parse(path.read_text(), str(path)), name, is_package):
            module = _module_of(target, modules)
            if module is not None and module != name:
                graph.add_edge(name, module)
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """One cycle per knot of modules that import each other, each as a closed path.

    One per strongly connected component rather than every simple cycle: a tangled
    package has exponentially many of those, and one is enough to name the knot.
    """
    found = []
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        first = min(component)
        edges = nx.find_cycle(graph.subgraph(component), source=first)
        found.append([edges[0][0], *(target for _, target in edges)])
    return sorted(found)


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[str]:
    """Every dotted name ``module`` imports, with relative imports resolved.

    ``from x import y`` gives ``x.y``: ``_module_of`` takes it for the submodule when
    there is one, and for ``x`` otherwise.
    """
    # Where a relative import starts: a package's __init__ is inside the package itself.
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in _walk_outside_type_checking(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found += [f"{source}.{alias.name}" for alias in node.names]
    return found


def _walk_outside_type_checking(tree: ast.AST) -> list[ast.AST]:
    found = []
    pending = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                pending += child.orelse  # what runs when not type checking still counts
            else:
                pending.append(child)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _module_of(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules``."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def describe(graph: nx.DiGraph, found: list[list[str]]) -> str:
    """Each cycle module by module, and the other modules of its knot, which breaking this
    one cycle would not free."""
    lines = []
    for cycle in found:
        knot = next(c for c in nx.strongly_connected_components(graph) if cycle[0] in c)
        line = " -> ".join(cycle)
        if others := sorted(knot - set(cycle)):
            line += f"  (in the same knot: {', '.join(others)})"
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize("package", ["graphs", "webapp"])
def test_package_has_no_import_cycles(package):
    graph = import_graph(ROOT, package)
    found = cycles(graph)
    assert not found, f"import cycles in {package}:\n{describe(graph, found)}"


# The checker itself, on small packages written for the purpose -------------------------


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_a_cycle_through_a_deferred_relative_import_is_named_module_by_module(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "def later():\n    from .c import thing\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "from pkg.a import name\n",  # on no cycle: reaches it, not back
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    assert describe(graph, cycles(graph)) == "pkg.a -> pkg.b -> pkg.c -> pkg.a"


def test_a_knot_wider_than_its_cycle_names_its_other_modules(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "from pkg import a, c\n",
            "pkg/c.py": "from pkg import a\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert describe(graph, cycles(graph)) == "pkg.a -> pkg.b -> pkg.a  (in the same knot: pkg.c)"


def test_imports_for_the_type_checker_alone_make_no_cycle(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import B\n",
            "pkg/b.py": (
                "import typing\n"
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.a import A\n"
                "if typing.TYPE_CHECKING:\n    import pkg.a\n"
            ),
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert list(graph.edges) == [("pkg.a", "pkg.b")]
    assert cycles(graph) == []


def test_the_else_branch_of_a_type_checking_test_still_counts(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    pass\nelse:\n    from . import a\n"
            ),
        },
    )
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_relative_imports_in_a_package_init_start_from_the_package(tmp_path):
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from .leaf import thing\nfrom .. import top\n",
            "pkg/sub/leaf.py": "from ..top import other\n",
            "pkg/top.py": "import json\nfrom pkg.sub import leaf\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert sorted(graph.edges) == [
        ("pkg.sub", "pkg.sub.leaf"),
        ("pkg.sub", "pkg.top"),
        ("pkg.sub.leaf", "pkg.top"),
        ("pkg.top", "pkg.sub.leaf"),
    ]
    assert cycles(graph) == [["pkg.sub.leaf", "pkg.top", "pkg.sub.leaf"]]


def test_migrations_are_left_out(tmp_path):
    write_package(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/models.py": "from app.migrations import m0001\n",
            "app/migrations/__init__.py": "",
            "app/migrations/m0001.py": "from app import models\n",
        },
    )
    graph = import_graph(tmp_path, "app")
    assert sorted(graph.nodes) == ["app", "app.models"]
    assert cycles(graph) == []
