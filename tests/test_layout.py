"""The package's shape: no import cycles, the map in docs/design.md names every module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "coderclip"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, here: str, is_pkg: bool, modules: set[str]) -> set[str]:
    """coderclip modules imported anywhere in ``tree`` (functions included, ``TYPE_CHECKING`` not)."""
    out: set[str] = set()

    def target(mod: str) -> str | None:
        while mod and mod not in modules:
            mod = mod.rpartition(".")[0]
        return mod or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "coderclip" and (t := target(a.name)):
                    out.add(t)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".") if is_pkg else here.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "coderclip":
                return
            for a in node.names:  # `from pkg import submodule` imports the submodule
                full = f"{mod}.{a.name}"
                t = full if full in modules else target(mod)
                if t:
                    out.add(t)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out.discard(here)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    modules = set(files)
    return {name: _imports(ast.parse(p.read_text(encoding="utf-8")), name, p.name == "__init__.py",
                           modules)
            for name, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_cycle_finder_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_import_graph_sees_function_level_and_submodule_imports():
    graph = import_graph()
    # a function-level import counts (lazy imports can still form cycles)
    assert "coderclip.cli._common" in graph["coderclip.cli.classify"]
    assert "coderclip.knowledge.packs" in graph["coderclip.knowledge.schema"]


def test_reference_scorer_is_not_installed():
    assert not (PKG / "_reference.py").exists()
    assert (ROOT / "tests" / "reference.py").is_file()


def test_design_map_names_every_module_and_folder():
    """Every top-level module and every package (nested ones too) has a row in docs/design.md."""
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    missing = [p.name for p in PKG.glob("*.py")
               if not p.name.startswith("__") and f"`{p.name}`" not in design]
    missing += [f"{p.parent.relative_to(PKG).as_posix()}/" for p in PKG.rglob("__init__.py")
                if p.parent != PKG and f"`{p.parent.relative_to(PKG).as_posix()}/`" not in design]
    assert not missing, f"docs/design.md does not mention: {', '.join(sorted(missing))}"
