"""Settings of the benchmark server: production settings plus one plain, tenant-less route.

Only the URLconf differs from `m3saas.settings`, so the tenant route is served exactly as in
production; the plain route (`bench.urls`) exists for the benchmark and never in production.
"""

from __future__ import annotations

from m3saas.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
