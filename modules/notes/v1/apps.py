from __future__ import annotations

from django.apps import AppConfig


class NotesV1Config(AppConfig):
    """Example of a dependency chain: notes on tags (`tags` v1), which are on animals (`test` v1).

    A tenant subscribed to `notes` v1 alone gets all three, given the master's
    `ModuleDependency` rows notes → tags v1 and tags → test v1.
    """

    name = "modules.notes.v1"
    label = "notes_v1"
    verbose_name = "notes module v1 (notes on tags; needs tags v1)"
