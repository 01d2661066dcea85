"""The animals API, v2: animals carry a species; replacing works in every v2 version; read-only stats."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from m3saas.mqtt import mqtt_enabled, tenant_publish
from m3saas.tenancy.context import tenant_current
from modules.test.v2.models import Animal, AnimalStat
from modules.test.v2.serializers import (
    AnimalInputSerializer,
    AnimalOutputSerializer,
    AnimalStatOutputSerializer,
)


class AnimalListView(APIView):
    @extend_schema(responses=AnimalOutputSerializer(many=True))
    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(AnimalOutputSerializer(Animal.objects.all(), many=True).data)

    @extend_schema(request=AnimalInputSerializer, responses={201: AnimalOutputSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        data = AnimalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic(using=tenant_current().alias):
            animal = Animal.objects.create(**data.validated_data)
            body = AnimalOutputSerializer(animal).data
            if mqtt_enabled():
                # Sent when the row is committed, to <tenant name>/animals/created.
                tenant_publish("animals/created", body, qos=1)
        return Response(body, status=status.HTTP_201_CREATED)


class AnimalDetailView(APIView):
    @extend_schema(request=AnimalInputSerializer, responses=AnimalOutputSerializer)
    def put(self, request: Request, pk: int, **kwargs: Any) -> Response:
        animal = get_object_or_404(Animal, pk=pk)
        data = AnimalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        animal.name = data.validated_data["name"]
        animal.species = data.validated_data["species"]
        animal.save(update_fields=["name", "species"])
        return Response(AnimalOutputSerializer(animal).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int, **kwargs: Any) -> Response:
        get_object_or_404(Animal, pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnimalStatListView(APIView):
    """Animals per first letter, read from the view `test_v2_animal_stats`; only GET (405 otherwise)."""

    @extend_schema(responses=AnimalStatOutputSerializer(many=True))
    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(AnimalStatOutputSerializer(AnimalStat.objects.all(), many=True).data)
