"""MySQL/MariaDB: what moving a tenant's database to another server needs (`MySQLEngine` delegates here).

Each function acts on the server a `TenantInfo` names (`TenantInfo.server`), with that server's
account from the config. The write freeze is the database's own: the tenant user keeps only
read privileges on its database and its open sessions are ended, because MariaDB applies a
changed database-level grant to a session only at its next `USE` (measured: a session opened
before the REVOKE kept inserting). The copy streams `mysqldump --single-transaction` of the
source into the `mysql` client on the target; the owner mark is not copied, the target keeps the
one its provisioning wrote.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
import time
from typing import IO, Any

from django.conf import settings

from m3saas.engines.base import OWNER_TABLE, MoveError
from m3saas.engines.mysql import (
    _code_drop,
    _driver_errors,
    _ident,
    _option_file,
    _schema_read,
    _server,
    admin_connect,
)
from m3saas.identifiers import grant_pattern, quote_mysql_identifier, validate_database_name, validate_user_name
from m3saas.tenancy.info import TenantInfo

logger = logging.getLogger(__name__)

# Read privileges a frozen tenant user keeps: SELECT (tables and views), SHOW VIEW, EXECUTE (stored
# functions in reads; a DEFINER routine that writes is refused, the definer being the tenant user).
FROZEN_PRIVILEGES = "SELECT, SHOW VIEW, EXECUTE"
# Seconds to wait for the ended sessions of a tenant user to be gone from the server.
SESSIONS_END_TIMEOUT = 30.0
# ER_NO_SUCH_THREAD: the session ended by itself between the listing and the KILL.
_NO_SUCH_THREAD = 1094
# Errors that mean "this account may not do that here": a frozen or retired tenant's writes
# (1142 table, 1143 column, 1370 routine) and its connections once retired (1044 database).
WRITE_REFUSED_ERRORS = frozenset({1044, 1142, 1143, 1370})


def _connect(tenant: TenantInfo) -> Any:
    return admin_connect(error=MoveError, server=_server(tenant))


def _grant_set(cur: Any, tenant: TenantInfo, privileges: str | None) -> None:
    """Leave the tenant user exactly `privileges` on its database (None: nothing at all)."""
    validate_user_name(tenant.user)
    account = (tenant.user, str(settings.TENANT_DB_USER_HOST))
    cur.execute("SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s", account)
    if cur.fetchone() is None:
        return  # no account (dropped by hand, or never provisioned here): nothing can write
    # The account holds only its database's grant (provisioning checks it), so ALL covers it.
    cur.execute("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s", account)
    if privileges:
        cur.execute(f"GRANT {privileges} ON {grant_pattern(tenant.name)}.* TO %s@%s", account)


def _sessions_end(cur: Any, user: str) -> int:
    """End every session of `user` and wait until the server has none left; how many were ended.

    A killed session's transaction is rolled back (its write was never acknowledged); one that was
    committing finishes first, which is why the listing is polled until it is empty.
    """
    import MySQLdb

    cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
    ids = [int(row[0]) for row in cur.fetchall()]
    ended = len(ids)
    for session in ids:
        try:
            cur.execute("KILL CONNECTION %s", (session,))
        except MySQLdb.OperationalError as exc:
            if exc.args[0] != _NO_SUCH_THREAD:
                raise
    deadline = time.monotonic() + SESSIONS_END_TIMEOUT
    while ids:
        marks = ", ".join(["%s"] * len(ids))
        cur.execute(f"SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({marks})", ids)  # noqa: S608
        ids = [int(row[0]) for row in cur.fetchall()]
        if ids and time.monotonic() > deadline:
            raise MoveError(f"Sessions {ids} of {user} did not end within {SESSIONS_END_TIMEOUT:.0f} s.")
        if ids:
            time.sleep(0.05)
    return ended


def privileges_set(tenant: TenantInfo, *, access: str) -> None:
    """Give the tenant user `access` on its database on its server: `write` (as provisioning),
    `read` (frozen) or `none` (retired); its open sessions are ended, and gone, when this returns."""
    privileges = {"write": "ALL PRIVILEGES", "read": FROZEN_PRIVILEGES, "none": None}[access]
    conn = _connect(tenant)
    try:
        with conn.cursor() as cur:
            _grant_set(cur, tenant, privileges)
            # Either way: a session keeps the privileges it had until its next USE.
            _sessions_end(cur, tenant.user)
    except _driver_errors() as exc:
        raise MoveError(f"Setting {tenant.name}'s privileges to {access} on {tenant.server!r} failed: {exc}") from exc
    finally:
        conn.close()


def database_clear(tenant: TenantInfo) -> None:
    """Drop everything in the tenant's database on its server but its owner mark (a copy's leftovers)."""
    database = quote_mysql_identifier(tenant.name)
    conn = _connect(tenant)
    try:
        with conn.cursor() as cur:
            schema = _schema_read(cur, tenant.name)
            _code_drop(cur, tenant.name, schema)
            cur.execute("SET SESSION foreign_key_checks = 0")
            for table in schema.tables:
                if table != OWNER_TABLE:
                    cur.execute(f"DROP TABLE IF EXISTS {database}.{_ident(table)}")
    finally:
        conn.close()


def _pump(source: IO[bytes], sink: IO[bytes], failed: list[BaseException]) -> None:
    try:
        shutil.copyfileobj(source, sink, 1024 * 1024)
    except BaseException as exc:  # e.g. the loader died: its stdin is a broken pipe
        failed.append(exc)
    finally:
        try:
            sink.close()
        except OSError as exc:
            failed.append(exc)


def database_copy(source: TenantInfo, target: TenantInfo) -> None:
    """Stream a consistent snapshot of the tenant's database on `source.server` into its database
    on `target.server` (provisioned and emptied by the caller); views, routines and triggers too.

    Raises `MoveError` with the client tools' message when either side fails.
    """
    validate_database_name(source.name)
    name = source.name
    charset = f"--default-character-set={settings.M3SAAS_CONFIG.charset}"
    with (
        _option_file(_server(source)) as source_options,
        _option_file(_server(target)) as target_options,
        tempfile.TemporaryFile() as dump_errors,
        tempfile.TemporaryFile() as load_errors,
    ):
        dump = [
            settings.MYSQLDUMP_COMMAND,
            f"--defaults-extra-file={source_options}",
            # One consistent snapshot; the tenant's writes are frozen anyway.
            "--single-transaction",
            "--routines",
            "--triggers",
            "--no-tablespaces",
            "--hex-blob",
            charset,
            f"--ignore-table={name}.{OWNER_TABLE}",
            name,
        ]
        load = [settings.MYSQL_COMMAND, f"--defaults-extra-file={target_options}", charset, name]
        try:
            dumper = subprocess.Popen(dump, stdout=subprocess.PIPE, stderr=dump_errors)  # noqa: S603
        except OSError as exc:
            raise MoveError(f"Cannot run {settings.MYSQLDUMP_COMMAND!r}: {exc.strerror or exc}") from exc
        try:
            loader = subprocess.Popen(load, stdin=subprocess.PIPE, stderr=load_errors)  # noqa: S603
        except OSError as exc:
            dumper.kill()
            dumper.wait()
            raise MoveError(f"Cannot run {settings.MYSQL_COMMAND!r}: {exc.strerror or exc}") from exc
        assert dumper.stdout is not None and loader.stdin is not None
        failed: list[BaseException] = []
        pump = threading.Thread(target=_pump, args=(dumper.stdout, loader.stdin, failed), daemon=True)
        pump.start()
        pump.join()
        dumped, loaded = dumper.wait(), loader.wait()
        if dumped or loaded:
            problems = []
            for code, errors, what in ((dumped, dump_errors, "mysqldump"), (loaded, load_errors, "mysql")):
                if code:
                    errors.seek(0)
                    problems.append(f"{what} exit {code}: {errors.read().decode(errors='replace').strip()[-500:]}")
            raise MoveError(f"Copying {source.name} to {target.server!r} failed: {'; '.join(problems)}")
        if failed:
            raise MoveError(f"Copying {source.name} to {target.server!r} failed: {failed[0]}")


def database_fingerprint(tenant: TenantInfo) -> dict[str, str]:
    """What the tenant's database on its server holds, to compare two copies: each table's row
    count and `CHECKSUM TABLE`, each view, routine and trigger by name (the owner mark left out).

    Checksums compare copies on servers of the same MariaDB version; a difference is a mismatch,
    never a false success.
    """
    database = quote_mysql_identifier(tenant.name)
    conn = _connect(tenant)
    try:
        with conn.cursor() as cur:
            schema = _schema_read(cur, tenant.name)
            figures: dict[str, str] = {}
            for table in sorted(schema.tables):
                if table == OWNER_TABLE:
                    continue
                cur.execute(f"SELECT COUNT(*) FROM {database}.{_ident(table)}")  # noqa: S608
                rows = int(cur.fetchone()[0])
                cur.execute(f"CHECKSUM TABLE {database}.{_ident(table)}")
                figures[f"table {table}"] = f"rows={rows} checksum={cur.fetchone()[1]}"
            for view, _sql in schema.views:
                figures[f"view {view}"] = ""
            for kind, routine, _mode, _sql in schema.routines:
                figures[f"{kind.lower()} {routine}"] = ""
            for trigger, _mode, _sql in schema.triggers:
                figures[f"trigger {trigger}"] = ""
            return figures
    finally:
        conn.close()
