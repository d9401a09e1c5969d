"""The import rules of docs/ARCHITECTURE.md, read from the source (no imports run).

Every ``import`` in a module counts, at the top or inside a function: a lazy
import is still a dependency, only a later one.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "chatrpc"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports, absolute, with ``from x import y`` as x and x.y."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {
        _module_name(p): p
        for p in PACKAGE.rglob("*.py")
        if "v1" not in p.relative_to(PACKAGE).parts
    }
    return {name: _imports(path) & set(modules) for name, path in modules.items()} | {
        f"{name}#all": _imports(path) for name, path in modules.items()
    }


GRAPH = _graph()


def _all_imports(prefix: str) -> dict[str, set[str]]:
    """Every import of each module under ``prefix`` (itself included)."""
    return {
        name[: -len("#all")]: deps
        for name, deps in GRAPH.items()
        if name.endswith("#all") and (name[:-4] == prefix or name.startswith(prefix + "."))
    }


def _offenders(prefixes: list[str], forbidden: list[str]) -> list[str]:
    bad = []
    for prefix in prefixes:
        for module, deps in _all_imports(prefix).items():
            for dep in sorted(deps):
                if any(dep == f or dep.startswith(f + ".") for f in forbidden):
                    bad.append(f"{module} imports {dep}")
    return bad


def test_the_session_core_hub_subscriber_and_stores_import_no_transport() -> None:
    core = ["chatrpc.session", "chatrpc.hub", "chatrpc.subscriber", "chatrpc.store"]
    assert _offenders(core, ["grpc", "grpc_health", "grpc_reflection", "aiohttp"]) == []


def test_the_store_never_imports_the_hub_or_the_session_core() -> None:
    assert _offenders(["chatrpc.store"], ["chatrpc.hub", "chatrpc.session"]) == []


def test_the_client_and_the_clis_never_import_the_server() -> None:
    clients = ["chatrpc.client", "chatrpc.cli_client", "chatrpc.tui"]
    server_side = ["chatrpc.server", "chatrpc.hub", "chatrpc.session", "chatrpc.store"]
    assert _offenders(clients, server_side) == []


def test_there_is_no_import_cycle_inside_the_package() -> None:
    edges = {name: deps for name, deps in GRAPH.items() if not name.endswith("#all")}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if dep == node or dep in (node.rpartition(".")[0],):
                continue  # a module's own package is its namespace, not a dependency
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []
