"""The base of every API view: actor, scopes, pagination, unique schema names."""

from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from accounts.actors import actor_for_request
from portal.api.pagination import Pagination
from portal.api.permissions import TokenScopePermission

NESTED_SERIALIZERS = ("Input", "Output", "Filters")


class BaseApiView(APIView):
    permission_classes = [IsAuthenticated, TokenScopePermission]

    def __init_subclass__(cls, **kwargs):
        # Nested Input/Output serializers get unique OpenAPI component names from their view.
        super().__init_subclass__(**kwargs)
        for attr in NESTED_SERIALIZERS:
            nested = cls.__dict__.get(attr)
            if nested is not None and "Meta" not in nested.__dict__:
                nested.Meta = type("Meta", (), {"ref_name": cls.__name__.removesuffix("View") + attr})

    def actor(self):
        return actor_for_request(self.request)

    def paginate(self, queryset, serializer_class):
        paginator = Pagination()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)
