"""Per-token and per-user request rate limits (429 with Retry-After)."""

from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiToken


class PerTokenRateThrottle(SimpleRateThrottle):
    scope = "token"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiToken):
            return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
        return None


class PerUserRateThrottle(SimpleRateThrottle):
    scope = "user"

    def get_cache_key(self, request, view):
        user = request.user
        if isinstance(request.auth, ApiToken) or not getattr(user, "pk", None):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}
