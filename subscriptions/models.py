from __future__ import annotations

from django.conf import settings
from django.db import models

from m3saas.identifiers import validate_module_name


class Module(models.Model):
    """A business module; `name` is its folder under `modules/`."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=48, unique=True, validators=[validate_module_name])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModuleDependency(models.Model):
    """`module` needs `dependency` at major `version` (in the same tenant database)."""

    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="dependencies")
    dependency = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="dependents")
    version = models.PositiveIntegerField(default=1, help_text="Major version of the dependency.")

    class Meta:
        verbose_name_plural = "module dependencies"
        ordering = ["module__name", "dependency__name"]
        constraints = [
            models.UniqueConstraint(fields=["module", "dependency"], name="unique_module_dependency"),
            models.CheckConstraint(
                condition=~models.Q(module=models.F("dependency")), name="module_not_own_dependency"
            ),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="dependency_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.module} → {self.dependency} v{self.version}"


class Subscription(models.Model):
    """A tenant uses `module` at major `version`; one version per module and tenant."""

    tenant = models.ForeignKey(settings.M3SAAS_TENANT_MODEL, on_delete=models.CASCADE, related_name="subscriptions")
    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="subscriptions")
    version = models.PositiveIntegerField(default=1, help_text="Major version: 1 is served at v1, v1.4, v1.0.1.")

    class Meta:
        ordering = ["tenant_id", "module__name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "module"], name="unique_subscription_per_module"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="subscription_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} → {self.module} v{self.version}"
