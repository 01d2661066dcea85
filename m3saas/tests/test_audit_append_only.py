"""The audit log only grows: the application can neither change nor delete an entry, by any road."""

from __future__ import annotations

import pytest

from m3saas.audit.models import AuditEntry, AuditLogAppendOnlyError
from m3saas.audit.services import Source, audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry() -> AuditEntry:
    return audit_record(actor="alice", source=Source.API, action="tenant.create", target_id=7)


def test_an_entry_cannot_be_saved_again(entry):
    entry.actor = "mallory"
    with pytest.raises(AuditLogAppendOnlyError):
        entry.save()
    assert AuditEntry.objects.get(pk=entry.pk).actor == "alice"


def test_an_entry_cannot_be_deleted(entry):
    with pytest.raises(AuditLogAppendOnlyError):
        entry.delete()
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_a_queryset_cannot_update_or_delete_entries(entry):
    with pytest.raises(AuditLogAppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(actor="mallory")
    with pytest.raises(AuditLogAppendOnlyError):
        AuditEntry.objects.all().delete()
    with pytest.raises(AuditLogAppendOnlyError):
        AuditEntry.objects.bulk_update([entry], ["actor"])
    assert AuditEntry.objects.get(pk=entry.pk).actor == "alice"


def test_new_entries_are_appended(entry):
    audit_record(actor="bob", source=Source.ADMIN, action="tenant.delete")
    assert [e.actor for e in AuditEntry.objects.all()] == ["bob", "alice"]


def test_secrets_never_reach_the_detail():
    entry = audit_record(
        actor="alice",
        source=Source.API,
        action="tenant.create",
        detail={"password": "pw", "key": "m3s_x", "nested": {"api_secret": "s", "name": "n"}, "key_id": "abc"},
    )
    assert entry.detail == {"nested": {"name": "n"}, "key_id": "abc"}
