"""`GET /api/me`: who the caller is, what the key may do and which collections it reads."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import SCOPES, request_api_key, request_has_scope
from accounts.selectors import request_readable_collections


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class CollectionSerializer(serializers.Serializer):
            slug = serializers.CharField()
            name = serializers.CharField()

        username = serializers.CharField()
        api_key = serializers.CharField(
            allow_null=True, help_text="The key's public prefix, if one was used."
        )
        scopes = serializers.ListField(child=serializers.CharField())
        collections = CollectionSerializer(many=True)

    @extend_schema(responses=OutputSerializer, summary="The caller, its scopes and readable collections")
    def get(self, request):
        api_key = request_api_key(request)
        data = {
            "username": request.user.get_username(),
            "api_key": api_key.prefix if api_key else None,
            "scopes": [scope for scope in SCOPES if request_has_scope(request, scope)],
            "collections": request_readable_collections(request).order_by("slug"),
        }
        return Response(self.OutputSerializer(data).data)
