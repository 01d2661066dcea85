"""A migration process to kill, for test_killed_migration (run with `python -m`; not collected).

`python -m tenants.tests.killed_migration <tenant.pickle> <mode> <n>` migrates the pickled
tenant and, right after its n-th schema statement, SIGKILLs itself (modes `kill…`) or prints
`holding` and sleeps until killed (modes `hold…`). Modes ending in `schema` run only
`tenant_migrate_schema` (no master rows); the others run the service `tenant_migrate`, which
records its run in the master named by `M3SAAS_TEST_MASTER`. Prints `done` if it got through.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
from pathlib import Path
from typing import Any

import django


def main(path: str, mode: str, after: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.conf import settings
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor

    master = os.environ.get("M3SAAS_TEST_MASTER")
    if master:
        settings.DATABASES["default"]["NAME"] = master
    tenant = pickle.loads(Path(path).read_bytes())  # noqa: S301 - written by the test itself
    run_statement = BaseDatabaseSchemaEditor.execute
    count = 0

    def execute(self: BaseDatabaseSchemaEditor, sql: Any, params: Any = ()) -> None:
        nonlocal count
        run_statement(self, sql, params)
        if self.collect_sql:
            return
        count += 1
        if count == after:
            if mode.startswith("kill"):
                os.kill(os.getpid(), signal.SIGKILL)
            print("holding", flush=True)
            time.sleep(300)

    BaseDatabaseSchemaEditor.execute = execute  # type: ignore[method-assign]
    if mode.endswith("schema"):
        from m3saas.tenancy.migrate import tenant_migrate_schema

        tenant_migrate_schema(tenant)
    else:
        from tenants.services import tenant_migrate

        result = tenant_migrate(tenant=tenant)
        if not result.ok:
            print(result.error, file=sys.stderr)
            sys.exit(1)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
