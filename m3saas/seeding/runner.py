"""Running main, forced and temporary seeds (as in DBStalker) in the master or a tenant database.

The file format is `m3saas.seeding.files`.

Every seeded row is recorded in `SeedRecord` of the same database, so forcing and deseeding
never touch a row a user created. One run is one transaction on its database: a failing
record leaves the database as it was.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, models, router, transaction
from django.db.models.deletion import Collector
from django.utils import timezone

from m3saas.bookkeeping.models import SeedRecord
from m3saas.seeding.files import (
    FORCED_KEY,
    MAIN,
    TEMPORARY,
    SeedBlock,
    SeedError,
    display_path,
    seed_blocks_read,
    seed_files,
)
from m3saas.tenancy.cache import master_cache_invalidate
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.directory import tenant_directory
from m3saas.tenancy.info import TenantInfo

logger = logging.getLogger(__name__)


@dataclass
class SeedReport:
    """What one run did to one database; `skipped` counts main seeds whose id a user's row holds."""

    inserted: int
    updated: int
    deleted: int
    files: list[str]
    skipped: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted)


class SeedAction(StrEnum):
    MAIN = "main"
    TEMPORARY = "temporary"
    DESEED = "deseed"


# --- public services -------------------------------------------------------------------------


def seeds_apply(
    *, alias: str = DEFAULT_DB_ALIAS, force: bool | None = None, files: Sequence[Path] | None = None
) -> SeedReport:
    """Insert missing main seeds, rewrite forced ones (all recorded ones when `force`).

    `force` None follows `settings.ALWAYS_FORCE_MAIN_SEEDS`. A row with a seed's id that no
    seed inserted is left alone. `files` replaces the database's own seed files.
    """
    forcing = settings.ALWAYS_FORCE_MAIN_SEEDS if force is None else force
    return _run(alias, files, lambda run: run.apply_main(force=forcing))


def seeds_temporary_apply(*, alias: str = DEFAULT_DB_ALIAS, files: Sequence[Path] | None = None) -> SeedReport:
    """Insert every temporary seed again (new primary keys) and record it."""
    return _run(alias, files, lambda run: run.apply_temporary())


def seeds_temporary_remove(*, alias: str = DEFAULT_DB_ALIAS) -> SeedReport:
    """Delete the rows recorded as temporary seeds, and nothing else.

    Refused (and nothing deleted) when deleting them would cascade to a row that is not a
    temporary seed.
    """
    return _run(alias, (), lambda run: run.remove_temporary())


def seeds_run(*, alias: str = DEFAULT_DB_ALIAS, action: SeedAction, force: bool | None = None) -> SeedReport:
    if action == SeedAction.TEMPORARY:
        return seeds_temporary_apply(alias=alias)
    if action == SeedAction.DESEED:
        return seeds_temporary_remove(alias=alias)
    return seeds_apply(alias=alias, force=force)


def seed_file_list(*, alias: str = DEFAULT_DB_ALIAS) -> list[Path]:
    """The seed files of a database, in the order they are applied."""
    return seed_files(_tenant_for(alias))


# --- one run on one database -----------------------------------------------------------------


def _tenant_for(alias: str) -> TenantInfo | None:
    if alias == DEFAULT_DB_ALIAS:
        return None
    tenant = tenant_directory().get_by_alias(alias)
    tenant_connection_register(tenant)
    return tenant


@contextmanager
def _context(tenant: TenantInfo | None) -> Iterator[None]:
    if tenant is None:
        yield
        return
    # Model validation (unique checks) reads through the router, which needs the tenant.
    with use_tenant(tenant):
        yield


def _run(alias: str, files: Sequence[Path] | None, work: Callable[[_SeedRun], None]) -> SeedReport:
    tenant = _tenant_for(alias)
    paths = list(seed_files(tenant) if files is None else files)
    run = _SeedRun(alias=alias, paths=paths)
    try:
        with _context(tenant), transaction.atomic(using=alias):
            work(run)
            if alias == DEFAULT_DB_ALIAS and run.report.changed:
                # Reads cached while the transaction was open must not outlive it.
                transaction.on_commit(master_cache_invalidate, using=alias)
    except DatabaseError as exc:
        raise SeedError(f"database '{alias}' cannot be seeded (is it created and migrated?): {exc}") from exc
    report = run.report
    logger.info(
        "seeds on %s: %d inserted, %d updated, %d deleted, %d skipped",
        alias,
        report.inserted,
        report.updated,
        report.deleted,
        report.skipped,
    )
    return report


@dataclass(frozen=True)
class _Where:
    file: str
    model: str
    kind: str
    index: int
    record_id: Any = None

    def error(self, reason: str) -> SeedError:
        return SeedError(
            reason, file=self.file, model=self.model, kind=self.kind, index=self.index, record_id=self.record_id
        )


@dataclass
class _SeedRun:
    alias: str
    paths: list[Path]
    report: SeedReport = field(init=False)

    def __post_init__(self) -> None:
        self.report = SeedReport(inserted=0, updated=0, deleted=0, files=[display_path(p) for p in self.paths])

    # main seeds

    def apply_main(self, *, force: bool) -> None:
        seen: dict[tuple[str, str], _Where] = {}
        for block in self._blocks():
            model = self._model(block)
            for index, record in enumerate(block.main):
                where = _Where(block.file, block.label, MAIN, index)
                if not isinstance(record, dict):
                    raise where.error(f"a record must be an object, not {type(record).__name__}")
                where = _Where(block.file, block.label, MAIN, index, record.get("id"))
                pk = self._main_pk(model, record, where)
                forced = record.get(FORCED_KEY, False)
                if not isinstance(forced, bool):
                    raise where.error(f"'{FORCED_KEY}' must be true or false")
                values = _values(model, record, where)
                key = (model._meta.label_lower, str(pk))
                if key in seen:
                    earlier = seen[key]
                    raise where.error(f"id {pk} is seeded twice (also {earlier.file} {earlier.kind}[{earlier.index}])")
                seen[key] = where
                self._apply_main_record(model, pk, values, force=force or forced, where=where)

    def _main_pk(self, model: type[models.Model], record: dict[str, Any], where: _Where) -> Any:
        if record.get("id") is None:
            raise where.error("a main seed needs an 'id' (its primary key)")
        try:
            return model._meta.pk.to_python(record["id"])
        except ValidationError as exc:
            raise where.error(f"id: {' '.join(exc.messages)}") from None

    def _apply_main_record(
        self, model: type[models.Model], pk: Any, values: dict[str, Any], *, force: bool, where: _Where
    ) -> None:
        label = model._meta.label_lower
        row = model._base_manager.using(self.alias).filter(pk=pk).first()
        seed = SeedRecord.objects.using(self.alias).filter(model=label, object_pk=str(pk)).first()
        if row is None:
            self._insert(model, values, where, pk=pk)
            SeedRecord.objects.using(self.alias).update_or_create(
                model=label, object_pk=str(pk), defaults={"kind": MAIN, "source": where.file[:255]}
            )
            self.report.inserted += 1
            return
        if seed is None or seed.kind != MAIN:
            logger.warning("main seed %s#%s left alone: that row was not inserted by a seed", label, pk)
            self.report.skipped += 1
            return
        if force and self._rewrite(row, values, where):
            self.report.updated += 1

    def _rewrite(self, row: models.Model, values: dict[str, Any], where: _Where) -> bool:
        """Set the seeded values on an existing row in place (no delete: cascades would lose data)."""
        fields = [row._meta.get_field(name) for name in values]
        before = {f.attname: getattr(row, f.attname) for f in fields}  # type: ignore[union-attr]
        for name, value in values.items():
            setattr(row, row._meta.get_field(name).attname, value)  # type: ignore[union-attr]
        _clean(row, where)
        if all(_same(f, getattr(row, f.attname), before[f.attname]) for f in fields):  # type: ignore[union-attr]
            return False
        _save(row, self.alias, where, update_fields=[f.name for f in fields])
        return True

    # temporary seeds

    def apply_temporary(self) -> None:
        for block in self._blocks():
            model = self._model(block)
            label = model._meta.label_lower
            for index, record in enumerate(block.temporary):
                where = _Where(block.file, block.label, TEMPORARY, index)
                if not isinstance(record, dict):
                    raise where.error(f"a record must be an object, not {type(record).__name__}")
                for key in ("id", FORCED_KEY):
                    if key in record:
                        raise where.error(f"temporary seeds get new primary keys and are never forced: drop '{key}'")
                row = self._insert(model, _values(model, record, where), where)
                SeedRecord.objects.using(self.alias).update_or_create(
                    model=label,
                    object_pk=str(row.pk),
                    defaults={"kind": TEMPORARY, "source": where.file[:255], "created_at": timezone.now()},
                )
                self.report.inserted += 1

    def remove_temporary(self) -> None:
        records = SeedRecord.objects.using(self.alias).filter(kind=TEMPORARY)
        by_model: dict[str, list[str]] = defaultdict(list)
        for label, object_pk in records.values_list("model", "object_pk"):
            by_model[label].append(object_pk)
        expected: dict[str, int] = {}
        querysets = []
        for label, pks in sorted(by_model.items()):
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                logger.warning("temporary seeds of unknown model %s forgotten", label)
                continue
            keys = [model._meta.pk.to_python(p) for p in pks]
            queryset = model._base_manager.using(self.alias).filter(pk__in=keys)
            expected[model._meta.label] = queryset.count()
            querysets.append(queryset)
        deleted: dict[str, int] = defaultdict(int)
        for queryset in querysets:
            collector = _DatabaseCollector(using=self.alias, origin=queryset)
            try:
                collector.collect(queryset)
                _, per_model = collector.delete()
            except (models.ProtectedError, models.RestrictedError) as exc:
                raise SeedError(f"deseeding refused, nothing deleted: {exc.args[0]}") from None
            for model_label, count in per_model.items():
                deleted[model_label] += count
        extra = sorted(label for label, count in deleted.items() if count > expected.get(label, 0))
        if extra:
            raise SeedError(
                "deseeding refused, nothing deleted: removing the temporary seeds would also delete rows "
                f"that are not temporary seeds ({', '.join(extra)}); delete or detach those rows first"
            )
        records.delete()
        self.report.deleted = sum(deleted.values())

    # shared

    def _blocks(self) -> Iterator[SeedBlock]:
        for path in self.paths:
            yield from seed_blocks_read(path)

    def _model(self, block: SeedBlock) -> type[models.Model]:
        try:
            model = apps.get_model(block.label)
        except (LookupError, ValueError):
            raise SeedError(f"unknown model '{block.label}'", file=block.file) from None
        if model._meta.app_label == "bookkeeping":
            raise SeedError("bookkeeping rows cannot be seeded", file=block.file, model=block.label)
        if not router.allow_migrate_model(self.alias, model):
            database = "the master database" if self.alias == DEFAULT_DB_ALIAS else f"tenant database '{self.alias}'"
            raise SeedError(f"this model has no table in {database}", file=block.file, model=block.label)
        return model

    def _insert(self, model: type[models.Model], values: dict[str, Any], where: _Where, pk: Any = None) -> models.Model:
        row = model()
        if pk is not None:
            row.pk = pk
        for name, value in values.items():
            setattr(row, model._meta.get_field(name).attname, value)  # type: ignore[union-attr]
        _clean(row, where)
        _save(row, self.alias, where, force_insert=True)
        return row


class _DatabaseCollector(Collector):
    """Django's deletion collector, minus relations from models that have no table in this database.

    A module may point at a dependency's model; a tenant with the dependency but not that
    module has no such table, and Django's collector would query it anyway.
    """

    def related_objects(self, related_model: Any, related_fields: Any, objs: Any) -> Any:
        queryset = super().related_objects(related_model, related_fields, objs)
        return queryset if router.allow_migrate_model(self.using, related_model) else queryset.none()


def _values(model: type[models.Model], record: dict[str, Any], where: _Where) -> dict[str, Any]:
    """The record's field values keyed by field name; unknown or unseedable fields are refused."""
    by_name: dict[str, models.Field[Any, Any]] = {}
    for f in model._meta.concrete_fields:
        by_name[f.name] = f
        by_name[f.attname] = f
    values: dict[str, Any] = {}
    for key, value in record.items():
        if key in ("id", FORCED_KEY):
            continue
        found = by_name.get(key)
        if found is None:
            try:
                model._meta.get_field(key)
            except FieldDoesNotExist:
                known = ", ".join(sorted({x.name for x in model._meta.concrete_fields}))
                raise where.error(f"unknown field '{key}' (fields: {known})") from None
            raise where.error(f"'{key}' is not a column (many-to-many and reverse relations cannot be seeded)")
        f = found
        if f.primary_key:
            raise where.error(f"give the primary key as 'id', not '{key}'")
        if f.name in values:
            raise where.error(f"field '{f.name}' is given twice")
        if isinstance(value, (dict, list)) and not isinstance(f, models.JSONField):
            raise where.error(f"{f.name}: expects a single value, not {type(value).__name__}")
        values[f.name] = value
    return values


def _same(f: Any, value: Any, before: Any) -> bool:
    """Whether a seeded value is what the row holds (a field may say: an encrypted one does)."""
    same = getattr(f, "same_value", None)
    return bool(same(value, before)) if same is not None else bool(value == before)


def _clean(row: models.Model, where: _Where) -> None:
    try:
        row.full_clean()
    except ValidationError as exc:
        raise where.error(_describe(exc)) from None
    for f in row._meta.concrete_fields:
        value = getattr(row, f.attname)
        if isinstance(f, models.DateTimeField) and value is not None and timezone.is_naive(value) and settings.USE_TZ:
            setattr(row, f.attname, timezone.make_aware(value))


def _save(row: models.Model, alias: str, where: _Where, **kwargs: Any) -> None:
    try:
        with transaction.atomic(using=alias):
            row.save(using=alias, **kwargs)
    except DatabaseError as exc:
        raise where.error(f"the database refused the row: {exc}") from None


def _describe(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        parts = []
        for name, messages in exc.message_dict.items():
            text = " ".join(messages)
            parts.append(text if name == "__all__" else f"{name}: {text}")
        return "; ".join(parts)
    return " ".join(exc.messages)
