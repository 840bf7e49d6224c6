"""The shape of the package (DESIGN.md, rule 11 and section 2): no import circles, counting imports inside
functions; no module over about 400 lines. Read with `ast`, nothing is imported.

`import harness` staying free of torch and transformers is checked in tests/test_cli.py
(test_module_entry_point_and_import_stays_light).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

PACKAGE = "harness"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE
MAX_LINES = 400


# ---- the module graph ---------------------------------------------------------------------------------


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package (a package's __init__.py is the package)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The absolute module an ImportFrom names before its `import` (resolving `from .x` and `from ..x`)."""
    if node.level == 0:
        return node.module
    package = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(package) - 1:
        return None
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, modules: set[str]) -> dict[str, int]:
    """Modules of the package that `module` imports anywhere in its file (top level, functions, branches),
    each with the first line that does. `from a.b import c` counts a.b.c when c is a submodule, else a.b;
    importing a submodule does not add an edge to its parent package's __init__."""
    found: dict[str, int] = {}

    def add(name: str | None, line: int) -> None:
        while name and name not in modules:  # `import harness.x.y` of a module; a name inside it otherwise
            name = name.rpartition(".")[0]
        if name:  # a module importing itself shows up as a circle of one
            found.setdefault(name, line)

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, path.name == "__init__.py", node)
            if not base or not (base == PACKAGE or base.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in modules else base, node.lineno)
    return found


def import_graph(package_dir: Path = PACKAGE_DIR) -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """module -> modules it imports, and for every edge where it is written (file:line)."""
    files = module_files(package_dir)
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    root = package_dir.parent
    for module, path in files.items():
        edges = imports_of(module, path, set(files))
        graph[module] = set(edges)
        for target, line in edges.items():
            where[(module, target)] = f"{path.relative_to(root)}:{line}"
    return graph, where


# ---- cycles ------------------------------------------------------------------------------------------


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted; nodes only reached as targets count."""
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
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
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def _shortest_cycle(graph: dict[str, set[str]], start: str, allowed: set[str]) -> list[str] | None:
    """The shortest path start -> ... -> start inside `allowed` (breadth first, ties broken by name)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for child in sorted(graph.get(node, ())):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if child in allowed and child not in seen:
                seen.add(child)
                parent[child] = node
                queue.append(child)
    return None


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles, each written as a closed path [a, b, ..., a] starting at its smallest name: for every
    strongly connected component, the shortest circle through each of its members (duplicates dropped)."""
    cycles: list[list[str]] = []
    for component in strongly_connected(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph.get(component[0], ()):
            continue
        for node in component:
            cycle = _shortest_cycle(graph, node, members)
            if cycle is None:
                continue
            ring = cycle[:-1]
            i = ring.index(min(ring))
            ring = ring[i:] + ring[:i]
            if [*ring, ring[0]] not in cycles:
                cycles.append([*ring, ring[0]])
    return sorted(cycles, key=lambda c: (len(c), c))


def describe(cycle: list[str], where: dict[tuple[str, str], str]) -> str:
    """`a -> b -> a`, then where each import is written."""
    hops = [f"\n    {a} -> {b}  at {where[(a, b)]}" for a, b in zip(cycle, cycle[1:]) if (a, b) in where]
    return " -> ".join(cycle) + "".join(hops)


# ---- the cycle finder itself, on hand-made graphs ----------------------------------------------------


def test_cycle_finder_on_hand_made_graphs():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) == []  # a diamond is no circle
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]
    assert find_cycles({"x": {"x"}}) == [["x", "x"]]
    assert find_cycles({"c": {"a"}, "a": {"b"}, "b": {"c"}}) == [["a", "b", "c", "a"]]
    # two circles sharing a node, and a separate one
    graph = {"a": {"b", "c"}, "b": {"a"}, "c": {"a"}, "p": {"q"}, "q": {"p"}}
    assert find_cycles(graph) == [["a", "b", "a"], ["a", "c", "a"], ["p", "q", "p"]]
    assert describe(["a", "b", "a"], {("a", "b"): "a.py:1", ("b", "a"): "b.py:7"}) == (
        "a -> b -> a\n    a -> b  at a.py:1\n    b -> a  at b.py:7"
    )


def test_import_resolution_on_a_hand_made_package(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from harness.sub.low import f\n")  # a re-exporting package
    (pkg / "sub" / "low.py").write_text("def f():\n    from harness.top import g  # inside a function\n")
    (pkg / "sub" / "other.py").write_text("from . import low\nfrom .. import base\n")
    (pkg / "base.py").write_text("")
    (pkg / "top.py").write_text("import harness.sub.other\nfrom harness.sub import f\nimport os\n")
    graph, where = import_graph(pkg)
    assert graph == {
        "harness": set(),
        "harness.base": set(),
        "harness.sub": {"harness.sub.low"},
        "harness.sub.low": {"harness.top"},
        "harness.sub.other": {"harness.sub.low", "harness.base"},
        "harness.top": {"harness.sub.other", "harness.sub"},
    }
    assert where[("harness.sub.low", "harness.top")] == "harness/sub/low.py:2"
    assert find_cycles(graph) == [
        ["harness.sub", "harness.sub.low", "harness.top", "harness.sub"],
        ["harness.sub.low", "harness.top", "harness.sub.other", "harness.sub.low"],
    ]


# ---- the real package --------------------------------------------------------------------------------


def test_no_import_circles():
    """DESIGN.md rule 11: no import circles, counting imports inside functions."""
    graph, where = import_graph()
    assert len(graph) > 10, f"found only {sorted(graph)} under {PACKAGE_DIR}"
    cycles = find_cycles(graph)
    if cycles:
        pytest.fail("import circles in harness/:\n" + "\n".join(describe(c, where) for c in cycles), pytrace=False)


def test_no_module_over_400_lines():
    """DESIGN.md section 2: one idea per module, readable in a sitting (about 400 lines at most)."""
    counts = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in module_files().values()}
    over = sorted((n, path.relative_to(PACKAGE_DIR.parent)) for path, n in counts.items() if n > MAX_LINES)
    assert not over, f"modules over {MAX_LINES} lines: " + ", ".join(f"{p} ({n})" for n, p in reversed(over))
