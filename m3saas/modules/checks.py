"""`manage.py check`: malformed module folders, wrong labels, subscriptions without code."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import DatabaseError

from m3saas.modules.discovery import scan_modules
from m3saas.modules.registry import module_versions


@register("m3saas")
def check_module_folders(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    _, problems = scan_modules(settings.MODULES_DIR)
    messages: list[CheckMessage] = [Warning(f"{p.path}: {p.message}.", hint=p.hint, id="m3saas.W001") for p in problems]
    for module in module_versions().values():
        expected = f"{module.name}_v{module.major}"
        if module.label != expected:
            messages.append(
                Error(
                    f"{module.path / 'apps.py'}: the app label is '{module.label}'.",
                    hint=f'Set `label = "{expected}"` in its AppConfig: module labels are <name>_v<N>.',
                    id="m3saas.E002",
                )
            )
    return messages


@register("m3saas")
def check_subscriptions_have_code(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from subscriptions.models import Subscription

    installed = module_versions()
    try:
        rows = list(Subscription.objects.values_list("tenant__name", "module__name", "version").order_by("tenant_id"))
    except DatabaseError:
        return []  # a fresh master without tables: nothing subscribed yet
    messages: list[CheckMessage] = []
    for tenant, module, version in rows:
        if (module, version) not in installed:
            messages.append(
                Error(
                    f"Tenant '{tenant}' subscribes to module '{module}' v{version}, but "
                    f"{settings.MODULES_DIR / module / f'v{version}'} is not an installed module version.",
                    hint="Add the module version folder (apps.py, urls.py), or change the subscription's "
                    "version in the admin.",
                    id="m3saas.E003",
                )
            )
    return messages
