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


class PlainAnimalListView(APIView):
    """Same model, serializer and rows as `GET /{tenant}/test/v1/animals`, from one fixed database."""

    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(AnimalOutputSerializer(Animal.objects.using(PLAIN_DATABASE).all(), many=True).data)
