"""One error hierarchy; each class declares its HTTP status, code and default message."""

from __future__ import annotations


class ApplicationError(Exception):
    """An error a client or an operator can act on; rendered as `{"error": {"code", "message"}}`."""

    status_code = 400
    code = "error"
    default_message = "The request cannot be served."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class NotFoundError(ApplicationError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."


class TenantRouteNotFoundError(NotFoundError):
    """A refused `/{tenant_id}/{module}/v{version}/…`: every kind answers a caller as a plain 404.

    Which it was (no tenant, no module, no subscription, another version) would tell a caller
    not known to belong to the tenant what the tenant uses; code and message go to the log.
    """


class TenantNotFoundError(TenantRouteNotFoundError):
    code = "tenant_not_found"
    default_message = "No such tenant."


class UnknownModuleError(TenantRouteNotFoundError):
    code = "module_not_found"
    default_message = "No such module."


class ModuleNotSubscribedError(TenantRouteNotFoundError):
    code = "module_not_subscribed"
    default_message = "The tenant is not subscribed to this module."


class VersionNotFoundError(TenantRouteNotFoundError):
    code = "version_not_found"
    default_message = "No such module version."


class ServiceUnavailableError(ApplicationError):
    status_code = 503
    code = "service_unavailable"
    default_message = "A service the request needs is unavailable; try again shortly."


class TenantMovingError(ServiceUnavailableError):
    """A write to a tenant whose database is moving to another server (reads are still served).

    `Retry-After` tells the client when to try again; nothing of the refused write was kept.
    """

    code = "tenant_moving"
    default_message = "The tenant's database is moving to another server; writes resume shortly."
    # Seconds a client is told to wait (`Retry-After`): a move of a small tenant takes a few.
    retry_after = 5


class TenantNotSetError(RuntimeError):
    """A module model was used outside a tenant context: a programming error, never a fallback."""


class InvalidIdentifierError(ApplicationError):
    code = "invalid_identifier"
    default_message = "Not a safe identifier."


class ProvisioningError(ApplicationError):
    status_code = 500
    code = "provisioning_failed"
    default_message = "The tenant database could not be prepared."


class ModuleDependencyError(ApplicationError):
    status_code = 500
    code = "module_dependency_error"
    default_message = "The tenant's module dependencies cannot be resolved."
