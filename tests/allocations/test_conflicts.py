"""Conflicts of interest: own-institution reviewers are never assigned, declared conflicts cut access."""

import pytest

from accounts.models import AuditEvent, FederationRoleKind
from allocations.models import ConflictOfInterest, Review
from tests.allocations.helpers import (
    API,
    STANDARD_AMOUNTS,
    client_for,
    counts,
    create_and_submit,
    error_code,
    open_reviews,
    post,
    submit_review,
)
from tests.factories import make_institution, make_person

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer_at_a(fed):
    """A reviewer who is a member of the requesting institution (PKU)."""
    return make_person("reviewer@pku.edu.cn", FederationRoleKind.REVIEWER, fed.a)


def test_reviewer_from_the_requesting_institution_is_never_assigned_automatically(fed, project, reviewer_at_a):
    # reviewer_at_a is older (lower pk) than the reviewers below, so least-loaded-first would pick them.
    others = [
        make_person(f"reviewer@{c.lower()}.edu.cn", FederationRoleKind.REVIEWER, make_institution(c))
        for c in ("ICT", "NJU")
    ]

    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)

    assigned = [r.reviewer for r in Review.objects.filter(request_id=request["id"])]
    assert assigned == [fed.users["reviewer"], others[0]]
    assert reviewer_at_a not in assigned
    # Automatic assignment stops short rather than use them.
    post(fed.client("committee"), f"/requests/{request['id']}/assign/")
    assert reviewer_at_a not in [r.reviewer for r in Review.objects.filter(request_id=request["id"])]


def test_manual_assignment_of_a_reviewer_from_the_requesting_institution_is_refused(fed, project, reviewer_at_a):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    before = counts()

    response = post(fed.client("committee"), f"/requests/{request['id']}/assign/", {"reviewer": reviewer_at_a.email})

    assert (response.status_code, error_code(response)) == (409, "reviewer_conflicted")
    assert counts() == before
    assert client_for(reviewer_at_a).get(f"{API}/requests/{request['id']}/").status_code == 404
    assert client_for(reviewer_at_a).get(f"{API}/reviews/").json()["count"] == 0


def test_manual_assignment_of_someone_who_is_not_a_reviewer_is_refused(fed, project, reviewers):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    committee = fed.client("committee")
    before = counts()

    for email in ("operator@scnet.example.cn", "nobody@example.cn"):
        response = post(committee, f"/requests/{request['id']}/assign/", {"reviewer": email})
        assert (response.status_code, error_code(response)) == (400, "not_a_reviewer")
    response = post(committee, f"/requests/{request['id']}/assign/", {"reviewer": reviewers[0].email})
    assert (response.status_code, error_code(response)) == (409, "already_assigned")
    assert counts() == before


def test_reviewer_who_declares_a_conflict_loses_access_and_is_replaced(
    fed, project, reviewers, mailoutbox, django_capture_on_commit_callbacks
):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    review = open_reviews(request["id"])[0]
    conflicted = client_for(review.reviewer)
    assert conflicted.get(f"{API}/requests/{request['id']}/").status_code == 200
    assert conflicted.get(f"{API}/reviews/{review.pk}/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = post(conflicted, f"/reviews/{review.pk}/conflict/", {"reason": "Co-author of the PI."})

    assert response.status_code == 200 and response.json() == {"id": review.pk, "state": "declined"}
    assert conflicted.get(f"{API}/requests/{request['id']}/").status_code == 404
    assert conflicted.get(f"{API}/reviews/{review.pk}/").status_code == 404
    assert conflicted.get(f"{API}/requests/").json()["count"] == 0
    assert conflicted.get(f"{API}/reviews/").json()["count"] == 0
    assert submit_review(review).status_code == 404
    coi = ConflictOfInterest.objects.get(reviewer=review.reviewer)
    assert (coi.request_id, coi.reason) == (request["id"], "Co-author of the PI.")
    assert AuditEvent.objects.filter(action="review.decline_conflict", object_id=str(review.pk)).exists()
    # The replacement is the next least-loaded eligible reviewer, and is told by email.
    open_now = open_reviews(request["id"])
    assert [r.reviewer for r in open_now] == [reviewers[1], reviewers[2]]
    assert [m.to for m in mailoutbox] == [[reviewers[2].email]]
    assert "Review assignment" in mailoutbox[0].subject
    # The committee cannot put them back.
    again = post(fed.client("committee"), f"/requests/{request['id']}/assign/", {"reviewer": review.reviewer.email})
    assert (again.status_code, error_code(again)) == (409, "reviewer_conflicted")


def test_conflict_declared_when_nobody_is_left_leaves_one_review_short(fed, project):
    second = make_person("reviewer@ict.edu.cn", FederationRoleKind.REVIEWER, make_institution("ICT"))
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    review = Review.objects.get(request_id=request["id"], reviewer=second)

    response = post(client_for(second), f"/reviews/{review.pk}/conflict/", {"reason": "Same lab."})

    assert response.status_code == 200
    assert [r.reviewer for r in open_reviews(request["id"])] == [fed.users["reviewer"]]
    assert fed.client("committee").get(f"{API}/requests/{request['id']}/").json()["state"] == "under_review"


def test_only_the_assigned_reviewer_declares_a_conflict_and_only_once(fed, project, reviewers):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    mine, theirs = open_reviews(request["id"])
    before = counts()

    assert post(client_for(mine.reviewer), f"/reviews/{theirs.pk}/conflict/", {"reason": "x"}).status_code == 404
    committee = post(fed.client("committee"), f"/reviews/{mine.pk}/conflict/", {"reason": "x"})
    assert (committee.status_code, error_code(committee)) == (403, "not_your_review")
    assert submit_review(mine).status_code == 200
    before = counts()
    closed = post(client_for(mine.reviewer), f"/reviews/{mine.pk}/conflict/", {"reason": "Too late."})
    assert (closed.status_code, error_code(closed)) == (409, "review_closed")
    assert counts() == before


def test_reviewer_with_an_institution_wide_conflict_is_skipped(fed, project, reviewers):
    ConflictOfInterest.objects.create(reviewer=reviewers[0], institution=fed.a, reason="Adjunct at PKU")

    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)

    assert [r.reviewer for r in open_reviews(request["id"])] == reviewers[1:3]
