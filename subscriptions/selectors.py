"""Reads of modules, dependencies and subscriptions."""

from __future__ import annotations

from collections import defaultdict

from m3saas.exceptions import ModuleDependencyError
from subscriptions.models import ModuleDependency, Subscription


def dependency_graph() -> dict[str, list[tuple[str, int]]]:
    """Module name → its direct dependencies `(name, major)`, in a stable order."""
    graph: dict[str, list[tuple[str, int]]] = defaultdict(list)
    rows = ModuleDependency.objects.values_list("module__name", "dependency__name", "version")
    for module, dependency, version in rows.order_by("module__name", "dependency__name"):
        graph[module].append((dependency, version))
    return dict(graph)


def resolve_modules(roots: list[tuple[str, int]], graph: dict[str, list[tuple[str, int]]]) -> list[tuple[str, int]]:
    """The modules `roots` need, transitively, ordered dependencies first.

    Raises `ModuleDependencyError` on a cycle or on two major versions of one module.
    """
    order: list[tuple[str, int]] = []
    chosen: dict[str, tuple[int, str]] = {}
    done: set[str] = set()

    def visit(name: str, major: int, path: list[str], wanted_by: str) -> None:
        if name in path:
            cycle = " → ".join([*path[path.index(name) :], name])
            raise ModuleDependencyError(f"Module dependency cycle: {cycle}.")
        if name in chosen:
            if chosen[name][0] != major:
                raise ModuleDependencyError(
                    f"Module '{name}' is needed at v{chosen[name][0]} by {chosen[name][1]} "
                    f"and at v{major} by {wanted_by}; a tenant can have one major version of a module."
                )
            if name in done:
                return
        chosen[name] = (major, wanted_by)
        for dependency, dep_major in graph.get(name, []):
            visit(dependency, dep_major, [*path, name], f"'{name}'")
        done.add(name)
        order.append((name, major))

    for name, major in roots:
        visit(name, major, [], "a subscription")
    return order


def tenant_subscriptions(*, tenant_id: int) -> list[tuple[str, int]]:
    rows = Subscription.objects.filter(tenant_id=tenant_id).order_by("module__name")
    return list(rows.values_list("module__name", "version"))


def tenant_effective_modules(*, tenant_id: int) -> list[tuple[str, int]]:
    """The tenant's subscriptions plus their dependencies, dependencies first."""
    return resolve_modules(tenant_subscriptions(tenant_id=tenant_id), dependency_graph())
