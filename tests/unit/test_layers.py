"""The harness's real import graph against the layers ``barmap.LAYERS`` declares.

Every ``import`` in every module counts (inside functions and ``TYPE_CHECKING`` too): a
module may import its own layer and the layers below it, never one above, never a
sibling ``barmap.SIBLINGS`` keeps apart, and no chain of imports comes back to where it
started.  ``barmap/__init__.py`` is the façade over everything and is not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import barmap

ROOT = Path(barmap.__file__).resolve().parent

Graph = dict[str, set[str]]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = ROOT) -> Graph:
    """module -> the barmap modules it imports (``from barmap.x import y`` names y when y
    is a module, else x)."""
    modules = {module_name(p): p for p in root.rglob("*.py")}
    graph: Graph = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("barmap."))
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module != "barmap" and not node.module.startswith("barmap."):
                    continue
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in modules else node.module)
        deps.discard(name)
        graph[name] = {d for d in deps if d != "barmap"}
    return graph


def layer_of(module: str, layers: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[int, str]:
    top = module.split(".")[1] if "." in module else ""
    for i, (_, members) in enumerate(layers):
        if top in members:
            return i, top
    raise AssertionError(f"{module} is in no layer of barmap.LAYERS")


def violations(
    graph: Graph,
    layers: tuple[tuple[str, tuple[str, ...]], ...] = barmap.LAYERS,
    siblings: tuple[tuple[str, str], ...] = barmap.SIBLINGS,
) -> list[str]:
    found = []
    for mod, deps in sorted(graph.items()):
        if mod == "barmap":
            continue
        li, lpkg = layer_of(mod, layers)
        for dep in sorted(deps):
            di, dpkg = layer_of(dep, layers)
            if di > li:
                found.append(f"{mod} ({layers[li][0]}) imports {dep} ({layers[di][0]}): upward")
            elif {lpkg, dpkg} in [set(s) for s in siblings]:
                found.append(f"{mod} imports {dep}: {lpkg} and {dpkg} are kept apart")
    return found + [f"import circle: {' -> '.join(c)}" for c in circles(graph)]


def circles(graph: Graph) -> list[list[str]]:
    """One cycle through each module that is on one (depth-first, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d == "barmap":
                continue
            if state.get(d) == 1:
                found.append([*stack[stack.index(d) :], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m != "barmap" and m not in state:
            visit(m)
    return found


def test_the_harness_imports_only_downward() -> None:
    graph = import_graph()
    assert len(graph) > 30 and "barmap.guest.machine" in graph
    assert not violations(graph), "\n".join(violations(graph))


def test_every_subpackage_says_what_it_holds_and_may_import() -> None:
    for init in ROOT.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc, f"{init.relative_to(ROOT)}: no 'May import' line"


def test_at_most_six_modules_at_the_top() -> None:
    assert len(list(ROOT.glob("*.py"))) <= 6, sorted(p.name for p in ROOT.glob("*.py"))


def test_the_checker_sees_an_upward_import_a_sibling_and_a_circle() -> None:
    graph = {
        "barmap.build.paths": {"barmap.guest.machine"},  # upward
        "barmap.guest.machine": {"barmap.qtest.pci"},  # siblings kept apart
        "barmap.qtest.pci": {"barmap.qtest.machine"},
        "barmap.qtest.machine": {"barmap.qtest.pci"},  # a circle
    }
    found = violations(graph)
    assert any("barmap.build.paths (build) imports barmap.guest.machine" in f for f in found)
    assert any("qtest and guest are kept apart" in f or "guest and qtest" in f for f in found)
    assert any(f.startswith("import circle:") and "barmap.qtest.pci" in f for f in found)
    assert violations({"barmap.guest.machine": {"barmap.qemu.qmp"}}) == []
