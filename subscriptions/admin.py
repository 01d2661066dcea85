from __future__ import annotations

from django.contrib import admin

from subscriptions.models import Module, ModuleDependency, Subscription


class DependencyInline(admin.TabularInline):
    model = ModuleDependency
    fk_name = "module"
    extra = 0


@admin.register(Module)
class ModuleAdmin(admin.ModelAdmin):
    list_display = ["id", "name"]
    search_fields = ["name"]
    inlines = [DependencyInline]


@admin.register(ModuleDependency)
class ModuleDependencyAdmin(admin.ModelAdmin):
    list_display = ["id", "module", "dependency", "version"]
    list_filter = ["module", "dependency"]
    search_fields = ["module__name", "dependency__name"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "module", "version"]
    list_filter = ["module", "version"]
    search_fields = ["tenant__name", "module__name", "=tenant__id"]
    list_select_related = ["tenant", "module"]
    autocomplete_fields = ["tenant", "module"]
