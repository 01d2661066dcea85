from __future__ import annotations

from django.contrib import admin

from subscriptions.models import Subscription
from tenants.models import Tenant


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    autocomplete_fields = ["module"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "user", "per_day_backups", "max_backups", "subscription_count"]
    search_fields = ["name", "user", "=id"]
    list_filter = ["subscriptions__module"]
    ordering = ["id"]
    inlines = [SubscriptionInline]
    fieldsets = [
        (None, {"fields": ["name", "user", "password"]}),
        ("Backups", {"fields": ["per_day_backups", "max_backups"]}),
    ]

    @admin.display(description="subscriptions")
    def subscription_count(self, obj: Tenant) -> int:
        return obj.subscriptions.count()
