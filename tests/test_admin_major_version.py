"""A subscription's major version changes in the admin only the way `upgrade_subscription` moves it.

Saved in place, v2 → v1 gave the tenant empty v1 tables and hid its v2 data; the edit is
refused with a pointer to the action, and the action runs the upgrade and shows its result.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from subscriptions.models import Subscription

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]

REFUSED = "changing the version here would give it empty"
MOVE = "/admin/subscriptions/subscription/"


@pytest.fixture
def operator(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("staff-operator", "op@example.com", "pw-operator-123"))
    return client


@pytest.fixture
def tenant_with_animal(make_tenant: Any) -> Any:
    """A tenant with the rows of one animal it created through the API, at the version asked for."""

    def make(version: int) -> tuple[Any, str]:
        tenant = make_tenant(modules=[("test", version)])
        name = f"kept-animal-v{version}"
        created = APIClient().post(f"/{tenant.id}/test/v{version}/animals", {"name": name}, format="json")
        assert created.status_code == 201, created.content
        return tenant, name

    return make


def subscription(tenant: Any) -> Subscription:
    return Subscription.objects.select_related("module").get(tenant_id=tenant.id, module__name="test")


def shown(response: Any) -> list[str]:
    """The messages the page after the action shows (the admin capitalises their first letter)."""
    return [str(m) for m in response.context["messages"]]


def animals(tenant: Any, version: int) -> tuple[int, set[str]]:
    response = APIClient().get(f"/{tenant.id}/test/v{version}/animals")
    names = {a["name"] for a in response.json()} if response.status_code == 200 else set()
    return response.status_code, names


def test_changing_the_major_version_in_the_change_form_is_refused_and_the_data_stays(operator, tenant_with_animal):
    tenant, name = tenant_with_animal(2)
    sub = subscription(tenant)
    response = operator.post(f"{MOVE}{sub.pk}/change/", {"tenant": tenant.id, "module": sub.module_id, "version": 1})
    assert response.status_code == 200
    page = response.content.decode()
    assert REFUSED in page and "upgrade_subscription" in page and "Move to another major version" in page
    assert subscription(tenant).version == 2
    status, names = animals(tenant, 2)
    assert status == 200 and name in names
    assert animals(tenant, 1)[0] == 404


def _tenant_change_data(operator: Client, tenant_id: int) -> dict[str, Any]:
    """The tenant change form's data as the page shows it (the tenant form and its inlines)."""
    page = operator.get(f"/admin/tenants/tenant/{tenant_id}/change/")
    assert page.status_code == 200
    data: dict[str, Any] = {}
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        forms += formset.forms
        management = formset.management_form
        data |= {management.add_prefix(k): v for k, v in management.initial.items()}
    for form in forms:
        for field_name, field in form.fields.items():
            value = form.initial.get(field_name, field.initial)
            value = getattr(value, "pk", value)
            if value is not None and not (field_name in {"password"} and not value):
                data[form.add_prefix(field_name)] = value
    return data


def test_changing_the_major_version_in_the_tenant_inline_is_refused(operator, tenant_with_animal):
    tenant, name = tenant_with_animal(2)
    data = _tenant_change_data(operator, tenant.id)
    (version_key,) = [k for k in data if k.startswith("subscriptions-") and k.endswith("-version")]
    data[version_key] = 1
    response = operator.post(f"/admin/tenants/tenant/{tenant.id}/change/", data)
    assert response.status_code == 200
    assert REFUSED in response.content.decode()
    assert subscription(tenant).version == 2
    assert name in animals(tenant, 2)[1]


def test_the_move_action_asks_for_the_version_first(operator, tenant_with_animal):
    tenant, _ = tenant_with_animal(1)
    sub = subscription(tenant)
    page = operator.post(MOVE, {"action": "move_major_version", "_selected_action": [sub.pk]})
    assert page.status_code == 200
    assert "Move to major version" in page.content.decode()
    assert subscription(tenant).version == 1


def test_the_move_action_upgrades_as_upgrade_subscription_and_shows_the_result(operator, tenant_with_animal):
    tenant, name = tenant_with_animal(1)
    sub = subscription(tenant)
    response = operator.post(
        MOVE,
        {"action": "move_major_version", "_selected_action": [sub.pk], "apply": "1", "to_version": 2},
        follow=True,
    )
    assert response.status_code == 200
    (message,) = shown(response)
    assert message.startswith(f"{tenant.name}: test v1 → v2: OK (")
    assert subscription(tenant).version == 2
    status, names = animals(tenant, 2)
    assert status == 200 and name in names  # carried over by test v2's data step
    assert animals(tenant, 1)[0] == 404


def test_the_move_action_back_to_an_older_version_fails_visibly_and_changes_nothing(operator, tenant_with_animal):
    tenant, name = tenant_with_animal(2)
    sub = subscription(tenant)
    response = operator.post(
        MOVE,
        {"action": "move_major_version", "_selected_action": [sub.pk], "apply": "1", "to_version": 1},
        follow=True,
    )
    (message,) = shown(response)
    assert "FAILED (still on v2)" in message and "moving back to v1 is not supported" in message
    assert subscription(tenant).version == 2
    assert name in animals(tenant, 2)[1]


def test_other_edits_of_a_subscription_still_save(operator, make_tenant, settings):
    settings.AUTO_MIGRATION = False
    tenant = make_tenant(provision=False)
    other = make_tenant(modules=[], provision=False)
    sub = subscription(tenant)
    response = operator.post(f"{MOVE}{sub.pk}/change/", {"tenant": other.id, "module": sub.module_id, "version": 1})
    assert response.status_code == 302
    assert Subscription.objects.get(pk=sub.pk).tenant_id == other.id


def test_a_staff_user_who_may_only_view_subscriptions_cannot_move_them(client, tenant_with_animal):
    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user("staff-viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_subscription"))
    client.force_login(viewer)
    tenant, _ = tenant_with_animal(1)
    sub = subscription(tenant)
    assert client.get(MOVE).status_code == 200
    client.post(MOVE, {"action": "move_major_version", "_selected_action": [sub.pk], "apply": "1", "to_version": 2})
    assert subscription(tenant).version == 1
