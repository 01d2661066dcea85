"""MySQL/MariaDB: a database and a database user per tenant, reached with the master's credentials.

Provisioning and restores run on an admin connection of their own (`admin_connect`), outside
any Django transaction (DDL commits implicitly there), on the tenant's server
(`TenantInfo.server`) with that server's account from the config (`m3saas.servers`). Backups
run the real client tools (`mysqldump`, `mysql`) with the same account, passed in a private
temporary option file (never on the command line); a dump starts with a header line
(`HEADER_PREFIX` + JSON). The schema lock stays a row in the master, whatever the server.

mysqlclient is imported where it is used: an SQLite installation need not have it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BufferedIOBase
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from m3saas.conf import Config, ServerConfig
from m3saas.engines.base import (
    COPY_CHUNK,
    OWNER_TABLE,
    BackupError,
    BackupMismatchError,
    RestoreError,
    database_unclaimed,
    owner_mark_claim,
    refuse_master,
    tenant_db_password,
)
from m3saas.exceptions import ApplicationError, ProvisioningError, ServiceUnavailableError
from m3saas.identifiers import grant_pattern, quote_mysql_identifier, validate_user_name
from m3saas.servers import server_config
from m3saas.tenancy.info import TenantInfo

logger = logging.getLogger(__name__)

HEADER_PREFIX = b"-- M3SaaS backup "
# MySQL/MariaDB error numbers that mean "the server cannot be reached", not "the query is wrong":
# client-side connection errors (2002-2055), too many connections, shutdown, killed connections.
# 1226: the tenant user's MAX_USER_CONNECTIONS reached (busy: try again), like 1040 for the server.
_UNREACHABLE_ERRORS = frozenset({1040, 1053, 1226, 1927, 2002, 2003, 2005, 2006, 2012, 2013, 2026, 2055, 4031})
# The master database's table whose rows are the tenants' schema locks (made on first use).
SCHEMA_LOCK_TABLE = "m3saas_schema_lock"
# A row lock not granted: within innodb_lock_wait_timeout (ER_LOCK_WAIT_TIMEOUT, also MariaDB's
# NOWAIT answer) or at once (MySQL 8's ER_LOCK_NOWAIT).
_LOCK_NOT_GRANTED = frozenset({1205, 3572})
_SIDE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}\$(restore|previous)$")


def admin_connect(
    *, error: type[ApplicationError], server: ServerConfig | None = None, timeout: int | None = None
) -> Any:
    """A new connection with `server`'s account (default: the master's), one statement per call;
    `error` if unreachable. `timeout` (seconds, default `DB_CONNECT_TIMEOUT`) bounds the connection
    attempt and, when given, each read and write."""
    import MySQLdb

    config = settings.M3SAAS_CONFIG
    db = server or config.default_server
    try:
        return MySQLdb.connect(
            host=db.host,
            port=db.port,
            user=db.user,
            password=db.password,
            charset=config.charset,
            multi_statements=False,
            connect_timeout=int(timeout or settings.DB_CONNECT_TIMEOUT),
            **({"read_timeout": timeout, "write_timeout": timeout} if timeout else {}),
        )
    except MySQLdb.Error as exc:
        raise error(f"Cannot reach the database server {db.name!r} ({db.address}): {exc}") from exc


def _server(tenant: TenantInfo) -> ServerConfig:
    return server_config(tenant.server)


def _charset_clause() -> str:
    """The configured character set and collation, for CREATE DATABASE."""
    config = settings.M3SAAS_CONFIG
    return f"CHARACTER SET {config.charset} COLLATE {config.collation}"


def _driver_errors() -> tuple[type[Exception], ...]:
    import MySQLdb

    return (MySQLdb.Error,)


class MySQLEngine:
    """A database with the configured collation, a user with a salted-hash password, one grant."""

    vendor = "mysql"
    backup_extension = ".sql.gz"

    # --- settings entries ---------------------------------------------------------------------

    def master_settings(self, config: Config, *, conn_max_age: int, connect_timeout: int) -> dict[str, Any]:
        db = config.database
        return {
            "ENGINE": "m3saas.engines.backends.mysql",
            "NAME": db.name,
            "USER": db.user,
            "PASSWORD": db.password,
            "HOST": db.host,
            "PORT": str(db.port),
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                "charset": config.charset,
                # One statement per call: a crafted identifier can never smuggle a second one.
                "multi_statements": False,
                "init_command": f"SET default_storage_engine={config.storage_engine}",
                # A server that is down answers `/health` and requests with a 503 quickly.
                "connect_timeout": connect_timeout,
            },
        }

    def tenant_settings(
        self, config: Config, *, name: str, user: str, password: str | None, server: ServerConfig
    ) -> dict[str, Any]:
        return {
            "ENGINE": "m3saas.engines.backends.mysql",
            "NAME": name,
            "USER": user,
            # None: registered in bulk, derived on the first connection (`m3saas.tenancy.connections`).
            "PASSWORD": "" if password is None else tenant_db_password(password),
            "HOST": server.host,
            "PORT": str(server.port),
            "OPTIONS": {
                "charset": config.charset,
                "multi_statements": False,
                "init_command": f"SET default_storage_engine={config.storage_engine}",
                # A tenant whose server is down gets its 503 quickly; other servers' tenants are unaffected.
                "connect_timeout": int(settings.DB_CONNECT_TIMEOUT),
                # MySQLdb would send `SET autocommit=0`, which Django reverses at once: one round trip
                # per login saved (Django still sets autocommit itself after connecting).
                "autocommit": None,
            },
        }

    # --- provisioning -------------------------------------------------------------------------

    @property
    def user_host(self) -> str:
        return str(settings.TENANT_DB_USER_HOST)

    @property
    def user_max_connections(self) -> int:
        """Connections a tenant's user may hold at once (0: only the server's own limits)."""
        return int(settings.TENANT_DB_MAX_CONNECTIONS)

    def database_create(self, tenant: TenantInfo, *, legacy_mark_adoptable: Callable[[], bool] | None = None) -> None:
        refuse_master(self, tenant)
        validate_user_name(tenant.user)
        database = quote_mysql_identifier(tenant.name)
        conn = admin_connect(error=ProvisioningError, server=_server(tenant))
        try:
            with conn.cursor() as cur:
                existed = self._database_exists(cur, tenant.name) and not self._unclaimed(cur, tenant.name)
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {database} {_charset_clause()}")
                # The mark is checked before the user is touched: nothing of another's is altered.
                self._owner_mark_claim(cur, tenant, existed=existed, adopt_legacy=legacy_mark_adoptable)
                self._check_user_grants(cur, tenant)
                password = tenant_db_password(tenant.password)
                account = (tenant.user, self.user_host, password, self.user_max_connections)
                limited = "IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS %s"
                cur.execute(f"CREATE USER IF NOT EXISTS %s@%s {limited}", account)
                # Keeps the password and the connection limit in step when they (or the salt) changed.
                cur.execute(f"ALTER USER %s@%s {limited}", account)
                cur.execute(
                    f"GRANT ALL PRIVILEGES ON {grant_pattern(tenant.name)}.* TO %s@%s", (tenant.user, self.user_host)
                )
        finally:
            conn.close()

    @staticmethod
    def _database_exists(cur: Any, name: str) -> bool:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        return cur.fetchone() is not None

    @staticmethod
    def _unclaimed(cur: Any, name: str) -> bool:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (name,))
        tables = {row[0] for row in cur.fetchall()}
        return database_unclaimed(cur, tables=tables, owner=f"{quote_mysql_identifier(name)}.`{OWNER_TABLE}`")

    @staticmethod
    def _owner_mark_claim(
        cur: Any, tenant: TenantInfo, *, existed: bool, adopt_legacy: Callable[[], bool] | None
    ) -> None:
        cur.execute(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (tenant.name, OWNER_TABLE),
        )
        owner_mark_claim(
            cur,
            tenant=tenant,
            table=f"{quote_mysql_identifier(tenant.name)}.`{OWNER_TABLE}`",
            insert="INSERT IGNORE INTO",
            param="%s",
            existed=existed,
            marked=cur.fetchone() is not None,
            adopt_legacy=adopt_legacy,
        )

    def _check_user_grants(self, cur: Any, tenant: TenantInfo) -> None:
        """An existing account may hold nothing but this tenant's database: never adopt another one."""
        cur.execute("SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s", (tenant.user, self.user_host))
        if cur.fetchone() is None:
            return
        cur.execute("SHOW GRANTS FOR %s@%s", (tenant.user, self.user_host))
        own = f" ON {grant_pattern(tenant.name)}.* "
        foreign = [
            row[0] for row in cur.fetchall() if not row[0].startswith("GRANT USAGE ON *.*") and own not in row[0]
        ]
        if foreign:
            raise ProvisioningError(
                f"Database user {tenant.user!r} already exists with other privileges; it is not this tenant's "
                "account. Give the tenant another user, or drop that account first."
            )

    def database_drop(self, tenant: TenantInfo) -> None:
        refuse_master(self, tenant)
        validate_user_name(tenant.user)
        conn = admin_connect(error=ProvisioningError, server=_server(tenant))
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {quote_mysql_identifier(tenant.name)}")
                cur.execute("DROP USER IF EXISTS %s@%s", (tenant.user, self.user_host))
        finally:
            conn.close()

    def database_exists(self, tenant: TenantInfo) -> bool:
        conn = admin_connect(error=ProvisioningError, server=_server(tenant))
        try:
            with conn.cursor() as cur:
                return self._database_exists(cur, tenant.name)
        finally:
            conn.close()

    # --- running ------------------------------------------------------------------------------

    @contextmanager
    def schema_lock(self, tenant: TenantInfo, *, timeout: int) -> Iterator[bool]:
        """A row lock in the master database's `SCHEMA_LOCK_TABLE`, held on a connection of its own.

        Tenant users cannot reach the master database, so no tenant can take or hold this lock
        (a server-wide `GET_LOCK` name is open to every account). The transaction ends with the
        block; if the process dies, the server ends it with the connection. Waits at least 1 s.
        """
        import MySQLdb

        table = f"{_ident(str(connections[DEFAULT_DB_ALIAS].settings_dict['NAME']))}.`{SCHEMA_LOCK_TABLE}`"
        conn = admin_connect(error=ProvisioningError)  # the master's server, whatever the tenant's
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (name VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB")
                cur.execute("SET SESSION innodb_lock_wait_timeout = %s", (max(1, timeout),))
                # timeout 0: NOWAIT, the answer at once (whether a live process holds it).
                wait = " NOWAIT" if timeout <= 0 else ""
                try:
                    cur.execute(f"SELECT 1 FROM {table} WHERE name = %s", (tenant.name,))  # noqa: S608
                    if cur.fetchone() is None:
                        cur.execute(f"INSERT IGNORE INTO {table} (name) VALUES (%s)", (tenant.name,))  # noqa: S608
                        conn.commit()
                    cur.execute(f"SELECT name FROM {table} WHERE name = %s FOR UPDATE{wait}", (tenant.name,))  # noqa: S608
                    acquired = True
                except MySQLdb.OperationalError as exc:
                    if exc.args[0] not in _LOCK_NOT_GRANTED:
                        raise
                    acquired = False
            yield acquired
        finally:
            conn.close()  # ends the transaction, and with it the row lock

    def server_problem(self, server: ServerConfig, *, timeout: int | None = None) -> str | None:
        try:
            conn = admin_connect(error=ServiceUnavailableError, server=server, timeout=timeout)
        except ServiceUnavailableError as exc:
            return exc.message
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        except _driver_errors() as exc:
            return f"Database server {server.name!r} ({server.address}) does not answer: {exc}"
        finally:
            conn.close()
        return None

    def is_unavailable(self, error: BaseException) -> bool:
        code = error.args[0] if error.args else None
        return isinstance(code, int) and code in _UNREACHABLE_ERRORS

    # --- backups ------------------------------------------------------------------------------

    def master_names(self, config: Config) -> tuple[str, str | None]:
        return config.database.name, config.database.user

    def master_backup_name(self) -> str:
        return str(connections[DEFAULT_DB_ALIAS].settings_dict["NAME"])

    def backup_dump(self, *, alias: str, database: str, header: dict[str, str], sink: BufferedIOBase) -> None:
        # --single-transaction: a consistent InnoDB snapshot without locking tenants out of their data.
        # --routines/--triggers: a module's stored code comes back with its tables.
        # No --databases: the dump holds no CREATE DATABASE/USE, so it loads only where restore puts it.
        # --no-tablespaces: needs no PROCESS privilege. --hex-blob: binary columns survive any charset.
        # A tenant alias names its server; the master's (`default`) is on the default server.
        server = server_config(str(connections[alias].settings_dict.get("M3SAAS_SERVER") or ""))
        with _option_file(server) as option_file:
            command = [
                settings.MYSQLDUMP_COMMAND,
                f"--defaults-extra-file={option_file}",
                "--single-transaction",
                "--routines",
                "--triggers",
                "--no-tablespaces",
                "--hex-blob",
                f"--default-character-set={settings.M3SAAS_CONFIG.charset}",
                str(connections[alias].settings_dict["NAME"]),
            ]
            with tempfile.TemporaryFile() as errors:
                sink.write(HEADER_PREFIX + json.dumps(header, sort_keys=True).encode() + b"\n")
                try:
                    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)  # noqa: S603
                except OSError as exc:
                    raise BackupError(
                        f"Cannot run {settings.MYSQLDUMP_COMMAND!r} ({exc.strerror or exc}): install the MariaDB "
                        "client tools (Debian: apt-get install mariadb-client) or set MYSQLDUMP_COMMAND."
                    ) from exc
                assert process.stdout is not None
                shutil.copyfileobj(process.stdout, sink, COPY_CHUNK)
                code = process.wait()
                if code != 0:
                    errors.seek(0)
                    message = errors.read().decode(errors="replace").strip()
                    raise BackupError(f"mysqldump of {database} failed (exit {code}): {message}")

    def backup_header(self, plain: Path) -> dict[str, str] | None:
        with plain.open("rb") as fh:
            if fh.read(len(HEADER_PREFIX)) != HEADER_PREFIX:
                return None
            try:
                return dict(json.loads(fh.readline(4096)))
            except ValueError as exc:
                raise BackupMismatchError(f"{plain.name}: unreadable backup header ({exc}).") from exc

    def backup_load(
        self, *, tenant: TenantInfo, plain: Path, legacy_mark_adoptable: Callable[[], bool] | None = None
    ) -> None:
        """Load the dump into a scratch database, then swap its tables in for the tenant's.

        Nothing of the tenant's is touched until the dump has loaded cleanly; a failure at any
        step drops the scratch database and leaves the tenant as it was.
        """
        _client_check()
        scratch = _side_database(tenant.name, "restore")
        aside = _side_database(tenant.name, "previous")
        # The tenant's database, user and grant as provisioning makes them (all kept if present).
        self.database_create(tenant, legacy_mark_adoptable=legacy_mark_adoptable)
        conn = admin_connect(error=RestoreError, server=_server(tenant))
        try:
            with conn.cursor() as cur:
                # Leftovers of an interrupted restore: these names are this tenant's alone.
                cur.execute(f"DROP DATABASE IF EXISTS {_quote_side(scratch)}")
                cur.execute(f"DROP DATABASE IF EXISTS {_quote_side(aside)}")
                for database in (scratch, aside):
                    cur.execute(f"CREATE DATABASE {_quote_side(database)} {_charset_clause()}")
                swapped = False
                try:
                    _load(plain, scratch, server=_server(tenant))
                    _swap(cur, tenant=tenant.name, scratch=scratch, aside=aside)
                    swapped = True
                finally:
                    cur.execute(f"DROP DATABASE IF EXISTS {_quote_side(scratch)}")
                    # After a successful swap it holds the replaced tables; after a failure, normally nothing.
                    if swapped or not _table_count(cur, aside):
                        cur.execute(f"DROP DATABASE IF EXISTS {_quote_side(aside)}")
                    else:
                        logger.error("restore of %s failed half way; its tables are kept in %s", tenant.name, aside)
                        raise RestoreError(
                            f"Restoring {tenant.name} failed and its tables could not be put back: they are "
                            f"in the database `{aside}`; move them back by hand (RENAME TABLE)."
                        )
        except _driver_errors() as exc:
            raise RestoreError(f"Restoring {tenant.name} failed; its data was left as it was: {exc}") from exc
        finally:
            conn.close()

    # --- moving a tenant (`mysql_moves`) ----------------------------------------------------------

    def privileges_set(self, tenant: TenantInfo, *, access: str) -> None:
        from m3saas.engines import mysql_moves

        mysql_moves.privileges_set(tenant, access=access)

    def database_clear(self, tenant: TenantInfo) -> None:
        from m3saas.engines import mysql_moves

        mysql_moves.database_clear(tenant)

    def database_copy(self, source: TenantInfo, target: TenantInfo) -> None:
        from m3saas.engines import mysql_moves

        mysql_moves.database_copy(source, target)

    def database_fingerprint(self, tenant: TenantInfo) -> dict[str, str]:
        from m3saas.engines import mysql_moves

        return mysql_moves.database_fingerprint(tenant)

    def is_write_refused(self, error: BaseException) -> bool:
        from m3saas.engines.mysql_moves import WRITE_REFUSED_ERRORS

        code = error.args[0] if error.args else None
        return isinstance(code, int) and code in WRITE_REFUSED_ERRORS


# --- client tools --------------------------------------------------------------------------


@contextmanager
def _option_file(db: ServerConfig) -> Iterator[str]:
    """A private option file with the account of the server `db`, removed afterwards."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    folder = tempfile.mkdtemp(prefix="m3saas-mysql-")
    path = Path(folder) / "client.cnf"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(
                "[client]\n"
                f"user={quoted(db.user)}\n"
                f"password={quoted(db.password)}\n"
                f"host={quoted(db.host)}\n"
                f"port={db.port}\n"
            )
        yield str(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _client_error(exc: OSError) -> RestoreError:
    return RestoreError(
        f"Cannot run {settings.MYSQL_COMMAND!r} ({exc.strerror or exc}): install the MariaDB client "
        "tools (Debian: apt-get install mariadb-client) or set MYSQL_COMMAND. The tenant was not touched."
    )


def _client_check() -> None:
    """Fail before anything is created or dropped when the `mysql` client cannot run."""
    try:
        done = subprocess.run(  # noqa: S603
            [settings.MYSQL_COMMAND, "--version"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _client_error(exc if isinstance(exc, OSError) else OSError(str(exc))) from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise RestoreError(
            f"{settings.MYSQL_COMMAND!r} --version failed (exit {done.returncode}): {message}. "
            "The tenant was not touched."
        )


def _load(plain: Path, database: str, *, server: ServerConfig) -> None:
    with _option_file(server) as option_file, plain.open("rb") as source, tempfile.TemporaryFile() as errors:
        command = [
            settings.MYSQL_COMMAND,
            f"--defaults-extra-file={option_file}",
            f"--default-character-set={settings.M3SAAS_CONFIG.charset}",
            _check_side(database),
        ]
        try:
            code = subprocess.run(command, stdin=source, stdout=subprocess.DEVNULL, stderr=errors).returncode  # noqa: S603
        except OSError as exc:
            raise _client_error(exc) from exc
        if code != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise RestoreError(f"Loading the backup failed (exit {code}), the tenant was not touched: {message}")


# --- the table swap of a restore -----------------------------------------------------------


def _table_count(cur: Any, database: str) -> int:
    cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
    return int(cur.fetchone()[0])


def _side_database(database: str, purpose: str) -> str:
    """`<tenant>$restore` / `<tenant>$previous`: `$` is never in a tenant name, so these can
    belong to no tenant (and match no tenant's grant); at most 57 characters (MariaDB: 64)."""
    return _check_side(f"{database}${purpose}")


def _check_side(name: str) -> str:
    if not _SIDE_RE.match(name):
        raise RestoreError(f"{name!r} is not a scratch database name.")
    return name


def _quote_side(name: str) -> str:
    return f"`{_check_side(name)}`"


@dataclass
class _Schema:
    """What a database holds: tables (and sequences) to move, code objects to re-create."""

    tables: list[str] = field(default_factory=list)
    views: list[tuple[str, str]] = field(default_factory=list)  # name, CREATE VIEW
    triggers: list[tuple[str, str, str]] = field(default_factory=list)  # name, sql_mode, CREATE TRIGGER
    routines: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, name, sql_mode, CREATE


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _schema_read(cur: Any, database: str) -> _Schema:
    schema = _Schema()
    cur.execute(f"USE {_ident(database)}")
    cur.execute("SHOW FULL TABLES")
    for name, kind in cur.fetchall():
        if kind == "VIEW":
            cur.execute(f"SHOW CREATE VIEW {_ident(name)}")  # table names unqualified: the current database
            schema.views.append((name, cur.fetchone()[1]))
        else:
            schema.tables.append(name)
    cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (database,))
    for (name,) in cur.fetchall():
        cur.execute(f"SHOW CREATE TRIGGER {_ident(name)}")
        row = cur.fetchone()
        schema.triggers.append((name, row[1], row[2]))
    cur.execute(
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s", (database,)
    )
    for kind, name in cur.fetchall():
        if kind not in ("PROCEDURE", "FUNCTION"):
            continue
        cur.execute(f"SHOW CREATE {kind} {_ident(name)}")
        row = cur.fetchone()
        schema.routines.append((kind, name, row[1], row[2]))
    return schema


def _code_drop(cur: Any, database: str, schema: _Schema) -> None:
    """Drop triggers, views and routines: triggers keep a table in its database, views hold no data."""
    cur.execute(f"USE {_ident(database)}")
    for name, _mode, _sql in schema.triggers:
        cur.execute(f"DROP TRIGGER IF EXISTS {_ident(name)}")
    for name, _sql in schema.views:
        cur.execute(f"DROP VIEW IF EXISTS {_ident(name)}")
    for kind, name, _mode, _sql in schema.routines:
        cur.execute(f"DROP {kind} IF EXISTS {_ident(name)}")


def _code_create(cur: Any, database: str, schema: _Schema) -> None:
    """Re-create routines, views (in an order their dependencies allow) and triggers."""
    cur.execute(f"USE {_ident(database)}")
    cur.execute("SET @m3saas_sql_mode = @@SESSION.sql_mode")
    try:
        for _kind, _name, mode, sql in schema.routines:
            cur.execute("SET SESSION sql_mode = %s", (mode,))
            cur.execute(sql)
        cur.execute("SET SESSION sql_mode = @m3saas_sql_mode")
        waiting = list(schema.views)
        while waiting:
            failed: list[tuple[str, str]] = []
            error: Exception | None = None
            for name, sql in waiting:
                try:
                    cur.execute(sql)
                except _driver_errors() as exc:  # may use a view not created yet
                    failed.append((name, sql))
                    error = exc
            if len(failed) == len(waiting):
                assert error is not None
                raise error
            waiting = failed
        for _name, mode, sql in schema.triggers:
            cur.execute("SET SESSION sql_mode = %s", (mode,))
            cur.execute(sql)
    finally:
        cur.execute("SET SESSION sql_mode = @m3saas_sql_mode")


def _rename(cur: Any, moves: list[tuple[str, str, str]]) -> None:
    """One RENAME TABLE statement: all of `moves` (table, from, to) happen, or none does."""
    if moves:
        cur.execute(
            "RENAME TABLE "
            + ", ".join(f"{_ident(src)}.{_ident(t)} TO {_ident(dst)}.{_ident(t)}" for t, src, dst in moves)
        )


def _swap(cur: Any, *, tenant: str, scratch: str, aside: str) -> None:
    """Move the tenant's tables aside and the scratch tables in, in one statement; re-create
    the code objects of the backup in the tenant. Any failure puts the tenant's own back."""
    quote_mysql_identifier(tenant)  # validates the name
    new = _schema_read(cur, scratch)
    # MariaDB may qualify column references of a view with its database; the scratch name
    # (with its `$`) cannot be anything else, so dropping it makes them the tenant's.
    new.views = [(name, sql.replace(_ident(scratch) + ".", "")) for name, sql in new.views]
    old = _schema_read(cur, tenant)
    if OWNER_TABLE in old.tables:  # the tenant's own mark stays, whatever the backup holds
        old.tables.remove(OWNER_TABLE)
        new.tables = [t for t in new.tables if t != OWNER_TABLE]
    _code_drop(cur, scratch, new)
    _code_drop(cur, tenant, old)
    swap = [(t, tenant, aside) for t in old.tables] + [(t, scratch, tenant) for t in new.tables]
    try:
        _rename(cur, swap)
    except BaseException:
        _code_create(cur, tenant, old)
        raise
    try:
        _code_create(cur, tenant, new)
    except BaseException:
        logger.warning("restore of %s: re-creating views/triggers/routines failed; putting its data back", tenant)
        _code_drop(cur, tenant, _schema_read(cur, tenant))
        _rename(cur, [(t, dst, src) for t, src, dst in reversed(swap)])
        _code_create(cur, tenant, old)
        raise
