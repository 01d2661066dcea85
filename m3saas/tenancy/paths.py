"""Parse `/{tenant_id}/{module}/v{version}/…` and check a tenant's subscription to that module version.

The middleware that uses them lives in the tenants app (`tenants.middleware`)."""

from __future__ import annotations

import functools
import re

from m3saas.exceptions import (
    ModuleNotSubscribedError,
    UnknownModuleError,
    VersionNotFoundError,
)
from m3saas.modules.registry import module_names, module_version_get
from m3saas.modules.versions import VERSION_RE, Version
from m3saas.tenancy.info import TenantInfo

# Path segments after the tenant id that are platform routes, not modules.
PLATFORM_SEGMENTS = frozenset({"migrate"})


# A tenant id as a URL holds it: 19 digits hold every id the database can give; a longer one is
# no tenant's (404), and never reaches `int()`, which refuses more than 4,300 digits.
TENANT_ID_PATTERN = "[0-9]{1,19}"


def tenant_path_regex(sub_directory: str) -> re.Pattern[str]:
    prefix = f"/{re.escape(sub_directory)}" if sub_directory else ""
    return re.compile(rf"^{prefix}/(?P<tenant>{TENANT_ID_PATTERN})/(?P<module>[^/]+)(?:/(?P<version>[^/]*))?")


def resolve_module_version(tenant: TenantInfo, module: str, segment: str | None) -> Version:
    """Check that `tenant` may use `module` at the version in `segment` (`v1.4`); return it."""
    if module not in module_names():
        raise UnknownModuleError(f"No module named '{module}'.")
    if not segment:
        raise VersionNotFoundError(f"Give a version after the module: /{tenant.id}/{module}/v1/…")
    if not segment.startswith("v") or not VERSION_RE.fullmatch(segment[1:]):
        raise VersionNotFoundError(f"'{segment}' is not a version: use v1, v1.4, v1.0.1.")
    version = _version(segment[1:])
    subscribed = tenant.module_major(module)
    if subscribed is None:
        raise ModuleNotSubscribedError(f"Tenant {tenant.id} is not subscribed to module '{module}'.")
    if subscribed != version.major:
        raise VersionNotFoundError(f"Tenant {tenant.id} uses module '{module}' at v{subscribed}, not v{version.major}.")
    if module_version_get(module, version.major) is None:
        raise VersionNotFoundError(f"Module '{module}' has no version v{version.major}.")
    return version


@functools.lru_cache(maxsize=256)
def _version(text: str) -> Version:
    """A version segment already checked against `VERSION_RE`, parsed once (every request has one)."""
    return Version(text)
