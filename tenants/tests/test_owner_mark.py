"""The owner mark names the tenant and this installation; another installation's database is
refused and left untouched; a mark from before installation ids is upgraded only when this
installation has been serving the tenant."""

from __future__ import annotations

import dataclasses

import pytest
from django.conf import settings
from django.db import connections

from m3saas.exceptions import ProvisioningError
from m3saas.installation import installation_id
from m3saas.tenancy.info import TenantInfo
from tenants.models import Tenant
from tenants.selectors import tenant_info_fresh
from tenants.services import tenant_migrate, tenant_provision

pytestmark = pytest.mark.django_db


def mark(tenant: TenantInfo) -> list[tuple[int, str | None]]:
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("SELECT * FROM m3saas_owner")
        columns = [c[0].lower() for c in cursor.description]
        rows = cursor.fetchall()
    return [(row[0], row[columns.index("installation")] if "installation" in columns else None) for row in rows]


def mark_legacy(tenant: TenantInfo) -> None:
    """The mark every database had before installations had ids: the tenant id alone."""
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("DROP TABLE m3saas_owner")
        cursor.execute("CREATE TABLE m3saas_owner (tenant_id BIGINT PRIMARY KEY)")
        cursor.execute("INSERT INTO m3saas_owner (tenant_id) VALUES (%s)", [tenant.id])


def user_password_hash(tenant: TenantInfo) -> str | None:
    """The tenant account's stored password (MariaDB), read as root; None on SQLite."""
    if not settings.M3SAAS_CONFIG.is_mysql:
        return None
    import MySQLdb

    db = settings.M3SAAS_CONFIG.database
    conn = MySQLdb.connect(host=db.host, port=db.port, user=db.user, password=db.password)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT authentication_string FROM mysql.user WHERE User = %s", (tenant.user,))
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def test_a_new_database_is_marked_with_the_tenant_and_this_installation(make_tenant):
    tenant = make_tenant()
    assert mark(tenant) == [(tenant.id, installation_id())]


def test_a_database_of_another_installation_is_refused_and_never_altered(make_tenant):
    tenant = make_tenant()
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("UPDATE m3saas_owner SET installation = %s", ["other-installation"])
    password_before = user_password_hash(tenant)
    # Another salt or password would change the account's password if provisioning went on.
    other = dataclasses.replace(tenant_info_fresh(tenant_id=tenant.id), password="other-installations-password")

    with pytest.raises(ProvisioningError, match="belongs to another M3SaaS installation") as refused:
        tenant_provision(tenant=other)

    assert "\n" not in refused.value.message
    assert mark(tenant) == [(tenant.id, "other-installation")]
    assert user_password_hash(tenant) == password_before


def test_a_legacy_mark_of_a_tenant_this_installation_serves_is_upgraded(make_tenant):
    tenant = make_tenant()
    mark_legacy(tenant)
    ready = tenant_info_fresh(tenant_id=tenant.id)
    assert ready.schema_state == Tenant.SchemaState.READY

    assert tenant_provision(tenant=ready) == []

    assert mark(tenant) == [(tenant.id, installation_id())]


def test_a_legacy_mark_is_not_adopted_for_a_tenant_never_served_here(make_tenant):
    """Another installation's new tenant of the same id and name is pending: it may not adopt."""
    tenant = make_tenant()
    mark_legacy(tenant)
    Tenant.objects.filter(pk=tenant.id).update(schema_state=Tenant.SchemaState.PENDING)
    password_before = user_password_hash(tenant)
    pending = dataclasses.replace(tenant_info_fresh(tenant_id=tenant.id), password="someone-elses")

    with pytest.raises(ProvisioningError, match="has never served it") as refused:
        tenant_provision(tenant=pending)

    assert installation_id() in refused.value.message  # the message says how to adopt it by hand
    assert mark(tenant) == [(tenant.id, None)]
    assert user_password_hash(tenant) == password_before


def test_a_legacy_mark_of_a_tenant_migrated_here_before_is_upgraded_while_pending(make_tenant):
    """A subscription change or a restore makes the tenant pending; it was still served here."""
    tenant = make_tenant(provision=False)
    assert tenant_migrate(tenant=tenant).ok
    mark_legacy(tenant)
    Tenant.objects.filter(pk=tenant.id).update(schema_state=Tenant.SchemaState.PENDING)

    assert tenant_migrate(tenant=tenant_info_fresh(tenant_id=tenant.id)).ok

    assert mark(tenant) == [(tenant.id, installation_id())]


def test_a_restore_onto_another_installations_database_is_refused_and_changes_nothing(make_tenant, settings, tmp_path):
    from modules.test.v1.models import Animal
    from tenants.backups import backup_create, backup_restore, backup_target_get

    settings.BACKUP_DIR = str(tmp_path)
    tenant = make_tenant()
    target = backup_target_get(tenant_name=tenant.name)
    backup = backup_create(target=target).backup
    Animal.objects.using(tenant.alias).create(name="after the backup")
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("UPDATE m3saas_owner SET installation = %s", ["other-installation"])

    with pytest.raises(ProvisioningError, match="belongs to another M3SaaS installation"):
        backup_restore(target=target, backup=backup)

    assert "after the backup" in Animal.objects.using(tenant.alias).values_list("name", flat=True)
    assert mark(tenant) == [(tenant.id, "other-installation")]
