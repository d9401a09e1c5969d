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
    clients = ["chatrpc.client", "chatrpc.cli_client", "chatrpc.tui", "chatrpc.cli_io"]
    clients += ["chatrpc.cli_login", "chatrpc.cli_errors"]
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


#: The client side: the client library, the terminal UI and the client CLI.
CLIENT_SIDE = ["chatrpc.client", "chatrpc.tui", "chatrpc.cli_client", "chatrpc.cli_errors"]
CLIENT_SIDE += ["chatrpc.cli_io", "chatrpc.cli_login"]

#: The most lines of a module, a class and a function (docstrings included): past
#: these, one concept is usually several waiting to be named. "About 400" lines a
#: module: a few over are not worth splitting an idea for.
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 420, 250, 60


def _too_big(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    name = _module_name(path)
    found = [f"{name}: {len(lines)} lines"] if len(lines) > MAX_MODULE else []
    for node in ast.walk(ast.parse("\n".join(lines), str(path))):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > limit:
                found.append(f"{name}.{node.name}: {size} lines")
    return found


def test_no_client_side_module_class_or_function_is_over_its_size() -> None:
    paths = [
        p
        for p in PACKAGE.rglob("*.py")
        if any(_module_name(p) == m or _module_name(p).startswith(m + ".") for m in CLIENT_SIDE)
    ]
    assert len(paths) > len(CLIENT_SIDE)  # the packages' modules are found too
    assert [big for p in sorted(paths) for big in _too_big(p)] == []


def test_no_module_class_or_function_of_the_package_is_over_its_size() -> None:
    """The same limits everywhere but the generated code."""
    paths = [p for p in PACKAGE.rglob("*.py") if "v1" not in p.relative_to(PACKAGE).parts]
    assert len(paths) > 50
    assert [big for p in sorted(paths) for big in _too_big(p)] == []
