from __future__ import annotations

from django.apps import AppConfig


class InstallationConfig(AppConfig):
    name = "m3saas.installation"
    label = "installation"
    verbose_name = "Installation identity (master database only)"
