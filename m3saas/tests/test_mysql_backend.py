"""Our MySQL backend (`m3saas.engines.backends.mysql`): a login sends one statement, not three,
and leaves the session as Django's own backend does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections
from django.db.utils import load_backend

from m3saas.engines.backends.mysql import base
from m3saas.tenancy.context import use_tenant

# What a session must look like after a login, whichever backend logged in.
SESSION = (
    "@@character_set_client, @@character_set_connection, @@character_set_results, @@collation_connection,"
    " @@default_storage_engine, @@autocommit, @@sql_auto_is_null"
)


@pytest.mark.parametrize(
    ("server_info", "variable"),
    [
        ("10.11.19-MariaDB-0+deb12u1", "tx_isolation"),
        ("5.5.5-10.6.12-MariaDB-log", "tx_isolation"),
        ("11.1.2-MariaDB", "transaction_isolation"),
        ("11.4.3-MariaDB-ubu2404", "transaction_isolation"),
        ("8.0.36", "transaction_isolation"),
        ("8.4.0-commercial", "transaction_isolation"),
        ("unknown-MariaDB", None),
    ],
)
def test_the_isolation_variable_is_named_after_the_servers_flavour(server_info: str, variable: str | None):
    assert base.isolation_variable(server_info) == variable


def test_the_names_and_the_isolation_level_join_a_plain_set_only():
    names, level = "NAMES utf8mb4", ["SESSION tx_isolation='READ-COMMITTED'"]
    assert (
        base._init_command_with("SET default_storage_engine=InnoDB", names, level)
        == "SET NAMES utf8mb4, default_storage_engine=InnoDB, SESSION tx_isolation='READ-COMMITTED'"
    )
    assert base._init_command_with(None, "NAMES utf8mb4 COLLATE utf8mb4_bin", []) == (
        "SET NAMES utf8mb4 COLLATE utf8mb4_bin"
    )
    # Anything else is sent as it is, and the stock statements follow it.
    for other in ("SET a=1; SET b=2", "SET sql_mode='STRICT_ALL_TABLES'", "DO 1", "SET a=1 -- b", "SET a=1 #b"):
        assert base._init_command_with(other, names, level) is None, other


def _session(wrapper: Any) -> tuple[tuple[Any, ...], str, int]:
    """(session settings, isolation level, statements the session ran before this reading)."""
    with wrapper.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
        statements = int(cursor.fetchone()[1]) - 1  # less the SHOW itself
        cursor.execute(f"SELECT {SESSION}")
        settings_row = cursor.fetchone()
        variable = base.isolation_variable(wrapper.connection.get_server_info())
        cursor.execute(f"SELECT @@session.{variable}")
        return settings_row, cursor.fetchone()[0], statements


def _relogin(wrapper: Any) -> tuple[tuple[Any, ...], str, int]:
    wrapper.close()
    wrapper.ensure_connection()
    return _session(wrapper)


@pytest.fixture
def tenant_entry(make_tenant: Any) -> Iterator[dict[str, Any]]:
    tenant = make_tenant()
    with use_tenant(tenant):
        connections[tenant.alias].ensure_connection()  # completes the entry's password
        yield dict(connections[tenant.alias].settings_dict)


OURS, DJANGOS = "m3saas.engines.backends.mysql", "django.db.backends.mysql"


@pytest.fixture
def wrapper() -> Iterator[Callable[..., Any]]:
    """`wrapper(entry, engine=OURS)` → a new wrapper of `entry` under `engine`, closed after the test."""
    made: list[Any] = []

    def make(entry: dict[str, Any], engine: str = OURS) -> Any:
        made.append(load_backend(engine).DatabaseWrapper({**entry, "ENGINE": engine}, alias=f"login_{len(made)}"))
        return made[-1]

    yield make
    for each in made:
        each.close()


def _server_key(entry: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The backend's key of the server an entry names (over TCP)."""
    return (entry["HOST"] or None, int(entry["PORT"]), None)


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_tenant_login_sends_one_statement_and_sets_the_session_as_django_does(tenant_entry, wrapper):
    assert tenant_entry["ENGINE"] == OURS
    ours, django = wrapper(tenant_entry), wrapper(tenant_entry, DJANGOS)
    ours.ensure_connection()
    django.ensure_connection()
    settings_ours, isolation_ours, _ = _relogin(ours)
    settings_django, isolation_django, statements_django = _relogin(django)
    assert settings_ours == settings_django
    assert isolation_ours == isolation_django == "READ-COMMITTED"
    # Django's: `init_command`, `SET NAMES`, the isolation level; ours: one `SET` of all three.
    assert statements_django == 3
    assert _relogin(ours)[2] == 1


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_servers_first_login_learns_its_flavour(tenant_entry, wrapper):
    login, key = wrapper(tenant_entry), _server_key(tenant_entry)
    login.ensure_connection()
    base._isolation_variables.pop(key, None)
    # The first after a start: Django's own isolation statement, after the `init_command`.
    assert _relogin(login)[1:] == ("READ-COMMITTED", 2)
    assert base._isolation_variables[key] == base.isolation_variable(login.connection.get_server_info())
    assert _relogin(login)[1:] == ("READ-COMMITTED", 1)


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_variable_the_server_refuses_costs_one_retried_login_then_djangos_statement(tenant_entry, wrapper):
    """A server replaced behind the process (MySQL for MariaDB), or a proxy naming another server:
    one login is retried, never refused, and that server's logins then send Django's statement."""
    login, key = wrapper(tenant_entry), _server_key(tenant_entry)
    login.ensure_connection()
    right = base._isolation_variables[key]
    try:
        base._isolation_variables[key] = "no_such_isolation_variable"
        assert _relogin(login)[1:] == ("READ-COMMITTED", 2)
        assert base._isolation_variables[key] == ""
        assert _relogin(login)[1:] == ("READ-COMMITTED", 2)
    finally:
        base._isolation_variables[key] = right


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_the_master_accounts_server_data_is_kept_apart_from_the_tenants(tenant_entry, wrapper):
    """`init_connect` runs for tenant accounts and not for a privileged one: their sessions may differ."""
    from django.db import DEFAULT_DB_ALIAS

    master = connections[DEFAULT_DB_ALIAS].settings_dict
    tenant_login, master_login = wrapper(tenant_entry), wrapper(master, master["ENGINE"])
    tenant_login.ensure_connection()
    master_login.ensure_connection()
    assert tenant_login.mysql_server_data is not master_login.mysql_server_data
    accounts = {key[-1] for key in base._server_data if key[:2] == (tenant_entry["HOST"], tenant_entry["PORT"])}
    assert {"tenant", master["USER"]} <= accounts


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_configured_isolation_level_and_collation_are_still_set(tenant_entry, wrapper):
    options = {**tenant_entry["OPTIONS"], "isolation_level": "repeatable read", "collation": "utf8mb4_unicode_ci"}
    login = wrapper({**tenant_entry, "OPTIONS": options})
    login.ensure_connection()
    settings_row, isolation, statements = _relogin(login)
    assert isolation == "REPEATABLE-READ"
    assert settings_row[3] == "utf8mb4_unicode_ci"
    assert statements == 1  # one `SET`: the names with the collation, the level, the `init_command`


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_new_wrapper_does_not_ask_the_server_again_for_its_version_and_settings(tenant_entry, wrapper):
    """Each worker thread makes a wrapper per tenant it serves: its first login costs no extra query."""
    first, second, django = wrapper(tenant_entry), wrapper(tenant_entry), wrapper(tenant_entry, DJANGOS)
    first.ensure_connection()
    assert "mysql_server_data" not in second.__dict__
    second.ensure_connection()
    assert _session(second)[2] == 1  # the `init_command` alone
    django.ensure_connection()
    assert _session(django)[2] == 4  # `init_command`, `SET NAMES`, the server's data, the isolation level
    assert second.mysql_server_data == django.mysql_server_data
