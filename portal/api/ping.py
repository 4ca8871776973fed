"""``/api/v1/ping/``: the floor of the REST stack, for comparing an endpoint's cost with the framework's.

Nothing but what every API view pays: middleware, authentication (a token: one read and its
last-used update), the scope check, the throttles (cache), parsing the JSON body on POST and
rendering a constant answer. No other query. ``bench/api_submit.py`` measures it next to a job
submission on the same server with the same token and body, so the difference is the submission's
own work.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts.models import TokenScope
from portal.api.views import BaseApiView


class PingView(BaseApiView):
    write_scope = TokenScope.READ  # a POST here changes nothing: any token that can read may ping

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Answer {'pong': true} (authenticated callers)")
    def get(self, request):
        return Response({"pong": True})

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Parse the JSON body and answer {'pong': true}; changes nothing")
    def post(self, request):
        request.data  # noqa: B018  (parse the body, as a real endpoint would)
        return Response({"pong": True})
