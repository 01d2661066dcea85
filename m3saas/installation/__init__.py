"""This installation's identity: a UUID made once and kept in the master database.

Every tenant database's owner mark carries it (see `m3saas.engines.base`), so a second
installation on the same database server (another master database) never takes over this
one's tenant databases, even for a tenant of the same id and name.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections

# Read once per process: the row never changes once made.
_cached: str | None = None


def installation_id() -> str:
    """This installation's id (made by the master's migrations; read once per process)."""
    global _cached
    if _cached is None:
        from m3saas.installation.models import Installation

        rows = Installation.objects.using(DEFAULT_DB_ALIAS)
        row = rows.filter(pk=Installation.SINGLETON).first()
        if row is None:  # a master whose row was deleted: made again, kept once committed
            row, _ = rows.get_or_create(pk=Installation.SINGLETON)
            if connections[DEFAULT_DB_ALIAS].in_atomic_block:
                return str(row.uuid)  # not cached: the transaction may still roll back
        _cached = str(row.uuid)
    return _cached


def installation_id_forget() -> None:
    """Read the id again on next use (tests: a flushed master loses its row, the next use makes one)."""
    global _cached
    _cached = None
