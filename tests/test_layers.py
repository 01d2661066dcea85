"""The layers point one way (platform ← subscriptions ← tenants ← wiring) and no files import each other in a circle."""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("m3saas", "tenants", "subscriptions", "modules")
# The project wiring: the only platform files that may name the apps.
WIRING = {"m3saas.settings", "m3saas.urls", "m3saas.wsgi", "m3saas.asgi", "m3saas.gunicorn_conf"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported at the top of `path` (not inside functions)."""
    imported: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                imported.add(name)
    return imported


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    return {name: _top_level_imports(path, known) - {name} for name, path in sources.items()}


def _is_platform(module: str) -> bool:
    return module.startswith("m3saas") and module not in WIRING


def test_the_platform_imports_no_app():
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _is_platform(module) and ".tests" not in module
        for target in targets
        if target.split(".")[0] in ("tenants", "subscriptions")
    )
    assert offenders == []


def test_subscriptions_does_not_import_tenants():
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.startswith("subscriptions") and ".tests" not in module
        for target in targets
        if target.startswith("tenants")
    )
    assert offenders == []


def test_no_files_import_each_other_in_a_circle():
    graph = _graph()
    # Package __init__ files are entered on the way to their submodules; an edge to a package
    # that re-exports its submodules is not a cycle of files.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target] if target in path else [node, target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    circles = [c for c in cycles if not all(_is_package_reexport(a, b) for a, b in pairwise(c))]
    assert circles == []


def _is_package_reexport(importer: str, imported: str) -> bool:
    return importer.startswith(imported + ".") or imported.startswith(importer + ".")
