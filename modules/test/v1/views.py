"""The animals API, as in the original: list, create, delete, and replace from v1.1 on."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from m3saas.access import public_api
from m3saas.exceptions import NotFoundError
from m3saas.modules.request import ModuleRequest
from m3saas.mqtt import mqtt_enabled, tenant_publish
from m3saas.tenancy.context import tenant_current
from modules.test.v1.models import Animal
from modules.test.v1.serializers import AnimalInputSerializer, AnimalOutputSerializer


@public_api
class StatusView(APIView):
    """Public on purpose (`@public_api`): callable without a key; says which key called, if one did."""

    @extend_schema(
        responses={
            200: {
                "type": "object",
                "properties": {
                    "module": {"type": "string"},
                    "version": {"type": "string"},
                    "api_key": {"type": "string", "nullable": True, "description": "The id of the caller's key."},
                },
                "required": ["module", "version", "api_key"],
            }
        }
    )
    def get(self, request: ModuleRequest, **kwargs: Any) -> Response:
        api_key = request.api_key
        body = {"module": "test", "version": str(request.module_version), "api_key": api_key.id if api_key else None}
        return Response(body)


class AnimalListView(APIView):
    @extend_schema(responses=AnimalOutputSerializer(many=True))
    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(AnimalOutputSerializer(Animal.objects.all(), many=True).data)

    @extend_schema(request=AnimalInputSerializer, responses={201: AnimalOutputSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        data = AnimalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic(using=tenant_current().alias):
            animal = Animal.objects.create(name=data.validated_data["name"])
            body = AnimalOutputSerializer(animal).data
            if mqtt_enabled():
                # Sent when the row is committed, to <tenant name>/animals/created.
                tenant_publish("animals/created", body, qos=1)
        return Response(body, status=status.HTTP_201_CREATED)


class AnimalDetailView(APIView):
    @extend_schema(request=AnimalInputSerializer, responses=AnimalOutputSerializer)
    def put(self, request: ModuleRequest, pk: int, **kwargs: Any) -> Response:
        if request.module_version < "1.1":
            raise NotFoundError("Replacing an animal needs version 1.1 or later.")
        animal = get_object_or_404(Animal, pk=pk)
        data = AnimalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        animal.name = data.validated_data["name"]
        animal.save(update_fields=["name"])
        return Response(AnimalOutputSerializer(animal).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int, **kwargs: Any) -> Response:
        get_object_or_404(Animal, pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
