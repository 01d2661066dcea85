"""Backups of tenant and master databases: files, retention, restore, refusals, commands.

Every test runs on SQLite and (in the MariaDB pass) through the real mysqldump/mysql.
"""

from __future__ import annotations

import gzip
import io
import shutil
from datetime import date, datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone

from m3saas.engines import BackupMismatchError, RestoreError
from m3saas.engines.mysql import HEADER_PREFIX
from modules.test.v1.models import Animal
from modules.test.v2.models import Animal as AnimalV2
from subscriptions.models import Subscription
from tenants.backup_files import BackupNotFoundError, backup_list, backup_select
from tenants.backups import (
    backup_create,
    backup_header,
    backup_restore,
    backup_target_get,
    backup_target_master,
)
from tenants.models import Tenant
from tenants.selectors import tenant_info_fresh
from tenants.services import tenant_migrate, tenants_schema_mark_pending

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


def at(day: str, clock: str = "12:00:00") -> datetime:
    return timezone.make_aware(datetime.fromisoformat(f"{day}T{clock}"))


def names(alias: str) -> list[tuple[int, str]]:
    return list(Animal.objects.using(alias).order_by("id").values_list("id", "name"))


def files(database: str) -> list[str]:
    return [b.path.name for b in backup_list(database=database)]


def ext() -> str:
    return ".sql.gz" if settings.M3SAAS_CONFIG.is_mysql else ".sqlite3.gz"


def test_backup_is_a_compressed_file_named_after_database_date_and_series(make_tenant, backup_dir):
    tenant = make_tenant()
    result = backup_create(target=backup_target_get(tenant_name=tenant.name), now=at("2031-03-04", "05:06:07"))
    expected = backup_dir / tenant.name / f"{tenant.name}-2031-03-04-050607{ext()}"
    assert result.backup.path == expected
    with gzip.open(expected, "rb") as fh:
        assert fh.read(16)  # a valid gzip stream with content
    assert backup_header(result.backup)["database"] == tenant.name


def test_restore_gives_back_exactly_the_rows_backed_up(make_tenant):
    tenant = make_tenant()
    for name in ("cat", "dog", "owl"):
        Animal.objects.using(tenant.alias).create(name=name)
    saved = names(tenant.alias)
    target = backup_target_get(tenant_name=tenant.name)
    backup = backup_create(target=target, now=at("2031-01-01")).backup
    Animal.objects.using(tenant.alias).filter(name="dog").delete()
    Animal.objects.using(tenant.alias).filter(name="cat").update(name="tiger")
    Animal.objects.using(tenant.alias).create(name="added-later")

    backup_restore(target=target, backup=backup)

    assert names(tenant.alias) == saved


def test_restore_replaces_tables_created_after_the_backup(make_tenant):
    tenant = make_tenant()
    target = backup_target_get(tenant_name=tenant.name)
    backup = backup_create(target=target, now=at("2031-01-01")).backup
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("CREATE TABLE later_table (id INTEGER PRIMARY KEY)")

    backup_restore(target=target, backup=backup)

    assert "later_table" not in connections[tenant.alias].introspection.table_names()
    assert names(tenant.alias) == []


def test_restore_leaves_other_tenants_untouched(make_tenant):
    first, second = make_tenant(), make_tenant()
    Animal.objects.using(first.alias).create(name="first-before")
    Animal.objects.using(second.alias).create(name="second-before")
    target = backup_target_get(tenant_name=first.name)
    backup = backup_create(target=target, now=at("2031-01-01")).backup
    backup_create(target=backup_target_get(tenant_name=second.name), now=at("2031-01-01"))
    Animal.objects.using(second.alias).create(name="second-after")
    Animal.objects.using(first.alias).create(name="first-after")

    backup_restore(target=target, backup=backup)

    assert [n for _, n in names(first.alias)] == ["first-before"]
    assert [n for _, n in names(second.alias)] == ["second-before", "second-after"]


def test_restore_command_picks_newest_newest_of_a_day_or_exact_series(make_tenant):
    tenant = make_tenant(per_day_backups=0, max_backups=0)
    target = backup_target_get(tenant_name=tenant.name)
    moments = [
        ("2031-05-01", "10:00:00"),
        ("2031-05-02", "08:00:00"),
        ("2031-05-02", "20:00:00"),
        ("2031-05-03", "09:00:00"),
    ]
    for index, (day, clock) in enumerate(moments):
        Animal.objects.using(tenant.alias).create(name=f"{day}-{clock}")
        backup_create(target=target, now=at(day, clock))
        assert len(names(tenant.alias)) == index + 1

    call_command("restore", tenant=tenant.name, date="2031-05-02", interactive=False, stdout=io.StringIO())
    assert len(names(tenant.alias)) == 3  # 20:00, the newest of that day

    call_command(
        "restore", tenant=tenant.name, date="2031-05-02", series="080000", interactive=False, stdout=io.StringIO()
    )
    assert len(names(tenant.alias)) == 2

    call_command("restore", tenant=tenant.name, interactive=False, stdout=io.StringIO())
    assert len(names(tenant.alias)) == 4


def test_restore_of_a_missing_day_fails_and_changes_nothing(make_tenant):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="kept")
    backup_create(target=backup_target_get(tenant_name=tenant.name), now=at("2031-05-01"))
    with pytest.raises(CommandError, match="No backup"):
        call_command("restore", tenant=tenant.name, date="2031-06-01", interactive=False)
    assert [n for _, n in names(tenant.alias)] == ["kept"]


def test_series_without_date_is_refused(make_tenant):
    with pytest.raises(BackupNotFoundError, match="needs a date"):
        backup_select(database="anything", series="120000")


def test_backup_of_another_database_is_refused_by_its_content(make_tenant, backup_dir):
    mine, theirs = make_tenant(), make_tenant()
    Animal.objects.using(mine.alias).create(name="mine")
    Animal.objects.using(theirs.alias).create(name="theirs")
    foreign = backup_create(target=backup_target_get(tenant_name=theirs.name), now=at("2031-01-01")).backup
    # Renamed into my folder under my name: only the content tells it apart.
    disguised = backup_dir / mine.name / f"{mine.name}-2031-01-02-000000{ext()}"
    disguised.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(foreign.path, disguised)
    target = backup_target_get(tenant_name=mine.name)

    with pytest.raises(BackupMismatchError, match=theirs.name):
        backup_restore(target=target, backup=backup_select(database=mine.name))
    with pytest.raises(CommandError, match="refused"):
        call_command("restore", tenant=mine.name, interactive=False)
    assert [n for _, n in names(mine.alias)] == ["mine"]


def test_backup_of_another_database_is_refused_by_its_name(make_tenant):
    mine, theirs = make_tenant(), make_tenant()
    foreign = backup_create(target=backup_target_get(tenant_name=theirs.name), now=at("2031-01-01")).backup
    with pytest.raises(BackupMismatchError, match="refused"):
        backup_restore(target=backup_target_get(tenant_name=mine.name), backup=foreign)


def test_retention_keeps_per_day_and_overall_limits_across_days(make_tenant):
    tenant = make_tenant(per_day_backups=2, max_backups=5)
    target = backup_target_get(tenant_name=tenant.name)
    for day in ("2031-01-01", "2031-01-02"):
        for clock in ("01:00:00", "02:00:00", "03:00:00"):
            backup_create(target=target, now=at(day, clock))
    assert files(tenant.name) == [
        f"{tenant.name}-2031-01-01-020000{ext()}",
        f"{tenant.name}-2031-01-01-030000{ext()}",
        f"{tenant.name}-2031-01-02-020000{ext()}",
        f"{tenant.name}-2031-01-02-030000{ext()}",
    ]
    backup_create(target=target, now=at("2031-01-03", "01:00:00"))
    result = backup_create(target=target, now=at("2031-01-03", "02:00:00"))

    assert [b.path.name for b in result.removed] == [f"{tenant.name}-2031-01-01-020000{ext()}"]
    assert files(tenant.name) == [
        f"{tenant.name}-2031-01-01-030000{ext()}",
        f"{tenant.name}-2031-01-02-020000{ext()}",
        f"{tenant.name}-2031-01-02-030000{ext()}",
        f"{tenant.name}-2031-01-03-010000{ext()}",
        f"{tenant.name}-2031-01-03-020000{ext()}",
    ]


def test_limits_below_one_mean_unlimited(make_tenant):
    tenant = make_tenant(per_day_backups=0, max_backups=-1)
    target = backup_target_get(tenant_name=tenant.name)
    start = at("2031-01-01", "00:00:00")
    for hours in range(0, 36, 3):
        backup_create(target=target, now=start + timedelta(hours=hours))
    assert len(files(tenant.name)) == 12


def test_default_limits_keep_one_backup_a_day(make_tenant):
    tenant = make_tenant()
    target = backup_target_get(tenant_name=tenant.name)
    backup_create(target=target, now=at("2031-01-01", "01:00:00"))
    backup_create(target=target, now=at("2031-01-01", "02:00:00"))
    assert files(tenant.name) == [f"{tenant.name}-2031-01-01-020000{ext()}"]


def test_two_backups_in_the_same_second_get_two_series(make_tenant):
    tenant = make_tenant(per_day_backups=0)
    target = backup_target_get(tenant_name=tenant.name)
    first = backup_create(target=target, now=at("2031-01-01", "01:00:00")).backup
    second = backup_create(target=target, now=at("2031-01-01", "01:00:00")).backup
    assert (first.series, second.series) == ("010000", "010001")


def test_backup_command_for_one_and_all_tenants_and_listbackups(make_tenant, backup_dir):
    first, second = make_tenant(), make_tenant()
    out = io.StringIO()
    call_command("backup", tenant=first.name, stdout=out)
    assert f"{first.name}: {backup_dir / first.name}" in out.getvalue()
    assert len(files(first.name)) == 1 and files(second.name) == []

    call_command("backup", all_tenants=True, stdout=io.StringIO())
    assert len(files(second.name)) == 1

    listing = io.StringIO()
    call_command("listbackups", stdout=listing)
    assert f"{first.name} (1):" in listing.getvalue()
    assert f"{second.name} (1):" in listing.getvalue()


def test_backup_command_of_an_unknown_tenant_fails():
    with pytest.raises(CommandError, match="No tenant with id or name 'nosuchtenant'"):
        call_command("backup", tenant="nosuchtenant")


@pytest.mark.django_db(transaction=True)
def test_master_backup_uses_the_configs_limits(backup_dir):
    """The master is backed up under its database name, one a day with the test config's perDay=1."""
    target = backup_target_master()
    call_command("backup", stdout=io.StringIO())
    call_command("backup", stdout=io.StringIO())
    backups = backup_list(database=target.database)
    assert len(backups) == 1
    assert backups[0].day == timezone.localdate()
    assert backup_header(backups[0])["database"] == target.database


def test_a_backup_lists_under_its_day(make_tenant):
    tenant = make_tenant()
    backup_create(target=backup_target_get(tenant_name=tenant.name), now=at("2031-07-08", "23:59:59"))
    (only,) = backup_list(database=tenant.name)
    assert (only.day, only.series) == (date(2031, 7, 8), "235959")


# --- a failed restore leaves the tenant as it was ------------------------------------------


def mysql_databases(prefix: str) -> set[str]:
    """The server's databases named `prefix…` (other suites share the server and come and go)."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SHOW DATABASES")
        return {row[0] for row in cursor.fetchall() if row[0].startswith(prefix)}


def test_restore_of_a_damaged_file_fails_and_keeps_the_tenants_data(make_tenant):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="before")
    target = backup_target_get(tenant_name=tenant.name)
    backup = backup_create(target=target, now=at("2031-01-01")).backup
    Animal.objects.using(tenant.alias).create(name="after")
    data = backup.path.read_bytes()
    backup.path.write_bytes(data[: len(data) // 2])  # a truncated gzip stream

    with pytest.raises(RestoreError, match="damaged"):
        backup_restore(target=target, backup=backup)

    assert [n for _, n in names(tenant.alias)] == ["before", "after"]


@pytest.mark.mariadb
def test_restore_without_a_working_mysql_client_keeps_the_tenants_data(make_tenant, settings):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="kept")
    target = backup_target_get(tenant_name=tenant.name)
    backup = backup_create(target=target, now=at("2031-01-01")).backup
    settings.MYSQL_COMMAND = "/nonexistent/mysql"

    with pytest.raises(RestoreError, match="/nonexistent/mysql"):
        backup_restore(target=target, backup=backup)

    assert [n for _, n in names(tenant.alias)] == ["kept"]


@pytest.mark.mariadb
def test_restore_of_a_dump_that_fails_partway_keeps_the_tenants_data_and_no_scratch_database(make_tenant):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="kept")
    target = backup_target_get(tenant_name=tenant.name)
    backup = backup_create(target=target, now=at("2031-01-01")).backup
    with gzip.open(backup.path, "rb") as fh:
        header = fh.readline()
    assert header.startswith(HEADER_PREFIX)
    with gzip.open(backup.path, "wb") as fh:  # loads a table, then stops at an error
        fh.write(header + b"CREATE TABLE partial_table (id INT PRIMARY KEY);\nTHIS IS NOT SQL;\n")
    before = mysql_databases(tenant.name)

    with pytest.raises(RestoreError, match="failed"):
        backup_restore(target=target, backup=backup)

    assert [n for _, n in names(tenant.alias)] == ["kept"]
    assert "partial_table" not in connections[tenant.alias].introspection.table_names()
    assert mysql_databases(tenant.name) == before == {tenant.name}


def test_restore_brings_back_views_and_the_tenant_user_keeps_its_access(make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    for name in ("ant", "asp", "bee"):
        AnimalV2.objects.using(tenant.alias).create(name=name)
    target = backup_target_get(tenant_name=tenant.name)
    backup = backup_create(target=target, now=at("2031-01-01")).backup
    AnimalV2.objects.using(tenant.alias).create(name="cat")

    backup_restore(target=target, backup=backup)

    connections[tenant.alias].close()  # a new connection, as the tenant's own user
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("SELECT letter, animals FROM test_v2_animal_stats ORDER BY letter")
        assert [tuple(row) for row in cursor.fetchall()] == [("A", 2), ("B", 1)]
    assert sorted(AnimalV2.objects.using(tenant.alias).values_list("name", flat=True)) == ["ant", "asp", "bee"]


# --- a restored schema is brought up to date -----------------------------------------------


def upgrade_to_test_v2(tenant) -> None:
    """The tenant moves to `test` v2 after its backup was taken."""
    Subscription.objects.filter(tenant_id=tenant.id, module__name="test").update(version=2)
    tenants_schema_mark_pending(tenant_ids=[tenant.id])
    target = backup_target_get(tenant_name=tenant.name)
    assert target.tenant is not None
    assert tenant_migrate(tenant=target.tenant).ok


def test_restore_marks_the_tenants_schema_pending(make_tenant):
    tenant = make_tenant()
    backup = backup_create(target=backup_target_get(tenant_name=tenant.name), now=at("2031-01-01")).backup
    upgrade_to_test_v2(tenant)
    assert Tenant.objects.get(pk=tenant.id).schema_state == Tenant.SchemaState.READY

    backup_restore(target=backup_target_get(tenant_name=tenant.name), backup=backup)

    assert Tenant.objects.get(pk=tenant.id).schema_state == Tenant.SchemaState.PENDING
    assert "test_v2_animal" not in connections[tenant.alias].introspection.table_names()


def test_restore_command_migrates_an_older_backup_to_the_tenants_modules(make_tenant):
    tenant = make_tenant()
    backup = backup_create(target=backup_target_get(tenant_name=tenant.name), now=at("2031-01-01")).backup
    upgrade_to_test_v2(tenant)
    out = io.StringIO()

    call_command("restore", tenant=tenant.name, interactive=False, stdout=out)

    assert backup.path.name in out.getvalue()
    assert "migrated" in out.getvalue()
    assert Tenant.objects.get(pk=tenant.id).schema_state == Tenant.SchemaState.READY
    connections[tenant.alias].close()
    assert "test_v2_animal" in connections[tenant.alias].introspection.table_names()
    AnimalV2.objects.using(tenant.alias).create(name="works")


@pytest.mark.mariadb
def test_restore_brings_back_triggers_and_stored_functions(make_tenant):
    tenant = make_tenant()
    with connections[tenant.alias].cursor() as cursor:  # DDL: never on "default" (it would commit the test)
        cursor.execute(
            "CREATE TRIGGER upper_name BEFORE INSERT ON test_v1_animal FOR EACH ROW SET NEW.name = UPPER(NEW.name)"
        )
        cursor.execute("CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2")
    target = backup_target_get(tenant_name=tenant.name)
    backup = backup_create(target=target, now=at("2031-01-01")).backup
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("DROP TRIGGER upper_name")
        cursor.execute("DROP FUNCTION double_it")

    backup_restore(target=target, backup=backup)

    Animal.objects.using(tenant.alias).create(name="quiet")
    assert [n for _, n in names(tenant.alias)] == ["QUIET"]
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("SELECT double_it(21)")
        assert cursor.fetchone()[0] == 42


def test_restore_keeps_the_tenants_owner_mark_when_the_backup_has_none(make_tenant):
    tenant = make_tenant(provision=False)
    assert tenant_migrate(tenant=tenant).ok  # migrated by this installation, as operators do
    with connections[tenant.alias].cursor() as cursor:  # a backup from before databases had one
        cursor.execute("DROP TABLE IF EXISTS m3saas_owner")
    target = backup_target_get(tenant_name=tenant.name)
    backup = backup_create(target=target, now=at("2031-01-01")).backup
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("CREATE TABLE m3saas_owner (tenant_id BIGINT PRIMARY KEY)")
        cursor.execute("INSERT INTO m3saas_owner (tenant_id) VALUES (%s)", [tenant.id])

    backup_restore(target=target, backup=backup)

    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("SELECT tenant_id FROM m3saas_owner")
        assert [row[0] for row in cursor.fetchall()] == [tenant.id]
    # Provisioning still recognises the tenant's database (pending after the restore, but
    # migrated here before), and upgrades its legacy mark.
    assert tenant_migrate(tenant=tenant_info_fresh(tenant_id=tenant.id)).ok
