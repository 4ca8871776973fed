"""Websocket routes served by the ASGI application (live streams: docs/websockets.md)."""

from django.urls import path

from portal.live.consumers import InstitutionConsumer, JobsConsumer, SitesConsumer

websocket_urlpatterns: list = [
    path("ws/jobs/", JobsConsumer.as_asgi()),
    path("ws/sites/", SitesConsumer.as_asgi()),
    path("ws/institution/", InstitutionConsumer.as_asgi()),
]
