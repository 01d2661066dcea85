"""The database servers tenant databases live on, as the config declares them.

The platform's one look-up of a server's address and account: `server_config(name)`. The
default server (`DEFAULT_SERVER`) is the one of `tenants.database`, reached with the master's
account; the others come from `tenants.servers`. Which servers exist for placement, their
capacity and state are the master's (`tenants.models.DatabaseServer`); their passwords are
only ever here, in the config file.
"""

from __future__ import annotations

from django.conf import settings

from m3saas.conf import DEFAULT_SERVER, ServerConfig
from m3saas.exceptions import ServiceUnavailableError

__all__ = ["DEFAULT_SERVER", "ServerConfig", "ServerUnknownError", "server_config", "server_configs"]


class ServerUnknownError(ServiceUnavailableError):
    """A server name the config file does not declare: its tenants cannot be reached (503) until
    the config names it again."""

    code = "server_unknown"
    default_message = "No such database server in the configuration."


def server_configs() -> tuple[ServerConfig, ...]:
    """Every configured server, the default one first."""
    config = settings.M3SAAS_CONFIG
    return (config.default_server, *config.servers)


def server_config(name: str | None = None) -> ServerConfig:
    """The server `name` (None or blank: the default one); `ServerUnknownError` when the config lacks it."""
    config = settings.M3SAAS_CONFIG
    if not name or name == DEFAULT_SERVER:
        return config.default_server
    for server in config.servers:
        if server.name == name:
            return server
    raise ServerUnknownError(
        f"Database server {name!r} is not in {config.source} (tenants.servers.{name}): add its host, port, "
        "user and password there."
    )
