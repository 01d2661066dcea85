"""Seeds in every tenant database: one `manage.py seed --all-tenants` run."""

from __future__ import annotations

from collections.abc import Callable

from m3saas.seeding import SeedAction, SeedReport, seeds_run
from m3saas.tenancy.each import TenantOutcome, tenants_each
from m3saas.tenancy.info import TenantInfo
from tenants.selectors import tenant_info_list_resolved


def seeds_run_all_tenants(
    *,
    action: SeedAction,
    force: bool | None = None,
    on_result: Callable[[TenantOutcome[SeedReport]], None] | None = None,
) -> list[TenantOutcome[SeedReport]]:
    """Run `action` on every tenant database in turn, carrying on past a failing tenant.

    A tenant whose modules do not resolve is reported as failed without touching its database.
    """
    infos, unresolved = tenant_info_list_resolved()
    failed: list[TenantOutcome[SeedReport]] = []
    for info, error in unresolved:
        failed.append(TenantOutcome(tenant=info, error=error))
        if on_result is not None:
            on_result(failed[-1])

    def work(tenant: TenantInfo) -> SeedReport:
        return seeds_run(alias=tenant.alias, action=action, force=force)

    outcomes = tenants_each(work, tenants=infos, on_result=on_result, what="seeding")
    return sorted([*failed, *outcomes], key=lambda outcome: outcome.tenant.id)
