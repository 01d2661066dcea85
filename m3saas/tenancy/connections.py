"""The only place that registers tenant connection aliases in `django.db.connections`."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from m3saas.conf import get_config
from m3saas.tenancy.context import TenantInfo

logger = logging.getLogger(__name__)

# Marks the entries registered here, so tenant aliases are told apart from configured ones.
TENANT_MARK = "M3SAAS_TENANT"
_SIGNATURE = "M3SAAS_SIGNATURE"


def tenant_db_password(password: str) -> str:
    """The tenant database user's password: a SHA-256 of the configured salt and the tenant password."""
    return hashlib.sha256(f"{get_config().db_salt}{password}".encode()).hexdigest()


def tenant_database_settings(*, name: str, user: str, password: str) -> dict[str, Any]:
    """A complete `DATABASES` entry for a tenant database."""
    config = get_config()
    entry: dict[str, Any]
    if config.is_mysql:
        entry = {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": user,
            "PASSWORD": tenant_db_password(password),
            "HOST": config.database.host,
            "PORT": str(config.database.port),
            "OPTIONS": {
                "charset": config.charset,
                "multi_statements": False,
                "init_command": f"SET default_storage_engine={config.storage_engine}",
            },
        }
    else:
        entry = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(config.tenant_sqlite_dir / f"{name}.sqlite3"),
            "OPTIONS": {"timeout": 20},
        }
    entry["CONN_MAX_AGE"] = settings.TENANT_CONN_MAX_AGE
    entry["CONN_HEALTH_CHECKS"] = True
    # Never inherit ATOMIC_REQUESTS: it would open a connection to every tenant per request.
    entry["ATOMIC_REQUESTS"] = False
    entry[TENANT_MARK] = True
    # Fill Django's defaults (TIME_ZONE, TEST, ...) the way it does for configured entries.
    connections.configure_settings({DEFAULT_DB_ALIAS: {}, name: entry})
    return entry


def is_tenant_alias(alias: str) -> bool:
    entry = connections.settings.get(alias)
    return bool(entry and entry.get(TENANT_MARK))


def tenant_aliases() -> list[str]:
    return [alias for alias, entry in connections.settings.items() if entry.get(TENANT_MARK)]


def tenant_connection_register(tenant: TenantInfo) -> str:
    """Register (or refresh) the tenant's alias; cheap when it is already current."""
    alias = tenant.alias
    if alias == DEFAULT_DB_ALIAS:
        raise ValueError("a tenant cannot use the master alias 'default'")
    current = connections.settings.get(alias)
    if current is not None and not current.get(TENANT_MARK):
        raise ValueError(f"alias {alias!r} is a configured database, not a tenant")
    if current is not None and current.get(_SIGNATURE) == _signature(tenant):
        return alias
    wanted = tenant_database_settings(name=tenant.name, user=tenant.user, password=tenant.password)
    wanted[_SIGNATURE] = _signature(tenant)
    if current is not None:
        _close_in_this_thread(alias)
    connections.settings[alias] = wanted
    return alias


def _signature(tenant: TenantInfo) -> str:
    return hashlib.sha256(f"{tenant.user}\0{tenant.password}".encode()).hexdigest()


def tenant_connection_unregister(alias: str) -> None:
    """Close this thread's connection to `alias` and forget the alias."""
    if is_tenant_alias(alias):
        _close_in_this_thread(alias)
        del connections.settings[alias]


def _close_in_this_thread(alias: str) -> None:
    for conn in connections.all(initialized_only=True):
        if conn.alias == alias:
            conn.close()
            # Drop the wrapper so the next use reads the new settings.
            del connections[alias]
            return


def tenant_connections_trim(*, keep: str | None = None) -> int:
    """Close this thread's open tenant connections beyond `TENANT_MAX_OPEN_CONNECTIONS`.

    Returns how many were closed. `keep` (the alias just used) is closed last.
    """
    limit = max(settings.TENANT_MAX_OPEN_CONNECTIONS, 0)
    open_conns = [
        c
        for c in connections.all(initialized_only=True)
        if c.connection is not None and c.settings_dict.get(TENANT_MARK)
    ]
    excess = len(open_conns) - limit
    if excess <= 0:
        return 0
    open_conns.sort(key=lambda c: c.alias == keep)
    for conn in open_conns[:excess]:
        conn.close()
    return excess


def tenant_connections_register_all() -> int:
    """Register every tenant of the master database; used before a command line is parsed.

    A master database without the tenants table yet (a fresh install) registers nothing.
    """
    from django.db import DatabaseError

    from tenants.selectors import tenant_info_list

    try:
        infos = tenant_info_list()
    except DatabaseError as exc:
        logger.debug("tenants not registered: %s", exc)
        return 0
    for info in infos:
        tenant_connection_register(info)
    return len(infos)
