"""The benchmark's baseline: the animals list served from the master database, no tenant involved."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from modules.test.v1.models import Animal
from modules.test.v1.serializers import AnimalOutputSerializer

# The table `test_v1_animal` is created in the master database by the benchmark (`bench.run`).
PLAIN_DATABASE = "default"
# `Animal.objects` bound to that database once, so that a request builds its queryset as a Django
# project with one database does (`Animal.objects.all()`: one QuerySet, no clone). The platform's
# router would send the module model to a tenant; `Animal.objects.using(...).all()` per request
# clones the queryset twice more (7 µs in a loop), which made the baseline dearer than plain Django.
_animals = Animal.objects.db_manager(PLAIN_DATABASE)


class PlainAnimalListView(APIView):
    """Same model, serializer and rows as `GET /{tenant}/test/v1/animals`, from one fixed database."""

    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(AnimalOutputSerializer(_animals.all(), many=True).data)
