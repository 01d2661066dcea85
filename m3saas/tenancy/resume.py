"""Complete a migration that a killed process left half-applied.

MariaDB commits each DDL statement on its own: a process killed between a `CREATE TABLE` and
the migration's `django_migrations` row leaves the table behind, and a plain rerun stops at
`(1050, "Table ... already exists")`. (SQLite rolls a migration back, but records it after its
deferred statements, so the same gap exists there, narrower.) Each operation of a pending
migration is therefore wrapped: when its effect is already in the database it is skipped, and
of its deferred statements (indexes) only the missing ones run. Nothing is ever dropped.

Detected: CreateModel (its table, with at least the model's columns, and auto-created
many-to-many tables), DeleteModel, AddField, RemoveField, RenameField, RenameModel, AddIndex,
RemoveIndex, AddConstraint, RemoveConstraint. View operations (`m3saas.db_views`) replace their
view, so they may run again. Any other operation (RunPython, RunSQL, AlterField, …) runs again
on a rerun and must tolerate that.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.ddl_references import Statement
from django.db.migrations import operations as ops
from django.db.migrations.migration import Migration
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

from m3saas.exceptions import ApplicationError

logger = logging.getLogger(__name__)


class PartialSchemaError(ApplicationError):
    status_code = 500
    code = "tenant_migration_failed"
    default_message = "The tenant database holds a table that this migration did not make."


def migration_resumable(migration: Migration) -> None:
    """Wrap `migration`'s operations (this loaded instance only) so a rerun skips what is done."""
    # The instance's own list (Migration copies the class's): other loads are untouched.
    vars(migration)["operations"] = [
        op if isinstance(op, ResumableOperation) else ResumableOperation(op) for op in migration.operations
    ]


class ResumableOperation(Operation):
    """`inner`, skipped when its effect is already in the database; everything else delegated."""

    def __init__(self, inner: Operation) -> None:
        self.inner = inner
        # Class attributes on Operation, the inner operation's here.
        vars(self).update(
            atomic=inner.atomic,
            reversible=inner.reversible,
            reduces_to_sql=inner.reduces_to_sql,
            elidable=inner.elidable,
        )

    def describe(self) -> str:
        return str(self.inner.describe())

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        self.inner.state_forwards(app_label, state)

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        if not _done(self.inner, app_label, schema_editor.connection, from_state, to_state):
            self.inner.database_forwards(app_label, schema_editor, from_state, to_state)
            return
        logger.warning(
            "%s.%s already in %s (an earlier run was interrupted): skipped",
            app_label,
            self.inner.describe(),
            schema_editor.connection.alias,
        )
        if isinstance(self.inner, ops.CreateModel | ops.AddField):
            _finish_additions(self.inner, app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self.inner.database_backwards(app_label, schema_editor, from_state, to_state)


# --- what is in the database ----------------------------------------------------------------


def _tables(connection: BaseDatabaseWrapper) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def _columns(connection: BaseDatabaseWrapper, table: str) -> set[str]:
    with connection.cursor() as cursor:
        return {column.name for column in connection.introspection.get_table_description(cursor, table)}


def _constraint_names(connection: BaseDatabaseWrapper, table: str) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, table))


def _auto_through_tables(model: type[models.Model]) -> list[Any]:
    throughs = [field.remote_field.through for field in model._meta.local_many_to_many]
    return [through for through in throughs if through is not None and through._meta.auto_created]


def _done(
    op: Operation, app_label: str, connection: BaseDatabaseWrapper, from_state: ProjectState, to_state: ProjectState
) -> bool:
    """Whether `op`'s effect is already in the database (False: run it, as for any operation)."""
    alias = connection.alias
    if isinstance(op, ops.CreateModel):
        model = to_state.apps.get_model(app_label, op.name)
        if not op.allow_migrate_model(alias, model) or model._meta.db_table not in _tables(connection):
            return False
        missing = {f.column for f in model._meta.local_concrete_fields} - _columns(connection, model._meta.db_table)
        if missing:
            raise PartialSchemaError(
                f"Table {model._meta.db_table} already exists without column(s) {', '.join(sorted(missing))}: "
                "it was not made by this migration; rename or drop it by hand."
            )
        return True
    if isinstance(op, ops.DeleteModel):
        model = from_state.apps.get_model(app_label, op.name)
        return bool(op.allow_migrate_model(alias, model)) and model._meta.db_table not in _tables(connection)
    if isinstance(op, ops.RenameModel):
        old = from_state.apps.get_model(app_label, op.old_name)
        new = to_state.apps.get_model(app_label, op.new_name)
        tables = _tables(connection)
        return (
            bool(op.allow_migrate_model(alias, new))
            and old._meta.db_table != new._meta.db_table
            and old._meta.db_table not in tables
            and new._meta.db_table in tables
        )
    if isinstance(op, ops.AddField | ops.RemoveField):
        state = to_state if isinstance(op, ops.AddField) else from_state
        model = state.apps.get_model(app_label, op.model_name)
        if not op.allow_migrate_model(alias, model):
            return False
        field = model._meta.get_field(op.name)
        present = _field_present(connection, model, field)
        return present is True if isinstance(op, ops.AddField) else present is False
    if isinstance(op, ops.RenameField):
        old = from_state.apps.get_model(app_label, op.model_name)._meta.get_field(op.old_name)
        model = to_state.apps.get_model(app_label, op.model_name)
        new = model._meta.get_field(op.new_name)
        if not op.allow_migrate_model(alias, model) or old.column == new.column or old.column is None:
            return False
        columns = _columns(connection, model._meta.db_table)
        return old.column not in columns and new.column in columns
    if isinstance(op, ops.AddIndex | ops.AddConstraint | ops.RemoveIndex | ops.RemoveConstraint):
        named: Any = op  # the stubs lack some of these attributes
        model = to_state.apps.get_model(app_label, named.model_name)
        if not op.allow_migrate_model(alias, model):
            return False
        adding = isinstance(op, ops.AddIndex | ops.AddConstraint)
        name = (named.index if isinstance(op, ops.AddIndex) else named.constraint).name if adding else named.name
        present = name in _constraint_names(connection, model._meta.db_table)
        return present if adding else not present
    return False


def _field_present(connection: BaseDatabaseWrapper, model: type[models.Model], field: Any) -> bool | None:
    """Whether the field's column (or auto-created table) exists; None: it has none."""
    if field.many_to_many:
        through = field.remote_field.through
        return through._meta.db_table in _tables(connection) if through._meta.auto_created else None
    if field.column is None:
        return None
    return bool(field.column in _columns(connection, model._meta.db_table))


def _finish_additions(
    op: Operation,
    app_label: str,
    schema_editor: BaseDatabaseSchemaEditor,
    from_state: ProjectState,
    to_state: ProjectState,
) -> None:
    """Queue the deferred statements (indexes) of a skipped addition that are not in the database yet.

    The operation is replayed with SQL collected, not run; its immediate statements are dropped.
    """
    connection = schema_editor.connection
    queued, collecting = schema_editor.deferred_sql, schema_editor.collect_sql
    collected = getattr(schema_editor, "collected_sql", None)
    # A fresh list: a replay may run and reset the queue (SQLite rebuilds tables that way).
    schema_editor.deferred_sql, schema_editor.collect_sql, schema_editor.collected_sql = [], True, []
    try:
        op.database_forwards(app_label, schema_editor, from_state, to_state)
        replayed = schema_editor.deferred_sql
    finally:
        schema_editor.deferred_sql, schema_editor.collect_sql = queued, collecting
        if collected is None:
            del schema_editor.collected_sql
        else:
            schema_editor.collected_sql = collected
    queued.extend(sql for sql in replayed if _statement_needed(connection, sql))
    if isinstance(op, ops.CreateModel):
        tables = _tables(connection)
        for through in _auto_through_tables(to_state.apps.get_model(app_label, op.name)):
            if through._meta.db_table not in tables:
                schema_editor.create_model(through)


def _unquoted(part: object) -> str:
    return str(part).strip('`"[]')


def _statement_needed(connection: BaseDatabaseWrapper, sql: Any) -> bool:
    """Whether a replayed deferred statement must run: its named index or constraint is missing.

    A statement on a table that does not exist is left out: creating that table queues it again.
    """
    if not isinstance(sql, Statement) or "name" not in sql.parts or "table" not in sql.parts:
        return True
    table = _unquoted(sql.parts["table"])
    if table not in _tables(connection):
        return False
    return _unquoted(sql.parts["name"]) not in _constraint_names(connection, table)
