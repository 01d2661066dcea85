"""Database engine adapters: everything that differs between MySQL/MariaDB and SQLite.

One adapter per vendor (`mysql.py`, `sqlite.py`) behind the `Engine` interface (`base.py`):
the master's and a tenant's `DATABASES` entry, provisioning of tenant databases (and users),
the per-tenant schema lock, backup dump / load (with the table swap of a restore) and the test
for "the database server cannot be reached". Code outside this package asks `engine()` and
never branches on the vendor. To add an engine: one module with an `Engine` class, listed below.

`m3saas.settings` imports this package while the settings load, so no module in it may need
the app registry (or read settings) at import time.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

from m3saas.engines.base import (
    OWNER_TABLE,
    BackupError,
    BackupMismatchError,
    Engine,
    MoveError,
    RestoreError,
    master_clash,
    tenant_db_password,
)
from m3saas.engines.mysql import MySQLEngine
from m3saas.engines.sqlite import SQLiteEngine

__all__ = [
    "OWNER_TABLE",
    "BackupError",
    "BackupMismatchError",
    "Engine",
    "MoveError",
    "RestoreError",
    "engine",
    "engine_for",
    "engines",
    "tenant_db_password",
]

_ENGINES: dict[str, Engine] = {adapter.vendor: adapter for adapter in (MySQLEngine(), SQLiteEngine())}


def engine_for(vendor: str) -> Engine:
    """The adapter of `vendor` (`mysql`, `sqlite`: the config's `tenants.database.backend`)."""
    try:
        return _ENGINES[vendor]
    except KeyError:
        raise ImproperlyConfigured(f"No database engine adapter for {vendor!r}.") from None


def engine() -> Engine:
    """The adapter of the configured database backend."""
    return engine_for(settings.M3SAAS_CONFIG.database.backend)


def engines() -> tuple[Engine, ...]:
    """Every adapter: for what any vendor may have written (backup files, driver errors)."""
    return tuple(_ENGINES.values())


def validate_not_master(*, name: str, user: str) -> None:
    """Refuse a tenant database or user that is the master's own, as the config names them.

    Provisioning such a tenant would grant it the master database or change the master
    account's password.
    """
    errors = master_clash(engine_for(settings.M3SAAS_CONFIG.database.backend), name=name, user=user)
    if errors:
        raise ValidationError(errors, code="master_identifier")
