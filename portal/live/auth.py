"""Websocket credentials: a bearer token (header, or the ``bearer.<token>`` subprotocol) or the session.

A connection presenting a token is authenticated by the token alone (the session cookie and the
Origin check do not apply: a token is not ambient authority a foreign page could borrow). A
connection without one is a browser's: it must come from an allowed Origin, and the session
(``AuthMiddlewareStack``) says who it is. The consumer verifies the token (``selectors.authenticate``).
"""

from __future__ import annotations

from channels.security.websocket import AllowedHostsOriginValidator

from portal.live.protocol import SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX


def credentials(scope) -> tuple[str | None, str | None]:
    """(raw token or None, subprotocol to answer with or None)."""
    token = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin-1").split()
            if parts and parts[0].lower() == "bearer":
                # A malformed header still counts as a token (refused as token_malformed, never
                # silently downgraded to the session).
                token = parts[1] if len(parts) == 2 else ""
    offered = list(scope.get("subprotocols") or [])
    for item in offered:
        if item.startswith(TOKEN_SUBPROTOCOL_PREFIX) and token is None:
            token = item[len(TOKEN_SUBPROTOCOL_PREFIX):]
    return token, (SUBPROTOCOL if SUBPROTOCOL in offered else None)


class LiveAuthMiddleware:
    def __init__(self, app):
        self.app = app
        self.origin_checked = AllowedHostsOriginValidator(app)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        token, subprotocol = credentials(scope)
        scope = dict(scope, live_token=token, live_subprotocol=subprotocol)
        if token is not None:
            return await self.app(scope, receive, send)
        return await self.origin_checked(scope, receive, send)
