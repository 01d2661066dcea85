"""The operator's admin for tenants: subscriptions inline, schema state, migration runs.

With AUTO_MIGRATION on, saving a new tenant or changing its subscriptions (or password)
provisions, migrates and seeds its database once the change is committed; the outcome is
shown as a message and recorded as a migration run.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Count, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from m3saas.access import key_digest, key_generate
from m3saas.audit.admin import AuditedAdminMixin
from m3saas.exceptions import ApplicationError
from m3saas.fields import CLEAR_PASSWORD_MAX_LENGTH
from subscriptions.admin import MOVE_ACTION, SubscriptionAdmin, major_version_change_error
from subscriptions.models import Module, Subscription
from subscriptions.validators import subscriptions_validate
from tenants.api_keys import api_key_revoke
from tenants.models import ApiKey, DatabaseServer, Tenant, TenantMigrationRun, TenantMove
from tenants.selectors import tenant_info_from_row
from tenants.servers import server_configured, server_place, servers_sync, tenants_on_server
from tenants.services import (
    Seeding,
    TenantMigrationResult,
    tenant_migrate,
    tenant_migrate_if_pending,
    tenants_schema_mark_pending,
)
from tenants.status import status_get
from tenants.upgrade import subscription_upgrade_safe


class TenantServerFilter(admin.SimpleListFilter):
    """By database server; the default server's tenants include those with a blank server."""

    title = "server"
    parameter_name = "server"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in DatabaseServer.objects.order_by("name").values_list("name", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> QuerySet[Tenant]:
        value = self.value()
        return queryset if not value else queryset.filter(tenants_on_server(value))


STATE_COLOURS = {"ready": "#2e7d32", "failed": "#c62828", "migrating": "#ef6c00", "pending": "#555"}


class SubscriptionFormSet(BaseInlineFormSet):
    """Refuses a set of subscriptions whose dependencies clash (a cycle, two majors of a module),
    and a module whose major version changes (edited, or deleted and added again)."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        wanted: list[tuple[str, int]] = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if data.get("DELETE") or data.get("module") is None:
                continue
            wanted.append((data["module"].name, data.get("version") or 1))
            self.refuse_version_change(form, data["module"], data.get("version") or 1)
        subscriptions_validate(subscriptions=wanted)

    def refuse_version_change(self, form: ModelForm, module: Module, version: int) -> None:
        if self.instance.pk is None:
            return
        stored = Subscription.objects.filter(tenant_id=self.instance.pk, module=module).first()
        if stored is None:
            return
        error = major_version_change_error(tenant=self.instance, module=module, before=stored.version, after=version)
        if error is not None:
            form.add_error("version", error)


class TenantForm(ModelForm):
    """The password is write-only: never rendered, kept when left empty on a change."""

    password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        max_length=CLEAR_PASSWORD_MAX_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown. Leave empty to keep the current password.",
    )

    class Meta:
        model = Tenant
        fields = ["name", "user", "password", "per_day_backups", "max_backups", "server"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["password"] = ""  # the stored token stays out of the page and of `changed_data`
        if "server" in self.fields:  # a new tenant: blank places it by capacity
            servers_sync()
            self.fields["server"].empty_label = "(placed by capacity)"  # type: ignore[attr-defined]
            self.fields["server"].help_text = "Blank: the open server with the most free capacity."

    def clean_server(self) -> DatabaseServer | None:
        """Place a new tenant now (the admin's change view runs in one transaction, so the server
        rows stay locked until the tenant is saved); refusals are the field's errors."""
        chosen: DatabaseServer | None = self.cleaned_data.get("server")
        if self.instance.pk is not None:
            return chosen
        try:
            return server_place(name=chosen.name if chosen is not None else None)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None

    def clean_password(self) -> str:
        password: str = self.cleaned_data.get("password") or ""
        if password:
            return password
        if self.instance.pk is None:
            raise forms.ValidationError("A new tenant needs a password.", code="required")
        return str(self.instance.password)


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    formset = SubscriptionFormSet
    extra = 0
    autocomplete_fields = ["module"]


def migrate_after_commit(request: HttpRequest, tenant_id: int) -> None:
    """With AUTO_MIGRATION on: once the admin's change is committed, bring the tenant's database
    up to date and show the outcome (shared by the tenant and the subscription admins)."""
    if not settings.AUTO_MIGRATION:
        return
    transaction.on_commit(
        lambda: report_result(
            request, tenant_migrate_if_pending(tenant_id=tenant_id, trigger=TenantMigrationRun.Trigger.ADMIN)
        ),
        using=DEFAULT_DB_ALIAS,
    )


def report_result(request: HttpRequest, result: TenantMigrationResult | None) -> None:
    if result is None:
        return
    if result.ok:
        what = f"{len(result.applied)} migration(s) applied" if result.applied else "already up to date"
        messages.success(request, f"Database of tenant {result.tenant} is ready: {what}.")
    else:
        messages.error(request, f"Database of tenant {result.tenant} could not be prepared: {result.error}")


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Make a key (shown once, on the page that answers the save), revoke or delete keys."""

    list_display = ["id", "tenant", "name", "modules", "read_only", "expires_at", "last_used_at", "key_status"]
    list_filter = ["read_only"]
    search_fields = ["=id", "name", "tenant__name", "=tenant__id"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]
    actions = ["revoke"]
    add_fields = ["tenant", "name", "modules", "read_only", "rate_limit", "expires_at"]
    change_fields = ["id", *add_fields, "created_at", "last_used_at", "revoked_at", "key_status"]

    @admin.display(description="status")
    def key_status(self, obj: ApiKey) -> str:
        return obj.status()

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return []
        # A key's reach is fixed when it is made: to change it, make another and revoke this one.
        return ["id", "tenant", "modules", "read_only", "created_at", "last_used_at", "revoked_at", "key_status"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return self.add_fields
        return self.change_fields

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> Any:
        tenant = request.POST.get("tenant", "")
        if tenant and not (tenant.isdecimal() and len(tenant) <= 18):
            # Past what the database holds, a tenant id fails in the driver (a 500), not as a choice.
            data = request.POST.copy()
            data["tenant"] = ""
            request.POST = data  # type: ignore[assignment]
        return super().add_view(request, form_url, extra_context)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # The tenant page's "add a key" link; anything but a tenant id in range is ignored.
        tenant = request.GET.get("tenant", "")
        return {"tenant": tenant} if tenant.isdecimal() and len(tenant) <= 18 else {}

    def save_model(self, request: HttpRequest, obj: ApiKey, form: ModelForm, change: bool) -> None:
        if not change:
            obj.id, key = key_generate()
            obj.digest = key_digest(key)
            # Only the page that answers this save shows it; nothing keeps it.
            request._api_key_made = key  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        key = getattr(request, "_api_key_made", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "admin/tenants/apikey/created.html",
            {
                **self.admin_site.each_context(request),
                "key": key,
                "key_id": obj.id,
                "tenant": obj.tenant,
                "change_url": reverse("admin:tenants_apikey_change", args=[obj.pk]),
                "tenant_url": reverse("admin:tenants_tenant_change", args=[obj.tenant_id]),
                "opts": self.opts,
            },
        )
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke the selected keys (refused from the next request on)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for row in queryset:
            self.audit(request, api_key_revoke(key_id=row.pk), "revoke")
        messages.success(request, f"{queryset.count()} key(s) revoked.")


@admin.register(Tenant)
class TenantAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = TenantForm
    # Short columns: the list fits a 1280-px screen beside the navigation and the filters (the
    # database user, usually the name, is on the change page and found by the search).
    list_display = ["id", "name", "state", "server_column", "subscription_count", "backup_limits"]
    search_fields = ["name", "user", "=id"]
    list_filter = ["schema_state", TenantServerFilter, "subscriptions__module"]
    ordering = ["id"]
    inlines = [SubscriptionInline]
    actions = ["migrate_now"]
    fieldsets = [
        (None, {"fields": ["name", "user", "password"]}),
        ("Backups", {"fields": ["per_day_backups", "max_backups"]}),
        ("API", {"fields": ["rate_limit", "api_keys"]}),
        ("Database", {"fields": ["server", "schema_state", "schema_state_at"]}),
    ]

    @admin.display(description="server", ordering="server")
    def server_column(self, obj: Tenant) -> str:
        return obj.server_name

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        # Counted in the list's one query (distinct: the module filter joins subscriptions too).
        return super().get_queryset(request).annotate(subscription_total=Count("subscriptions", distinct=True))

    @admin.display(description="subscriptions", ordering="subscription_total")
    def subscription_count(self, obj: Tenant) -> int:
        return int(getattr(obj, "subscription_total", 0))

    @admin.display(description="schema state", ordering="schema_state")
    def state(self, obj: Tenant) -> str:
        colour = STATE_COLOURS.get(obj.schema_state, "#666")
        return format_html('<strong style="color: {}">{}</strong>', colour, obj.schema_state)

    @admin.display(description="backups kept")
    def backup_limits(self, obj: Tenant) -> str:
        per_day = f"{obj.per_day_backups}/day" if obj.per_day_backups > 0 else "any/day"
        return f"{per_day}, {obj.max_backups if obj.max_backups > 0 else 'no'} max"

    def get_urls(self) -> list[URLPattern]:
        status = path("status/", self.admin_site.admin_view(self.status_view), name="tenants_status")
        return [status, *super().get_urls()]

    def status_view(self, request: HttpRequest) -> TemplateResponse:
        """The operator's status page: staff who may view tenants."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "title": "Platform status", "opts": self.opts}
        response = TemplateResponse(request, "admin/tenants/status.html", {**context, **status_get()})
        add_never_cache_headers(response)
        return response

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> list[str]:
        # A renamed database or user would leave the old one behind with the tenant's data.
        # Its server changes only by moving the tenant (its database would be left behind).
        fixed = ["name", "user", "server"] if obj is not None else []
        return [*fixed, "schema_state", "schema_state_at", "api_keys"]

    @admin.display(description="API keys")
    def api_keys(self, obj: Tenant) -> str:
        """The tenant's keys, never a secret (only hashes are kept), and where to make one."""
        if obj.pk is None:
            return "Save the tenant first."
        rows = format_html_join(
            "",
            '<li><a href="{}">{}</a> {} ({}; {}{})</li>',
            (
                (
                    reverse("admin:tenants_apikey_change", args=[key.pk]),
                    key.pk,
                    key.name or "unnamed",
                    key.status(),
                    key.modules or "all modules",
                    ", read-only" if key.read_only else "",
                )
                for key in obj.api_keys.order_by("created_at", "id")
            ),
        )
        add = reverse("admin:tenants_apikey_add")
        return format_html('<ul>{}</ul><a href="{}?tenant={}">Add an API key</a>', rows, add, obj.pk)

    def save_model(self, request: HttpRequest, obj: Tenant, form: ModelForm, change: bool) -> None:
        if change:
            # Only what the form changed: the server, the moving flag and the schema state belong
            # to the services (a move may switch the tenant's server while the form is being saved).
            own = {field.name for field in obj._meta.concrete_fields}
            fields = [name for name in form.changed_data if name in own]
            if fields:
                obj.save(update_fields=fields)
        else:
            super().save_model(request, obj, form, change)
        if change and "password" in form.changed_data:
            # The database user's password follows on the next provisioning.
            tenants_schema_mark_pending(tenant_ids=[obj.pk])

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        migrate_after_commit(request, form.instance.pk)

    @admin.action(description="Provision, migrate and seed the selected tenants now")
    def migrate_now(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for row in queryset.order_by("id"):
            try:
                info = tenant_info_from_row(row)
            except Exception as exc:
                messages.error(request, f"Tenant {row.name}: {exc}")
                continue
            result = tenant_migrate(tenant=info, seed=Seeding.MAIN, trigger=TenantMigrationRun.Trigger.ADMIN)
            self.audit(request, row, "migrate", {"ok": result.ok})
            report_result(request, result)


@admin.register(TenantMigrationRun)
class TenantMigrationRunAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["id", "tenant", "trigger", "status", "started_at", "finished_at", "applied_count"]
    list_filter = ["status", "trigger"]
    search_fields = ["tenant__name", "=tenant__id", "error"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "trigger", "status", "started_at", "finished_at", "applied", "seeded", "error"]

    @admin.display(description="applied")
    def applied_count(self, obj: TenantMigrationRun) -> int:
        return len(obj.applied or [])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DatabaseServer)
class DatabaseServerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Capacity and state are the operator's; address and account come from the config file
    (`tenants.servers`), as does the password, which the master never holds."""

    list_display = ["name", "state", "tenant_count", "capacity", "host", "port", "usable"]
    list_filter = ["state"]
    search_fields = ["name", "host"]
    fields = ["name", "state", "capacity", "host", "port", "user", "tenant_count", "usable"]

    def get_readonly_fields(self, request: HttpRequest, obj: DatabaseServer | None = None) -> list[str]:
        fixed = ["name"] if obj is not None else []
        return [*fixed, "host", "port", "user", "tenant_count", "usable"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        servers_sync()  # a server added to the config shows up without another step
        return super().changelist_view(request, extra_context)

    @admin.display(description="tenants")
    def tenant_count(self, obj: DatabaseServer) -> int:
        # One count per server: servers are a handful.
        return Tenant.objects.filter(tenants_on_server(obj.name)).count()

    @admin.display(description="usable")
    def usable(self, obj: DatabaseServer) -> str:
        if not server_configured(obj.name):
            return f"no: no credentials for {obj.name!r} in the config file (tenants.servers.{obj.name})"
        return "yes"


admin.site.unregister(Subscription)


class MoveForm(forms.Form):
    to_version = forms.IntegerField(min_value=1, max_value=9999, label="Move to major version")
    drop_old = forms.BooleanField(
        required=False, label="Then back the tenant database up and drop the old version's tables"
    )


@admin.register(Subscription)
class TenantSubscriptionAdmin(AuditedAdminMixin, SubscriptionAdmin):
    """The subscription admin, which also brings the tenant's database up to date on save and
    moves subscriptions to another major version the way `upgrade_subscription` does."""

    actions = ["move_major_version"]

    def save_model(self, request: HttpRequest, obj: Subscription, form: ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        migrate_after_commit(request, obj.tenant_id)

    @admin.action(description=MOVE_ACTION, permissions=["change"])
    def move_major_version(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> TemplateResponse | None:
        """Ask for the version, then run the upgrade of each selected subscription and show its result."""
        subscriptions = list(queryset.select_related("tenant", "module").order_by("tenant_id", "module__name"))
        form = MoveForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": MOVE_ACTION,
                "opts": self.model._meta,
                "subscriptions": subscriptions,
                "form": form,
                "action": "move_major_version",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/tenants/subscription_move.html", context)
        for subscription in subscriptions:
            result = subscription_upgrade_safe(
                tenant=tenant_info_from_row(subscription.tenant),
                module=subscription.module.name,
                to_version=form.cleaned_data["to_version"],
                drop_old=form.cleaned_data["drop_old"],
            )
            self.audit(request, subscription, "upgrade", {"to_version": result.to_version, "ok": result.ok})
            (messages.success if result.ok else messages.error)(request, result.describe())
        return None


@admin.register(TenantMove)
class TenantMoveAdmin(admin.ModelAdmin):
    """Moves are made by `manage.py move_tenant` only (they copy databases): here they are read."""

    list_display = ["id", "tenant", "source", "target", "status", "step", "started_at", "finished_at"]
    list_filter = ["status", "source", "target"]
    search_fields = ["tenant__name", "=tenant__id", "error"]
    list_select_related = ["tenant"]
    readonly_fields = [f.name for f in TenantMove._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
