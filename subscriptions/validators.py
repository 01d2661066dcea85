"""Checks of a dependency or subscription change before it is saved (admin forms, services).

Each raises Django's `ValidationError` with a message naming the modules involved, so an
admin form shows it and refuses the change.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError

from m3saas.exceptions import ModuleDependencyError
from m3saas.modules.registry import module_version_get
from subscriptions.selectors import (
    Graph,
    dependency_cycles,
    dependency_graph,
    module_conflicts,
    resolve_modules,
    subscriptions_by_tenant,
    tenant_names,
)

# Tenants named in one refusal at most; the rest are counted.
_NAMED_TENANTS = 5


def dependencies_validate(*, module: str, dependencies: Iterable[tuple[str, int]]) -> None:
    """Refuse `module`'s new set of direct `dependencies` if it makes a cycle, needs a module
    version with no folder, or gives any tenant two majors of one module."""
    edges = sorted(set(dependencies))
    missing = [f"'{name}' v{major}" for name, major in edges if module_version_get(name, major) is None]
    if missing:
        raise ValidationError(
            f"Module '{module}' cannot depend on {', '.join(missing)}: no such module version "
            "is installed (modules/<name>/v<N>/).",
            code="missing_module_version",
        )
    graph: Graph = {name: list(deps) for name, deps in dependency_graph().items() if name != module}
    if edges:
        graph[module] = edges
    cycles = [cycle for cycle in dependency_cycles(graph) if module in cycle]
    if cycles:
        raise ValidationError(
            f"This dependency makes a cycle: {' → '.join(cycles[0])}.",
            code="dependency_cycle",
        )
    conflicts = module_conflicts(subscriptions_by_tenant(), graph)
    if conflicts:
        names = tenant_names(tenant_ids=list(conflicts)[:_NAMED_TENANTS])
        first_id = next(iter(conflicts))
        others = len(conflicts) - 1
        raise ValidationError(
            f"Tenant '{names.get(first_id, first_id)}' would need two major versions of one module: "
            f"{conflicts[first_id].message}" + (f" ({others} more tenant(s) too.)" if others else ""),
            code="module_version_conflict",
        )


def subscriptions_validate(*, subscriptions: Iterable[tuple[str, int]]) -> None:
    """Refuse a tenant's new set of `subscriptions` if one names a module version that is not
    installed or its effective modules do not resolve."""
    wanted = sorted(set(subscriptions))
    missing = [f"'{name}' v{major}" for name, major in wanted if module_version_get(name, major) is None]
    if missing:
        raise ValidationError(
            f"Module {', '.join(missing)} is not installed (no modules/<name>/v<N>/ folder): "
            "deploy the module version first, or subscribe to an installed version.",
            code="missing_module_version",
        )
    try:
        resolve_modules(wanted, dependency_graph())
    except ModuleDependencyError as exc:
        raise ValidationError(exc.message, code=exc.code) from None
