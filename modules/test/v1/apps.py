from __future__ import annotations

from django.apps import AppConfig


class TestV1Config(AppConfig):
    name = "modules.test.v1"
    label = "test_v1"
    verbose_name = "test module v1 (animals)"
