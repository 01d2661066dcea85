"""Reads of modules, dependencies and subscriptions, and the resolution of effective modules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from m3saas.exceptions import ModuleDependencyError
from m3saas.tenancy.directory import tenant_model
from subscriptions.models import ModuleDependency, Subscription

Graph = dict[str, list[tuple[str, int]]]


class DependencyCycleError(ModuleDependencyError):
    code = "module_dependency_cycle"
    default_message = "The module dependencies form a cycle."


class ModuleVersionConflictError(ModuleDependencyError):
    code = "module_version_conflict"
    default_message = "Two major versions of one module are needed by one tenant."


def dependency_graph() -> Graph:
    """Module name → its direct dependencies `(name, major)`, in a stable order."""
    graph: Graph = defaultdict(list)
    rows = ModuleDependency.objects.values_list("module__name", "dependency__name", "version")
    for module, dependency, version in rows.order_by("module__name", "dependency__name"):
        graph[module].append((dependency, version))
    return dict(graph)


def resolve_modules(roots: list[tuple[str, int]], graph: Graph) -> list[tuple[str, int]]:
    """The modules `roots` need, transitively, ordered dependencies first.

    Raises `DependencyCycleError` on a cycle, `ModuleVersionConflictError` on two major
    versions of one module (both are `ModuleDependencyError`s).
    """
    order: list[tuple[str, int]] = []
    chosen: dict[str, tuple[int, str]] = {}
    done: set[str] = set()

    def visit(name: str, major: int, path: list[str], wanted_by: str) -> None:
        if name in path:
            cycle = " → ".join([*path[path.index(name) :], name])
            raise DependencyCycleError(f"Module dependency cycle: {cycle}.")
        if name in chosen:
            if chosen[name][0] != major:
                raise ModuleVersionConflictError(
                    f"Module '{name}' is needed at v{chosen[name][0]} by {chosen[name][1]} "
                    f"and at v{major} by {wanted_by}; a tenant can have one major version of a module."
                )
            if name in done:
                return
        chosen[name] = (major, wanted_by)
        for dependency, dep_major in graph.get(name, []):
            visit(dependency, dep_major, [*path, name], f"'{name}' v{major}")
        done.add(name)
        order.append((name, major))

    for name, major in roots:
        visit(name, major, [], f"the subscription to '{name}' v{major}")
    return order


def dependency_cycles(graph: Graph) -> list[list[str]]:
    """Every dependency cycle, once each, as `[a, b, …, a]` starting at its smallest name."""
    cycles: dict[tuple[str, ...], list[str]] = {}
    finished: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            ring = path[path.index(name) :]
            start = ring.index(min(ring))
            ring = ring[start:] + ring[:start]
            cycles.setdefault(tuple(ring), [*ring, ring[0]])
            return
        if name in finished:
            return
        for dependency, _ in graph.get(name, []):
            visit(dependency, [*path, name])
        finished.add(name)

    for name in sorted(graph):
        visit(name, [])
    return [cycles[key] for key in sorted(cycles)]


def dependents_of(name: str, graph: Graph) -> set[str]:
    """`name` and every module that depends on it, directly or not."""
    reverse: dict[str, set[str]] = defaultdict(set)
    for module, dependencies in graph.items():
        for dependency, _ in dependencies:
            reverse[dependency].add(module)
    found = {name}
    todo = [name]
    while todo:
        for module in reverse.get(todo.pop(), set()) - found:
            found.add(module)
            todo.append(module)
    return found


def tenant_subscriptions(*, tenant_id: int) -> list[tuple[str, int]]:
    rows = Subscription.objects.filter(tenant_id=tenant_id).order_by("module__name")
    return list(rows.values_list("module__name", "version"))


# Tenant ids per `IN (…)` list: above it, every subscription is read at once and filtered here.
SUBSCRIPTIONS_IN_LIST = 1000


def subscriptions_by_tenant(*, tenant_ids: Collection[int] | None = None) -> dict[int, list[tuple[str, int]]]:
    """Every tenant's (or those of `tenant_ids`) direct subscriptions, in one query; tenants
    without any are absent.

    The one read of a run over all tenants: a query per tenant (an N+1) was most of a run that
    had nothing to apply (docs/performance.md, section 4).
    """
    found: dict[int, list[tuple[str, int]]] = defaultdict(list)
    rows = Subscription.objects.order_by("tenant_id", "module__name")
    wanted = None if tenant_ids is None else set(tenant_ids)
    if wanted is not None and len(wanted) <= SUBSCRIPTIONS_IN_LIST:
        rows = rows.filter(tenant_id__in=wanted)
    for tenant_id, module, version in rows.values_list("tenant_id", "module__name", "version"):
        if wanted is None or tenant_id in wanted:
            found[tenant_id].append((module, version))
    return dict(found)


def tenant_effective_modules(*, tenant_id: int) -> list[tuple[str, int]]:
    """The tenant's subscriptions plus their dependencies, dependencies first."""
    return resolve_modules(tenant_subscriptions(tenant_id=tenant_id), dependency_graph())


def module_conflicts(
    subscriptions: dict[int, list[tuple[str, int]]], graph: Graph
) -> dict[int, ModuleVersionConflictError]:
    """Tenants (by id) whose effective modules need two majors of one module under `graph`.

    Cycles are not reported here (see `dependency_cycles`).
    """
    conflicts: dict[int, ModuleVersionConflictError] = {}
    for tenant_id, roots in subscriptions.items():
        try:
            resolve_modules(roots, graph)
        except ModuleVersionConflictError as exc:
            conflicts[tenant_id] = exc
        except DependencyCycleError:
            continue
    return conflicts


def tenant_names(*, tenant_ids: list[int]) -> dict[int, str]:
    """The names of the given tenants (`settings.M3SAAS_TENANT_MODEL` rows)."""
    return dict(tenant_model()._default_manager.filter(pk__in=tenant_ids).values_list("pk", "name"))
