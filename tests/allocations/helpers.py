"""Small helpers that drive the allocation workflow through the REST API."""

from datetime import date, timedelta

from django.utils import timezone

from accounts.models import AuditEvent
from allocations.models import (
    Allocation,
    AllocationBalance,
    AllocationRequest,
    ConflictOfInterest,
    Decision,
    Hold,
    LedgerEntry,
    Project,
    ProjectMember,
    RequestTransition,
    Review,
)
from tests import factories

API = "/api/v1"

_make_client = factories.client_for  # the real one, before conftest swaps in the cached client_for below
_clients: dict = {}


def client_for(user=None, token: str | None = None):
    """factories.client_for, but one client per person (or token) for the duration of a test."""
    key = (getattr(user, "pk", None), token)
    if key not in _clients:
        _clients[key] = _make_client(user=user, token=token)
    return _clients[key]


def forget_clients() -> None:
    _clients.clear()


# 5,000 + 100 × 15 = 6,500 credits: inside the explore cap of 10,000.
EXPLORE_AMOUNTS = {"cpu": 5_000, "gpu:v100": 100}
# 100,000 + 2,000 × 15 = 130,000 credits: over the explore cap, inside the standard cap of 500,000.
STANDARD_AMOUNTS = {"cpu": 100_000, "gpu:v100": 2_000}
# 1,000,000 + 20,000 × 15 = 1,300,000 credits: over the standard cap, inside the major cap.
MAJOR_AMOUNTS = {"cpu": 1_000_000, "gpu:v100": 20_000}

SCALE = {"cpu": 3600, "gpu:v100": 3600, "storage": 1000}


def error_code(response) -> str | None:
    body = response.json()
    return body["error"]["code"] if isinstance(body, dict) and "error" in body else None


def create_project(client, institution_id: int, *, start: date, end: date, title: str = "Lattice QCD") -> dict:
    response = client.post(
        f"{API}/projects/",
        {
            "institution_id": institution_id,
            "title": title,
            "abstract": "Gauge configurations on domestic accelerators.",
            "discipline": "physics",
            "start": start.isoformat(),
            "end": end.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def request_body(
    project_id: int,
    *,
    tier: str = "explore",
    amounts: dict | None = None,
    kind: str = "new",
    start: date | None = None,
    end: date | None = None,
    title: str | None = None,
    **extra,
) -> dict:
    start = start or timezone.localdate()
    end = end or start + timedelta(days=365)
    body = {
        "project": project_id,
        "kind": kind,
        "tier": tier,
        "title": title or f"{tier} {kind} request",
        "justification": "Production runs of the simulation code.",
        "amounts": EXPLORE_AMOUNTS if amounts is None else amounts,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    body.update(extra)
    return body


def post(client, url: str, body: dict | None = None):
    return client.post(f"{API}{url}", body or {}, format="json")


def create_request(client, project_id: int, **kwargs) -> dict:
    response = post(client, "/requests/", request_body(project_id, **kwargs))
    assert response.status_code == 201, response.content
    return response.json()


def submit(client, request_id: int) -> dict:
    response = post(client, f"/requests/{request_id}/submit/")
    assert response.status_code == 200, response.content
    return response.json()


def create_and_submit(client, project_id: int, **kwargs) -> dict:
    return submit(client, create_request(client, project_id, **kwargs)["id"])


def open_reviews(request_id: int) -> list[Review]:
    return list(
        Review.objects.filter(request_id=request_id, state=Review.State.ASSIGNED)
        .select_related("reviewer")
        .order_by("pk")
    )


def submit_review(review: Review, *, merit: int = 4, recommended: dict | None = None):
    return post(
        client_for(review.reviewer),
        f"/reviews/{review.pk}/submit/",
        {
            "merit": merit,
            "feasibility": 4,
            "readiness": 3,
            "comment": "Sound plan; the scaling study is convincing.",
            "recommended_amounts": recommended or {},
        },
    )


def submit_all_reviews(request_id: int) -> int:
    reviews = open_reviews(request_id)
    for review in reviews:
        response = submit_review(review)
        assert response.status_code == 200, response.content
    return len(reviews)


def decide(client, request_id: int, outcome: str, reason: str = "The committee's reasons.", amounts=None):
    body = {"outcome": outcome, "reason": reason}
    if amounts is not None:
        body["amounts"] = amounts
    return post(client, f"/requests/{request_id}/decide/", body)


def allocation_of(request_id: int) -> Allocation:
    return Allocation.objects.get(origin_id=request_id)


def balances(allocation: Allocation | int) -> dict[str, tuple[int, int, int]]:
    """{class code: (awarded, held, charged)} in smallest units, straight from the database."""
    rows = AllocationBalance.objects.filter(allocation=allocation).select_related("resource_class")
    return {b.resource_class.code: (b.awarded, b.held, b.charged) for b in rows}


def counts() -> dict[str, int]:
    """Row counts of everything the workflow writes, to prove a refused call wrote nothing."""
    models = (
        Project,
        ProjectMember,
        AllocationRequest,
        AuditEvent,
        RequestTransition,
        Review,
        Decision,
        Allocation,
        AllocationBalance,
        LedgerEntry,
        Hold,
        ConflictOfInterest,
    )
    return {model.__name__: model.objects.count() for model in models}


def state_of(request_id: int) -> str:
    return AllocationRequest.objects.get(pk=request_id).state
