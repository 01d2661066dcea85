"""Complete a migration that a killed process left half-applied.

MariaDB commits each DDL statement on its own: a process killed between a `CREATE TABLE` and
the migration's `django_migrations` row leaves the table behind, and a plain rerun stops at
`(1050, "Table ... already exists")`. (SQLite rolls a migration back, but records it after its
deferred statements, so a narrower gap exists there too.)

So each operation of a pending migration is wrapped (`migration_resumable`):

- after it runs, the number of the migration's operations done is written in the tenant
  database (`MigrationProgress`, in the same transaction where the engine has one), and a rerun
  skips those operations;
- the one operation after them may have run without being counted (killed in between): it is
  skipped when its effect is already in the database (detected: CreateModel, DeleteModel,
  AddField, RemoveField, RenameField, RenameModel, AddIndex, RemoveIndex, AddConstraint,
  RemoveConstraint; a table in the way that lacks the model's columns is reported, not used);
- of the deferred statements (indexes, constraints) of skipped operations only the missing ones
  run.

Nothing is ever dropped. An operation of another kind interrupted half-way (a RunPython or
RunSQL killed before it was counted; view operations replace their view and are safe) runs
again and must tolerate that. A MariaDB AddField killed between adding its column and dropping
the column's temporary default keeps that default in the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.ddl_references import Statement
from django.db.migrations import operations as ops
from django.db.migrations.migration import Migration
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

from m3saas.exceptions import ApplicationError

logger = logging.getLogger(__name__)

PROGRESS_TABLE = "m3saas_migration_progress"


class PartialSchemaError(ApplicationError):
    status_code = 500
    code = "tenant_migration_failed"
    default_message = "The tenant database holds a table that this migration did not make."


class MigrationProgress:
    """How many operations of each unrecorded migration have run, kept in the migrated database."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection

    def prepare(self, applied: set[tuple[str, str]]) -> None:
        """Create the table if missing; forget the migrations recorded since (`applied`)."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} "
                "(app VARCHAR(100) NOT NULL, name VARCHAR(150) NOT NULL, done INTEGER NOT NULL,"
                " PRIMARY KEY (app, name))"
            )
            cursor.execute(f"SELECT app, name FROM {PROGRESS_TABLE}")  # noqa: S608 - a constant name
            for key in set(map(tuple, cursor.fetchall())) & applied:
                self.forget(*key)

    def done(self, app: str, name: str) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT done FROM {PROGRESS_TABLE} WHERE app = %s AND name = %s", [app, name])  # noqa: S608
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def record(self, app: str, name: str, done: int) -> None:
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {PROGRESS_TABLE} WHERE app = %s AND name = %s", [app, name])  # noqa: S608
            cursor.execute(f"INSERT INTO {PROGRESS_TABLE} (app, name, done) VALUES (%s, %s, %s)", [app, name, done])  # noqa: S608

    def forget(self, app: str, name: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {PROGRESS_TABLE} WHERE app = %s AND name = %s", [app, name])  # noqa: S608


@dataclass
class _Resume:
    """One migration's resume point, read when its first operation starts."""

    progress: MigrationProgress
    app: str
    name: str
    total: int
    counted: int = 0


def migration_resumable(migration: Migration, progress: MigrationProgress) -> None:
    """Wrap `migration`'s operations (this loaded instance only) so a rerun resumes it."""
    inner = [op.inner if isinstance(op, ResumableOperation) else op for op in migration.operations]
    resume = _Resume(progress=progress, app=migration.app_label, name=migration.name, total=len(inner))
    vars(migration)["operations"] = [ResumableOperation(op, resume, index) for index, op in enumerate(inner, 1)]


class ResumableOperation(Operation):
    """Operation `index` (from 1) of a migration: skipped when done; everything else delegated."""

    def __init__(self, inner: Operation, resume: _Resume, index: int) -> None:
        self.inner, self.resume, self.index = inner, resume, index
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
        resume, connection = self.resume, schema_editor.connection
        if self.index == 1:
            resume.counted = resume.progress.done(resume.app, resume.name)
        if self.index <= resume.counted:
            skip = True
        elif self.index == resume.counted + 1:
            skip = _done(self.inner, app_label, connection, from_state, to_state)
        else:
            skip = False
        if skip:
            logger.warning(
                "%s.%s: %s already done by an interrupted run: skipped",
                resume.app,
                resume.name,
                self.inner.describe(),
            )
            _replay_deferred(self.inner, app_label, schema_editor, from_state, to_state)
        else:
            self.inner.database_forwards(app_label, schema_editor, from_state, to_state)
        resume.progress.record(resume.app, resume.name, self.index)
        if self.index == resume.total:
            _deferred_prune(schema_editor)

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


def _replay_deferred(
    op: Operation,
    app_label: str,
    schema_editor: BaseDatabaseSchemaEditor,
    from_state: ProjectState,
    to_state: ProjectState,
) -> None:
    """Replay a skipped operation with SQL collected, not run: its deferred statements are queued
    (and those queued before are renamed as the operation would), `_deferred_prune` keeps only
    the missing ones. A CreateModel's missing many-to-many tables are created."""
    collecting = schema_editor.collect_sql
    collected = getattr(schema_editor, "collected_sql", None)
    schema_editor.collect_sql, schema_editor.collected_sql = True, []
    try:
        op.database_forwards(app_label, schema_editor, from_state, to_state)
    finally:
        schema_editor.collect_sql = collecting
        if collected is None:
            del schema_editor.collected_sql
        else:
            schema_editor.collected_sql = collected
    if isinstance(op, ops.CreateModel):
        model = to_state.apps.get_model(app_label, op.name)
        if op.allow_migrate_model(schema_editor.connection.alias, model):
            tables = _tables(schema_editor.connection)
            for through in _auto_through_tables(model):
                if through._meta.db_table not in tables:
                    schema_editor.create_model(through)


def _unquoted(part: object) -> str:
    return str(part).strip('`"[]')


def _deferred_prune(schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Drop the queued deferred statements whose named index or constraint exists, and repeats."""
    connection, kept, seen = schema_editor.connection, [], set()
    for sql in schema_editor.deferred_sql:
        text = str(sql)
        if text in seen:
            continue
        seen.add(text)
        if isinstance(sql, Statement) and "name" in sql.parts and "table" in sql.parts:
            table = _unquoted(sql.parts["table"])
            if table in _tables(connection) and _unquoted(sql.parts["name"]) in _constraint_names(connection, table):
                continue
        kept.append(sql)
    schema_editor.deferred_sql[:] = kept
