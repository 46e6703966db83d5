"""The arrows ARCHITECTURE.md says must never exist, checked on the source with ``ast``.

Every import counts, at module level or inside a function: a function-local import still makes one
module depend on another, it only hides it from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "themes"
FLOWS = ROOT / "flows"

#: Modules any stage may use: settings, the shared types, small text facts and the error catalogue.
FOUNDATION = {"themes", "themes.config", "themes.types", "themes.text", "themes.errors"}
#: The command-line modules: the only library modules that may call into ``flows``.
CLI_MODULES = {"themes.cli", "themes.cli_loop"}
#: Where the size target of issue 15 stops: a module of more lines than this is a room to split.
MAX_LINES = 520


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {_module_name(p, SRC): p for p in PACKAGE.rglob("*.py")}
    found.update({_module_name(p, ROOT): p for p in FLOWS.rglob("*.py")})
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of ``themes`` or ``flows`` that ``name`` imports, anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from themes import ingest`` imports the module themes.ingest; ``from themes.x import
            # f`` imports themes.x.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            # ``import themes.ingest.pool`` also names themes.ingest; keep the longest known module.
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _is_in(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_walk_sees_the_package() -> None:
    # Guards the checks below against passing because they read nothing.
    assert "themes.cli" in GRAPH and "themes.types" in GRAPH and "flows.pipeline" in GRAPH
    assert any(_is_in(dep, "themes.ingest") for dep in GRAPH["flows.pipeline"])


def test_no_library_module_imports_flows_or_the_cli() -> None:
    bad = {
        name: sorted(d for d in deps if _is_in(d, "flows") or d in CLI_MODULES)
        for name, deps in GRAPH.items()
        if name.startswith("themes") and name not in CLI_MODULES
    }
    assert not {k: v for k, v in bad.items() if v}, "stages must not import flows or the CLI"


def test_no_library_module_imports_prefect() -> None:
    # Prefect is wiring: the library runs (and is tested) without starting it.
    offenders = []
    for name, path in MODULES.items():
        if not name.startswith("themes") or name in CLI_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            offenders += [f"{name}: {m}" for m in mods if m == "prefect" or m.startswith("prefect.")]
    assert not offenders


def test_ingest_knows_nothing_of_themes() -> None:
    ingest = [n for n in GRAPH if _is_in(n, "themes.ingest")]
    assert ingest, "no ingest module found"
    bad = {
        n: sorted(d for d in GRAPH[n] if not (_is_in(d, "themes.ingest") or d in FOUNDATION))
        for n in ingest
    }
    assert not {k: v for k, v in bad.items() if v}, "ingest may use only settings, types, text and errors"


@pytest.mark.parametrize("module", ["themes.types", "themes.config", "themes.text", "themes.errors"])
def test_foundation_modules_depend_on_nothing(module: str) -> None:
    if module not in GRAPH:
        pytest.skip(f"{module} does not exist")
    assert GRAPH[module] - {"themes"} == set()


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components over every import, function-local ones included.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in GRAPH.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_is_a_house_of_its_own() -> None:
    sizes = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in MODULES.items()
             if n.startswith("themes")}  # fmt: skip
    assert not {n: s for n, s in sizes.items() if s > MAX_LINES}, "split modules over ~500 lines"
