"""`migrate_tenants` in a real process to stop, for test_stopped_migration (run with `python -m`; not collected).

`python -m tenants.tests.stopped_migration setup <n>` migrates the master and registers n tenants
of test v1 (databases not created); `… migrate <seconds> [options]` runs `manage.py migrate_tenants
[options]` with every tenant's database work slowed by `seconds`; `… runs` prints the statuses of
each tenant's runs, oldest first, as JSON. The master is the one named by `M3SAAS_TEST_MASTER`
(MariaDB: the test's), else the embedded default under `VAR_DIR`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import django


def main(mode: str, *args: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    master = os.environ.get("M3SAAS_TEST_MASTER")
    if master:
        settings.DATABASES["default"]["NAME"] = master
    if mode == "setup":
        from tenants.tests.factories import TenantFactory

        call_command("migrate", interactive=False, verbosity=0)
        for _ in range(int(args[0])):
            TenantFactory(modules=[("test", 1)])
    elif mode == "migrate":
        from tenants import services

        bring_up = services._schema_bring_up

        def slowed(tenant: Any) -> list[str]:
            time.sleep(float(args[0]))
            return bring_up(tenant)

        services._schema_bring_up = slowed
        from django.core.management import execute_from_command_line

        execute_from_command_line(["manage.py", "migrate_tenants", *args[1:]])
    elif mode == "runs":
        from tenants.models import Tenant

        runs = {row.name: [run.status for run in row.migration_runs.order_by("id")] for row in Tenant.objects.all()}
        print(json.dumps(runs))


if __name__ == "__main__":
    main(sys.argv[1], *sys.argv[2:])
