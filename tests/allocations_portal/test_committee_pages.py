"""The committee: the requests awaiting reviewers or a decision, the decision page with the reviews
side by side, reviewer assignment, and award / reject / revise through the form."""

import pytest
from django.urls import reverse

from accounts.models import User
from allocations.models import Allocation, AllocationRequest, RequestState, Review

pytestmark = pytest.mark.django_db


def decide_url(world, key="reviewed") -> str:
    return reverse("allocations:decide", args=[world.objects[key]])


def test_committee_home_lists_what_waits_with_reviews_in_and_needed(world, browser):
    page = browser(world.users["committee"]).get(reverse("allocations:committee_home")).content.decode()
    assert "Production" in page and "Follow-up" in page
    assert "2 / 2" in page and "ready to decide" in page  # the reviewed one
    assert "0 / 2" in page  # the open one
    assert "Draft" not in page.split("<tbody>")[1]

    approved = (
        browser(world.users["committee"])
        .get(reverse("allocations:committee_home"), {"state": "approved"})
        .content.decode()
    )
    assert "Pilot" in approved and "Follow-up" not in approved


def test_the_decision_page_shows_the_reviews_side_by_side(world, browser):
    page = (
        browser(world.users["committee"])
        .get(reverse("allocations:decision_page", args=[world.objects["reviewed"]]))
        .content.decode()
    )
    assert "reviewer@ustc.edu.cn" in page and "reviewer2@ict.ac.cn" in page  # the committee sees names
    assert page.count("Sound.") == 2
    assert "2 of 2 needed in" in page
    assert "mean 4.0" in page
    assert 'name="amount__cpu"' in page and 'value="20000"' in page  # prefilled with what was asked
    assert 'name="outcome"' in page


def test_the_committee_awards_less_than_asked_and_the_allocation_page_shows_the_balance(world, browser):
    client = browser(world.users["committee"])
    response = client.post(
        decide_url(world),
        {"outcome": "award", "amount__cpu": "15000", "amount__gpu__v100": "400", "reason": "Trimmed GPU."},
    )
    assert response.status_code == 302
    request = AllocationRequest.objects.get(pk=world.objects["reviewed"])
    assert request.state == RequestState.APPROVED
    allocation = Allocation.objects.get(origin=request)

    page = (
        browser(world.users["pi_a"])
        .get(reverse("allocations:allocation_detail", args=[allocation.pk]))
        .content.decode()
    )
    assert "15,000" in page and "400" in page
    assert "credits available" in page
    assert "21,000" in page  # 15,000 × 1 + 400 × 15 credits available


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (
            {"outcome": "award", "amount__cpu": "25000", "reason": "Too much."},
            400,
            "An award cannot exceed what was asked.",
        ),
        (
            {"outcome": "award", "amount__cpu": "", "amount__gpu__v100": "", "reason": "Empty."},
            400,
            "Award at least one resource class, or reject.",
        ),
        ({"outcome": "reject", "reason": ""}, 400, "This field is required."),
        ({"outcome": "award", "amount__cpu": "-3", "reason": "Negative."}, 400, "Amounts cannot be negative."),
        ({"reason": "No outcome."}, 400, "This field is required."),
    ],
    ids=["more-than-asked", "nothing", "no-reason", "negative", "no-outcome"],
)
def test_a_bad_decision_is_refused_with_the_error_and_changes_nothing(world, browser, data, status, message):
    response = browser(world.users["committee"]).post(decide_url(world), data)
    assert response.status_code == status
    assert message in response.content.decode()
    assert AllocationRequest.objects.get(pk=world.objects["reviewed"]).state == RequestState.UNDER_REVIEW
    assert not Allocation.objects.filter(origin_id=world.objects["reviewed"]).exists()


def test_no_award_before_the_reviews_are_in_but_a_revision_can_be_asked(world, browser):
    client = browser(world.users["committee"])
    response = client.post(decide_url(world, "open"), {"outcome": "award", "amount__cpu": "100", "reason": "Early."})
    assert response.status_code == 409
    assert "2 reviews are needed before a decision; 0 are in." in response.content.decode()

    response = client.post(decide_url(world, "open"), {"outcome": "revise", "reason": "Add a scaling study."})
    assert response.status_code == 302
    assert AllocationRequest.objects.get(pk=world.objects["open"]).state == RequestState.REVISION_REQUESTED


def test_the_committee_rejects_with_a_reason_the_pi_reads(world, browser):
    browser(world.users["committee"]).post(decide_url(world), {"outcome": "reject", "reason": "Out of scope."})
    assert AllocationRequest.objects.get(pk=world.objects["reviewed"]).state == RequestState.REJECTED
    page = (
        browser(world.users["pi_a"])
        .get(reverse("allocations:request_detail", args=[world.objects["reviewed"]]))
        .content.decode()
    )
    assert "Out of scope." in page


def test_reviewers_are_assigned_by_email_or_automatically(world, browser):
    client = browser(world.users["committee"])
    url = reverse("allocations:assign_reviewer", args=[world.objects["open"]])
    page = client.get(reverse("allocations:decision_page", args=[world.objects["open"]])).content.decode()
    assert 'value="reviewer3@nju.edu.cn"' in page  # offered as an eligible reviewer

    response = client.post(url, {"reviewer": "Reviewer3@NJU.edu.cn"})
    assert response.status_code == 302
    assert Review.objects.filter(request_id=world.objects["open"], reviewer__email="reviewer3@nju.edu.cn").exists()

    again = client.post(url, {"reviewer": "reviewer3@nju.edu.cn"})
    assert again.status_code == 409 and "That reviewer is already assigned." in again.content.decode()
    not_a_reviewer = client.post(url, {"reviewer": world.users["pi_a"].email})
    assert not_a_reviewer.status_code == 400 and "That person is not a reviewer." in not_a_reviewer.content.decode()
    unknown = client.post(url, {"reviewer": "nobody@example.org"})
    assert unknown.status_code == 400

    # Automatic: the request already has its reviewers, so nobody more is assigned.
    count = Review.objects.filter(request_id=world.objects["open"]).count()
    response = client.post(url, {"auto": "1"}, follow=True)
    assert "No reviewer was assigned" in response.content.decode()
    assert Review.objects.filter(request_id=world.objects["open"]).count() == count


def test_a_conflicted_reviewer_is_refused(world, browser):
    from accounts.actors import Actor
    from allocations import workflow

    reviewer = world.users["reviewer"]
    workflow.declare_conflict(
        actor=Actor(user=reviewer), review=Review.objects.get(pk=world.objects["open_review"]), reason="Friend."
    )
    response = browser(world.users["committee"]).post(
        reverse("allocations:assign_reviewer", args=[world.objects["open"]]), {"reviewer": reviewer.email}
    )
    assert response.status_code == 409
    assert "conflict of interest" in response.content.decode()
    assert (
        not User.objects.get(pk=reviewer.pk)
        .reviews.filter(request_id=world.objects["open"], state=Review.State.ASSIGNED)
        .exists()
    )
