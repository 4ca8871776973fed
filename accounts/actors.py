"""Who is acting: a person (portal session or API session) or an institution system (API token).

Services take an ``Actor`` so that rights, tenancy and the audit trail all see the same
identity whether the call came from a browser, the REST API or a management command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from accounts.models import FederationRoleKind, InstitutionRole, TokenScope

if TYPE_CHECKING:
    from accounts.models import ApiToken, User


@dataclass(eq=False)
class Actor:
    user: User | None = None
    token: ApiToken | None = None
    ip: str | None = None
    # For management commands and beat tasks: acts with federation-admin rights.
    system: bool = False
    _memberships: dict[int, str] | None = field(default=None, repr=False)

    # --- identity ------------------------------------------------------------------
    @property
    def label(self) -> str:
        if self.token is not None:
            return f"token:{self.token.prefix} ({self.token.name})"
        if self.user is not None:
            return f"user:{self.user.email}"
        return "system"

    @property
    def is_token(self) -> bool:
        return self.token is not None

    # --- roles ---------------------------------------------------------------------
    @cached_property
    def federation_roles(self) -> frozenset[str]:
        if self.system:
            return frozenset({FederationRoleKind.FEDERATION_ADMIN})
        if self.user is None:
            return frozenset()
        roles = set(self.user.federation_roles.values_list("role", flat=True))
        if self.user.is_superuser:
            roles.add(FederationRoleKind.FEDERATION_ADMIN)
        return frozenset(roles)

    def has_federation_role(self, role: str) -> bool:
        return role in self.federation_roles

    @property
    def is_federation_admin(self) -> bool:
        return FederationRoleKind.FEDERATION_ADMIN in self.federation_roles

    @property
    def memberships(self) -> dict[int, str]:
        """institution id -> role. A token is a member of its own institution only."""
        if self._memberships is None:
            if self.token is not None:
                self._memberships = {self.token.institution_id: "system"}
            elif self.user is not None:
                self._memberships = dict(self.user.memberships.values_list("institution_id", "role"))
            else:
                self._memberships = {}
        return self._memberships

    def institution_ids(self) -> set[int]:
        return set(self.memberships)

    def role_in(self, institution_id: int) -> str | None:
        return self.memberships.get(institution_id)

    # --- scopes (tokens only; a person's session has every scope its roles allow) ----
    def has_scope(self, scope: str) -> bool:
        if self.token is None:
            return True
        scopes = set(self.token.scopes)
        return scope in scopes or TokenScope.ADMIN in scopes

    # --- rights --------------------------------------------------------------------
    def can_admin_institution(self, institution_id: int) -> bool:
        if self.is_federation_admin:
            return True
        if self.token is not None:
            return self.token.institution_id == institution_id and TokenScope.ADMIN in self.token.scopes
        return self.role_in(institution_id) == InstitutionRole.INSTITUTION_ADMIN


SYSTEM = Actor(system=True)


def system_actor() -> Actor:
    return Actor(system=True)


def actor_for_request(request) -> Actor:
    """The Actor of a Django or DRF request (cached on the request)."""
    cached = getattr(request, "_suanwang_actor", None)
    if cached is not None:
        return cached
    from accounts.authentication import client_ip
    from accounts.models import ApiToken

    auth = getattr(request, "auth", None)
    ip = client_ip(request)
    if isinstance(auth, ApiToken):
        actor = Actor(token=auth, ip=ip)
    else:
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        actor = Actor(user=user, ip=ip)
    request._suanwang_actor = actor
    return actor
