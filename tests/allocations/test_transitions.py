"""The request state machine refuses every move it does not list, and checks who moves."""

import itertools

import pytest

from accounts.actors import Actor, system_actor
from allocations import workflow
from allocations.models import AllocationRequest, ConflictOfInterest, RequestState, Review
from portal.errors import Conflict
from tests.allocations.helpers import (
    API,
    STANDARD_AMOUNTS,
    counts,
    create_and_submit,
    create_request,
    decide,
    error_code,
    open_reviews,
    post,
    state_of,
    submit_all_reviews,
    submit_review,
)

pytestmark = pytest.mark.django_db


def refused(client, url: str, status: int, code: str, body: dict | None = None) -> None:
    before = counts()
    response = post(client, url, body)
    assert (response.status_code, error_code(response)) == (status, code), response.content
    assert counts() == before


def test_approved_request_cannot_be_withdrawn(fed, project):
    request = create_and_submit(fed.client("pi_a"), project["id"])
    assert request["state"] == "approved"

    refused(fed.client("pi_a"), f"/requests/{request['id']}/withdraw/", 409, "illegal_transition")


@pytest.mark.parametrize(("tier", "amounts"), [("explore", None), ("standard", STANDARD_AMOUNTS)])
def test_request_cannot_be_submitted_twice(fed, project, reviewers, tier, amounts):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier=tier, amounts=amounts)

    refused(fed.client("pi_a"), f"/requests/{request['id']}/submit/", 409, "illegal_transition")


def test_researcher_on_the_project_sees_the_draft_but_cannot_submit_or_withdraw_it(fed, project):
    pi = fed.client("pi_a")
    post(pi, f"/projects/{project['id']}/members/", {"email": "researcher@pku.edu.cn"})
    draft = create_request(pi, project["id"])
    researcher = fed.client("researcher_a")
    assert researcher.get(f"{API}/requests/{draft['id']}/").status_code == 200

    refused(researcher, f"/requests/{draft['id']}/submit/", 403, "not_allowed_to_transition")
    refused(researcher, f"/requests/{draft['id']}/withdraw/", 403, "not_allowed_to_transition")
    assert state_of(draft["id"]) == "draft"


def test_researcher_off_the_project_gets_404_on_submit(fed, project):
    draft = create_request(fed.client("pi_a"), project["id"])

    refused(fed.client("researcher_a"), f"/requests/{draft['id']}/submit/", 404, "request_not_found")


def test_committee_cannot_decide_a_draft(fed, project):
    draft = create_request(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)

    # Drafts are invisible to the committee, so over the API it is "not found" ...
    refused(
        fed.client("committee"),
        f"/requests/{draft['id']}/decide/",
        404,
        "request_not_found",
        {"outcome": "reject", "reason": "No."},
    )
    # ... and the service itself refuses the move.
    with pytest.raises(Conflict) as refused_move:
        workflow.decide(
            actor=Actor(user=fed.users["committee"]),
            request=AllocationRequest.objects.get(pk=draft["id"]),
            outcome="reject",
            amounts=None,
            reason="No.",
        )
    assert refused_move.value.code == "illegal_transition"
    assert state_of(draft["id"]) == "draft"


def test_committee_cannot_decide_a_submitted_request_before_review_starts(fed, project):
    ConflictOfInterest.objects.create(reviewer=fed.users["reviewer"], institution=fed.a)
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    assert request["state"] == "submitted"  # nobody could be assigned

    refused(
        fed.client("committee"),
        f"/requests/{request['id']}/decide/",
        409,
        "illegal_transition",
        {"outcome": "revise", "reason": "Not yet."},
    )


def test_withdrawn_request_can_no_longer_be_reviewed_or_decided(fed, project, reviewers):
    pi = fed.client("pi_a")
    request = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    review = open_reviews(request["id"])[0]

    response = post(pi, f"/requests/{request['id']}/withdraw/", {"reason": "Funding fell through."})

    assert response.status_code == 200 and response.json()["state"] == "withdrawn"
    history = pi.get(f"{API}/requests/{request['id']}/history/").json()["transitions"]
    assert (history[-1]["to_state"], history[-1]["reason"]) == ("withdrawn", "Funding fell through.")
    refused(
        fed.client("committee"),
        f"/requests/{request['id']}/decide/",
        409,
        "illegal_transition",
        {"outcome": "reject", "reason": "Withdrawn."},
    )
    before = counts()
    late = submit_review(review)
    assert (late.status_code, error_code(late)) == (409, "review_closed")  # the open assignment was closed
    assert counts() == before
    refused(pi, f"/requests/{request['id']}/withdraw/", 409, "illegal_transition")
    refused(pi, f"/requests/{request['id']}/submit/", 409, "illegal_transition")


def test_only_the_pi_withdraws_and_only_drafts_and_revisions_are_edited(fed, project, reviewers):
    pi = fed.client("pi_a")
    request = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)

    refused(fed.client("committee"), f"/requests/{request['id']}/withdraw/", 403, "not_allowed_to_transition")
    before = counts()
    response = pi.patch(f"{API}/requests/{request['id']}/", {"title": "New title"}, format="json")
    assert (response.status_code, error_code(response)) == (409, "request_not_editable")
    assert counts() == before


def test_decided_request_cannot_be_decided_again(fed, project, reviewers):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    submit_all_reviews(request["id"])
    assert decide(fed.client("committee"), request["id"], "reject").status_code == 200

    refused(
        fed.client("committee"),
        f"/requests/{request['id']}/decide/",
        409,
        "illegal_transition",
        {"outcome": "award", "amounts": {"cpu": 1}, "reason": "Changed our minds."},
    )


def test_every_move_missing_from_the_table_is_refused_as_illegal(fed, project):
    """Even the all-powerful system actor cannot make a move the TRANSITIONS table does not list."""
    draft = create_request(fed.client("pi_a"), project["id"])
    request = AllocationRequest.objects.get(pk=draft["id"])
    missing = [
        (a, b) for a, b in itertools.product(RequestState.values, repeat=2) if (a, b) not in workflow.TRANSITIONS
    ]
    assert len(missing) == 64 - 13  # 13 moves in the table
    before = counts()

    for from_state, to_state in missing:
        AllocationRequest.objects.filter(pk=request.pk).update(state=from_state)
        with pytest.raises(Conflict) as refused_move:
            workflow.transition(actor=system_actor(), request=request, to_state=to_state)
        assert refused_move.value.code == "illegal_transition", (from_state, to_state)

    AllocationRequest.objects.filter(pk=request.pk).update(state="draft")
    assert counts() == before


def test_withdrawing_or_deciding_closes_open_assignments_so_queues_empty(fed, project, reviewers):
    pi = fed.client("pi_a")
    request = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    reviewer_ids = [r.reviewer_id for r in Review.objects.filter(request_id=request["id"])]
    post(pi, f"/requests/{request['id']}/withdraw/", {"reason": "No longer needed."})
    assert set(Review.objects.filter(request_id=request["id"]).values_list("state", flat=True)) == {"closed"}
    assert not Review.objects.filter(reviewer_id__in=reviewer_ids, state="assigned").exists()
