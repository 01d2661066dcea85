"""Database views in module versions: a read-only model and reversible migration operations.

A view is read through an unmanaged model (`ViewModel`, `managed = False`) whose writes raise
`ReadOnlyModelError` before any SQL runs. The view itself is created, changed and dropped by
the module's migrations with `CreateView`, `ChangeView` and `DropView`; each takes either one
portable `SELECT` or one per database vendor (`{"sqlite": …, "mysql": …}`). Like `RunSQL` they
ask the router whether the app migrates on the database, so a tenant that does not have the
module version never gets its views.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core import checks
from django.db import connections, models, router
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

from m3saas.exceptions import ApplicationError

_VIEW_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

Query = str | Mapping[str, str]


class ReadOnlyModelError(ApplicationError):
    status_code = 405
    code = "read_only"
    default_message = "This resource is a database view: it can be read, not written."


def _refuse(model: type[models.Model] | models.Model, action: str) -> ReadOnlyModelError:
    name = model._meta.label
    return ReadOnlyModelError(f"{name} is a database view and cannot be written ({action} refused).")


class ReadOnlyQuerySet(models.QuerySet):
    """Reads work; every bulk write raises `ReadOnlyModelError` instead of reaching the database."""

    def create(self, **kwargs: Any) -> Any:
        raise _refuse(self.model, "create")

    def bulk_create(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(self.model, "bulk_create")

    def bulk_update(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(self.model, "bulk_update")

    def update(self, **kwargs: Any) -> int:
        raise _refuse(self.model, "update")

    def update_or_create(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(self.model, "update_or_create")

    def get_or_create(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(self.model, "get_or_create")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise _refuse(self.model, "delete")


class ReadOnlyManager(models.Manager.from_queryset(ReadOnlyQuerySet)):  # type: ignore[misc]
    pass


class ViewModel(models.Model):
    """Base of models that read a database view: unmanaged and read-only.

    Subclasses set `managed = False` and `db_table` (the view's name) in their `Meta`.
    """

    objects = ReadOnlyManager()

    class Meta:
        abstract = True
        managed = False

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise _refuse(self, "save")

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise _refuse(self, "delete")

    @classmethod
    def check(cls, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)
        if cls._meta.managed:
            errors.append(
                checks.Error(
                    f"{cls._meta.label} reads a database view but is managed.",
                    hint="Set `managed = False` in its Meta: the view is created by CreateView in a migration.",
                    obj=cls,
                    id="m3saas.E010",
                )
            )
        return errors


def _validate_view_name(name: str) -> str:
    if not _VIEW_NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a safe view name: lower-case letters, digits, underscores.")
    return name


def _query_for(query: Query, vendor: str, view_name: str) -> str:
    if isinstance(query, str):
        text = query
    else:
        if vendor not in query:
            raise ValueError(
                f"View {view_name!r} has no definition for the {vendor!r} database "
                f"(it has {', '.join(sorted(query)) or 'none'})."
            )
        text = query[vendor]
    text = text.strip().rstrip(";").strip()
    if ";" in text:
        raise ValueError(f"View {view_name!r}: the definition must be one SELECT, without ';'.")
    return text


class _ViewOperation(Operation):
    reduces_to_sql = True
    reversible = True

    def __init__(self, name: str, hints: dict[str, Any] | None = None) -> None:
        self.name = _validate_view_name(name)
        self.hints = hints or {}

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        # The view's model state comes from the CreateModel of its unmanaged model.
        pass

    def _allowed(self, app_label: str, schema_editor: BaseDatabaseSchemaEditor) -> bool:
        return bool(router.allow_migrate(schema_editor.connection.alias, app_label, **self.hints))

    # The definition after the operation (forwards) and before it (backwards); None: no view.
    forwards_query: Query | None = None
    backwards_query: Query | None = None

    def _replace(self, schema_editor: BaseDatabaseSchemaEditor, query: Query | None) -> None:
        schema_editor.execute(f"DROP VIEW IF EXISTS {schema_editor.quote_name(self.name)}")
        if query is not None:
            select = _query_for(query, schema_editor.connection.vendor, self.name)
            schema_editor.execute(f"CREATE VIEW {schema_editor.quote_name(self.name)} AS {select}")

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        if self._allowed(app_label, schema_editor):
            self._replace(schema_editor, self.forwards_query)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        if self._allowed(app_label, schema_editor):
            self._replace(schema_editor, self.backwards_query)

    @property
    def migration_name_fragment(self) -> str:
        return f"{type(self).__name__.lower()}_{self.name}"


class CreateView(_ViewOperation):
    """Create view `name` as `query`; reversed by dropping it."""

    def __init__(self, name: str, query: Query, hints: dict[str, Any] | None = None) -> None:
        super().__init__(name, hints)
        self.query = self.forwards_query = query

    def describe(self) -> str:
        return f"Create view {self.name}"


class ChangeView(_ViewOperation):
    """Replace view `name`'s definition `previous` by `query`; reversed by restoring `previous`."""

    def __init__(self, name: str, query: Query, previous: Query, hints: dict[str, Any] | None = None) -> None:
        super().__init__(name, hints)
        self.query = self.forwards_query = query
        self.previous = self.backwards_query = previous

    def describe(self) -> str:
        return f"Change view {self.name}"


class DropView(_ViewOperation):
    """Drop view `name`; reversed by creating it again as `previous`."""

    def __init__(self, name: str, previous: Query, hints: dict[str, Any] | None = None) -> None:
        super().__init__(name, hints)
        self.previous = self.backwards_query = previous

    def describe(self) -> str:
        return f"Drop view {self.name}"


def view_names(alias: str) -> set[str]:
    """The views in database `alias` (for checks and tests)."""

    with connections[alias].cursor() as cursor:
        return {info.name for info in connections[alias].introspection.get_table_list(cursor) if info.type == "v"}
