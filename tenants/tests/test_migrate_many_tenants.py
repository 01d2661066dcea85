"""A run over many tenants with nothing to apply costs a few master queries in all, none per
tenant, and decrypts no password; registering every tenant before a command line is parsed
decrypts none either (issue 16, point 4)."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import CaptureQueriesContext

import m3saas.engines.base
from m3saas.passwords import PasswordKeyError
from m3saas.startup import one_line_errors
from m3saas.tenancy.connections import (
    tenant_connection_register,
    tenant_connection_unregister,
    tenant_connections_register_all,
)
from m3saas.tenancy.each import tenant_connections_close
from m3saas.tenancy.info import TenantInfo
from tenants.models import Tenant
from tenants.selectors import tenant_info_list, tenant_info_list_resolved
from tenants.services import tenants_migrate_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def decryptions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens decrypted into a database password while the test runs (the real decryption runs)."""
    seen: list[str] = []
    real = m3saas.engines.base.password_decrypt

    def counted(token: str) -> str:
        seen.append(token)
        return real(token)

    monkeypatch.setattr(m3saas.engines.base, "password_decrypt", counted)
    return seen


def migrated_tenants(make_tenant: Callable[..., TenantInfo], count: int) -> list[TenantInfo]:
    """`count` more tenants (with and without a module), migrated once by a run, which keeps their fingerprints."""
    made = [make_tenant(modules=[("test", 1)] if i % 2 else [], provision=False) for i in range(count)]
    assert all(result.ok for result in tenants_migrate_all())
    tenant_connections_close()
    return made


def master_queries(run: Callable[[], object]) -> list[str]:
    with CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as master:
        run()
    return [query["sql"] for query in master.captured_queries]


def test_a_run_with_nothing_to_apply_makes_as_many_master_queries_for_2n_tenants_as_for_n(
    make_tenant, opened, decryptions
):
    first = migrated_tenants(make_tenant, 3)
    results = []
    few = master_queries(lambda: results.extend(tenants_migrate_all(workers=2)))
    assert len(results) == 3 and all(r.ok and r.unchanged for r in results)

    more = first + migrated_tenants(make_tenant, 3)
    decryptions.clear()
    opened.clear()
    results.clear()
    many = master_queries(lambda: results.extend(tenants_migrate_all(workers=2)))

    assert len(results) == 6 and all(r.ok and r.unchanged for r in results)
    assert len(many) == len(few) <= 5, many
    assert not opened & {tenant.alias for tenant in more}  # no tenant database opened
    assert decryptions == []  # no tenant password decrypted


def test_the_command_with_nothing_to_apply_makes_as_many_master_queries_for_2n_tenants_as_for_n(make_tenant):
    migrated_tenants(make_tenant, 2)
    few = master_queries(lambda: call_command("migrate_tenants", stdout=StringIO()))
    migrated_tenants(make_tenant, 2)
    out = StringIO()
    many = master_queries(lambda: call_command("migrate_tenants", stdout=out))
    assert "4 of 4 tenants migrated (4 unchanged, not opened)." in out.getvalue()
    assert len(many) == len(few)


def test_resolving_every_tenant_reads_subscriptions_once_whatever_their_number(make_tenant):
    make_tenant(modules=[("test", 1)], provision=False)
    make_tenant(modules=[], provision=False)
    few = master_queries(tenant_info_list)
    make_tenant(modules=[("test", 2)], provision=False)
    make_tenant(modules=[("test", 1)], provision=False)
    many = master_queries(tenant_info_list)
    assert len(many) == len(few) == 3  # tenants, subscriptions, module dependencies


def test_resolving_tenants_in_bulk_gives_each_its_own_modules(make_tenant):
    v1 = make_tenant(modules=[("test", 1)], provision=False)
    bare = make_tenant(modules=[], provision=False)
    v2 = make_tenant(modules=[("test", 2)], provision=False)

    listed = {info.id: info.modules for info in tenant_info_list()}
    subset, unresolved = tenant_info_list_resolved(Tenant.objects.filter(pk__in=[bare.id, v2.id]).order_by("id"))

    assert (listed[v1.id], listed[bare.id], listed[v2.id]) == ((("test", 1),), (), (("test", 2),))
    assert [(info.id, info.modules) for info in subset] == [(bare.id, ()), (v2.id, (("test", 2),))]
    assert unresolved == []


def test_registering_every_tenant_decrypts_no_password_and_costs_the_same_queries_for_2n(make_tenant, decryptions):
    tenants = [make_tenant(provision=False) for _ in range(2)]
    for tenant in tenants:
        tenant_connection_unregister(tenant.alias)
    few = master_queries(tenant_connections_register_all)
    tenants += [make_tenant(provision=False) for _ in range(2)]
    for tenant in tenants:
        tenant_connection_unregister(tenant.alias)
    many = master_queries(tenant_connections_register_all)
    assert len(many) == len(few) == 3
    assert {tenant.alias for tenant in tenants} <= set(connections.settings)
    assert decryptions == []


def test_a_tenant_registered_in_bulk_connects_with_its_own_password(make_tenant):
    """The database password of an alias registered before the command line was parsed is derived
    on its first connection (on MariaDB: the tenant's own account logs in)."""
    tenant = make_tenant()
    tenant_connection_unregister(tenant.alias)
    tenant_connections_register_all()
    try:
        with connections[tenant.alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone()[0] == 1
        if connections[tenant.alias].vendor == "mysql":
            with connections[tenant.alias].cursor() as cursor:
                cursor.execute("SELECT CURRENT_USER()")
                assert cursor.fetchone()[0].split("@")[0] == tenant.user
    finally:
        tenant_connections_close()


@pytest.mark.mariadb
def test_a_tenant_whose_password_no_key_opens_is_registered_and_fails_on_connecting_alone(make_tenant):
    """Every command still starts (the bulk registration decrypts nothing); connecting to that
    tenant, or registering it one by one as a run does, is the one-line key error."""
    unreadable, fine = make_tenant(), make_tenant()
    foreign = Fernet(Fernet.generate_key()).encrypt(b"someone else's").decode()
    Tenant.objects.filter(pk=unreadable.id).update(password=foreign)
    tenant_connection_unregister(unreadable.alias)
    tenant_connection_unregister(fine.alias)

    tenant_connections_register_all()

    assert unreadable.alias in connections.settings
    try:
        with pytest.raises(PasswordKeyError):
            connections[unreadable.alias].ensure_connection()
        stored = next(info for info in tenant_info_list() if info.id == unreadable.id)
        with pytest.raises(PasswordKeyError):
            tenant_connection_register(stored)
        connections[fine.alias].ensure_connection()
    finally:
        tenant_connections_close()


@pytest.mark.mariadb
def test_a_command_on_a_tenant_whose_password_no_key_opens_is_one_line_naming_it(make_tenant, capsys):
    """`manage.py migrate --database <tenant>` (manage.py wraps every command in `one_line_errors`)."""
    unreadable = make_tenant()
    foreign = Fernet(Fernet.generate_key()).encrypt(b"someone else's").decode()
    Tenant.objects.filter(pk=unreadable.id).update(password=foreign)
    tenant_connection_unregister(unreadable.alias)
    tenant_connections_register_all()
    try:
        with pytest.raises(SystemExit) as exited, one_line_errors():
            call_command("migrate", database=unreadable.alias, verbosity=0)
    finally:
        tenant_connections_close()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("Error: ") and "cannot be decrypted" in err and "tenantPasswordKeys" in err


def test_a_password_change_or_an_upgrade_still_opens_that_tenant_and_no_other(make_tenant, opened):
    stay, new_password, upgraded = (make_tenant(modules=[("test", 1)], provision=False) for _ in range(3))
    assert all(result.ok for result in tenants_migrate_all())
    row = Tenant.objects.get(pk=new_password.id)
    row.password = "a-new-secret"
    row.save()  # as the admin saves it
    call_command("upgrade_subscription", upgraded.name, "test", "2", stdout=StringIO())
    tenant_connections_close()
    opened.clear()

    results = {result.tenant: result for result in tenants_migrate_all()}

    assert results[stay.name].unchanged
    assert not results[new_password.name].unchanged and results[new_password.name].ok
    assert not results[upgraded.name].unchanged and results[upgraded.name].ok
    assert {new_password.alias, upgraded.alias} <= opened
    assert stay.alias not in opened
    # Opened with the new password: the next run skips it again.
    assert all(result.unchanged for result in tenants_migrate_all())
