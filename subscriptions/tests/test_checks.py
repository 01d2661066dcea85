"""`manage.py check` on master data: subscriptions to module versions that are not installed."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from subscriptions.checks import check_subscriptions_have_code


@pytest.mark.django_db
def test_subscription_to_a_version_without_folder_is_an_error(make_tenant):
    tenant = make_tenant(modules=[("test", 7)], provision=False)
    [message] = check_subscriptions_have_code()
    assert message.id == "m3saas.E003"
    assert f"'{tenant.name}'" in message.msg
    assert "v7" in message.msg


@pytest.mark.django_db
def test_subscription_to_a_module_without_folder_is_an_error(make_tenant):
    make_tenant(modules=[("nowhere", 1)], provision=False)
    [message] = check_subscriptions_have_code()
    assert "module 'nowhere' v1" in message.msg


@pytest.mark.django_db
def test_manage_check_passes_on_the_repository(make_tenant, capsys):
    make_tenant(modules=[("test", 1)], provision=False)
    call_command("check")
    assert "no issues" in capsys.readouterr().out
