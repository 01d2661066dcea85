"""Django settings: the JSON config for databases and MQTT, the environment for the rest."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Any

from m3saas.access import ACCESS_KEYS, module_api_access_parse, rate_limit_parse
from m3saas.conf import BASE_DIR, ConfigError, load_config
from m3saas.engines import engine_for
from m3saas.env import Env, env_error
from m3saas.logging import LOG_FORMATS, log_format_resolve
from m3saas.modules.discovery import discover_module_apps

# The parsed JSON config (m3saas.conf.Config): every other module reads it from here.
M3SAAS_CONFIG = load_config()

# Strict: a value that cannot be read stops start-up with one line naming the variable.
env = Env()

# Off unless asked for, even in the embedded default: error pages never show a traceback.
DEBUG = env.bool("DEBUG", default=False)
# The embedded default is for trying M3SaaS on one machine; with a config file there is no default key.
SECRET_KEY = env.str("SECRET_KEY", default="embedded-default-not-for-production" if M3SAAS_CONFIG.embedded else "")
if not SECRET_KEY.strip():
    # Django would only refuse it on first use, with a 500 on every request (even /health).
    problem = "is empty" if "SECRET_KEY" in os.environ else "is missing and a config file is used"
    raise ConfigError(f"Set the SECRET_KEY environment variable to a long random value: it {problem}")
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
# Behind a TLS-terminating proxy: `SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto=https` trusts its
# header (set it only when the proxy always overwrites that header), and secure cookies.
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Off by default: the TLS proxy redirects; the container's health check asks over plain HTTP.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
_health = f"{M3SAAS_CONFIG.sub_directory}/health" if M3SAAS_CONFIG.sub_directory else "health"
SECURE_REDIRECT_EXEMPT = [r"^health$", f"^{re.escape(_health)}$"]
# No page of the admin or the API may be framed (clickjacking), sniffed or leak its URL.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
if _proxy_ssl_header:
    _header, _, _value = _proxy_ssl_header.partition("=")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _header.strip().upper().replace("-", "_"), _value.strip() or "https")
# Request bodies above this many bytes are refused with a 413 JSON error.
MAX_REQUEST_BODY_SIZE = env.int("MAX_REQUEST_BODY_SIZE", default=2_621_440)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_SIZE
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_TZ = True
USE_I18N = False
LANGUAGE_CODE = "en-us"

AUTO_MIGRATION = env.bool("AUTO_MIGRATION", default=M3SAAS_CONFIG.embedded)
ALWAYS_FORCE_MAIN_SEEDS = env.bool("ALWAYS_FORCE_MAIN_SEEDS", default=False)
# Seconds a tenant's resolved row and modules stay cached per process (0 disables the cache).
TENANT_CACHE_TIMEOUT = env.int("TENANT_CACHE_TIMEOUT", default=300)
# Seconds an idle tenant connection is kept, and how many a worker thread keeps at most.
TENANT_CONN_MAX_AGE = env.int("TENANT_CONN_MAX_AGE", default=60)
TENANT_MAX_OPEN_CONNECTIONS = env.int("TENANT_MAX_OPEN_CONNECTIONS", default=4)
# Parallel workers of `migrate_tenants`.
TENANT_MIGRATION_WORKERS = env.int("TENANT_MIGRATION_WORKERS", default=4)
# MQTT: QoS 1/2 messages kept while the broker is away, and seconds to flush on exit.
MQTT_MAX_QUEUED_MESSAGES = env.int("MQTT_MAX_QUEUED_MESSAGES", default=1000)
MQTT_CLOSE_TIMEOUT = env.float("MQTT_CLOSE_TIMEOUT", default=2.0)
# Module APIs need a tenant API key unless a view is @public_api; `public` opens them all. Requests
# per tenant and time window, unless the tenant's own limit (admin) says otherwise (m3saas/access.py).
try:
    MODULE_API_ACCESS = module_api_access_parse(env.str("MODULE_API_ACCESS", default=ACCESS_KEYS))
except ValueError as _exc:
    raise ConfigError(f"MODULE_API_ACCESS: {_exc}") from None
try:
    TENANT_RATE_LIMIT = rate_limit_parse(env.str("TENANT_RATE_LIMIT", default="600/min"))
except ValueError as _exc:
    raise ConfigError(f"TENANT_RATE_LIMIT: {_exc}") from None
# Idempotency-Key (m3saas.idempotency): seconds a key's response is replayed, and seconds a
# claim whose request never finished blocks its key (409) before a retry may take it over.
IDEMPOTENCY_KEY_LIFETIME = env.int("IDEMPOTENCY_KEY_LIFETIME", default=86_400)
IDEMPOTENCY_KEY_LEASE = env.int("IDEMPOTENCY_KEY_LEASE", default=60)
# Master seed files: the demo tenants (fixtures/demo/) only with the embedded default; with a
# config file the operator's own (fixtures/*.json, none in the repository or the image).
_seeds = BASE_DIR / "fixtures" / "demo" if M3SAAS_CONFIG.embedded else BASE_DIR / "fixtures"
MASTER_SEEDS_DIR = Path(env.str("MASTER_SEEDS_DIR", default=str(_seeds)))
# Host part of the tenant database users (`user@host`).
TENANT_DB_USER_HOST = env.str("TENANT_DB_USER_HOST", default="%")
# Connections each tenant database user may hold at once (MariaDB MAX_USER_CONNECTIONS; 0: no own
# limit), so one tenant cannot take the server's connections from the others.
TENANT_DB_MAX_CONNECTIONS = env.int("TENANT_DB_MAX_CONNECTIONS", default=20)
for _name in ("TENANT_MAX_OPEN_CONNECTIONS", "TENANT_CONN_MAX_AGE", "TENANT_DB_MAX_CONNECTIONS"):
    if globals()[_name] < 0:
        raise ConfigError(f"{_name} must be 0 or more, not {globals()[_name]}")

# Backups (`manage.py backup`, `runcrons`): where files go, and how often `runcrons` takes one
# of each database (BACKUP_REPEAT: day, week, month, year, or off; every BACKUP_INTERVAL units).
BACKUP_DIR = Path(env.str("BACKUP_DIR", default=str(M3SAAS_CONFIG.var_dir / "backups")))
BACKUP_REPEAT = env.str("BACKUP_REPEAT", default="month")
BACKUP_INTERVAL = env.int("BACKUP_INTERVAL", default=1)
# The MariaDB client tools used for tenant and master backups.
MYSQLDUMP_COMMAND = env.str("MYSQLDUMP_COMMAND", default="mysqldump")
MYSQL_COMMAND = env.str("MYSQL_COMMAND", default="mysql")

# The admin's branding (its pages' header and <title>).
ADMIN_SITE_HEADER = env.str("ADMIN_SITE_HEADER", default="M3SaaS operator admin")
ADMIN_SITE_TITLE = env.str("ADMIN_SITE_TITLE", default="M3SaaS admin")
# Seconds each process keeps its per-tenant request counts before adding them to the shared cache
# (the status page's chart lags by as much; 0: at every request).
TRAFFIC_FLUSH_SECONDS = env.float("TRAFFIC_FLUSH_SECONDS", default=10.0)

MODULES_DIR = Path(env.str("MODULES_DIR", default=str(BASE_DIR / "modules")))
MODULE_APPS = discover_module_apps(MODULES_DIR)

INSTALLED_APPS = [
    "m3saas",
    "m3saas.bookkeeping",
    "m3saas.installation",
    "m3saas.audit",
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
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    *MODULE_APPS,
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside the others, so the JSON errors ApiErrorMiddleware writes carry the header too.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "m3saas.api.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tenants.middleware.TenantMiddleware",
    # Inside the tenant's context (and after whatever authenticates the caller).
    "m3saas.idempotency.IdempotencyMiddleware",
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


# Seconds to wait for a database server to accept a connection (master, tenants, admin account):
# a server that is down answers its tenants' requests and `/health` with a 503 quickly.
DB_CONNECT_TIMEOUT = env.int("DB_CONNECT_TIMEOUT", default=5)


def _master_database() -> dict[str, Any]:
    return engine_for(M3SAAS_CONFIG.database.backend).master_settings(
        M3SAAS_CONFIG,
        conn_max_age=env.int("MASTER_CONN_MAX_AGE", default=60),
        connect_timeout=DB_CONNECT_TIMEOUT,
    )


DATABASES: dict[str, dict[str, Any]] = {"default": _master_database()}
DATABASE_ROUTERS = ["m3saas.tenancy.routers.TenantRouter"]
# The seams between the platform and the apps that use it (see docs/architecture.md): the
# platform asks this directory for tenants, and subscriptions point at this tenant model.
M3SAAS_TENANT_DIRECTORY = "tenants.selectors.TenantDirectory"
M3SAAS_TENANT_MODEL = "tenants.Tenant"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The cache every process of a deployment shares (README, "Caches and several processes"):
# REDIS_URL (redis://host:6379/0), else any CACHE_URL django-environ reads, else: with the embedded
# default, files under var/cache that every process of the machine shares (`make run` serves in one
# process while `manage.py tenant_key revoke` runs in another); with a config file, each process's own.
_redis_url = env.str("REDIS_URL", default="")
if _redis_url:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _redis_url}}
elif "CACHE_URL" not in os.environ and M3SAAS_CONFIG.embedded:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(M3SAAS_CONFIG.var_dir / "cache"),
        }
    }
else:
    CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://m3saas")}
# Installations sharing one Redis database keep apart by prefix.
CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX", default="")
# False: the cache is this process's own (locmem), so no other process changes the master generation
# in it and the process keeps the generation itself instead of reading it per request. A dummy cache
# counts as shared: it holds nothing, so every read starts a new generation and nothing is cached.
TENANT_CACHE_SHARED = "locmem" not in CACHES["default"]["BACKEND"]
# Milliseconds a process trusts its copy of the cache's master generation before asking a shared
# cache again: a change elsewhere is seen within it, and most warm requests cost no round trip.
TENANT_CACHE_GENERATION_CHECK_MS = env.int(
    "TENANT_CACHE_GENERATION_CHECK_MS",
    default=500 if TENANT_CACHE_SHARED and "dummy" not in CACHES["default"]["BACKEND"] else 0,
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

STATIC_URL = env.str("STATIC_URL", default="static/")
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# WhiteNoise serves the admin's and the API docs' assets: from STATIC_ROOT after
# `collectstatic` (the Docker image does it), else straight from the apps.
WHITENOISE_USE_FINDERS = True
# WhiteNoise warns about a missing STATIC_ROOT; before `collectstatic` it is simply empty.
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    # JSON first: the default for every client. The browsable API only for staff sessions or DEBUG.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "m3saas.renderers.OperatorBrowsableAPIRenderer",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "m3saas.renderers.OperatorContentNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "m3saas.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "m3saas.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "m3saas.openapi.ModuleAutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "M3SaaS",
    "DESCRIPTION": "Multi-tenant, modular API: one schema per module version.",
    "VERSION": None,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Logs on stdout, every logger (Django's own included) in one format: LOG_FORMAT=auto (the
# default) writes text lines on a terminal and one JSON object per line otherwise; json or text force it.
_log_formatter = log_format_resolve(env.choice("LOG_FORMAT", choices=LOG_FORMATS, default="auto"), sys.stdout)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"tenant": {"()": "m3saas.logging.TenantFilter"}},
    "formatters": {
        "text": {"()": "m3saas.logging.TextFormatter"},
        "json": {"()": "m3saas.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["tenant"],
            "formatter": _log_formatter,
        },
    },
    "root": {
        "handlers": ["console"],
        "level": env.choice("LOG_LEVEL", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), default="INFO"),
    },
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Django's own handlers (plain text on stderr) would mix a second format into the output.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
    },
}

# Celery (README, "Workers (Celery)"): with a broker URL, per-tenant work (migrations, backups,
# scheduled jobs, upgrades) fans out as one task per tenant; without one it all runs in-process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# Where the commands read each tenant's result: the Redis broker itself, or RabbitMQ's reply queues.
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "rpc://"
)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="m3saas")
# A task is acknowledged when it ends: a worker killed mid-task leaves it to be delivered again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis (only: RabbitMQ redelivers when the worker's connection drops) hands a task not yet
# acknowledged to another worker after `visibility_timeout` seconds. With acks_late a task is
# acknowledged when it ends, so this must outlast the longest task (one tenant's migration or
# backup; a retry's countdown, at most 300 s, counts too), or a long migration starts a second
# time on another worker (which then waits on the tenant's lock). The price of a long one: a task
# of a worker killed outright (SIGKILL, lost host) is delivered again only after it. 6 hours.
VISIBILITY_TIMEOUT_DEFAULT = 6 * 3600
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=VISIBILITY_TIMEOUT_DEFAULT)
}
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] < 600:
    raise env_error(
        "CELERY_VISIBILITY_TIMEOUT",
        str(CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]),
        "seconds, at least 600 (longer than the longest task)",
    )
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
# The worker logs through LOGGING above, so its records carry the tenant as the web's do.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
# Beat's record of the last runs, beside the other state of this installation.
CELERY_BEAT_SCHEDULE_FILENAME = str(M3SAAS_CONFIG.var_dir / "celerybeat-schedule")
# A task that finds a database unreachable is tried again after this many seconds, then 2x, 4x, ….
TASK_RETRY_DELAY = env.float("TASK_RETRY_DELAY", default=5.0)
TASK_MAX_RETRIES = env.int("TASK_MAX_RETRIES", default=8)
# A command waiting on its tasks (`migrate_tenants` … without --no-wait) gives up, with one line
# naming the queue, when none finished for this many seconds (no worker consumes it?).
FANOUT_WAIT_TIMEOUT = env.seconds("FANOUT_WAIT_TIMEOUT", default=900.0)
# When beat starts the daily scheduled jobs (HH:MM, TIME_ZONE), as bin/cron-loop.sh's CRON_TIME.
CRON_TIME = env.str("CRON_TIME", default="03:00")
