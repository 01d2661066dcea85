"""Serve a tenant only from a database whose owner mark names it and this installation.

Provisioning checks the mark before it creates or changes anything; this checks it again where
a request would use the database, once per process and tenant, so a database that was never
provisioned through us (a row made with the ORM, a deleted tenant's database under a reused
name, a database swapped in by hand before the process first served it) is never served.
Measured cost: one query on the tenant's database at the first request of each tenant in a
process, none after (a set look-up), and no master query beyond reading the installation id once.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connections

from m3saas.api import is_database_unavailable
from m3saas.engines.base import OWNER_TABLE, owner_mark_read
from m3saas.exceptions import ServiceUnavailableError
from m3saas.installation import installation_id
from m3saas.tenancy.info import TenantInfo

logger = logging.getLogger(__name__)

# (tenant id, database name, server) whose mark this process has seen to be theirs: a tenant
# moved to another server is checked again there.
_verified: set[tuple[int, str, str]] = set()


class TenantUnavailableError(ServiceUnavailableError):
    code = "tenant_unavailable"
    default_message = "The tenant's database cannot be served; the operator has been told."


def tenant_owner_verify(tenant: TenantInfo) -> None:
    """Raise `TenantUnavailableError` unless the tenant's database carries its owner mark.

    The tenant's alias must be registered. A legacy mark (tenant id only, from before
    installation ids) is accepted here: the caller serves only tenants this master has ready,
    which is the rule provisioning upgrades such a mark by.
    """
    key = (tenant.id, tenant.name, tenant.server)
    if key in _verified:
        return
    installation = installation_id()
    try:
        with connections[tenant.alias].cursor() as cursor:
            mark, _ = owner_mark_read(cursor, OWNER_TABLE)
    except DatabaseError as exc:
        if is_database_unavailable(exc):
            raise  # the server is down: the usual 503, and the mark is read again next time
        logger.warning("tenant %s (#%s) not served: its owner mark cannot be read (%s)", tenant.name, tenant.id, exc)
        raise TenantUnavailableError() from exc
    if mark not in ([(tenant.id, installation)], [(tenant.id, None)]):
        logger.warning(
            "tenant %s (#%s) not served: its database's owner mark %s is not this tenant's of installation %s",
            tenant.name,
            tenant.id,
            mark,
            installation,
        )
        raise TenantUnavailableError()
    _verified.add(key)
