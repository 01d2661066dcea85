"""Data step of `manage.py upgrade_subscription <tenant> test 2`: v1's animals into v2.

Runs after v2's tables exist and before the subscription switches, inside
`transaction.atomic(using=alias)`: if it raises, nothing of it stays and the tenant keeps v1.
"""

from __future__ import annotations

from modules.test.v1.models import Animal as AnimalV1
from modules.test.v2.models import Animal


def upgrade(*, alias: str, from_version: int) -> None:
    """Copy every v1 animal with its id; v1 had no species, so it starts empty."""
    if from_version != 1:
        raise ValueError(f"test v2 knows how to move from v1, not from v{from_version}")

    existing = set(Animal.objects.using(alias).values_list("id", flat=True))
    Animal.objects.using(alias).bulk_create(
        [
            Animal(id=old.id, name=old.name, species="")
            for old in AnimalV1.objects.using(alias).order_by("id").iterator()
            if old.id not in existing
        ],
        batch_size=500,
    )
