"""What serving a tenant needs: the `TenantInfo` value, resolved from the master and cached."""

from __future__ import annotations

from dataclasses import dataclass, field

from m3saas.conf import DEFAULT_SERVER, BackupLimits
from m3saas.modules.versions import module_label

# A tenant row's defaults (`Tenant.per_day_backups`, `Tenant.max_backups`).
DEFAULT_BACKUP_LIMITS = BackupLimits(per_day=1, max=10)


@dataclass(frozen=True)
class TenantInfo:
    """What serving a tenant needs, resolved from the master database and cached.

    `modules` is ordered dependencies first: `(module name, major version)` pairs.
    `password` is the tenant password as the master stores it, a token (`m3saas.passwords`):
    this value is cached, so it is decrypted only where the clear password is used.
    `schema_state` mirrors `Tenant.schema_state` (`pending` until the database is brought up
    to date after a registration or a subscription change; see `tenants.services`).
    """

    id: int
    name: str
    user: str
    password: str
    modules: tuple[tuple[str, int], ...] = field(default=())
    schema_state: str = "ready"
    # How many backups of the tenant database are kept per day and overall (below 1: no limit).
    backups: BackupLimits = DEFAULT_BACKUP_LIMITS
    # The database server the tenant's database lives on (`m3saas.servers.server_config`).
    server: str = DEFAULT_SERVER
    # A move to another server is under way (`Tenant.moving`): its writes are refused with a 503.
    moving: bool = False

    @property
    def alias(self) -> str:
        """The tenant's connection alias, which is also its database name."""
        return self.name

    @property
    def module_labels(self) -> tuple[str, ...]:
        return tuple(module_label(name, major) for name, major in self.modules)

    @property
    def app_labels(self) -> tuple[str, ...]:
        """Every app migrated into the tenant database: the platform's bookkeeping, then modules."""
        return ("bookkeeping", *self.module_labels)

    def has_module(self, name: str, major: int) -> bool:
        return (name, major) in self.modules

    def module_major(self, name: str) -> int | None:
        for module, major in self.modules:
            if module == name:
                return major
        return None
