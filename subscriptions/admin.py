"""Admin of modules, dependencies and subscriptions; changes that would not resolve are refused.

A dependency that makes a cycle, that names a module version with no folder, or that would
give a tenant two major versions of one module is refused, as is a subscription whose
dependencies clash, and a change of a subscription's major version: saved as such it would give
the tenant the new version's empty tables and hide its data. The tenants app extends the
subscription admin so that, with AUTO_MIGRATION on, a saved subscription migrates its tenant,
and adds the action that moves a major version the way `upgrade_subscription` does
(`tenants.admin`).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms import BaseInlineFormSet

from m3saas.audit.admin import AuditedAdminMixin
from subscriptions.models import Module, ModuleDependency, Subscription
from subscriptions.validators import dependencies_validate, subscriptions_validate


class DependencyFormSet(BaseInlineFormSet):
    """A module's dependencies, checked together against every tenant's subscriptions."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors) or not getattr(self.instance, "name", None):
            return
        wanted: list[tuple[str, int]] = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if data.get("DELETE") or data.get("dependency") is None:
                continue
            wanted.append((data["dependency"].name, data.get("version") or 1))
        dependencies_validate(module=self.instance.name, dependencies=wanted)


class DependencyInline(admin.TabularInline):
    model = ModuleDependency
    formset = DependencyFormSet
    fk_name = "module"
    extra = 0


@admin.register(Module)
class ModuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["id", "name"]
    search_fields = ["name"]
    inlines = [DependencyInline]


class ModuleDependencyForm(forms.ModelForm):
    class Meta:
        model = ModuleDependency
        fields = ["module", "dependency", "version"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        module, dependency, version = data.get("module"), data.get("dependency"), data.get("version")
        if module is None or dependency is None or version is None:
            return data
        others = (
            ModuleDependency.objects.filter(module=module)
            .exclude(pk=self.instance.pk)
            .exclude(dependency=dependency)
            .values_list("dependency__name", "version")
        )
        dependencies_validate(module=module.name, dependencies=[*others, (dependency.name, version)])
        return data


@admin.register(ModuleDependency)
class ModuleDependencyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = ModuleDependencyForm
    list_display = ["id", "module", "dependency", "version"]
    list_filter = ["module", "dependency"]
    search_fields = ["module__name", "dependency__name"]


MOVE_ACTION = "Move to another major version (as upgrade_subscription)"


def major_version_change_error(*, tenant: object, module: Module, before: int, after: int) -> ValidationError | None:
    """The refusal of an edit that would switch `module` from major `before` to `after` in place."""
    if before == after:
        return None
    return ValidationError(
        f"Tenant {tenant} is on {module.name} v{before}: changing the version here would give it empty "
        f"v{after} tables and hide its v{before} data. Use the action “{MOVE_ACTION}” in the "
        f"subscription list, or `manage.py upgrade_subscription <tenant> {module.name} {after}`.",
        code="major_version_change",
    )


class SubscriptionForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ["tenant", "module", "version"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tenant, module, version = data.get("tenant"), data.get("module"), data.get("version")
        if tenant is None or module is None or version is None:
            return data
        stored = Subscription.objects.filter(pk=self.instance.pk, tenant=tenant, module=module).first()
        if stored is not None:
            error = major_version_change_error(tenant=tenant, module=module, before=stored.version, after=version)
            if error is not None:
                raise ValidationError({"version": error})
        others = (
            Subscription.objects.filter(tenant=tenant)
            .exclude(pk=self.instance.pk)
            .exclude(module=module)
            .values_list("module__name", "version")
        )
        subscriptions_validate(subscriptions=[*others, (module.name, version)])
        return data


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionForm
    list_display = ["id", "tenant", "module", "version"]
    list_filter = ["module", "version"]
    search_fields = ["tenant__name", "module__name", "=tenant__id"]
    list_select_related = ["tenant", "module"]
    autocomplete_fields = ["tenant", "module"]
