"""Token scopes: GET needs ``read``; writes need the scope the view names in ``write_scope``."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.actors import actor_for_request
from accounts.models import TokenScope


class TokenScopePermission(BasePermission):
    message = "This token lacks the scope this operation needs."
    code = "insufficient_scope"

    def has_permission(self, request, view) -> bool:
        actor = actor_for_request(request)
        if not actor.is_token:
            return True
        if request.method in SAFE_METHODS:
            needed = getattr(view, "read_scope", TokenScope.READ)
        else:
            needed = getattr(view, "write_scope", TokenScope.ADMIN)
        view.required_scope = needed
        return actor.has_scope(needed)
