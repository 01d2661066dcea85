from __future__ import annotations

from django.apps import AppConfig


class TestV2Config(AppConfig):
    name = "modules.test.v2"
    label = "test_v2"
    verbose_name = "test module v2 (animals with species)"
