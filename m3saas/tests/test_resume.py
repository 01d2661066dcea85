"""A migration that an interrupted run left half-applied is completed, whatever operation it stopped at.

The killed-process tests (tenants/tests/test_killed_migration.py) cover the module migrations
statement by statement; here every operation kind `m3saas.tenancy.resume` detects is applied
up to operation k (with and without the deferred indexes), counted or not (killed just before
or just after counting it), then the whole migration again.
"""

from __future__ import annotations

import pytest
from django.db import connections, models
from django.db.migrations import operations as ops
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.info import TenantInfo
from m3saas.tenancy.resume import MigrationProgress, PartialSchemaError, migration_resumable

pytestmark = pytest.mark.django_db

APP = "test_v1"
TABLE = "test_v1_resumed"
NAME = "0099_resumed"


def _operations() -> list[ops.base.Operation]:
    return [
        ops.CreateModel(
            "Resumed",
            fields=[
                ("id", models.BigAutoField(primary_key=True)),
                ("label", models.CharField(max_length=32, db_index=True)),
            ],
        ),
        ops.AddField("resumed", "code", models.CharField(max_length=8, default="", db_index=True)),
        ops.AddIndex("resumed", models.Index(fields=["code", "label"], name="resumed_code_label_idx")),
        ops.AddConstraint("resumed", models.UniqueConstraint(fields=["code"], name="resumed_code_uniq")),
        ops.AddField("resumed", "obsolete", models.IntegerField(null=True)),
        ops.RenameField("resumed", "obsolete", "dropped"),
        ops.RemoveField("resumed", "dropped"),
        ops.RemoveConstraint("resumed", "resumed_code_uniq"),
        ops.RemoveIndex("resumed", "resumed_code_label_idx"),
    ]


def _apply(tenant: TenantInfo, operations: list[ops.base.Operation], *, counted: int, deferred: bool) -> None:
    """Apply `operations`, `counted` of them counted; `deferred=False`: stop before the indexes."""
    progress = MigrationProgress(connections[tenant.alias])
    progress.prepare(set())
    progress.record(APP, NAME, counted)
    with use_tenant(tenant), connections[tenant.alias].schema_editor() as editor:
        state = ProjectState()
        for operation in operations:
            after = state.clone()
            operation.state_forwards(APP, after)
            operation.database_forwards(APP, editor, state, after)
            state = after
        if not deferred:
            editor.deferred_sql.clear()


def _rerun(tenant: TenantInfo) -> None:
    migration = Migration(NAME, APP)
    vars(migration)["operations"] = _operations()
    progress = MigrationProgress(connections[tenant.alias])
    progress.prepare(set())
    migration_resumable(migration, progress)
    with use_tenant(tenant), connections[tenant.alias].schema_editor(atomic=migration.atomic) as editor:
        migration.apply(ProjectState(), editor)
    progress.forget(APP, migration.name)


def _schema(tenant: TenantInfo) -> tuple[set[str], set[str]]:
    connection = connections[tenant.alias]
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, TABLE)}
        return columns, set(connection.introspection.get_constraints(cursor, TABLE))


def _drop(tenant: TenantInfo) -> None:
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute(f"DROP TABLE {TABLE}")


def test_rerun_completes_a_migration_stopped_after_any_operation(make_tenant):
    tenant = make_tenant()
    _rerun(tenant)
    clean = _schema(tenant)
    _drop(tenant)
    assert clean[0] == {"id", "label", "code"}
    for done in range(1, len(_operations()) + 1):
        for counted in (done - 1, done):
            for deferred in (True, False):
                _apply(tenant, _operations()[:done], counted=counted, deferred=deferred)
                _rerun(tenant)
                assert _schema(tenant) == clean, (done, counted, deferred)
                _drop(tenant)


def test_a_foreign_table_in_the_way_is_reported_and_kept(make_tenant):
    tenant = make_tenant()
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute(f"CREATE TABLE {TABLE} (stray INTEGER)")
        cursor.execute(f"INSERT INTO {TABLE} (stray) VALUES (7)")
    with pytest.raises(PartialSchemaError, match=f"{TABLE} already exists without column"):
        _rerun(tenant)
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute(f"SELECT stray FROM {TABLE}")
        assert [tuple(row) for row in cursor.fetchall()] == [(7,)]
