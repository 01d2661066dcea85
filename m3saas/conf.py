"""Load and validate the JSON configuration once; typed access through `Config`.

The file comes from `CONFIG_FILE`, else `config.json` at the project root, else the
embedded default (SQLite files under `var/`, MQTT off). A malformed file stops start-up
with one `ConfigError` line that names the file and the key.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from m3saas.passwords import KEY_HINT, KEYS_SETTING, password_key_derive, password_key_problem

BASE_DIR = Path(__file__).resolve().parent.parent
EMBEDDED_SOURCE = "<embedded default>"

BACKEND_MYSQL = "mysql"
BACKEND_SQLITE = "sqlite"
# The name of the server of `tenants.database` (the master's), where a tenant without a server lives.
DEFAULT_SERVER = "default"
# A server name in `tenants.servers` (also a `DatabaseServer.name`): short, safe in URLs and logs.
SERVER_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# A whole number as config text: ASCII digits ("²" passes `str.isdigit()` but not `int()`).
INTEGER_RE = re.compile(r"-?[0-9]+")
# A server's capacity is stored in a signed 32-bit column (MariaDB INT).
CAPACITY_MAX = 2**31 - 1


class ConfigError(ImproperlyConfigured):
    """The configuration file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class DatabaseConfig:
    backend: str
    host: str
    port: int
    name: str
    user: str
    password: str


@dataclass(frozen=True)
class ServerConfig:
    """A database server tenant databases live on, and the account that creates them there.

    `capacity` (tenants; 0: unlimited) is the starting value of the server's row, which
    the admin then owns; the password exists only here, never in the master.
    """

    name: str
    host: str
    port: int
    user: str
    password: str
    capacity: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BackupLimits:
    per_day: int
    max: int


@dataclass(frozen=True)
class MQTTConfig:
    host: str
    port: int
    username: str | None
    password: str | None


@dataclass(frozen=True)
class Config:
    source: str
    embedded: bool
    sub_directory: str
    db_salt: str
    database: DatabaseConfig
    storage_engine: str
    collation: str
    backup: BackupLimits
    mqtt: MQTTConfig | None
    var_dir: Path
    # Fernet keys of the tenant passwords stored in the master: the first encrypts, all decrypt.
    password_keys: tuple[str, ...] = ()
    # The servers of `tenants.servers`, besides the default one (`default_server`).
    servers: tuple[ServerConfig, ...] = ()

    @functools.cached_property
    def default_server(self) -> ServerConfig:
        """The server of `tenants.database`, with the master's account; named `DEFAULT_SERVER`.

        Made once per config (every tenant request compares its tenant's server, issue 16)."""
        db = self.database
        return ServerConfig(name=DEFAULT_SERVER, host=db.host, port=db.port, user=db.user, password=db.password)

    @property
    def is_mysql(self) -> bool:
        return self.database.backend == BACKEND_MYSQL

    @property
    def charset(self) -> str:
        """The character set named by the collation's prefix (`utf8mb4_unicode_ci` → `utf8mb4`)."""
        return self.collation.split("_", 1)[0]

    @property
    def tenant_sqlite_dir(self) -> Path:
        return self.var_dir / "tenants"


class _Reader:
    """Typed look-ups in the parsed JSON that fail with the file and the dotted key."""

    def __init__(self, source: str, data: Any) -> None:
        self.source = source
        self.data = data

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: key '{key}' {problem}")

    def section(self, key: str, *, required: bool = True) -> dict[str, Any] | None:
        value = self._lookup(key, required=required)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, f"must be an object, not {type(value).__name__}")
        return value

    def string(self, key: str, *, default: str | None = None) -> str:
        value = self._lookup(key, required=default is None)
        if value is None:
            assert default is not None
            return default
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {type(value).__name__}")
        return value

    def integer(self, key: str, *, default: int | None = None) -> int:
        value = self._lookup(key, required=default is None)
        if value is None or value == "":
            if default is None:
                raise self.fail(key, "is missing")
            return default
        if isinstance(value, bool):
            raise self.fail(key, "must be an integer, not a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and INTEGER_RE.fullmatch(value.strip()):
            return int(value)
        raise self.fail(key, f"must be an integer, not {value!r}")

    def password_keys(self, key: str) -> tuple[str, ...]:
        """A non-empty list of Fernet keys (a single key may be given as a string); none when absent.

        Absent, a key derived from `dbSalt` is used (see `parse_config`); with no salt either,
        encrypting or reading a tenant password fails with a line naming the file and the key.
        """
        value = self._lookup(key, required=False)
        if value is None:
            return ()
        keys = [value] if isinstance(value, str) else value
        if not isinstance(keys, list) or not keys:
            raise self.fail(key, "must be a non-empty list of Fernet keys")
        for index, item in enumerate(keys):
            problem = password_key_problem(item) if isinstance(item, str) else "must be a string"
            if problem:
                raise self.fail(f"{key}[{index}]", f"{problem}; {KEY_HINT}")
        return tuple(keys)

    def _lookup(self, key: str, *, required: bool) -> Any:
        node: Any = self.data
        walked: list[str] = []
        for part in key.split("."):
            walked.append(part)
            if not isinstance(node, dict):
                raise self.fail(".".join(walked[:-1]), "must be an object")
            if part not in node or node[part] is None:
                if required:
                    raise self.fail(".".join(walked), "is missing")
                return None
            node = node[part]
        return node


def _var_dir() -> Path:
    return Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).resolve()


def embedded_config() -> Config:
    """The configuration used when no file is given: SQLite under `var/`, MQTT off."""
    var_dir = _var_dir()
    salt = "embedded-default-salt"
    return Config(
        source=EMBEDDED_SOURCE,
        embedded=True,
        sub_directory="",
        db_salt=salt,
        database=DatabaseConfig(
            backend=BACKEND_SQLITE,
            host="",
            port=0,
            name=str(var_dir / "master.sqlite3"),
            user="",
            password="",
        ),
        storage_engine="",
        collation="",
        backup=BackupLimits(per_day=1, max=10),
        mqtt=None,
        var_dir=var_dir,
        # Derived from the built-in salt: as public as the salt, for trying M3SaaS only.
        password_keys=(password_key_derive(salt),),
    )


def parse_config(source: str, data: Any) -> Config:
    """Validate parsed JSON `data` read from `source` and return the typed configuration."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a JSON object")
    r = _Reader(source, data)
    r.section("tenants")
    r.section("tenants.database")
    backend = r.string("tenants.database.backend", default=BACKEND_MYSQL)
    if backend not in (BACKEND_MYSQL, BACKEND_SQLITE):
        raise r.fail("tenants.database.backend", f"must be 'mysql' or 'sqlite', not {backend!r}")
    var_dir = _var_dir()
    if backend == BACKEND_MYSQL:
        database = DatabaseConfig(
            backend=backend,
            host=r.string("tenants.database.host"),
            port=r.integer("tenants.database.port", default=3306),
            name=r.string("tenants.database.database"),
            user=r.string("tenants.database.user"),
            password=r.string("tenants.database.password"),
        )
        for key, value in (("host", database.host), ("database", database.name), ("user", database.user)):
            if not value:
                raise r.fail(f"tenants.database.{key}", "must not be empty")
    else:
        name = r.string("tenants.database.database", default=str(var_dir / "master.sqlite3"))
        database = DatabaseConfig(backend=backend, host="", port=0, name=name, user="", password="")
    r.section("tenants.settings", required=False)
    collation = r.string("tenants.settings.collation", default="utf8mb4_unicode_ci")
    storage_engine = r.string("tenants.settings.engine", default="InnoDB")
    if not _is_plain_word(collation):
        raise r.fail("tenants.settings.collation", f"is not a collation name: {collation!r}")
    if not _is_plain_word(storage_engine):
        raise r.fail("tenants.settings.engine", f"is not a storage engine name: {storage_engine!r}")
    r.section("tenants.backup", required=False)
    backup = BackupLimits(
        per_day=r.integer("tenants.backup.perDay", default=1),
        max=r.integer("tenants.backup.max", default=10),
    )
    mqtt: MQTTConfig | None = None
    if r.section("mqtt", required=False) is not None and r.string("mqtt.host", default=""):
        port = r.integer("mqtt.port", default=1883)
        if not 0 < port < 65536:
            raise r.fail("mqtt.port", f"must be a TCP port, not {port}")
        mqtt = MQTTConfig(
            host=r.string("mqtt.host"),
            port=port,
            username=r.string("mqtt.username", default="") or None,
            password=r.string("mqtt.password", default="") or None,
        )
    servers = _servers_parse(r, backend=backend, default=database)
    salt = r.string("dbSalt", default="")
    return Config(
        source=source,
        embedded=False,
        sub_directory=r.string("sub_directory", default="").strip("/"),
        db_salt=salt,
        database=database,
        storage_engine=storage_engine,
        collation=collation,
        backup=backup,
        mqtt=mqtt,
        var_dir=var_dir,
        # The configured keys, then one derived from dbSalt: a config without the key still
        # encrypts (the master alone gives nothing without the config), and rows written that way
        # stay readable after keys are added.
        password_keys=(*r.password_keys(KEYS_SETTING), *((password_key_derive(salt),) if salt else ())),
        servers=servers,
    )


def _servers_parse(r: _Reader, *, backend: str, default: DatabaseConfig) -> tuple[ServerConfig, ...]:
    """`tenants.servers`: `{name: {host, port, user, password, capacity}}`, MySQL only.

    A server may not be the default one again (by name or by address), nor another's address:
    two names for one server would count its tenants twice and break its capacity.
    """
    section = r.section("tenants.servers", required=False)
    if not section:
        return ()
    if backend != BACKEND_MYSQL:
        raise r.fail("tenants.servers", "needs the 'mysql' backend (SQLite keeps every tenant in one folder)")
    servers: list[ServerConfig] = []
    seen = {(default.host, default.port): DEFAULT_SERVER}
    for name in section:
        key = f"tenants.servers.{name}"
        if not isinstance(name, str) or not SERVER_NAME_RE.match(name):
            raise r.fail(key, "is not a server name (a-z first, then a-z, 0-9, _ or -; at most 32)")
        if name == DEFAULT_SERVER:
            raise r.fail(key, "is reserved for the server of tenants.database; give this server another name")
        r.section(key)
        port = r.integer(f"{key}.port", default=3306)
        if not 0 < port < 65536:
            raise r.fail(f"{key}.port", f"must be a TCP port, not {port}")
        server = ServerConfig(
            name=name,
            host=r.string(f"{key}.host"),
            port=port,
            user=r.string(f"{key}.user"),
            password=r.string(f"{key}.password"),
            capacity=r.integer(f"{key}.capacity", default=0),
        )
        if not 0 <= server.capacity <= CAPACITY_MAX:
            raise r.fail(f"{key}.capacity", f"must be 0 (no limit) to {CAPACITY_MAX}, not {server.capacity}")
        for field_name, value in (("host", server.host), ("user", server.user)):
            if not value:
                raise r.fail(f"{key}.{field_name}", "must not be empty")
        other = seen.get((server.host, server.port))
        if other is not None:
            raise r.fail(f"{key}.host", f"names the same server as {other!r} ({server.address})")
        seen[(server.host, server.port)] = name
        servers.append(server)
    return tuple(servers)


def _is_plain_word(value: str) -> bool:
    return bool(value) and value.replace("_", "").isalnum() and value.isascii()


def config_path() -> Path | None:
    """The file to read: `CONFIG_FILE`, else `config.json` at the root, else none."""
    configured = os.environ.get("CONFIG_FILE")
    if configured:
        return Path(configured)
    fallback = BASE_DIR / "config.json"
    return fallback if fallback.exists() else None


def load_config(path: Path | None = None) -> Config:
    """Read and validate the configuration at `path` (default: `config_path()`)."""
    path = path if path is not None else config_path()
    if path is None:
        return embedded_config()
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse_config(source, data)
