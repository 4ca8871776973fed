"""Test data built through the real services."""

from dataclasses import dataclass, field

from django.conf import settings
from rest_framework.test import APIClient

from accounts import services
from accounts.actors import system_actor
from accounts.models import ApiToken, FederationRoleKind, Institution, InstitutionRole, Membership, User

PASSWORD = "correct-horse-battery-9"


def make_institution(code: str, name: str | None = None, domains: list[str] | None = None) -> Institution:
    return services.institution_create(
        actor=system_actor(), name=name or f"University {code}", code=code, kind="university",
        email_domains=domains if domains is not None else [f"{code.lower()}.edu.cn"],
    )


def make_member(institution: Institution, role: str, email: str | None = None) -> User:
    email = email or f"{role}-{User.objects.count()}@{institution.email_domains[0]}"
    membership = services.member_add(actor=system_actor(), institution=institution, email=email, role=role)
    user = membership.user
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


def make_person(email: str, federation_role: str | None = None, institution: Institution | None = None) -> User:
    if institution is not None:
        user = make_member(institution, InstitutionRole.RESEARCHER, email=email)
    else:
        user = User.objects.create_user(email=email, password=PASSWORD)
    if federation_role:
        services.federation_role_grant(actor=system_actor(), user=user, role=federation_role)
    return user


def make_token(institution: Institution, scopes: list[str], by: User, name: str | None = None, **kw):
    from accounts.actors import Actor

    name = name or f"token-{'-'.join(scopes)}-{ApiToken.objects.count()}"
    return services.token_create(actor=Actor(user=by), institution=institution, name=name, scopes=scopes, **kw)


def client_for(user: User | None = None, token: str | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@dataclass
class Fed:
    a: Institution
    b: Institution
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str) -> APIClient:
        if who == "anonymous":
            return APIClient()
        if who in self.tokens:
            return client_for(token=self.tokens[who])
        return client_for(self.users[who])

    def membership(self, who: str) -> Membership:
        return Membership.objects.get(user=self.users[who], institution=self.a)


ROLES = [
    "anonymous", "researcher_a", "pi_a", "admin_a", "admin_b", "researcher_b",
    "reviewer", "committee", "operator", "fedadmin", "token_a_read", "token_a_admin", "token_b_admin",
]


def build_federation() -> Fed:
    a = make_institution("PKU", "北京大学", ["pku.edu.cn"])
    b = make_institution("THU", "清华大学", ["tsinghua.edu.cn"])
    ustc = make_institution("USTC", "中国科学技术大学", ["ustc.edu.cn"])
    fed = Fed(a=a, b=b)
    fed.users["researcher_a"] = make_member(a, InstitutionRole.RESEARCHER, "researcher@pku.edu.cn")
    fed.users["pi_a"] = make_member(a, InstitutionRole.PI, "pi@pku.edu.cn")
    fed.users["admin_a"] = make_member(a, InstitutionRole.INSTITUTION_ADMIN, "admin@pku.edu.cn")
    fed.users["admin_b"] = make_member(b, InstitutionRole.INSTITUTION_ADMIN, "admin@tsinghua.edu.cn")
    fed.users["researcher_b"] = make_member(b, InstitutionRole.RESEARCHER, "researcher@tsinghua.edu.cn")
    fed.users["reviewer"] = make_person("reviewer@ustc.edu.cn", FederationRoleKind.REVIEWER, ustc)
    fed.users["committee"] = make_person("committee@scnet.example.cn", FederationRoleKind.COMMITTEE)
    fed.users["operator"] = make_person("operator@scnet.example.cn", FederationRoleKind.SITE_OPERATOR)
    fed.users["fedadmin"] = make_person("fedadmin@scnet.example.cn", FederationRoleKind.FEDERATION_ADMIN)
    _, fed.tokens["token_a_read"] = make_token(a, ["read"], fed.users["admin_a"], name="campus-read")
    _, fed.tokens["token_a_admin"] = make_token(a, ["admin"], fed.users["admin_a"], name="campus-admin")
    _, fed.tokens["token_b_admin"] = make_token(b, ["admin"], fed.users["admin_b"], name="thu-admin")
    assert settings.AUTH_USER_MODEL == "accounts.User"
    return fed
