"""Long operator work over HTTP: 202 with the job's URL, then poll it until it is done or failed.

Without a broker (these tests) the job runs in a thread of the serving process; it commits its
own rows, so the tests are transactional. The Celery road is in test_workers.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from m3saas.audit.models import AuditEntry
from subscriptions.models import Subscription
from tenants.models import OperatorJob, Tenant

pytestmark = pytest.mark.django_db(transaction=True)


def _client(name: str = "") -> APIClient:
    user = User.objects.create_user(name or f"op_{uuid.uuid4().hex[:8]}", password="pw-operator-123", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def operator(settings: Any) -> APIClient:
    settings.CELERY_BROKER_URL = ""  # the thread road, whatever the environment says
    return _client()


def _poll(client: APIClient, url: str, seconds: float = 90) -> dict[str, Any]:
    """GET the job until it is done or failed, as a client would."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.content
        job = response.json()
        if job["status"] in ("done", "failed"):
            assert "Retry-After" not in response
            return job
        assert response["Retry-After"]
        assert time.monotonic() < deadline, f"job still {job['status']} after {seconds}s"
        time.sleep(0.1)


def test_a_major_version_change_is_accepted_then_polled_until_done(operator, make_tenant):
    tenant = make_tenant(modules=[("test", 1)])
    response = operator.patch(f"/operator/v1/tenants/{tenant.id}/subscriptions/test", {"version": 2}, format="json")
    assert response.status_code == 202, response.content
    accepted = response.json()
    assert accepted["status"] in ("queued", "running", "done")
    assert response["Location"] == accepted["url"] == f"http://testserver/operator/v1/jobs/{accepted['id']}"
    job = _poll(operator, response["Location"])
    assert job["status"] == "done", job
    assert job["kind"] == "upgrade" and job["tenant"] == tenant.id and job["error"] == ""
    assert job["result"]["ok"] and job["result"]["switched"]
    assert (job["result"]["from_version"], job["result"]["to_version"]) == (1, 2)
    assert Subscription.objects.get(tenant_id=tenant.id).version == 2
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "detail"))
    assert (
        "subscription.upgrade",
        {"module": "test", "version": 2, "drop_old": False, "from_version": 1, "job": job["id"]},
    ) in actions
    assert [a for a, _ in actions][-1] == "job.done"


def test_a_failing_upgrade_ends_failed_with_its_error_and_the_tenant_stays(operator, make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    response = operator.patch(f"/operator/v1/tenants/{tenant.id}/subscriptions/test", {"version": 1}, format="json")
    assert response.status_code == 202
    job = _poll(operator, response["Location"])
    assert job["status"] == "failed"
    assert "moving back to v1 is not supported" in job["error"] and "still on v2" in job["error"]
    assert Subscription.objects.get(tenant_id=tenant.id).version == 2
    assert AuditEntry.objects.filter(action="job.failed", target_id=job["id"]).exists()


def test_what_can_be_refused_at_once_is_refused_before_any_job(operator, make_tenant):
    tenant = make_tenant(modules=[("test", 1)], provision=False)
    url = f"/operator/v1/tenants/{tenant.id}/subscriptions"
    assert operator.patch(f"{url}/test", {"version": 77}, format="json").status_code == 400
    assert operator.patch(f"{url}/nosuch", {"version": 2}, format="json").status_code == 404
    assert (
        operator.patch("/operator/v1/tenants/999999/subscriptions/test", {"version": 2}, format="json").status_code
        == 404
    )
    assert not OperatorJob.objects.exists()


@pytest.mark.parametrize("job_id", ["0" * 32, "nosuch", "x" * 300])
def test_an_unknown_job_is_404(operator, job_id):
    response = operator.get(f"/operator/v1/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_jobs_are_staff_only(make_tenant):
    tenant = make_tenant(provision=False)
    job = OperatorJob.objects.create(kind="backup", tenant_id=tenant.id, tenant_name=tenant.name, actor="x")
    assert APIClient().get(f"/operator/v1/jobs/{job.pk}").status_code == 401
    user = User.objects.create_user("plain_user", password="pw-operator-123")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get(f"/operator/v1/jobs/{job.pk}").status_code == 403
    assert client.post(f"/operator/v1/tenants/{tenant.id}/backups").status_code == 403
    assert OperatorJob.objects.count() == 1


def test_a_backup_now_is_a_job_whose_result_names_the_file(operator, make_tenant, settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    tenant = make_tenant()
    url = f"/operator/v1/tenants/{tenant.id}/backups"
    response = operator.post(url)
    assert response.status_code == 202, response.content
    job = _poll(operator, response["Location"])
    assert job["status"] == "done", job
    assert job["result"]["file"].startswith(f"{tenant.name}-") and job["result"]["size"] > 0
    assert [b["file"] for b in operator.get(url).json()] == [job["result"]["file"]]
    listed = operator.get("/operator/v1/jobs", {"tenant": tenant.id, "status": "done"}).json()
    assert [j["id"] for j in listed["results"]] == [job["id"]]


def test_a_retry_with_the_same_idempotency_key_gets_the_same_job(operator, make_tenant, settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    tenant = make_tenant()
    url = f"/operator/v1/tenants/{tenant.id}/backups"
    first = operator.post(url, HTTP_IDEMPOTENCY_KEY="nightly-2026-11-29")
    retry = operator.post(url, HTTP_IDEMPOTENCY_KEY="nightly-2026-11-29")
    assert first.status_code == retry.status_code == 202
    assert retry["Location"] == first["Location"] and retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    _poll(operator, first["Location"])
    assert OperatorJob.objects.count() == 1
    assert AuditEntry.objects.filter(action="backup.create").count() == 1
    # The same key for another request of the same operator is refused; another operator's is their own.
    other_url = f"/operator/v1/tenants/{tenant.id}/subscriptions/test"
    reused = operator.patch(other_url, {"version": 2}, format="json", HTTP_IDEMPOTENCY_KEY="nightly-2026-11-29")
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    colleague = _client()
    theirs = colleague.post(url, HTTP_IDEMPOTENCY_KEY="nightly-2026-11-29")
    assert theirs.status_code == 202 and theirs["Location"] != first["Location"]
    _poll(colleague, theirs["Location"])
    assert operator.post(url, HTTP_IDEMPOTENCY_KEY="\x01bad").status_code == 400
    assert OperatorJob.objects.count() == 2


def test_a_job_whose_process_died_reads_as_interrupted(operator, make_tenant):
    tenant = make_tenant(provision=False)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    runner = f"thread:{socket.gethostname()}:{gone.stdout.strip()}"
    job = OperatorJob.objects.create(
        kind="upgrade", tenant_id=tenant.id, tenant_name=tenant.name, actor="x", status="running", runner=runner
    )
    polled = operator.get(f"/operator/v1/jobs/{job.pk}").json()
    assert polled["status"] == "failed" and polled["error"].startswith("Interrupted: process ")


def test_a_job_of_a_deleted_tenant_says_so(operator, make_tenant):
    from tenants.operator_api.jobs import operator_job_run

    tenant = make_tenant(provision=False)
    job = OperatorJob.objects.create(kind="backup", tenant_id=tenant.id, tenant_name=tenant.name, actor="x")
    Tenant.objects.filter(pk=tenant.id).delete()
    operator_job_run(job_id=job.pk)
    polled = operator.get(f"/operator/v1/jobs/{job.pk}").json()
    assert polled["status"] == "failed" and "was deleted before the job ran" in polled["error"]
    assert polled["tenant"] is None and polled["tenant_name"] == tenant.name


def test_an_admin_session_form_post_with_an_idempotency_key_is_accepted_once(make_tenant, settings, tmp_path):
    """The CSRF check reads the form before the view: the key's fingerprint still has the raw body."""
    from django.test import Client

    settings.CELERY_BROKER_URL = ""
    settings.BACKUP_DIR = tmp_path / "backups"
    tenant = make_tenant()
    User.objects.create_user("session_op", password="pw-operator-123", is_staff=True)
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="session_op", password="pw-operator-123")
    browser.get("/admin/password_change/")  # a form page: it sets the CSRF cookie
    form = {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value}
    url = f"/operator/v1/tenants/{tenant.id}/backups"
    first = browser.post(url, form, HTTP_IDEMPOTENCY_KEY="from-the-browser")
    retry = browser.post(url, form, HTTP_IDEMPOTENCY_KEY="from-the-browser")
    assert first.status_code == retry.status_code == 202, first.content
    assert retry["Location"] == first["Location"] and retry["Idempotent-Replayed"] == "true"
    token_client = _client()
    assert _poll(token_client, first["Location"])["status"] == "done"


@pytest.mark.parametrize("tenant", ["²", "①", "-1", "x"])
def test_a_job_list_filter_that_is_not_a_tenant_id_is_400(operator, tenant):
    """`"²".isdigit()` is true but `int("²")` raises: a 400 naming the parameter, never a 500."""
    response = operator.get("/operator/v1/jobs", {"tenant": tenant})
    assert response.status_code == 400, response.content
    assert "tenant" in response.json()["error"]["message"]


def _backup_job(tenant: Any, **fields: Any) -> OperatorJob:
    return OperatorJob.objects.create(kind="backup", tenant_id=tenant.id, tenant_name=tenant.name, actor="x", **fields)


def _gone_pid() -> str:
    return subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()


def _concurrently(job_id: str, work: Any) -> list[Any]:
    """`work(job_id=…)` in two threads started together, as two deliveries of one task.

    The SQLite test master is an in-memory database in shared-cache mode, where a statement that
    meets another connection's table lock fails at once ("database table is locked") instead of
    waiting as on a file; such a statement changed nothing and is tried again.
    """
    from django.db import OperationalError, connections

    start = threading.Barrier(2)
    results: list[Any] = []

    def one() -> None:
        try:
            start.wait()
            for _ in range(50):
                try:
                    results.append(work(job_id=job_id))
                    return
                except OperationalError as exc:
                    if "table is locked" not in str(exc):
                        raise
                    time.sleep(0.01)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2
    return results


def test_of_two_concurrent_claims_of_a_queued_job_one_wins(make_tenant):
    from tenants.operator_api.jobs import operator_job_claim

    tenant = make_tenant(provision=False)
    job = _backup_job(tenant)
    assert sorted(_concurrently(job.pk, operator_job_claim)) == [False, True]
    job.refresh_from_db()
    assert job.status == "running" and job.runner == f"thread:{socket.gethostname()}:{os.getpid()}"


def test_of_two_concurrent_claims_of_a_job_whose_runner_died_one_wins(make_tenant):
    from tenants.operator_api.jobs import operator_job_claim

    tenant = make_tenant(provision=False)
    dead = f"celery:{socket.gethostname()}:{_gone_pid()}"
    job = _backup_job(tenant, status="running", runner=dead)
    assert sorted(_concurrently(job.pk, operator_job_claim)) == [False, True]


def test_a_second_delivery_of_a_running_job_does_not_run_it_again(make_tenant):
    """The first runner (this process) is alive: the duplicate leaves the job alone (no second backup)."""
    from tenants.operator_api.jobs import operator_job_run

    tenant = make_tenant(provision=False)
    alive = f"celery:{socket.gethostname()}:{os.getpid()}"
    job = _backup_job(tenant, status="running", runner=alive)
    Tenant.objects.filter(pk=tenant.id).delete()  # a run would end the job at once as failed
    operator_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "running" and job.runner == alive
    assert not AuditEntry.objects.filter(action__startswith="job.").exists()


def test_a_job_whose_worker_died_is_run_again_by_its_redelivery(make_tenant):
    from tenants.operator_api.jobs import operator_job_run

    tenant = make_tenant(provision=False)
    job = _backup_job(tenant, status="running", runner=f"celery:{socket.gethostname()}:{_gone_pid()}")
    Tenant.objects.filter(pk=tenant.id).delete()
    operator_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "was deleted before the job ran" in job.error


def test_a_job_of_a_worker_elsewhere_is_taken_over_only_after_the_visibility_timeout(make_tenant, settings):
    from datetime import timedelta

    from django.utils import timezone

    from tenants.operator_api.jobs import operator_job_claim

    tenant = make_tenant(provision=False)
    lease = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    job = _backup_job(
        tenant,
        status="running",
        runner="celery:another-host:4242",
        started_at=timezone.now() - timedelta(seconds=lease - 60),
    )
    assert operator_job_claim(job_id=job.pk) is False
    OperatorJob.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=lease + 60))
    assert operator_job_claim(job_id=job.pk) is True


def test_two_concurrent_deliveries_of_a_backup_job_take_one_backup(make_tenant, settings, tmp_path):
    from tenants.operator_api.jobs import operator_job_run

    settings.CELERY_BROKER_URL = ""
    settings.BACKUP_DIR = tmp_path / "backups"
    tenant = make_tenant()
    job = _backup_job(tenant)
    _concurrently(job.pk, operator_job_run)
    job.refresh_from_db()
    assert job.status == "done", job.error
    # One run, so one outcome recorded (a second would add a job.done or a job.failed) and one file.
    assert list(AuditEntry.objects.filter(action__startswith="job.").values_list("action", flat=True)) == ["job.done"]
    assert len([path for path in (tmp_path / "backups").rglob("*") if path.is_file()]) == 1
