"""Django settings: the JSON config for databases and MQTT, the environment for the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import environ

from m3saas.conf import BASE_DIR, get_config
from m3saas.modules.discovery import discover_module_apps

CONFIG = get_config()

env = environ.Env()

DEBUG = env.bool("DEBUG", default=CONFIG.embedded)
if CONFIG.embedded:
    # The embedded default is for trying M3SaaS on one machine; production sets its own key.
    SECRET_KEY = env.str("SECRET_KEY", default="embedded-default-not-for-production")
else:
    SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_TZ = True
USE_I18N = False
LANGUAGE_CODE = "en-us"

AUTO_MIGRATION = env.bool("AUTO_MIGRATION", default=CONFIG.embedded)
ALWAYS_FORCE_MAIN_SEEDS = env.bool("ALWAYS_FORCE_MAIN_SEEDS", default=False)
# Seconds a tenant's resolved row and modules stay cached per process (0 disables the cache).
TENANT_CACHE_TIMEOUT = env.int("TENANT_CACHE_TIMEOUT", default=300)
# Seconds an idle tenant connection is kept, and how many a worker thread keeps at most.
TENANT_CONN_MAX_AGE = env.int("TENANT_CONN_MAX_AGE", default=60)
TENANT_MAX_OPEN_CONNECTIONS = env.int("TENANT_MAX_OPEN_CONNECTIONS", default=4)
# Parallel workers of `migrate_tenants`.
TENANT_MIGRATION_WORKERS = env.int("TENANT_MIGRATION_WORKERS", default=4)
# Host part of the tenant database users (`user@host`).
TENANT_DB_USER_HOST = env.str("TENANT_DB_USER_HOST", default="%")

MODULES_DIR = Path(env.str("MODULES_DIR", default=str(BASE_DIR / "modules")))
MODULE_APPS = discover_module_apps(MODULES_DIR)

INSTALLED_APPS = [
    "m3saas",
    "m3saas.bookkeeping",
    "tenants",
    "subscriptions",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    *MODULE_APPS,
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "m3saas.tenancy.middleware.TenantMiddleware",
]

ROOT_URLCONF = "m3saas.urls"
WSGI_APPLICATION = "m3saas.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _master_database() -> dict[str, Any]:
    db = CONFIG.database
    if CONFIG.is_mysql:
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": db.name,
            "USER": db.user,
            "PASSWORD": db.password,
            "HOST": db.host,
            "PORT": str(db.port),
            "CONN_MAX_AGE": env.int("MASTER_CONN_MAX_AGE", default=60),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                "charset": CONFIG.charset,
                # One statement per call: a crafted identifier can never smuggle a second one.
                "multi_statements": False,
                "init_command": f"SET default_storage_engine={CONFIG.storage_engine}",
            },
        }
    Path(db.name).parent.mkdir(parents=True, exist_ok=True)
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": db.name, "OPTIONS": {"timeout": 20}}


DATABASES: dict[str, dict[str, Any]] = {"default": _master_database()}
DATABASE_ROUTERS = ["m3saas.tenancy.routers.TenantRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://m3saas")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

STATIC_URL = env.str("STATIC_URL", default="static/")
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "m3saas.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"tenant": {"()": "m3saas.logging.TenantFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [tenant=%(tenant)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["tenant"], "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
