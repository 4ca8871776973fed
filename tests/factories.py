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
        actor=system_actor(),
        name=name or f"University {code}",
        code=code,
        kind="university",
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
    objects: dict = field(default_factory=dict)

    def client(self, who: str) -> APIClient:
        if who == "anonymous":
            return APIClient()
        if who in self.tokens:
            return client_for(token=self.tokens[who])
        return client_for(self.users[who])

    def membership(self, who: str) -> Membership:
        return Membership.objects.get(user=self.users[who], institution=self.a)


ROLES = [
    "anonymous",
    "researcher_a",
    "pi_a",
    "admin_a",
    "admin_b",
    "researcher_b",
    "reviewer",
    "committee",
    "operator",
    "fedadmin",
    "token_a_read",
    "token_a_admin",
    "token_b_admin",
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


def pdf_upload(name: str = "proposal.pdf", size: int = 2000):
    from django.core.files.uploadedfile import SimpleUploadedFile

    body = b"%PDF-1.4\n" + b"0" * max(0, size - 9)
    return SimpleUploadedFile(name, body, content_type="application/pdf")


def build_allocation_world(fed: Fed) -> Fed:
    """Institution A's allocation objects, through the real services:

    project (PI pi_a, member researcher_a); an explore request approved automatically → allocation;
    "reviewed": a standard request under review with both reviews in; "open": a standard request
    whose reviews are still open (fed.objects["open_review"] is reviewer's); "draft"; and a third
    reviewer (reviewer3@nju.edu.cn) free to be assigned.
    """
    from datetime import timedelta

    from django.utils import timezone

    from accounts.actors import Actor
    from allocations import projects, workflow
    from allocations.catalogue import ensure_resource_classes
    from allocations.models import Review

    ensure_resource_classes()
    committee = Actor(user=fed.users["committee"])
    pi = Actor(user=fed.users["pi_a"])
    today = timezone.localdate()
    start, end = today, today + timedelta(days=200)
    make_person("reviewer2@ict.ac.cn", FederationRoleKind.REVIEWER, make_institution("ICT", domains=["ict.ac.cn"]))

    project = projects.project_create(actor=pi, institution_id=fed.a.pk, title="Climate", abstract="Models",
                                      discipline="earth_sciences", start=today - timedelta(days=10),
                                      end=today + timedelta(days=400))
    member = projects.project_member_add(actor=pi, project=project, email=fed.users["researcher_a"].email)

    def standard(title: str):
        request = workflow.request_create(actor=pi, project=project, kind="new", tier="standard", title=title,
                                          justification="Needed.", amounts={"cpu": 20000, "gpu:v100": 500},
                                          start=start, end=end)
        return workflow.request_submit(actor=pi, request=request)

    explore = workflow.request_create(actor=pi, project=project, kind="new", tier="explore", title="Pilot",
                                      justification="Pilot runs.", amounts={"cpu": 1000}, start=start, end=end)
    workflow.request_submit(actor=pi, request=explore)

    reviewed = standard("Production")
    for review in Review.objects.filter(request=reviewed):
        workflow.review_submit(actor=Actor(user=review.reviewer), review=review, merit=4, feasibility=4,
                               readiness=4, comment="Sound.", recommended_amounts={"cpu": 15000})
    open_request = standard("Follow-up")
    draft = workflow.request_create(actor=pi, project=project, kind="new", tier="standard", title="Draft",
                                    justification="Later.", amounts={"cpu": 100}, start=start, end=end)
    make_person("reviewer3@nju.edu.cn", FederationRoleKind.REVIEWER, make_institution("NJU", domains=["nju.edu.cn"]))

    assert reviewed.reviews.filter(state="submitted").count() == 2
    build_small_federation(fed)
    from federation.jobs import JobRequest, jobs_submit

    submitted = jobs_submit(actor=pi, project=project, requests=[JobRequest(name="md", cores_per_node=4,
                                                                            walltime_s=3600)],
                            enqueue_dispatch=False)
    fed.objects["job"] = submitted.accepted[0].job_id
    fed.objects.update(
        project=project.pk, member=member.pk, draft=draft.pk, reviewed=reviewed.pk, open=open_request.pk,
        open_review=Review.objects.get(request=open_request, reviewer=fed.users["reviewer"]).pk,
        allocation=explore.project.allocations.get(origin=explore).pk, start=start.isoformat(),
        end=end.isoformat(), committee=committee,
    )
    return fed


def build_small_federation(fed: Fed) -> None:
    """Two centres (zhengzhou, tianjin) from the shipped inventory at scale 1; the operator runs zhengzhou."""
    from accounts.actors import system_actor
    from allocations.catalogue import ensure_resource_classes
    from federation import services as fed_services
    from federation.applications import APPLICATIONS
    from federation.inventory import DEFAULT_INVENTORY, NATIONAL_CENTRES, plan_federation, read_inventory
    from federation.models import Site

    prices = {rc.code: rc.credits_per_unit for rc in ensure_resource_classes()}
    centres = [c for c in NATIONAL_CENTRES if c.code in ("zhengzhou", "tianjin")]
    plans = plan_federation(read_inventory(DEFAULT_INVENTORY), scale=1, centres=centres)
    fed_services.sites_build(actor=system_actor(), plans=plans, national_prices=prices)
    fed_services.applications_publish(actor=system_actor(), catalogue=APPLICATIONS)
    if "operator" in fed.users:
        fed_services.site_operator_bind(actor=system_actor(), user=fed.users["operator"],
                                        site=Site.objects.get(code="zhengzhou"))
    # The centres commit half their capacity for this half-year; awards made before are brokered now
    # (later ones at their award), so every allocation has site quotas for the router.
    from federation import quotas
    from federation.demo import commit_half_capacity

    commit_half_capacity(actor=system_actor())
    quotas.broker_pending(actor=system_actor())


def make_explore_project(fed):
    """PKU's project "MD" (PI pi_a) with an explore allocation approved at once: 2,000 core-hours and
    400 V100 card-hours (brokered into the federation's site quotas). Returns (pi actor, project)."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.actors import Actor
    from allocations import projects, workflow

    pi = Actor(user=fed.users["pi_a"])
    today = timezone.localdate()
    project = projects.project_create(actor=pi, institution_id=fed.a.pk, title="MD", abstract="GROMACS runs",
                                      discipline="chemistry", start=today, end=today + timedelta(days=300))
    request = workflow.request_create(actor=pi, project=project, kind="new", tier="explore", title="Pilot",
                                      justification="J", amounts={"cpu": 2000, "gpu:v100": 400}, start=today,
                                      end=today + timedelta(days=100))
    workflow.request_submit(actor=pi, request=request)
    return pi, project


def build_job_world(fed) -> dict:
    """A small federation (zhengzhou + tianjin) with simulated centres on a virtual clock installed as this
    process's adapters, and PKU's project with an explore allocation (2,000 core-hours, 400 V100 card-hours)."""
    from django.utils import timezone

    from federation.adapters import SimulatedAdapter, install_adapter, reset_adapters
    from federation.models import Partition, Site

    build_small_federation(fed)
    pi, project = make_explore_project(fed)
    now = timezone.now()
    reset_adapters()
    adapters = {}
    for site in Site.objects.all():
        adapters[site.code] = SimulatedAdapter(site, list(Partition.objects.filter(site=site)), seed=1,
                                               clock_start=now.timestamp())
        install_adapter(site.pk, adapters[site.code])
    return {"pi": pi, "project": project, "allocation": project.allocations.get(), "now": now, "adapters": adapters}
