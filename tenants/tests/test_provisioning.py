"""Tenant databases: idempotent provisioning, safe names, per-tenant migrations, users."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connections

from m3saas.engines import engine
from m3saas.exceptions import ProvisioningError
from m3saas.tenancy.migrate import tenant_pending_migrations
from subscriptions.models import Module, Subscription
from tenants.models import Tenant
from tenants.selectors import tenant_info_from_row
from tenants.services import tenant_create, tenant_provision

pytestmark = pytest.mark.django_db


def tables(alias: str) -> set[str]:
    with connections[alias].cursor() as cursor:
        return set(connections[alias].introspection.table_names(cursor))


def test_provisioning_twice_changes_nothing(make_tenant):
    tenant = make_tenant()
    assert tenant_provision(tenant=tenant) == []
    assert "test_v1_animal" in tables(tenant.alias)


def test_migrate_creates_exactly_the_subscribed_module_tables(make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    names = tables(tenant.alias)
    assert "test_v2_animal" in names
    assert "test_v1_animal" not in names
    assert not {n for n in names if n.startswith(("auth_", "django_content", "tenants_", "subscriptions_"))}


def test_late_subscription_gets_its_tables_on_the_next_migration(make_tenant):
    tenant = make_tenant(modules=[])
    assert "test_v1_animal" not in tables(tenant.alias)
    row = Tenant.objects.get(pk=tenant.id)
    Subscription.objects.create(tenant=row, module=Module.objects.get_or_create(name="test")[0], version=1)
    updated = tenant_info_from_row(row)
    assert tenant_pending_migrations(updated) == ["test_v1.0001_initial"]
    assert tenant_provision(tenant=updated) == ["test_v1.0001_initial"]
    assert "test_v1_animal" in tables(tenant.alias)


def test_manage_migrate_database_tenant(make_tenant, capsys):
    from m3saas.tenancy.connections import tenant_connections_register_all

    tenant = make_tenant(modules=[("test", 1)], provision=False)
    tenant_connections_register_all()  # what manage.py does before parsing the command line
    call_command("migrate", database=tenant.alias, verbosity=1)
    assert "Applied test_v1.0001_initial" in capsys.readouterr().out
    assert "test_v1_animal" in tables(tenant.alias)


def test_migrate_tenants_reports_each_tenant(make_tenant, capsys):
    first = make_tenant(provision=False)
    second = make_tenant(provision=False, modules=[("test", 2)])
    call_command("migrate_tenants", workers=1)
    out = capsys.readouterr().out
    assert f"{first.name}: OK" in out
    assert f"{second.name}: OK" in out
    assert "test_v1_animal" in tables(first.alias)
    assert "test_v2_animal" in tables(second.alias)


@pytest.mark.parametrize(
    "name",
    [
        "x`; DROP DATABASE tenants; --",
        "Upper",
        "1abc",
        "with-dash",
        "a" * 49,
        "test",
        "test_one",
        "mysql",
        "default",
        "master",
        "root",
        "first_tenant\n",
    ],
)
def test_unsafe_tenant_names_are_refused(name):
    with pytest.raises(ValidationError) as error:
        tenant_create(name=name, user="safe_user", password="pw", provision=False)
    assert "name" in error.value.message_dict
    assert not Tenant.objects.exists()


def test_unsafe_user_is_refused():
    with pytest.raises(ValidationError) as error:
        tenant_create(name="safe_name", user="u'@'%", password="pw", provision=False)
    assert "user" in error.value.message_dict


def test_tenant_create_provisions_when_asked(db):
    tenant = tenant_create(name="provisioned_one", user="provisioned_one", password="pw", provision=True)
    info = tenant_info_from_row(tenant)
    try:
        assert engine().database_exists(info)
    finally:
        from tenants.services import tenant_database_drop

        tenant_database_drop(tenant=info)
    assert not engine().database_exists(info)


@pytest.mark.mariadb
def test_tenant_user_cannot_reach_another_tenants_database(make_tenant):
    import MySQLdb

    from m3saas.engines import tenant_db_password

    first, second = make_tenant(), make_tenant()
    db = settings.M3SAAS_CONFIG.database
    conn = MySQLdb.connect(
        host=db.host, port=db.port, user=first.user, password=tenant_db_password(first.password), database=first.name
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM test_v1_animal")
            with pytest.raises(MySQLdb.OperationalError) as denied:
                cur.execute(f"SELECT COUNT(*) FROM `{second.name}`.test_v1_animal")
            assert denied.value.args[0] in (1044, 1142)  # access denied to database / table
            with pytest.raises(MySQLdb.OperationalError):
                cur.execute(f"CREATE TABLE `{second.name}`.intruder (id INT)")
    finally:
        conn.close()


@pytest.mark.mariadb
def test_grant_does_not_treat_underscore_as_a_wildcard(make_tenant):
    """A grant on `ab_c` must not open `abxc` (MySQL's `_` wildcard)."""
    import MySQLdb

    from m3saas.engines import tenant_db_password

    first = make_tenant(name="gw_a_b")
    lookalike = make_tenant(name="gwxaxb")
    db = settings.M3SAAS_CONFIG.database
    conn = MySQLdb.connect(host=db.host, port=db.port, user=first.user, password=tenant_db_password(first.password))
    try:
        with conn.cursor() as cur, pytest.raises(MySQLdb.OperationalError):
            cur.execute(f"CREATE TABLE `{lookalike.name}`.intruder (id INT)")
    finally:
        conn.close()


@pytest.mark.mariadb
def test_tenant_database_uses_the_configured_collation(make_tenant):
    tenant = make_tenant()
    with connections["default"].cursor() as cur:
        cur.execute(
            "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [tenant.name]
        )
        assert cur.fetchone()[0] == settings.M3SAAS_CONFIG.collation


def test_tenant_named_like_the_master_database_is_refused():
    config = settings.M3SAAS_CONFIG
    master = config.database.name if config.is_mysql else Path(config.database.name).stem
    with pytest.raises(ValidationError) as error:
        tenant_create(name=master, user="safe_user", password="pw", provision=False)
    assert "master database's name" in str(error.value.message_dict["name"])


@pytest.mark.mariadb
def test_tenant_using_the_master_database_user_is_refused():
    with pytest.raises(ValidationError) as error:
        tenant_create(name="safe_name", user=settings.M3SAAS_CONFIG.database.user, password="pw", provision=False)
    assert "master database's user" in str(error.value.message_dict["user"])


def test_deleted_tenants_database_is_never_inherited_by_a_new_tenant(make_tenant):
    """Deleting a tenant row keeps its database; a new tenant of that name must not adopt it."""
    from modules.test.v1.models import Animal

    old = make_tenant()
    Animal.objects.using(old.alias).create(name="old customer's secret")
    Tenant.objects.filter(pk=old.id).delete()
    newcomer = Tenant.objects.create(name=old.name, user=old.user, password="new-customer")
    Subscription.objects.create(tenant=newcomer, module=Module.objects.get_or_create(name="test")[0], version=1)
    with pytest.raises(ProvisioningError, match=rf"belongs to tenant #{old.id}"):
        tenant_provision(tenant=tenant_info_from_row(newcomer))
    assert list(Animal.objects.using(old.alias).values_list("name", flat=True)) == ["old customer's secret"]


def root_execute(*statements: tuple[str, list[str]]) -> None:
    """DDL on a connection of its own: on MariaDB it would commit the test's master transaction."""
    import MySQLdb

    db = settings.M3SAAS_CONFIG.database
    conn = MySQLdb.connect(host=db.host, port=db.port, user=db.user, password=db.password)
    try:
        with conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params)
    finally:
        conn.close()


def database_make_by_hand(tenant, *, tables: list[str]) -> None:
    """The tenant's database made outside M3SaaS (as root), holding empty `tables`."""
    config = settings.M3SAAS_CONFIG
    if config.is_mysql:
        creates: list[tuple[str, list[str]]] = [
            (f"CREATE TABLE `{tenant.name}`.`{table}` (id BIGINT)", []) for table in tables
        ]
        root_execute((f"CREATE DATABASE `{tenant.name}`", []), *creates)
        return
    path = config.tenant_sqlite_dir / f"{tenant.name}.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    # A file with no table at all is empty (0 bytes): make one that is not.
    for sql in [f"CREATE TABLE {table} (id BIGINT)" for table in tables] or ["PRAGMA user_version = 1"]:
        db.execute(sql)
    db.close()


def test_a_database_without_owner_mark_is_refused(make_tenant):
    tenant = make_tenant(provision=False)
    database_make_by_hand(tenant, tables=["someone_elses"])
    with pytest.raises(ProvisioningError, match="no owner mark"):
        tenant_provision(tenant=tenant)


@pytest.mark.parametrize("owner_table", [False, True], ids=["nothing", "empty-owner-table"])
def test_a_database_left_empty_by_a_killed_provisioning_is_claimed(make_tenant, owner_table):
    """Killed between creating the database and writing its mark: nothing in it, so a rerun completes it."""
    tenant = make_tenant(provision=False)
    database_make_by_hand(tenant, tables=["m3saas_owner"] if owner_table else [])
    tenant_provision(tenant=tenant)
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("SELECT tenant_id FROM m3saas_owner")
        assert list(cursor.fetchall()) == [(tenant.id,)]
    assert tenant_pending_migrations(tenant) == []


@pytest.mark.mariadb
def test_an_existing_account_with_other_privileges_is_never_adopted(make_tenant):
    tenant = make_tenant(provision=False)
    root_execute(
        ("CREATE USER %s@'%%' IDENTIFIED BY 'x'", [tenant.user]),
        ("GRANT SELECT ON `mysql`.* TO %s@'%%'", [tenant.user]),
    )
    try:
        with pytest.raises(ProvisioningError, match="already exists with other privileges"):
            tenant_provision(tenant=tenant)
    finally:
        root_execute(("DROP USER IF EXISTS %s@'%%'", [tenant.user]))
