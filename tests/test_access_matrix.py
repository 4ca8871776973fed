"""Every API endpoint × every role, against institution A's objects.

Institution B's admin and token stand for "a foreign institution": they must get 404 on
A's objects (never 403, which would confirm the object exists) and change nothing.
A completeness test fails when an endpoint is added without a row here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.db import transaction
from django.urls import get_resolver

from accounts.models import ApiToken, AuditEvent, Institution, Membership
from allocations.models import Allocation, AllocationRequest, LedgerEntry, Project, ProjectMember, Review
from federation.models import CapacityCommitment, Job, Site, SiteQuota
from tests.factories import ROLES, Fed, build_allocation_world, pdf_upload

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
    fmt: str = "json"


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
    Case(
        "institution-list",
        "post",
        lambda f: "/api/v1/institutions/",
        statuses(403, fedadmin=201),
        body=lambda f, who: {"name": f"New {who}", "code": f"N{ROLES.index(who)}X", "kind": "institute"},
        writes=True,
    ),
    Case("institution-detail", "get", lambda f: f"/api/v1/institutions/{f.a.pk}/", a_members(200)),
    Case(
        "institution-detail",
        "patch",
        lambda f: f"/api/v1/institutions/{f.a.pk}/",
        a_members(200, **ADMIN_ONLY),
        body=lambda f, who: {"name": f"北京大学 {who}"},
        writes=True,
    ),
    Case("member-list", "get", lambda f: f"/api/v1/institutions/{f.a.pk}/members/", a_members(200)),
    Case(
        "member-list",
        "post",
        lambda f: f"/api/v1/institutions/{f.a.pk}/members/",
        a_members(201, **ADMIN_ONLY),
        body=lambda f, who: {"email": f"{who}.new@pku.edu.cn", "role": "researcher"},
        writes=True,
    ),
    Case(
        "member-detail",
        "get",
        lambda f: f"/api/v1/institutions/{f.a.pk}/members/{membership_of_researcher(f)}/",
        a_members(200),
    ),
    Case(
        "member-detail",
        "patch",
        lambda f: f"/api/v1/institutions/{f.a.pk}/members/{membership_of_researcher(f)}/",
        a_members(200, **ADMIN_ONLY),
        body=lambda f, who: {"role": "pi"},
        writes=True,
    ),
    Case(
        "member-detail",
        "delete",
        lambda f: f"/api/v1/institutions/{f.a.pk}/members/{membership_of_researcher(f)}/",
        a_members(204, **ADMIN_ONLY),
        writes=True,
    ),
    Case("token-list", "get", lambda f: f"/api/v1/institutions/{f.a.pk}/tokens/", a_members(200, **PERSON_ADMIN_ONLY)),
    Case(
        "token-list",
        "post",
        lambda f: f"/api/v1/institutions/{f.a.pk}/tokens/",
        a_members(201, **PERSON_ADMIN_ONLY),
        body=lambda f, who: {"name": f"t-{who}", "scopes": ["read"]},
        writes=True,
    ),
    Case(
        "token-revoke",
        "post",
        lambda f: f"/api/v1/institutions/{f.a.pk}/tokens/{a_token(f)}/revoke/",
        a_members(200, **PERSON_ADMIN_ONLY),
        writes=True,
    ),
    Case("audit-list", "get", lambda f: f"/api/v1/institutions/{f.a.pk}/audit/", a_members(200, **ADMIN_ONLY)),
]

# --- allocations: objects of institution A built by build_allocation_world ---------------
# Who can read A's project, requests and allocations: its members, admin, tokens, the committee.
SEES_A = dict(committee=200)
REVIEWER_SEES = dict(reviewer=200)
NOT_PI = dict(researcher_a=403, admin_a=403, token_a_read=403)
COMMITTEE_ONLY_A = dict(researcher_a=403, pi_a=403, admin_a=403, token_a_read=403, token_a_admin=403)


def objects(fed: Fed, name: str) -> int:
    return fed.objects[name]


def project_body(fed: Fed, who: str) -> dict:
    return {"institution_id": fed.a.pk, "title": f"P {who}", "abstract": "A", "discipline": "physics",
            "start": "2026-12-01", "end": "2027-12-01"}


def request_body(fed: Fed, who: str) -> dict:
    return {"project": objects(fed, "project"), "tier": "explore", "title": f"R {who}", "justification": "J",
            "amounts": {"cpu": 100}, "start": objects(fed, "start"), "end": objects(fed, "end")}


P = "/api/v1/projects/{}/"
R = "/api/v1/requests/{}/"
A = "/api/v1/allocations/{}/"

CASES += [
    Case("resource-class-list", "get", lambda f: "/api/v1/resource-classes/", statuses(200)),
    Case("allocation-rules", "get", lambda f: "/api/v1/allocation-rules/", statuses(200)),
    Case("ping", "get", lambda f: "/api/v1/ping/", statuses(200)),
    Case("ping", "post", lambda f: "/api/v1/ping/", statuses(200), body=lambda f, who: {"name": "md"}),
    Case("project-list", "get", lambda f: "/api/v1/projects/", statuses(200)),
    Case("project-list", "post", lambda f: "/api/v1/projects/",
         a_members(201, researcher_a=403, admin_a=403, token_a_read=403, token_a_admin=403, fedadmin=403),
         body=project_body, writes=True),
    Case("project-detail", "get", lambda f: P.format(objects(f, "project")), a_members(200, **SEES_A)),
    Case("project-detail", "patch", lambda f: P.format(objects(f, "project")),
         a_members(200, researcher_a=403, token_a_read=403, committee=403), body=lambda f, w: {"title": f"T {w}"},
         writes=True),
    Case("project-member-list", "get", lambda f: P.format(objects(f, "project")) + "members/",
         a_members(200, **SEES_A)),
    Case("project-member-list", "post", lambda f: P.format(objects(f, "project")) + "members/",
         a_members(201, researcher_a=403, token_a_read=403, committee=403),
         body=lambda f, w: {"email": "admin@pku.edu.cn"}, writes=True),
    Case("project-member-detail", "delete",
         lambda f: P.format(objects(f, "project")) + f"members/{objects(f, 'member')}/",
         a_members(204, researcher_a=403, token_a_read=403, committee=403), writes=True),
    Case("request-list", "get", lambda f: "/api/v1/requests/", statuses(200)),
    Case("request-list", "post", lambda f: "/api/v1/requests/",
         a_members(201, **NOT_PI, fedadmin=403, committee=403), body=request_body, writes=True),
    Case("request-detail", "get", lambda f: R.format(objects(f, "reviewed")),
         a_members(200, **SEES_A, **REVIEWER_SEES)),
    Case("request-detail", "patch", lambda f: R.format(objects(f, "draft")),
         a_members(200, **NOT_PI, fedadmin=404), body=lambda f, w: {"title": f"D {w}"}, writes=True),
    Case("request-attachment", "post", lambda f: R.format(objects(f, "draft")) + "attachment/",
         a_members(200, **NOT_PI, fedadmin=404), body=lambda f, w: {"file": pdf_upload()}, writes=True,
         fmt="multipart"),
    Case("request-submit", "post", lambda f: R.format(objects(f, "draft")) + "submit/",
         a_members(200, **NOT_PI, fedadmin=404), writes=True),
    Case("request-withdraw", "post", lambda f: R.format(objects(f, "reviewed")) + "withdraw/",
         a_members(200, **NOT_PI, fedadmin=403, committee=403, reviewer=403), writes=True),
    Case("request-assign", "post", lambda f: R.format(objects(f, "reviewed")) + "assign/",
         a_members(200, **COMMITTEE_ONLY_A, committee=200, reviewer=403),
         body=lambda f, w: {"reviewer": "reviewer3@nju.edu.cn"}, writes=True),
    Case("request-decide", "post", lambda f: R.format(objects(f, "reviewed")) + "decide/",
         a_members(200, **COMMITTEE_ONLY_A, committee=200, reviewer=403),
         body=lambda f, w: {"outcome": "award", "amounts": {"cpu": 1000}, "reason": "Strong case."}, writes=True),
    Case("request-history", "get", lambda f: R.format(objects(f, "reviewed")) + "history/",
         a_members(200, **SEES_A, **REVIEWER_SEES)),
    Case("request-reviews", "get", lambda f: R.format(objects(f, "reviewed")) + "reviews/",
         a_members(200, **SEES_A, **REVIEWER_SEES)),
    Case("review-list", "get", lambda f: "/api/v1/reviews/", statuses(200)),
    Case("review-detail", "get", lambda f: f"/api/v1/reviews/{objects(f, 'open_review')}/",
         statuses(404, reviewer=200, committee=200, fedadmin=200)),
    Case("review-submit", "post", lambda f: f"/api/v1/reviews/{objects(f, 'open_review')}/submit/",
         statuses(404, reviewer=200, committee=403, fedadmin=403, token_a_read=403),
         body=lambda f, w: {"merit": 4, "feasibility": 4, "readiness": 3, "comment": "Good."}, writes=True),
    Case("review-conflict", "post", lambda f: f"/api/v1/reviews/{objects(f, 'open_review')}/conflict/",
         statuses(404, reviewer=200, committee=403, fedadmin=403, token_a_read=403),
         body=lambda f, w: {"reason": "Co-author."},
         writes=True),
    Case("allocation-list", "get", lambda f: "/api/v1/allocations/", statuses(200)),
    Case("allocation-detail", "get", lambda f: A.format(objects(f, "allocation")), a_members(200, **SEES_A)),
    Case("allocation-state", "post", lambda f: A.format(objects(f, "allocation")) + "state/",
         a_members(200, **COMMITTEE_ONLY_A, committee=200),
         body=lambda f, w: {"state": "suspended", "reason": "Audit."}, writes=True),
    Case("ledger-list", "get", lambda f: A.format(objects(f, "allocation")) + "ledger/", a_members(200, **SEES_A)),
    Case("ledger-export", "get", lambda f: A.format(objects(f, "allocation")) + "ledger/export/",
         a_members(200, **SEES_A)),
]

# --- federation: public reads; writes only for the site's operators and federation admins --
OPERATORS_ONLY = statuses(403, operator=200, fedadmin=200)
CASES += [
    Case("site-list", "get", lambda f: "/api/v1/sites/", statuses(200)),
    Case("site-detail", "get", lambda f: "/api/v1/sites/zhengzhou/", statuses(200)),
    Case("site-state", "post", lambda f: "/api/v1/sites/zhengzhou/state/", OPERATORS_ONLY,
         body=lambda f, w: {"state": "draining", "reason": "maintenance"}, writes=True),
    Case("site-commitments", "get", lambda f: "/api/v1/sites/zhengzhou/commitments/", statuses(200)),
    Case("site-commitments", "post", lambda f: "/api/v1/sites/zhengzhou/commitments/", OPERATORS_ONLY,
         body=lambda f, w: {"resource_class": "cpu", "period_start": "2027-01-01", "period_end": "2027-07-01",
                            "amount": 100000}, writes=True),
    Case("application-list", "get", lambda f: "/api/v1/applications/", statuses(200)),
    # A centre's connection (Slurm URL, user, write-only token): federation admins only.
    Case("site-connection", "get", lambda f: "/api/v1/sites/zhengzhou/connection/", statuses(403, fedadmin=200)),
    Case("site-connection", "put", lambda f: "/api/v1/sites/zhengzhou/connection/", statuses(403, fedadmin=200),
         body=lambda f, w: {"slurm_workdir": "/home/ci"}, writes=True),
    # The connection check: operators and federation admins (a simulated centre has none to check: 400).
    Case("site-ping", "post", lambda f: "/api/v1/sites/zhengzhou/ping/", statuses(403, operator=400, fedadmin=400),
         writes=True),
]

# --- site quotas: A's members and the centre's operators see them; operators answer, the PI moves ----
def zhengzhou_share(fed: Fed) -> int:
    from federation.models import SiteQuota

    return SiteQuota.objects.get(allocation_id=objects(fed, "allocation"), site__code="zhengzhou",
                                 resource_class__code="cpu").pk


A_SEES_NOT_OPERATES = dict(researcher_a=403, pi_a=403, admin_a=403, token_a_read=403, token_a_admin=403)
CASES += [
    Case("quota-list", "get", lambda f: "/api/v1/quotas/", statuses(200)),
    Case("quota-respond", "post", lambda f: f"/api/v1/quotas/{zhengzhou_share(f)}/respond/",
         statuses(404, operator=200, fedadmin=200, committee=403, **A_SEES_NOT_OPERATES),
         body=lambda f, w: {"action": "accept"}, writes=True),
    Case("quota-transfer", "post", lambda f: "/api/v1/quotas/transfer/",
         a_members(200, committee=200, researcher_a=403, admin_a=403, token_a_read=403),
         body=lambda f, w: {"allocation": objects(f, "allocation"), "resource_class": "cpu",
                            "from_site": "zhengzhou", "to_site": "tianjin", "amount": 10}, writes=True),
    Case("quota-broker", "post", lambda f: "/api/v1/quotas/broker/", statuses(403, committee=200, fedadmin=200),
         writes=True),
]

# --- jobs: project members submit and cancel; the institution (admin, tokens) reads ----------
JOB = {"cores_per_node": 2, "walltime_s": 600, "name": "matrix"}
def member_statuses(ok: int) -> dict[str, int]:
    result = a_members(ok, committee=403, fedadmin=403, admin_a=403, token_a_read=403)
    return result


CASES += [
    Case("job-list", "get", lambda f: "/api/v1/jobs/", statuses(200)),
    Case("job-list", "post", lambda f: "/api/v1/jobs/", member_statuses(201),
         body=lambda f, w: {"project": objects(f, "project"), **JOB}, writes=True),
    Case("job-batch", "post", lambda f: "/api/v1/jobs/batch/", member_statuses(200),
         body=lambda f, w: {"project": objects(f, "project"), "jobs": [JOB, JOB]}, writes=True),
    Case("job-detail", "get", lambda f: f"/api/v1/jobs/{objects(f, 'job')}/", a_members(200, fedadmin=200)),
    Case("job-cancel", "post", lambda f: f"/api/v1/jobs/{objects(f, 'job')}/cancel/",
         a_members(200, admin_a=403, token_a_read=403, fedadmin=403), writes=True),
]


def state_of_a(fed: Fed) -> tuple:
    institution = Institution.objects.get(pk=fed.a.pk)
    return (
        institution.name,
        sorted(Membership.objects.filter(institution=fed.a).values_list("user__email", "role")),
        sorted(ApiToken.objects.filter(institution=fed.a).values_list("name", "revoked_at")),
        AuditEvent.objects.filter(institution=fed.a).count(),
        sorted(Project.objects.filter(institution=fed.a).values_list("pk", "title")),
        sorted(ProjectMember.objects.filter(project__institution=fed.a).values_list("pk", flat=True)),
        sorted(AllocationRequest.objects.filter(institution=fed.a).values_list("pk", "state", "title")),
        sorted(Review.objects.filter(request__institution=fed.a).values_list("pk", "state")),
        sorted(Allocation.objects.filter(institution=fed.a).values_list("pk", "state")),
        LedgerEntry.objects.filter(allocation__institution=fed.a).count(),
        sorted(Site.objects.values_list("code", "state")),
        sorted(CapacityCommitment.objects.values_list("site__code", "resource_class__code", "amount")),
        sorted(Job.objects.values_list("pk", "state")),
        sorted(SiteQuota.objects.filter(allocation__institution=fed.a).values_list("pk", "state", "amount")),
    )


@pytest.fixture
def world(fed) -> Fed:
    """Institution A's allocation objects, built through the services (see build_allocation_world)."""
    build_allocation_world(fed)
    return fed


def run_case(fed: Fed, case: Case, role: str) -> str | None:
    """Call one endpoint as one role; describe the mismatch, if any. Refused writes change nothing."""
    expected = case.expect[role]
    url = case.url(fed)
    before = state_of_a(fed)
    response = getattr(fed.client(role), case.method)(url, case.body(fed, role), format=case.fmt)
    if response.status_code != expected:
        return f"{case.method.upper()} {url} as {role}: {response.status_code}, expected {expected}: " + (
            response.content[:200].decode(errors="replace"))
    if response.status_code >= 400:
        if set(response.json()["error"]) != {"code", "message", "fields"}:
            return f"{case.method.upper()} {url} as {role}: error not in the API's shape"
        if case.writes and state_of_a(fed) != before:
            return f"{case.method.upper()} {url} as {role}: refused ({response.status_code}) but changed state"
    return None


@pytest.mark.parametrize("role", ROLES)
def test_access_matrix(world, role):
    """Every endpoint for this role, each inside a savepoint rolled back afterwards, so every
    case starts from the same world (built once per role: fast enough to cover everything)."""
    mismatches = []
    for case in CASES:
        savepoint = transaction.savepoint()
        try:
            mismatch = run_case(world, case, role)
        finally:
            transaction.savepoint_rollback(savepoint)
        if mismatch:
            mismatches.append(mismatch)
    assert mismatches == []


@pytest.mark.parametrize("role", sorted(FOREIGN | {"researcher_a", "token_a_read"}))
def test_lists_never_show_foreign_institutions(fed, role):
    client = fed.client(role)
    listed = {row["code"] for row in client.get("/api/v1/institutions/").json()["results"]}
    own = {
        "researcher_a": {"PKU"},
        "token_a_read": {"PKU"},
        "admin_b": {"THU"},
        "researcher_b": {"THU"},
        "token_b_admin": {"THU"},
        "reviewer": {"USTC"},
        "committee": set(),
        "operator": set(),
    }[role]
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
