"""The whole life of a request in each tier, driven through the REST API."""

from datetime import timedelta

import pytest

from allocations.models import Allocation, Decision, LedgerEntry, RequestState, Review
from tests.allocations.helpers import (
    API,
    EXPLORE_AMOUNTS,
    MAJOR_AMOUNTS,
    SCALE,
    STANDARD_AMOUNTS,
    allocation_of,
    balances,
    client_for,
    create_and_submit,
    create_request,
    decide,
    error_code,
    open_reviews,
    post,
    state_of,
    submit,
    submit_all_reviews,
    submit_review,
)

pytestmark = pytest.mark.django_db


def timeline(client, request_id: int) -> list[tuple[str, str]]:
    response = client.get(f"{API}/requests/{request_id}/history/")
    assert response.status_code == 200
    return [(t["from_state"], t["to_state"]) for t in response.json()["transitions"]]


# --- explore -------------------------------------------------------------------------------
def test_explore_request_is_approved_on_submit_and_credits_the_award_to_a_new_allocation(fed, project, today):
    pi = fed.client("pi_a")
    draft = create_request(pi, project["id"], tier="explore", amounts=EXPLORE_AMOUNTS)
    assert draft["state"] == "draft" and draft["credits"] == "6500.00"

    submitted = submit(pi, draft["id"])

    assert submitted["state"] == "approved"
    assert submitted["submitted_at"] and submitted["decided_at"]
    allocation = allocation_of(draft["id"])
    assert (allocation.state, allocation.start, allocation.end) == ("active", today, today + timedelta(days=365))
    assert allocation.institution_id == fed.a.pk
    assert balances(allocation) == {code: (n * SCALE[code], 0, 0) for code, n in EXPLORE_AMOUNTS.items()}
    shown = pi.get(f"{API}/allocations/{allocation.pk}/").json()
    assert shown["origin_request"] == draft["id"]
    assert [(b["resource_class"], b["awarded"], b["available"]) for b in shown["balances"]] == [
        ("cpu", "5000.00", "5000.00"),
        ("gpu:v100", "100.00", "100.00"),
    ]
    awards = LedgerEntry.objects.filter(allocation=allocation).order_by("resource_class__code")
    assert [(e.kind, e.resource_class.code, e.amount, e.request_id) for e in awards] == [
        ("award", "cpu", 5_000 * 3600, draft["id"]),
        ("award", "gpu:v100", 100 * 3600, draft["id"]),
    ]
    assert timeline(pi, draft["id"]) == [
        ("draft", "submitted"),
        ("submitted", "under_review"),
        ("under_review", "approved"),
    ]
    decision = Decision.objects.get(request_id=draft["id"])
    assert (decision.outcome, decision.amounts, decision.decided_by_label) == ("award", EXPLORE_AMOUNTS, "system")
    assert not Review.objects.filter(request_id=draft["id"]).exists()


def test_second_new_explore_request_while_an_explore_allocation_is_active_is_rejected_automatically(fed, project):
    pi = fed.client("pi_a")
    create_and_submit(pi, project["id"], tier="explore")

    second = create_and_submit(pi, project["id"], tier="explore", amounts={"cpu": 1_000})

    assert second["state"] == "rejected" and second["decided_at"]
    assert not Allocation.objects.filter(origin_id=second["id"]).exists()
    history = pi.get(f"{API}/requests/{second['id']}/history/").json()
    assert [(t["from_state"], t["to_state"]) for t in history["transitions"]] == [
        ("draft", "submitted"),
        ("submitted", "rejected"),
    ]
    [decision] = history["decisions"]
    assert decision["outcome"] == "reject"
    assert "already has an active explore allocation" in decision["reason"]
    assert history["transitions"][-1]["reason"] == decision["reason"]
    assert Allocation.objects.filter(project_id=project["id"]).count() == 1


# --- standard ------------------------------------------------------------------------------
def test_standard_request_is_reviewed_twice_then_awarded_less_than_asked_by_the_committee(fed, project, reviewers):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    request = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)

    assert request["state"] == "under_review"
    assigned = open_reviews(request["id"])
    assert [r.reviewer for r in assigned] == reviewers[:2]  # least loaded, then oldest
    assert all(r.assigned_by == "system" for r in assigned)

    response = decide(committee, request["id"], "award", amounts={"cpu": 50_000})
    assert (response.status_code, error_code(response)) == (409, "not_enough_reviews")
    assert submit_review(assigned[0]).status_code == 200
    response = decide(committee, request["id"], "award", amounts={"cpu": 50_000})
    assert (response.status_code, error_code(response)) == (409, "not_enough_reviews")
    assert pi.get(f"{API}/requests/{request['id']}/reviews/").json() == []  # nothing before the decision
    assert submit_review(assigned[1], merit=5).status_code == 200

    awarded = {"cpu": 60_000, "gpu:v100": 1_500}
    response = decide(committee, request["id"], "award", reason="Strong case; scaling trimmed.", amounts=awarded)

    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    allocation = allocation_of(request["id"])
    assert balances(allocation) == {"cpu": (60_000 * 3600, 0, 0), "gpu:v100": (1_500 * 3600, 0, 0)}
    listed = pi.get(f"{API}/allocations/?project={project['id']}").json()["results"]
    assert [(b["resource_class"], b["awarded"]) for b in listed[0]["balances"]] == [
        ("cpu", "60000.00"),
        ("gpu:v100", "1500.00"),
    ]
    history = pi.get(f"{API}/requests/{request['id']}/history/").json()
    assert [(t["from_state"], t["to_state"], t["actor"]) for t in history["transitions"]] == [
        ("draft", "submitted", "user:pi@pku.edu.cn"),
        ("submitted", "under_review", "system"),
        ("under_review", "approved", "user:committee@scnet.example.cn"),
    ]
    times = [t["created_at"] for t in history["transitions"]]
    assert times == sorted(times)
    assert history["decisions"] == [
        {
            "id": history["decisions"][0]["id"],
            "outcome": "award",
            "amounts": awarded,
            "reason": "Strong case; scaling trimmed.",
            "decided_by": "user:committee@scnet.example.cn",
            "created_at": history["decisions"][0]["created_at"],
        }
    ]
    # Once decided the PI reads the reviews, anonymised.
    shown = pi.get(f"{API}/requests/{request['id']}/reviews/").json()
    assert [r["reviewer"] for r in shown] == ["reviewer 1", "reviewer 2"]


def test_committee_rejects_a_standard_request_and_no_allocation_is_created(fed, project, reviewers):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    request = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    submit_all_reviews(request["id"])

    response = decide(committee, request["id"], "reject", reason="Out of scope for this call.")

    assert response.status_code == 200 and response.json()["state"] == "rejected"
    assert not Allocation.objects.filter(project_id=project["id"]).exists()
    assert not LedgerEntry.objects.exists()


# --- major ---------------------------------------------------------------------------------
def test_major_request_needs_three_reviews_before_the_committee_awards_it(fed, project, reviewers, today):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    request = create_and_submit(
        pi, project["id"], tier="major", amounts=MAJOR_AMOUNTS, end=today + timedelta(days=3 * 365)
    )

    assert request["state"] == "under_review"
    assigned = open_reviews(request["id"])
    assert len(assigned) == 3 and fed.users["pi_a"] not in [r.reviewer for r in assigned]
    for review in assigned[:2]:
        assert submit_review(review).status_code == 200
    response = decide(committee, request["id"], "award", amounts=MAJOR_AMOUNTS)
    assert (response.status_code, error_code(response)) == (409, "not_enough_reviews")
    assert "3 reviews are needed" in response.json()["error"]["message"]

    assert submit_review(assigned[2]).status_code == 200
    response = decide(fed.client("fedadmin"), request["id"], "award", amounts=MAJOR_AMOUNTS)

    assert response.status_code == 200 and response.json()["state"] == "approved"
    allocation = allocation_of(request["id"])
    assert allocation.end == today + timedelta(days=3 * 365)
    assert balances(allocation) == {"cpu": (1_000_000 * 3600, 0, 0), "gpu:v100": (20_000 * 3600, 0, 0)}


def test_standard_request_cannot_be_decided_by_a_reviewer_or_the_pi(fed, project, reviewers):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    submit_all_reviews(request["id"])

    for client in (fed.client("pi_a"), client_for(reviewers[0])):
        response = decide(client, request["id"], "award", amounts={"cpu": 1})
        assert (response.status_code, error_code(response)) == (403, "committee_required")
    assert state_of(request["id"]) == "under_review"
    assert not Decision.objects.exists()


# --- revision ------------------------------------------------------------------------------
def test_committee_asks_for_revision_and_the_pi_edits_the_request(fed, project, reviewers):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    request = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)

    # Asking for a revision does not need the reviews in.
    response = decide(committee, request["id"], "revise", reason="Justify the GPU hours with a scaling test.")
    assert response.status_code == 200 and response.json()["state"] == "revision_requested"
    assert response.json()["decided_at"] is None

    edited = pi.patch(
        f"{API}/requests/{request['id']}/",
        {"amounts": {"cpu": 100_000, "gpu:v100": 1_000}, "justification": "Scaling test attached."},
        format="json",
    )
    assert edited.status_code == 200, edited.content
    assert edited.json()["amounts"] == {"cpu": 100_000, "gpu:v100": 1_000}
    assert edited.json()["credits"] == "115000.00"
    assert edited.json()["state"] == "revision_requested"
    assert [r["outcome"] for r in pi.get(f"{API}/requests/{request['id']}/history/").json()["decisions"]] == ["revise"]


def test_resubmitted_revision_goes_back_to_the_same_reviewers_whose_reviews_still_count(fed, project, reviewers):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    request = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    first_reviewers = [r.reviewer for r in open_reviews(request["id"])]
    submit_all_reviews(request["id"])
    decide(committee, request["id"], "revise", reason="Trim the CPU hours.")
    pi.patch(f"{API}/requests/{request['id']}/", {"amounts": {"cpu": 80_000}}, format="json")

    resubmitted = submit(pi, request["id"])

    assert resubmitted["state"] == "under_review"
    reviews = list(Review.objects.filter(request_id=request["id"]))
    assert [(r.reviewer, r.state) for r in reviews] == [(u, "submitted") for u in first_reviewers]
    history = pi.get(f"{API}/requests/{request['id']}/history/").json()["transitions"]
    assert [t["to_state"] for t in history] == [
        "submitted",
        "under_review",
        "revision_requested",
        "submitted",
        "under_review",
    ]
    assert history[-1]["reason"] == "Resubmitted to the assigned reviewers."
    # The earlier reviews are still on record and count: the committee can decide at once.
    response = decide(committee, request["id"], "award", amounts={"cpu": 80_000})
    assert response.status_code == 200 and response.json()["state"] == "approved"
    assert balances(allocation_of(request["id"])) == {"cpu": (80_000 * 3600, 0, 0)}


def test_committee_may_ask_a_fresh_reviewer_after_a_revision(fed, project, reviewers):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    request = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    submit_all_reviews(request["id"])
    decide(committee, request["id"], "revise", reason="Trim the CPU hours.")
    submit(pi, request["id"])
    # Automatic assignment has nothing to add: the minimum of two is already met.
    assert post(committee, f"/requests/{request['id']}/assign/").json() == []

    fresh = post(committee, f"/requests/{request['id']}/assign/", {"reviewer": reviewers[2].email})

    assert fresh.status_code == 200, fresh.content
    assert state_of(request["id"]) == RequestState.UNDER_REVIEW
    assert [r.reviewer for r in open_reviews(request["id"])] == [reviewers[2]]
    assert client_for(reviewers[2]).get(f"{API}/requests/{request['id']}/").status_code == 200
