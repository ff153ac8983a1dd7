"""The import graph of the tcplab package: no cycle, and the layering of DESIGN.md.

The graph is read from the source (each module parsed with ``ast``), not from
what one run happens to import: every ``import`` and ``from ... import``,
including those inside functions (the lazy imports the CLI relies on),
relative ones resolved against the module's package. An edge goes to the
module the statement executes: ``from .common import die`` to
``tcplab.cli.common``; ``from . import run_cmd`` to ``tcplab.cli.run_cmd``
when that is a module, else to the package. A module's own package is no edge
when only submodules are fetched from it (it is being imported already).

Imports under ``if TYPE_CHECKING:`` never run: they count for the layering
(a model that names a backend type knows of the backend) but not for cycles
(they are how a type is named without a runtime cycle).

As in tests/unit/test_hygiene.py, each check is first shown a small package
it must refuse, so a check that finds nothing cannot pass by accident.
"""
from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import ROOT

PACKAGE = ROOT / "tcplab"

# DESIGN.md's table, as far as it holds in the code: (packages, what none of their modules may import)
LAYERS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("tcplab.model",), ("tcplab.backend", "tcplab.play", "tcplab.cli", "tcplab.report", "tcplab.analysis",
                         "tcplab.runfiles")),
    (("tcplab.analysis", "tcplab.report"), ("tcplab.backend", "tcplab.play", "tcplab.cli")),
    # the run directory's files: their schemas know the model, nothing that writes or reads them
    (("tcplab.runfiles",), ("tcplab.backend", "tcplab.play", "tcplab.cli", "tcplab.report", "tcplab.analysis",
                            "tcplab.observe")),
    (("tcplab.model",), ("tcplab.plan", "tcplab.export")),
    # the plan says what to create in the backend's own terms (its specs), never how an engine does it
    (("tcplab.plan",), ("tcplab.backend.docker", "tcplab.play", "tcplab.cli", "tcplab.report", "tcplab.analysis",
                        "tcplab.export", "tcplab.runfiles")),
    # peer kinds are asked by the model, the plan and the analysis, so they import none of them
    (("tcplab.peers",), ("tcplab.backend", "tcplab.plan", "tcplab.play", "tcplab.cli", "tcplab.report",
                         "tcplab.analysis", "tcplab.observe", "tcplab.export", "tcplab.runfiles")),
    # a draft is made from a capture alone: no engine, no run, no command line
    (("tcplab.draft",), ("tcplab.backend", "tcplab.plan", "tcplab.play", "tcplab.cli", "tcplab.report",
                         "tcplab.export", "tcplab.runfiles")),
]
DOCKER_SDK_ONLY_IN = "tcplab.backend"  # the one package that may import the Docker SDK (`docker`)


@dataclass
class Graph:
    """module -> {imported module: first line}; ``runtime`` leaves out the imports under TYPE_CHECKING."""
    all: dict[str, dict[str, int]] = field(default_factory=dict)
    runtime: dict[str, dict[str, int]] = field(default_factory=dict)


def module_names(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (a package by its own name)."""
    mods = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = path
    return mods


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) bodies."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for stmt in node.body:
                ids |= {id(n) for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return ids


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported module, line, only under TYPE_CHECKING) for every import statement, wherever it stands.

    Inside the package the target is one of ``mods``; outside it, the top-level name (``docker``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = _type_checking_only(tree)
    found: list[tuple[str, int, bool]] = []

    def add(target: str, node: ast.stmt) -> None:
        if not _within(target, name.split(".")[0]):
            found.append((target.split(".")[0], node.lineno, id(node) in typing_only))
            return
        while target not in mods and "." in target:  # `import tcplab.x.attr` style: the module holding it
            target = target.rpartition(".")[0]
        if target in mods:
            found.append((target, node.lineno, id(node) in typing_only))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level - 1 >= len(base):
                    raise AssertionError(f"{path}:{node.lineno}: relative import beyond the package")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in mods]
            for sub in submodules:  # `from . import run_cmd`: the submodule itself
                add(sub, node)
            if len(submodules) < len(node.names) or not _within(name, source):
                add(source, node)  # names the package's __init__ defines, or a package elsewhere: it runs
    return found


def import_graph(root: Path) -> Graph:
    mods = module_names(root)
    graph = Graph()
    for name, path in mods.items():
        every, runtime = graph.all.setdefault(name, {}), graph.runtime.setdefault(name, {})
        for target, line, typing_only in imports_of(name, path, mods):
            if target != name:
                every.setdefault(target, line)
                if not typing_only:
                    runtime.setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle through each group of modules that import one another (strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def enter(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)

    for root in sorted(graph):  # Tarjan's algorithm, iterative (no recursion limit to meet)
        if root in index:
            continue
        enter(root)
        work = [(root, iter(sorted(w for w in graph[root] if w in graph)))]
        while work:
            v, edges = work[-1]
            for w in edges:
                if w not in index:
                    enter(w)
                    work.append((w, iter(sorted(x for x in graph[w] if x in graph))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    group = []
                    while not group or group[-1] != v:
                        group.append(stack.pop())
                        on_stack.discard(group[-1])
                    if len(group) > 1:
                        groups.append(sorted(group))
    return [_one_cycle(graph, g) for g in sorted(groups)]


def _one_cycle(graph: dict[str, dict[str, int]], group: list[str]) -> list[str]:
    """The shortest path from the group's first module back to itself (breadth first, inside the group)."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w in members and w not in came_from:
                    came_from[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {group}")  # a strongly connected group always has one


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(cycle)) + f" -> {cycle[-1]}"


def layering_problems(graph: dict[str, dict[str, int]]) -> list[str]:
    problems = []
    for module, edges in sorted(graph.items()):
        for packages, banned in LAYERS:
            if any(_within(module, p) for p in packages):
                problems += [f"{module} (line {line}) imports {target}" for target, line in sorted(edges.items())
                             if any(_within(target, b) for b in banned)]
        if not _within(module, DOCKER_SDK_ONLY_IN) and "docker" in edges:
            problems.append(f"{module} (line {edges['docker']}) imports the Docker SDK outside {DOCKER_SDK_ONLY_IN}")
    return problems


# --- the checks, on small packages they must refuse ---------------------------------------------

def _package(tmp: Path, files: dict[str, str]) -> Path:
    root = tmp / "tcplab"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_cycle_through_a_function_level_relative_import_is_found(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "cli/__init__.py": "def main():\n    from .app import helper\n",
        "cli/app.py": "from . import run_cmd\n\ndef helper():\n    pass\n",
        "cli/run_cmd.py": "import os\n\ndef run():\n    from .app import helper\n",
        "cli/other.py": "from .run_cmd import run\n",
    })
    graph = import_graph(root).runtime
    assert graph["tcplab.cli.app"] == {"tcplab.cli.run_cmd": 1}  # not its own package: that is being imported
    assert graph["tcplab.cli.run_cmd"] == {"os": 1, "tcplab.cli.app": 4}
    found = cycles(graph)
    assert found == [["tcplab.cli.app", "tcplab.cli.run_cmd", "tcplab.cli.app"]]
    assert describe(graph, found[0]) == ("tcplab.cli.app (line 1) -> tcplab.cli.run_cmd (line 4) -> "
                                         "tcplab.cli.app")


def test_longer_cycles_and_absolute_imports_are_found(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "a.py": "import tcplab.b\n",
        "b.py": "from tcplab.c import thing\n",
        "c.py": "if True:\n    from .a import x\n",
        "d.py": "from . import a\n",  # points into the cycle, is no part of it
        "e/__init__.py": "from .f import g\n",
        "e/f.py": "from .. import e\n",  # names the package's own __init__: a cycle with it
    })
    assert cycles(import_graph(root).runtime) == [["tcplab.a", "tcplab.b", "tcplab.c", "tcplab.a"],
                                                  ["tcplab.e", "tcplab.e.f", "tcplab.e"]]


def test_imports_under_type_checking_are_no_cycle_but_count_for_layering(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "model/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..backend import B\n",
        "backend/__init__.py": "from ..model import Lab\n",
    })
    graph = import_graph(root)
    assert cycles(graph.all) == [["tcplab.backend", "tcplab.model", "tcplab.backend"]]
    assert cycles(graph.runtime) == []
    assert layering_problems(graph.all) == ["tcplab.model (line 3) imports tcplab.backend"]


def test_a_package_without_cycles_has_none(tmp_path: Path) -> None:
    root = _package(tmp_path, {"x/__init__.py": "from .y import f\n", "x/y.py": "import json\n"})
    assert cycles(import_graph(root).runtime) == []


def test_layering_violations_are_named(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "model/__init__.py": "def f():\n    from ..play import session\n",
        "play/__init__.py": "",
        "play/session.py": "import docker.errors\n",
        "report/__init__.py": "from docker import APIClient\n",
        "analysis/__init__.py": "from ..cli.common import die\n",
        "backend/__init__.py": "import docker\n",
        "cli/__init__.py": "",
        "cli/common.py": "",
    })
    assert layering_problems(import_graph(root).all) == [
        "tcplab.analysis (line 1) imports tcplab.cli.common",
        "tcplab.model (line 2) imports tcplab.play",
        "tcplab.model (line 2) imports tcplab.play.session",
        "tcplab.play.session (line 1) imports the Docker SDK outside tcplab.backend",
        "tcplab.report (line 1) imports the Docker SDK outside tcplab.backend",
    ]


def test_relative_import_beyond_the_package_is_an_error(tmp_path: Path) -> None:
    root = _package(tmp_path, {"x.py": "from ... import y\n"})
    with pytest.raises(AssertionError, match="beyond the package"):
        import_graph(root)


# --- the checks, on tcplab itself ---------------------------------------------------------------

@pytest.fixture(scope="module")
def graph() -> Graph:
    g = import_graph(PACKAGE)
    assert {"tcplab.cli.app", "tcplab.model", "tcplab.backend.docker"} <= set(g.all)  # it read the real package
    return g


def test_tcplab_has_no_import_cycle(graph: Graph) -> None:
    found = cycles(graph.runtime)
    assert not found, "import cycles:\n" + "\n".join(describe(graph.runtime, c) for c in found)


def test_tcplab_follows_the_layering(graph: Graph) -> None:
    problems = layering_problems(graph.all)
    assert not problems, "imports against DESIGN.md's layering:\n" + "\n".join(problems)
