"""Test settings: the real settings with a throw-away `var/` and unique test database names."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_var_dir = os.environ.get("VAR_DIR")
if not _var_dir:
    _var_dir = tempfile.mkdtemp(prefix="m3saas-test-")
    os.environ["VAR_DIR"] = _var_dir
    atexit.register(shutil.rmtree, _var_dir, True)
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")

from m3saas.settings import *  # noqa: E402,F403
from m3saas.settings import DATABASES, M3SAAS_CONFIG  # noqa: E402

if M3SAAS_CONFIG.is_mysql:
    # Unique per run, so two suites can share one server.
    DATABASES["default"]["TEST"] = {"NAME": f"test_m3saas_master_{os.getpid()}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The suite's commands run in-process whatever the shell says; the worker tests start their own.
CELERY_BROKER_URL = ""

# In-process tests use this process's memory (the tests of shared caches set their own; the
# embedded default's file cache is tested with real processes in tests/test_shared_cache.py).
if not os.environ.get("REDIS_URL") and "CACHE_URL" not in os.environ:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "m3saas"}}
    TENANT_CACHE_GENERATION_CHECK_MS = 0
    # The suite writes the cache as another process would (a shared cache's behaviour); the
    # per-process path is tested on its own (tests/test_request_path.py).
    TENANT_CACHE_SHARED = True
