"""Every API endpoint × every role, against institution A's objects.

Institution B's admin and token stand for "a foreign institution": they must get 404 on
A's objects (never 403, which would confirm the object exists) and change nothing.
A completeness test fails when an endpoint is added without a row here.
"""

from dataclasses import dataclass, field
from typing import Callable

import pytest
from django.urls import get_resolver

from accounts.models import ApiToken, AuditEvent, Institution, Membership
from tests.factories import ROLES, Fed

pytestmark = pytest.mark.django_db

A_MEMBERS = {"researcher_a", "pi_a", "admin_a", "token_a_read", "token_a_admin"}
FOREIGN = {"admin_b", "researcher_b", "reviewer", "committee", "operator", "token_b_admin"}


@dataclass
class Case:
    name: str  # URL name in the api namespace
    method: str
    url: Callable[[Fed], str]
    expect: dict[str, int]
    body: Callable[[Fed, str], dict] = field(default=lambda fed, who: {})
    writes: bool = False


def statuses(default: int, **overrides: int) -> dict[str, int]:
    result = {role: default for role in ROLES}
    result["anonymous"] = 401
    result.update(overrides)
    return result


def a_members(ok: int, other: int = 404, **overrides) -> dict[str, int]:
    result = statuses(other)
    for role in A_MEMBERS:
        result[role] = ok
    result["fedadmin"] = ok
    result.update(overrides)
    return result


def membership_of_researcher(fed: Fed) -> int:
    return fed.membership("researcher_a").pk


def a_token(fed: Fed) -> int:
    return ApiToken.objects.get(name="campus-read").pk


ADMIN_ONLY = dict(researcher_a=403, pi_a=403, token_a_read=403)
PERSON_ADMIN_ONLY = dict(researcher_a=403, pi_a=403, token_a_read=403, token_a_admin=403, token_b_admin=403)

CASES = [
    Case("me", "get", lambda f: "/api/v1/me/", statuses(200)),
    Case("institution-list", "get", lambda f: "/api/v1/institutions/", statuses(200)),
    Case("institution-list", "post", lambda f: "/api/v1/institutions/", statuses(403, fedadmin=201),
         body=lambda f, who: {"name": f"New {who}", "code": f"N{ROLES.index(who)}X", "kind": "institute"},
         writes=True),
    Case("institution-detail", "get", lambda f: f"/api/v1/institutions/{f.a.pk}/", a_members(200)),
    Case("institution-detail", "patch", lambda f: f"/api/v1/institutions/{f.a.pk}/",
         a_members(200, **ADMIN_ONLY), body=lambda f, who: {"name": f"北京大学 {who}"}, writes=True),
    Case("member-list", "get", lambda f: f"/api/v1/institutions/{f.a.pk}/members/", a_members(200)),
    Case("member-list", "post", lambda f: f"/api/v1/institutions/{f.a.pk}/members/",
         a_members(201, **ADMIN_ONLY), body=lambda f, who: {"email": f"{who}.new@pku.edu.cn", "role": "researcher"},
         writes=True),
    Case("member-detail", "get", lambda f: f"/api/v1/institutions/{f.a.pk}/members/{membership_of_researcher(f)}/",
         a_members(200)),
    Case("member-detail", "patch", lambda f: f"/api/v1/institutions/{f.a.pk}/members/{membership_of_researcher(f)}/",
         a_members(200, **ADMIN_ONLY), body=lambda f, who: {"role": "pi"}, writes=True),
    Case("member-detail", "delete",
         lambda f: f"/api/v1/institutions/{f.a.pk}/members/{membership_of_researcher(f)}/",
         a_members(204, **ADMIN_ONLY), writes=True),
    Case("token-list", "get", lambda f: f"/api/v1/institutions/{f.a.pk}/tokens/",
         a_members(200, **PERSON_ADMIN_ONLY)),
    Case("token-list", "post", lambda f: f"/api/v1/institutions/{f.a.pk}/tokens/",
         a_members(201, **PERSON_ADMIN_ONLY), body=lambda f, who: {"name": f"t-{who}", "scopes": ["read"]},
         writes=True),
    Case("token-revoke", "post", lambda f: f"/api/v1/institutions/{f.a.pk}/tokens/{a_token(f)}/revoke/",
         a_members(200, **PERSON_ADMIN_ONLY), writes=True),
    Case("audit-list", "get", lambda f: f"/api/v1/institutions/{f.a.pk}/audit/", a_members(200, **ADMIN_ONLY)),
]


def state_of_a(fed: Fed) -> tuple:
    institution = Institution.objects.get(pk=fed.a.pk)
    return (
        institution.name,
        sorted(Membership.objects.filter(institution=fed.a).values_list("user__email", "role")),
        sorted(ApiToken.objects.filter(institution=fed.a).values_list("name", "revoked_at")),
        AuditEvent.objects.filter(institution=fed.a).count(),
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method.upper()} {c.name}")
def test_access_matrix(fed, case, role):
    expected = case.expect[role]
    url = case.url(fed)
    before = state_of_a(fed)
    client = fed.client(role)
    response = getattr(client, case.method)(url, case.body(fed, role), format="json")
    assert response.status_code == expected, (role, case.method, url, response.content[:300])
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "fields"}
        if case.writes:
            assert state_of_a(fed) == before, "a refused write changed something"


@pytest.mark.parametrize("role", sorted(FOREIGN | {"researcher_a", "token_a_read"}))
def test_lists_never_show_foreign_institutions(fed, role):
    client = fed.client(role)
    listed = {row["code"] for row in client.get("/api/v1/institutions/").json()["results"]}
    own = {"researcher_a": {"PKU"}, "token_a_read": {"PKU"}, "admin_b": {"THU"}, "researcher_b": {"THU"},
           "token_b_admin": {"THU"}, "reviewer": {"USTC"}, "committee": set(), "operator": set()}[role]
    assert listed == own


def test_every_api_endpoint_and_method_is_in_the_matrix():
    covered = {(c.name, c.method) for c in CASES}
    resolver = get_resolver()
    api_patterns = resolver.namespace_dict["api"][1].url_patterns
    declared = set()
    for pattern in api_patterns:
        view = pattern.callback.view_class
        for method in ("get", "post", "patch", "put", "delete"):
            if hasattr(view, method):
                declared.add((pattern.name, method))
    assert declared - covered == set(), "add these endpoints to the access matrix"
