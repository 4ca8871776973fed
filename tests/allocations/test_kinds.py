"""Every kind of request: renewal, supplement, extension and appeal (new is in test_lifecycle)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.actors import Actor
from accounts.models import AuditEvent, FederationRoleKind
from allocations.models import Allocation, AllocationRequest, ConflictOfInterest, LedgerEntry, Review
from allocations.workflow import allocation_set_state
from tests.allocations.helpers import (
    API,
    STANDARD_AMOUNTS,
    allocation_of,
    balances,
    counts,
    create_and_submit,
    create_project,
    create_request,
    decide,
    error_code,
    open_reviews,
    post,
    request_body,
    state_of,
    submit,
    submit_all_reviews,
)
from tests.factories import make_institution, make_person

pytestmark = pytest.mark.django_db


@pytest.fixture
def explore_allocation(fed, project) -> Allocation:
    """An active explore allocation of the project: today .. today + 365, 5,000 cpu + 100 v100."""
    return allocation_of(create_and_submit(fed.client("pi_a"), project["id"], tier="explore")["id"])


def refused(client, body: dict, status: int, code: str) -> None:
    before = counts()
    response = post(client, "/requests/", body)
    assert (response.status_code, error_code(response)) == (status, code), response.content
    assert counts() == before


def rejected_standard_request(fed, project) -> dict:
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    submit_all_reviews(request["id"])
    response = decide(fed.client("committee"), request["id"], "reject", reason="Weak scaling evidence.")
    assert response.json()["state"] == "rejected"
    return response.json()


# --- renewal -------------------------------------------------------------------------------
def test_renewal_creates_a_new_allocation_and_leaves_the_old_one_alone(fed, project, explore_allocation, today):
    renewal = create_and_submit(
        fed.client("pi_a"),
        project["id"],
        kind="renewal",
        tier="explore",
        amounts={"cpu": 3_000},
        allocation=explore_allocation.pk,
        start=today + timedelta(days=365),
        end=today + timedelta(days=730),
    )

    assert renewal["state"] == "approved" and renewal["allocation"] == explore_allocation.pk
    new = allocation_of(renewal["id"])
    assert new.pk != explore_allocation.pk
    assert (new.start, new.end, new.state) == (today + timedelta(days=365), today + timedelta(days=730), "active")
    assert balances(new) == {"cpu": (3_000 * 3600, 0, 0)}
    assert balances(explore_allocation) == {"cpu": (5_000 * 3600, 0, 0), "gpu:v100": (100 * 3600, 0, 0)}
    explore_allocation.refresh_from_db()
    assert explore_allocation.end == today + timedelta(days=365)


def test_renewal_must_name_an_allocation_of_the_same_project(fed, project, explore_allocation, today):
    pi = fed.client("pi_a")
    other = create_project(pi, fed.a.pk, start=today, end=today + timedelta(days=800), title="Other")

    refused(pi, request_body(project["id"], kind="renewal"), 400, "allocation_required")
    refused(pi, request_body(other["id"], kind="renewal", allocation=explore_allocation.pk), 400, "allocation_required")
    # A new request does not name an allocation.
    refused(pi, request_body(project["id"], kind="new", allocation=explore_allocation.pk), 400, "invalid")


# --- supplement ----------------------------------------------------------------------------
def test_supplement_adds_to_the_awarded_balance_of_the_existing_allocation(fed, project, explore_allocation):
    supplement = create_and_submit(
        fed.client("pi_a"),
        project["id"],
        kind="supplement",
        tier="explore",
        amounts={"cpu": 2_000, "storage": 10},
        allocation=explore_allocation.pk,
    )

    assert supplement["state"] == "approved"
    assert Allocation.objects.filter(project_id=project["id"]).count() == 1
    assert balances(explore_allocation) == {
        "cpu": (7_000 * 3600, 0, 0),
        "gpu:v100": (100 * 3600, 0, 0),
        "storage": (10 * 1000, 0, 0),
    }
    added = LedgerEntry.objects.filter(request_id=supplement["id"]).order_by("resource_class__code")
    assert [(e.allocation_id, e.kind, e.resource_class.code, e.amount) for e in added] == [
        (explore_allocation.pk, "award", "cpu", 2_000 * 3600),
        (explore_allocation.pk, "award", "storage", 10_000),
    ]


def test_supplement_to_a_suspended_allocation_is_refused(fed, project, explore_allocation):
    allocation_set_state(
        actor=Actor(user=fed.users["committee"]), allocation=explore_allocation, to_state="suspended", reason="Audit"
    )
    body = request_body(project["id"], kind="supplement", amounts={"cpu": 10}, allocation=explore_allocation.pk)

    refused(fed.client("pi_a"), body, 409, "allocation_not_active")


# --- extension -----------------------------------------------------------------------------
def test_extension_moves_the_allocation_end_later_and_awards_nothing(fed, project, explore_allocation, today):
    Allocation.objects.filter(pk=explore_allocation.pk).update(warned_30_at=timezone.now())
    ledger_before = LedgerEntry.objects.count()

    extension = create_and_submit(
        fed.client("pi_a"),
        project["id"],
        kind="extension",
        tier="explore",
        amounts={},
        allocation=explore_allocation.pk,
        start=today + timedelta(days=100),
        end=today + timedelta(days=400),
    )

    assert extension["state"] == "approved" and extension["credits"] == "0.00"
    explore_allocation.refresh_from_db()
    assert explore_allocation.end == today + timedelta(days=400)
    assert explore_allocation.start == today
    assert explore_allocation.warned_30_at is None  # the expiry warnings start over
    assert LedgerEntry.objects.count() == ledger_before
    assert Allocation.objects.filter(project_id=project["id"]).count() == 1
    audit = AuditEvent.objects.get(action="allocation.extend")
    assert audit.before == {"end": (today + timedelta(days=365)).isoformat()}
    assert audit.after == {"end": (today + timedelta(days=400)).isoformat()}


def test_standard_extension_is_awarded_by_the_committee_without_amounts(fed, project, explore_allocation, reviewers):
    today = timezone.localdate()
    pi, committee = fed.client("pi_a"), fed.client("committee")
    extension = create_and_submit(
        pi,
        project["id"],
        kind="extension",
        tier="standard",
        amounts={},
        allocation=explore_allocation.pk,
        end=today + timedelta(days=366),
    )
    assert extension["state"] == "under_review"
    submit_all_reviews(extension["id"])

    response = decide(committee, extension["id"], "award", reason="One more day, granted.")

    assert response.status_code == 200 and response.json()["state"] == "approved"
    explore_allocation.refresh_from_db()
    assert explore_allocation.end == today + timedelta(days=366)


@pytest.mark.parametrize("days", [365, 300], ids=["same-end", "earlier-end"])
def test_extension_that_does_not_move_the_end_later_is_refused(fed, project, explore_allocation, today, days):
    body = request_body(
        project["id"], kind="extension", amounts={}, allocation=explore_allocation.pk, end=today + timedelta(days=days)
    )

    refused(fed.client("pi_a"), body, 400, "extension_not_later")


def test_extension_with_amounts_is_refused(fed, project, explore_allocation, today):
    body = request_body(
        project["id"],
        kind="extension",
        amounts={"cpu": 10},
        allocation=explore_allocation.pk,
        start=today + timedelta(days=100),
        end=today + timedelta(days=400),
    )

    refused(fed.client("pi_a"), body, 400, "extension_has_amounts")


def test_explore_extension_overtaken_by_a_longer_one_is_rejected_instead_of_shortening_the_allocation(
    fed, project, explore_allocation, today
):
    pi = fed.client("pi_a")
    dates = {"start": today + timedelta(days=100), "amounts": {}, "allocation": explore_allocation.pk}
    shorter = create_request(pi, project["id"], kind="extension", end=today + timedelta(days=380), **dates)
    longer = create_request(pi, project["id"], kind="extension", end=today + timedelta(days=420), **dates)
    assert submit(pi, longer["id"])["state"] == "approved"

    response = submit(pi, shorter["id"])

    assert response["state"] == "rejected"
    explore_allocation.refresh_from_db()
    assert explore_allocation.end == today + timedelta(days=420)
    reason = pi.get(f"{API}/requests/{shorter['id']}/history/").json()["decisions"][0]["reason"]
    assert "already ends on or after the requested date" in reason


def test_committee_cannot_award_an_extension_overtaken_by_a_longer_one(
    fed, project, explore_allocation, reviewers, today
):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    reviewed = create_and_submit(
        pi,
        project["id"],
        kind="extension",
        tier="standard",
        amounts={},
        allocation=explore_allocation.pk,
        start=today + timedelta(days=100),
        end=today + timedelta(days=380),
    )
    submit_all_reviews(reviewed["id"])
    create_and_submit(
        pi,
        project["id"],
        kind="extension",
        amounts={},
        allocation=explore_allocation.pk,
        start=today + timedelta(days=100),
        end=today + timedelta(days=420),
    )
    before = counts()

    response = decide(committee, reviewed["id"], "award", reason="Granted.")

    assert (response.status_code, error_code(response)) == (409, "extension_not_later")
    assert counts() == before
    assert state_of(reviewed["id"]) == "under_review"
    explore_allocation.refresh_from_db()
    assert explore_allocation.end == today + timedelta(days=420)


# --- appeal --------------------------------------------------------------------------------
def test_appeal_of_a_rejected_request_is_reviewed_again_and_its_award_creates_the_allocation(fed, project, reviewers):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    parent = rejected_standard_request(fed, project)
    appeal = create_request(
        pi, project["id"], kind="appeal", tier="standard", amounts=STANDARD_AMOUNTS, appeal_of=parent["id"]
    )

    submitted = submit(pi, appeal["id"])

    # Reviewers are assigned automatically on submission, so the appeal passes through "appealed".
    assert submitted["state"] == "under_review"
    states = [
        (t["from_state"], t["to_state"])
        for t in pi.get(f"{API}/requests/{appeal['id']}/history/").json()["transitions"]
    ]
    assert states == [("draft", "appealed"), ("appealed", "under_review")]
    assert len(open_reviews(appeal["id"])) == 2
    submit_all_reviews(appeal["id"])
    response = decide(committee, appeal["id"], "award", reason="Appeal upheld.", amounts={"cpu": 90_000})

    assert response.status_code == 200 and response.json()["state"] == "approved"
    allocation = allocation_of(appeal["id"])
    assert balances(allocation) == {"cpu": (90_000 * 3600, 0, 0)}
    assert state_of(parent["id"]) == "rejected"


def test_appeal_waits_in_appealed_until_the_committee_assigns_reviewers(fed, project):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    create_and_submit(pi, project["id"], tier="explore")
    parent = create_and_submit(pi, project["id"], tier="explore", amounts={"cpu": 1_000})
    assert parent["state"] == "rejected"
    # The only reviewer has declared a conflict with the whole institution: nobody can be assigned.
    ConflictOfInterest.objects.create(reviewer=fed.users["reviewer"], institution=fed.a, reason="Former employer")
    appeal = create_request(pi, project["id"], kind="appeal", amounts={"cpu": 1_000}, appeal_of=parent["id"])

    submitted = submit(pi, appeal["id"])

    assert submitted["state"] == "appealed"
    assert not Review.objects.filter(request_id=appeal["id"]).exists()
    assert committee.get(f"{API}/requests/{appeal['id']}/").json()["state"] == "appealed"
    response = decide(committee, appeal["id"], "award", amounts={"cpu": 1_000})
    assert (response.status_code, error_code(response)) == (409, "illegal_transition")

    new_reviewers = [
        make_person(f"reviewer@{code.lower()}.edu.cn", FederationRoleKind.REVIEWER, make_institution(code))
        for code in ("CAS", "SJTU")
    ]
    first = post(committee, f"/requests/{appeal['id']}/assign/", {"reviewer": new_reviewers[0].email})
    assert first.status_code == 200 and state_of(appeal["id"]) == "under_review"
    assert post(committee, f"/requests/{appeal['id']}/assign/", {"reviewer": new_reviewers[1].email}).status_code == 200
    submit_all_reviews(appeal["id"])
    response = decide(committee, appeal["id"], "award", reason="Granted on appeal.", amounts={"cpu": 800})

    assert response.status_code == 200 and response.json()["state"] == "approved"
    assert balances(allocation_of(appeal["id"])) == {"cpu": (800 * 3600, 0, 0)}


def test_appeal_of_a_partly_awarded_request_adds_to_its_allocation(fed, project, reviewers):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    parent = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    submit_all_reviews(parent["id"])
    decide(committee, parent["id"], "award", amounts={"cpu": 50_000})
    allocation = allocation_of(parent["id"])
    appeal = create_and_submit(
        pi, project["id"], kind="appeal", tier="standard", amounts={"cpu": 50_000}, appeal_of=parent["id"]
    )
    submit_all_reviews(appeal["id"])

    response = decide(committee, appeal["id"], "award", amounts={"cpu": 30_000})

    assert response.status_code == 200
    assert Allocation.objects.filter(project_id=project["id"]).count() == 1
    assert balances(allocation) == {"cpu": (80_000 * 3600, 0, 0)}


def test_appeal_after_the_thirty_day_window_is_refused(fed, project):
    pi = fed.client("pi_a")
    create_and_submit(pi, project["id"], tier="explore")
    parent = create_and_submit(pi, project["id"], tier="explore", amounts={"cpu": 1_000})
    body = request_body(project["id"], kind="appeal", amounts={"cpu": 1_000}, appeal_of=parent["id"])

    AllocationRequest.objects.filter(pk=parent["id"]).update(decided_at=timezone.now() - timedelta(days=31))
    refused(pi, body, 409, "appeal_window_closed")

    AllocationRequest.objects.filter(pk=parent["id"]).update(decided_at=timezone.now() - timedelta(days=29))
    assert post(pi, "/requests/", body).status_code == 201


def test_appeal_drafted_in_time_cannot_be_submitted_after_the_window(fed, project):
    pi = fed.client("pi_a")
    create_and_submit(pi, project["id"], tier="explore")
    parent = create_and_submit(pi, project["id"], tier="explore", amounts={"cpu": 1_000})
    appeal = create_request(pi, project["id"], kind="appeal", amounts={"cpu": 1_000}, appeal_of=parent["id"])
    AllocationRequest.objects.filter(pk=parent["id"]).update(decided_at=timezone.now() - timedelta(days=31))

    response = post(pi, f"/requests/{appeal['id']}/submit/")

    assert (response.status_code, error_code(response)) == (409, "appeal_window_closed")
    assert state_of(appeal["id"]) == "draft"


def test_only_a_decided_request_that_is_not_itself_an_appeal_can_be_appealed(fed, project, reviewers):
    pi = fed.client("pi_a")
    pending = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    refused(pi, request_body(project["id"], kind="appeal", appeal_of=pending["id"]), 409, "not_appealable")

    create_and_submit(pi, project["id"], tier="explore")
    parent = create_and_submit(pi, project["id"], tier="explore", amounts={"cpu": 1_000})
    appeal = create_and_submit(pi, project["id"], kind="appeal", amounts={"cpu": 1_000}, appeal_of=parent["id"])
    submit_all_reviews(appeal["id"])
    decide(fed.client("committee"), appeal["id"], "reject", reason="Upheld.")
    refused(pi, request_body(project["id"], kind="appeal", appeal_of=appeal["id"]), 409, "not_appealable")
    refused(pi, request_body(project["id"], kind="appeal"), 400, "appeal_target_required")


def test_a_decision_can_be_appealed_only_once(fed, project, reviewers):
    pi = fed.client("pi_a")
    create_and_submit(pi, project["id"], tier="explore")
    parent = create_and_submit(pi, project["id"], tier="explore", amounts={"cpu": 1_000})
    first = create_request(pi, project["id"], kind="appeal", amounts={"cpu": 1_000}, appeal_of=parent["id"])
    body = request_body(project["id"], kind="appeal", amounts={"cpu": 500}, appeal_of=parent["id"])

    refused(pi, body, 409, "not_appealable")  # a draft appeal already counts
    submit(pi, first["id"])
    refused(pi, body, 409, "not_appealable")


def test_a_withdrawn_appeal_does_not_use_up_the_right_to_appeal(fed, project):
    pi = fed.client("pi_a")
    create_and_submit(pi, project["id"], tier="explore")
    parent = create_and_submit(pi, project["id"], tier="explore", amounts={"cpu": 1_000})
    first = create_request(pi, project["id"], kind="appeal", amounts={"cpu": 1_000}, appeal_of=parent["id"])
    assert post(pi, f"/requests/{first['id']}/withdraw/").json()["state"] == "withdrawn"

    second = post(
        pi, "/requests/", request_body(project["id"], kind="appeal", amounts={"cpu": 1_000}, appeal_of=parent["id"])
    )

    assert second.status_code == 201, second.content


def test_appeal_sent_back_for_revision_is_resubmitted_to_its_reviewers(fed, project, reviewers):
    pi = fed.client("pi_a")
    parent = rejected_standard_request(fed, project)
    appeal = create_and_submit(
        pi, project["id"], kind="appeal", tier="standard", appeal_of=parent["id"], amounts=STANDARD_AMOUNTS
    )
    first_reviewers = [r.reviewer for r in open_reviews(appeal["id"])]
    decide(fed.client("committee"), appeal["id"], "revise", reason="Add the new benchmark.")

    response = post(pi, f"/requests/{appeal['id']}/submit/")

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "under_review"
    assert [r.reviewer for r in open_reviews(appeal["id"])] == first_reviewers
    states = [t["to_state"] for t in pi.get(f"{API}/requests/{appeal['id']}/history/").json()["transitions"]]
    assert states == ["appealed", "under_review", "revision_requested", "appealed", "under_review"]


@pytest.mark.parametrize("state", ["draft", "revision_requested"])
def test_pi_can_edit_an_appeal_that_is_a_draft_or_sent_back_for_revision(fed, project, reviewers, state):
    pi = fed.client("pi_a")
    parent = rejected_standard_request(fed, project)
    appeal = create_request(
        pi, project["id"], kind="appeal", tier="standard", appeal_of=parent["id"], amounts=STANDARD_AMOUNTS
    )
    if state == "revision_requested":
        submit(pi, appeal["id"])
        decide(fed.client("committee"), appeal["id"], "revise", reason="Add the new benchmark.")

    response = pi.patch(f"{API}/requests/{appeal['id']}/", {"justification": "New benchmark attached."}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["justification"] == "New benchmark attached."


def test_upheld_appeal_of_a_rejected_supplement_adds_to_the_supplemented_allocation(
    fed, project, explore_allocation, reviewers
):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    supplement = create_and_submit(
        pi,
        project["id"],
        kind="supplement",
        tier="standard",
        amounts=STANDARD_AMOUNTS,
        allocation=explore_allocation.pk,
    )
    submit_all_reviews(supplement["id"])
    decide(committee, supplement["id"], "reject", reason="Not now.")
    appeal = create_and_submit(
        pi, project["id"], kind="appeal", tier="standard", amounts={"cpu": 20_000}, appeal_of=supplement["id"]
    )
    submit_all_reviews(appeal["id"])

    assert decide(committee, appeal["id"], "award", amounts={"cpu": 20_000}).status_code == 200

    assert Allocation.objects.filter(project_id=project["id"]).count() == 1
    assert balances(explore_allocation)["cpu"] == ((5_000 + 20_000) * 3600, 0, 0)


def test_appeal_of_a_rejected_extension_asks_only_for_the_later_end(fed, project, explore_allocation, reviewers, today):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    later = today + timedelta(days=366)
    extension = create_and_submit(
        pi, project["id"], kind="extension", tier="standard", amounts={}, allocation=explore_allocation.pk, end=later
    )
    submit_all_reviews(extension["id"])
    decide(committee, extension["id"], "reject", reason="Not justified.")

    response = post(
        pi,
        "/requests/",
        request_body(project["id"], kind="appeal", tier="standard", amounts={}, appeal_of=extension["id"], end=later),
    )

    assert response.status_code == 201, response.content
    submit(pi, response.json()["id"])
    submit_all_reviews(response.json()["id"])
    assert decide(committee, response.json()["id"], "award", reason="Upheld.").status_code == 200
    explore_allocation.refresh_from_db()
    assert explore_allocation.end == later


def test_explore_cannot_be_sliced_past_its_cap_with_supplements(fed, project, reviewers):
    """Explore is auto-approved up to 10,000 credits per project and year, whatever the kind."""
    pi = fed.client("pi_a")
    first = create_and_submit(pi, project["id"], tier="explore", amounts={"cpu": 9_000})
    assert first["state"] == "approved"
    allocation = AllocationRequest.objects.get(pk=first["id"]).project.allocations.get()
    supplement = create_and_submit(pi, project["id"], tier="explore", kind="supplement",
                                   amounts={"cpu": 2_000}, allocation=allocation.pk)
    assert supplement["state"] == "rejected"
    reason = pi.get(f"{API}/requests/{supplement['id']}/history/").json()["decisions"][-1]["reason"]
    assert "explore cap" in reason
