"""Websocket routes served by the ASGI application (Channels consumers are added by their apps)."""

websocket_urlpatterns: list = []
