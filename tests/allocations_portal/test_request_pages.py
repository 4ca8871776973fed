"""The request list with its state filter, and the request page: amounts with credits, the history
timeline with the decisions and their reasons, the PI's actions, and anonymised reviews once decided."""

import pytest
from django.urls import reverse

from accounts.actors import Actor
from allocations import workflow
from allocations.models import AllocationRequest, RequestState

pytestmark = pytest.mark.django_db


def test_the_request_list_filters_by_state(world, browser):
    client = browser(world.users["pi_a"])
    url = reverse("allocations:request_list")
    everything = client.get(url).content.decode()
    for key in ("draft", "reviewed", "open"):
        assert reverse("allocations:request_detail", args=[world.objects[key]]) in everything
    assert "badge-role" in everything and "Under review" in everything

    drafts = client.get(url, {"state": "draft"}).content.decode()
    assert reverse("allocations:request_detail", args=[world.objects["draft"]]) in drafts
    assert reverse("allocations:request_detail", args=[world.objects["reviewed"]]) not in drafts

    assert client.get(url, {"state": "nonsense"}).status_code == 200  # an unknown state shows everything


def test_the_request_page_shows_amounts_with_credits_and_the_pi_actions(world, browser):
    page = (
        browser(world.users["pi_a"])
        .get(reverse("allocations:request_detail", args=[world.objects["draft"]]))
        .content.decode()
    )
    assert "core-hour" in page
    assert reverse("allocations:request_submit", args=[world.objects["draft"]]) in page
    assert reverse("allocations:request_edit", args=[world.objects["draft"]]) in page
    assert reverse("allocations:request_withdraw", args=[world.objects["draft"]]) in page

    member_page = (
        browser(world.users["researcher_a"])
        .get(reverse("allocations:request_detail", args=[world.objects["draft"]]))
        .content.decode()
    )
    assert reverse("allocations:request_submit", args=[world.objects["draft"]]) not in member_page


def test_the_timeline_shows_every_move_and_the_decision_with_its_reason(world, browser):
    reviewed = AllocationRequest.objects.get(pk=world.objects["reviewed"])
    workflow.decide(
        actor=world.objects["committee"],
        request=reviewed,
        outcome="award",
        amounts={"cpu": 15000, "gpu:v100": 400},
        reason="Strong case; GPU trimmed to the scaling study.",
    )
    page = browser(world.users["pi_a"]).get(reverse("allocations:request_detail", args=[reviewed.pk])).content.decode()
    assert page.count('class="al-timeline"') == 1
    for label in ("Submitted", "Under review", "Approved"):
        assert label in page
    assert "Strong case; GPU trimmed to the scaling study." in page
    assert "Decision: Award" in page
    assert "Awarded" in page and "15,000" in page


def test_the_pi_reads_the_reviews_only_once_decided_and_without_names(world, browser):
    client = browser(world.users["pi_a"])
    url = reverse("allocations:request_detail", args=[world.objects["reviewed"]])
    before = client.get(url).content.decode()
    assert "Sound." not in before  # reviews are not shown while under review

    workflow.decide(
        actor=world.objects["committee"],
        request=AllocationRequest.objects.get(pk=world.objects["reviewed"]),
        outcome="reject",
        amounts=None,
        reason="Not this round.",
    )
    page = client.get(url).content.decode()
    assert "Reviewer 1" in page and "Reviewer 2" in page
    assert page.count("Sound.") == 2
    assert "reviewer@ustc.edu.cn" not in page and "reviewer2@ict.ac.cn" not in page
    assert "Appeal the decision" in page  # rejected: the PI may appeal


def test_a_request_sent_back_for_revision_can_be_edited_and_resubmitted(world, browser):
    request = AllocationRequest.objects.get(pk=world.objects["open"])
    workflow.decide(
        actor=world.objects["committee"], request=request, outcome="revise", amounts=None, reason="Add a plan."
    )
    client = browser(world.users["pi_a"])
    page = client.get(reverse("allocations:request_detail", args=[request.pk])).content.decode()
    assert "Add a plan." in page
    assert reverse("allocations:request_edit", args=[request.pk]) in page
    client.post(reverse("allocations:request_submit", args=[request.pk]))
    request.refresh_from_db()
    assert request.state in (RequestState.SUBMITTED, RequestState.UNDER_REVIEW)


def test_a_refused_move_is_explained_not_crashed(world, browser):
    # Submitting twice: the second attempt is an illegal transition, shown as a message.
    pi = Actor(user=world.users["pi_a"])
    draft = AllocationRequest.objects.get(pk=world.objects["draft"])
    workflow.request_submit(actor=pi, request=draft)
    response = browser(world.users["pi_a"]).post(reverse("allocations:request_submit", args=[draft.pk]), follow=True)
    assert response.status_code == 200
    assert "The request cannot do this in its current state." in response.content.decode()
