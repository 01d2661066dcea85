"""Two migrations of one tenant database at once: one applies, the other waits and finds nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from m3saas.engines import engine
from m3saas.tenancy.migrate import tenant_migrate_schema

pytestmark = pytest.mark.django_db


def test_concurrent_migrations_of_one_tenant_apply_each_migration_once(make_tenant):
    tenant = make_tenant(modules=[("test", 2)], provision=False)
    engine().database_create(tenant)
    start = threading.Barrier(3)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        start.wait()
        try:
            results.append(tenant_migrate_schema(tenant))
        except BaseException as exc:  # reported below, with the other thread's outcome
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    applied = sorted(name for result in results for name in result)
    assert applied == sorted(set(applied))  # no migration applied twice
    assert "test_v2.0001_initial" in applied
    assert sum(1 for result in results if result) == 1
