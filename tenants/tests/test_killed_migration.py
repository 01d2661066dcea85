"""A tenant migration killed at any point: a rerun completes it and closes the dead run.

The killed process is real (`killed_migration.py`, SIGKILL right after a schema statement).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections

from m3saas.db_views import view_names
from m3saas.engines import engine
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.info import TenantInfo
from modules.test.v1.models import Animal
from subscriptions.services import subscription_create
from tenants.models import Tenant, TenantMigrationRun
from tenants.selectors import tenant_info_fresh
from tenants.services import tenant_migrate
from tenants.tests.helpers import tables

# Real subprocesses must see the test's master rows.
pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
NEW_MODULES = [("tags", 1), ("notes", 1)]
NEW_TABLES = ["tags_v1_tag", "notes_v1_note"]
Status = TenantMigrationRun.Status


def _spawn(tenant: TenantInfo, mode: str, after: int, tmp_path: Path) -> subprocess.Popen[str]:
    path = tmp_path / f"{tenant.name}.pickle"
    path.write_bytes(pickle.dumps(tenant))
    env = {**os.environ, "M3SAAS_TEST_MASTER": str(connections["default"].settings_dict["NAME"])}
    if not settings.M3SAAS_CONFIG.is_mysql:
        env.pop("M3SAAS_TEST_MASTER")  # the SQLite test master is in memory: `*-schema` modes only
    command = [sys.executable, "-m", "tenants.tests.killed_migration", str(path), mode, str(after)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _subscribed_with_a_row(make_tenant) -> TenantInfo:
    """A ready tenant of test v1 holding one animal, then subscribed to tags and notes (pending)."""
    tenant = make_tenant(modules=[("test", 1)])
    with use_tenant(tenant):
        Animal.objects.create(name="Rex")
    for module, version in NEW_MODULES:
        subscription_create(tenant_id=tenant.id, module=module, version=version)
    return tenant_info_fresh(tenant_id=tenant.id)


def _fresh_v2(make_tenant) -> TenantInfo:
    """A new tenant of test v2 (a table and a view), its database created, nothing migrated."""
    tenant = make_tenant(modules=[("test", 2)], provision=False)
    engine().database_create(tenant)
    tenant_connection_register(tenant)
    return tenant


def _indexes(alias: str, names: list[str]) -> dict[str, set[str]]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        return {table: set(connection.introspection.get_constraints(cursor, table)) for table in names}


def _assert_extended(tenant: TenantInfo) -> None:
    assert tables(tenant.alias) >= {*NEW_TABLES, "test_v1_animal"}
    with use_tenant(tenant):
        assert list(Animal.objects.values_list("name", flat=True)) == ["Rex"]  # the user's row is kept


def _assert_fresh_v2(tenant: TenantInfo) -> None:
    assert "test_v2_animal" in tables(tenant.alias)
    assert view_names(tenant.alias) == {"test_v2_animal_stats"}


SCENARIOS = {
    "tables_added_to_a_tenant_with_data": (_subscribed_with_a_row, _assert_extended, NEW_TABLES),
    "new_tenant_with_a_view": (_fresh_v2, _assert_fresh_v2, ["test_v2_animal"]),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rerun_completes_a_migration_killed_after_any_schema_statement(make_tenant, tmp_path, scenario):
    make, check, new_tables = SCENARIOS[scenario]
    indexes: list[dict[str, set[str]]] = []
    for after in range(1, 40):
        tenant = make(make_tenant)
        process = _spawn(tenant, "kill-schema", after, tmp_path)
        out, err = process.communicate(timeout=120)
        if process.returncode == 0:
            assert out.strip() == "done"
            check(tenant)
            break
        assert process.returncode == -signal.SIGKILL, err
        call_command("migrate_tenants", workers=1)
        [run] = TenantMigrationRun.objects.filter(tenant_id=tenant.id, trigger="command")
        assert run.status == Status.OK, run.error
        assert Tenant.objects.get(pk=tenant.id).schema_state == Tenant.SchemaState.READY
        check(tenant)
        indexes.append(_indexes(tenant.alias, new_tables))
    else:
        pytest.fail("the migration never got through")
    assert after > 2  # the statements of every migration were kill points
    # The indexes of every completed tenant are those of the tenant migrated without a kill.
    assert indexes == [_indexes(tenant.alias, new_tables)] * len(indexes)


def test_a_running_run_left_behind_is_closed_by_the_next_run_of_its_tenant(make_tenant):
    tenant = make_tenant(provision=False)
    dead = TenantMigrationRun.objects.create(tenant_id=tenant.id)  # what a killed process leaves
    result = tenant_migrate(tenant=tenant)
    assert result.ok and result.interrupted == [dead.pk]
    dead.refresh_from_db()
    assert dead.status == Status.FAILED and dead.finished_at is not None
    assert dead.error.startswith("Interrupted:")
    assert TenantMigrationRun.objects.exclude(pk=dead.pk).get(tenant_id=tenant.id).status == Status.OK


@pytest.mark.mariadb
def test_run_of_a_killed_process_is_closed_as_interrupted_by_migrate_tenants(make_tenant, tmp_path):
    tenant = _subscribed_with_a_row(make_tenant)
    process = _spawn(tenant, "kill", 1, tmp_path)
    _, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, err
    [killed] = TenantMigrationRun.objects.filter(tenant_id=tenant.id)
    assert killed.status == Status.RUNNING and killed.finished_at is None

    call_command("migrate_tenants", workers=1, failed=True)

    killed.refresh_from_db()
    assert killed.status == Status.FAILED and killed.finished_at is not None
    assert "Interrupted" in killed.error and "stopped before it finished" in killed.error
    assert Tenant.objects.get(pk=tenant.id).schema_state == Tenant.SchemaState.READY
    _assert_extended(tenant)


@pytest.mark.mariadb
def test_run_of_a_live_process_is_not_closed(make_tenant, tmp_path, monkeypatch):
    tenant = _subscribed_with_a_row(make_tenant)
    process = _spawn(tenant, "hold", 1, tmp_path)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "holding"
        [live] = TenantMigrationRun.objects.filter(tenant_id=tenant.id)
        monkeypatch.setattr("m3saas.tenancy.migrate.SCHEMA_LOCK_TIMEOUT", 1)

        result = tenant_migrate(tenant=tenant)

        assert not result.ok and "being migrated by another process" in (result.error or "")
        live.refresh_from_db()
        assert live.status == Status.RUNNING and live.finished_at is None and result.interrupted == []
    finally:
        process.kill()
        process.communicate(timeout=60)
    monkeypatch.undo()
    assert tenant_migrate(tenant=tenant).interrupted == [live.pk]
    _assert_extended(tenant)
