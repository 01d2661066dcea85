"""The operator registers tenants and subscriptions in the Django admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from subscriptions.models import Module, Subscription
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = User.objects.create_superuser("operator", "op@example.com", "pw-operator-123")
    client.force_login(user)
    return client


def test_admin_refuses_an_unsafe_tenant_name(operator, settings):
    settings.AUTO_MIGRATION = False
    response = operator.post(
        "/admin/tenants/tenant/add/",
        {
            "name": "x`; DROP DATABASE tenants; --",
            "user": "safe_user",
            "password": "pw",
            "per_day_backups": 1,
            "max_backups": 10,
            "subscriptions-TOTAL_FORMS": 0,
            "subscriptions-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200
    assert "is not a safe database name" in response.content.decode()
    assert not Tenant.objects.exists()


def test_admin_lists_show_tenants_modules_and_subscriptions(operator, make_tenant):
    tenant = make_tenant(provision=False)
    for url, expected in [
        ("/admin/tenants/tenant/", tenant.name),
        ("/admin/subscriptions/module/", "test"),
        ("/admin/subscriptions/subscription/", tenant.name),
        ("/admin/subscriptions/moduledependency/", "module dependencies"),
    ]:
        response = operator.get(url)
        assert response.status_code == 200, url
        assert expected in response.content.decode(), url


def test_admin_search_finds_a_tenant_by_name(operator, make_tenant):
    wanted, other = make_tenant(provision=False), make_tenant(provision=False)
    page = operator.get("/admin/tenants/tenant/", {"q": wanted.name}).content.decode()
    assert wanted.name in page
    assert other.name not in page


def test_admin_subscribes_a_tenant_to_an_installed_module_version(operator, make_tenant, settings):
    settings.AUTO_MIGRATION = False
    tenant = make_tenant(modules=[], provision=False)
    module = Module.objects.get_or_create(name="test")[0]
    response = operator.post(
        "/admin/subscriptions/subscription/add/", {"tenant": tenant.id, "module": module.id, "version": 1}
    )
    assert response.status_code == 302
    assert Subscription.objects.get(tenant_id=tenant.id).version == 1


@pytest.mark.parametrize(("module_name", "version"), [("zoo", 1), ("test", 7)])
def test_admin_refuses_a_subscription_without_installed_code(operator, make_tenant, module_name, version):
    tenant = make_tenant(modules=[], provision=False)
    module = Module.objects.get_or_create(name=module_name)[0]
    response = operator.post(
        "/admin/subscriptions/subscription/add/", {"tenant": tenant.id, "module": module.id, "version": version}
    )
    assert response.status_code == 200
    assert f"Module &#x27;{module_name}&#x27; v{version} is not installed" in response.content.decode()
    assert not Subscription.objects.filter(tenant_id=tenant.id).exists()


def test_an_admin_save_writes_only_what_its_form_changed(operator, make_tenant, settings):
    """A move may flag or switch the tenant while its change form is being saved (here: between
    the admin's read of the row and its write): the form's save must not undo that."""
    from django.db.models.signals import pre_save

    settings.AUTO_MIGRATION = False
    tenant = make_tenant(provision=False)
    row = Tenant.objects.get(pk=tenant.id)
    fired: list[int] = []

    def a_move_starts(sender, instance, **kwargs):
        if instance.pk == tenant.id and not fired:
            fired.append(instance.pk)
            Tenant.objects.filter(pk=tenant.id).update(moving=True)

    pre_save.connect(a_move_starts, sender=Tenant)
    try:
        response = operator.post(
            f"/admin/tenants/tenant/{tenant.id}/change/",
            {
                "password": "",
                "per_day_backups": row.per_day_backups,
                "max_backups": row.max_backups,
                "rate_limit": "50/min",
                "subscriptions-TOTAL_FORMS": 0,
                "subscriptions-INITIAL_FORMS": 0,
            },
        )
    finally:
        pre_save.disconnect(a_move_starts, sender=Tenant)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert fired == [tenant.id]
    saved = Tenant.objects.get(pk=tenant.id)
    assert saved.rate_limit == "50/min"
    assert saved.moving is True
