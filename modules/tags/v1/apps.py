from __future__ import annotations

from django.apps import AppConfig


class TagsV1Config(AppConfig):
    """Example of a module that depends on another: tags on the `test` module's animals (v1).

    The dependency is declared in the master (`ModuleDependency`: tags → test v1), so a tenant
    subscribed to `tags` v1 also gets `test` v1, migrated first.
    """

    name = "modules.tags.v1"
    label = "tags_v1"
    verbose_name = "tags module v1 (labels on animals; needs test v1)"
