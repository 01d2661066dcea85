"""Input and output shapes of the operator API, one small serializer per use."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from m3saas.identifiers import validate_database_name, validate_module_name, validate_user_name
from m3saas.modules.registry import module_version_get


def _django_validator(check: Any) -> Any:
    """A model field validator (`django.core.exceptions.ValidationError`) run as a DRF one."""

    def run(value: str) -> None:
        from django.core.exceptions import ValidationError

        try:
            check(value)
        except ValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    return run


class SubscriptionInput(serializers.Serializer[Any]):
    module = serializers.CharField(max_length=48, validators=[_django_validator(validate_module_name)])
    version = serializers.IntegerField(min_value=1, max_value=9999, default=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if module_version_get(attrs["module"], attrs["version"]) is None:
            raise serializers.ValidationError(
                {"module": [f"No module {attrs['module']!r} at major version {attrs['version']} is installed."]}
            )
        return attrs


class TenantCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=48, validators=[_django_validator(validate_database_name)])
    user = serializers.CharField(max_length=32, validators=[_django_validator(validate_user_name)])
    password = serializers.CharField(max_length=128, min_length=1, write_only=True, trim_whitespace=False)
    subscriptions = SubscriptionInput(many=True, required=False, default=list)
    per_day_backups = serializers.IntegerField(required=False, min_value=-1, max_value=100000)
    max_backups = serializers.IntegerField(required=False, min_value=-1, max_value=100000)
    server = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        max_length=32,
        help_text="The database server to place it on; absent: the open server with the most free capacity.",
    )

    def validate_subscriptions(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        modules = [s["module"] for s in value]
        if len(set(modules)) != len(modules):
            raise serializers.ValidationError("One subscription per module.")
        return value


class TenantUpdateInput(serializers.Serializer[Any]):
    per_day_backups = serializers.IntegerField(required=False, min_value=-1, max_value=100000)
    max_backups = serializers.IntegerField(required=False, min_value=-1, max_value=100000)
    rate_limit = serializers.CharField(required=False, allow_blank=True, max_length=32)


class TenantOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    user = serializers.CharField()
    state = serializers.CharField(source="schema_state")
    state_at = serializers.DateTimeField(source="schema_state_at")
    per_day_backups = serializers.IntegerField()
    max_backups = serializers.IntegerField()
    rate_limit = serializers.CharField()
    server = serializers.CharField(source="server_name", help_text="The database server of its database.")
    subscriptions = serializers.SerializerMethodField()

    def get_subscriptions(self, obj: Any) -> list[dict[str, Any]]:
        return [{"module": s.module.name, "version": s.version} for s in obj.subscriptions.all()]


class SubscriptionChangeInput(serializers.Serializer[Any]):
    version = serializers.IntegerField(min_value=1, max_value=9999)
    drop_old = serializers.BooleanField(default=False)


class UpgradeOutput(serializers.Serializer[Any]):
    ok = serializers.BooleanField()
    module = serializers.CharField()
    from_version = serializers.IntegerField(allow_null=True)
    to_version = serializers.IntegerField()
    switched = serializers.BooleanField()
    applied = serializers.ListField(child=serializers.CharField())
    backup = serializers.CharField(allow_null=True)
    dropped = serializers.ListField(child=serializers.CharField())
    message = serializers.CharField(source="describe")


class RunOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    trigger = serializers.CharField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    applied = serializers.ListField(child=serializers.CharField())
    seeded = serializers.BooleanField()
    error = serializers.CharField()


class BackupOutput(serializers.Serializer[Any]):
    file = serializers.CharField(source="path.name")
    taken_at = serializers.DateTimeField(help_text="The server's local time the file name records.")
    size = serializers.IntegerField()


class ApiKeyCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    modules = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    read_only = serializers.BooleanField(default=False)  # type: ignore[assignment]  # the field is named so
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    rate_limit = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class ApiKeyOutput(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()
    modules = serializers.CharField()
    read_only = serializers.BooleanField()  # type: ignore[assignment]  # the field is named so
    rate_limit = serializers.CharField()
    status = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)

    def get_status(self, obj: Any) -> str:
        return str(obj.status())


class ApiKeyCreatedOutput(ApiKeyOutput):
    key = serializers.CharField(help_text="The whole key: shown only in this response, kept nowhere.")


class AuditEntryOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]  # the field is named so
    address = serializers.CharField()
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    target_repr = serializers.CharField()
    detail = serializers.JSONField()
