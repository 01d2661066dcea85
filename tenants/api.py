"""`/migrate[/force|/seed|/deseed]` (master) and `/{tenant_id}/migrate[…]` (one tenant), for operators.

As in the original M3SaaS every variant migrates and applies the main seeds first; `force`
rewrites every main seed, `seed` then inserts the temporary seeds, `deseed` removes them.
GET and POST do the same. Only a staff user may call them: `Authorization: Token <key>` of a
staff user's DRF token (GET or POST), or an admin session by POST only, CSRF-checked, so that
a link or an image in a page an operator opens can never run one. Anyone else gets 401/403
and nothing runs.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from m3saas.exceptions import NotFoundError, TenantNotFoundError
from m3saas.tenancy.migrate import TenantMigrationError
from tenants.models import Tenant, TenantMigrationRun
from tenants.selectors import tenant_info_from_row
from tenants.services import Seeding, master_migrate, tenant_migrate

logger = logging.getLogger(__name__)

ACTIONS = {
    None: Seeding.MAIN,
    "force": Seeding.FORCE,
    "seed": Seeding.TEMPORARY,
    "deseed": Seeding.DESEED,
}


class SessionOnPostAuthentication(SessionAuthentication):
    """An admin session counts only for POST (CSRF-checked), never for a GET a link can trigger."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        if request.method != "POST":
            return None
        return super().authenticate(request)


class _OperatorView(APIView):
    # Token first: an anonymous caller gets 401 with `WWW-Authenticate: Token`.
    authentication_classes = [TokenAuthentication, SessionOnPostAuthentication]
    permission_classes = [IsAdminUser]

    @staticmethod
    def seeding(action: str | None) -> Seeding:
        if action not in ACTIONS:
            raise NotFoundError(f"No migration action '{action}': use force, seed or deseed.")
        return ACTIONS[action]


class MasterMigrateView(_OperatorView):
    """Migrate the master database and apply its seeds (then, with AUTO_MIGRATION, pending tenants)."""

    def get(self, request: Request, action: str | None = None) -> Response:
        seed = self.seeding(action)
        logger.info("operator %s: master migrate (%s)", request.user, seed)
        master_migrate(seed=seed)
        return Response(status=204)

    post = get


class TenantMigrateView(_OperatorView):
    """Provision and migrate one tenant's database and apply its seeds; the run is recorded."""

    def get(self, request: Request, tenant_id: str, action: str | None = None) -> Response:
        seed = self.seeding(action)
        row = Tenant.objects.filter(pk=int(tenant_id)).first()
        if row is None:
            raise TenantNotFoundError(f"No tenant {tenant_id}.")
        logger.info("operator %s: migrate tenant %s (%s)", request.user, row.name, seed)
        result = tenant_migrate(tenant=tenant_info_from_row(row), seed=seed, trigger=TenantMigrationRun.Trigger.HTTP)
        if not result.ok:
            raise TenantMigrationError(f"Tenant {row.name}: {result.error}")
        return Response(status=204)

    post = get
