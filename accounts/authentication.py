"""DRF authentication: ``Authorization: Bearer sw_<prefix>_<secret>`` for institution systems."""

from rest_framework import authentication, exceptions

from accounts.services import TokenRejected, token_authenticate


class InstitutionSystem:
    """The request.user of a token-authenticated call: an institution's system, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token):
        self.token = token

    def __str__(self) -> str:
        return f"token:{self.token.prefix}"


class TokenAuthFailed(exceptions.AuthenticationFailed):
    def __init__(self, code: str, message: str):
        super().__init__(detail=message, code=code)
        self.error_code = code


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0] != self.keyword:
            return None
        if len(parts) != 2:
            raise TokenAuthFailed("token_malformed", "Authorization header must be 'Bearer <token>'.")
        try:
            token = token_authenticate(parts[1], ip=client_ip(request))
        except TokenRejected as exc:
            raise TokenAuthFailed(exc.code, exc.message) from None
        return InstitutionSystem(token), token

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


def client_ip(request) -> str | None:
    # Behind a trusted proxy, set the real address into REMOTE_ADDR there (e.g. uvicorn
    # --proxy-headers); we do not trust client-supplied X-Forwarded-For here.
    return request.META.get("REMOTE_ADDR") or None
