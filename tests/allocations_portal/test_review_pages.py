"""Reviewers: the queue, the review form (scores 0-5, comment, recommended amounts), and declaring a
conflict of interest, after which the request is gone for them."""

import pytest
from django.urls import reverse

from accounts.models import User
from allocations.models import Review

pytestmark = pytest.mark.django_db


def review_data(**overrides) -> dict:
    data = {
        "merit": "5",
        "feasibility": "4",
        "readiness": "3",
        "comment": "Well prepared; the GPU share is generous.",
        "amount__cpu": "20000",
        "amount__gpu__v100": "300",
    }
    data.update(overrides)
    return data


def test_the_queue_lists_open_assignments_and_then_submitted_ones(world, browser):
    client = browser(world.users["reviewer"])
    review = Review.objects.get(pk=world.objects["open_review"])
    page = client.get(reverse("allocations:review_queue")).content.decode()
    assert reverse("allocations:review_detail", args=[review.pk]) in page
    assert "Follow-up" in page

    submitted = client.get(reverse("allocations:review_queue"), {"state": "submitted"}).content.decode()
    assert "Production" in submitted  # the reviewed request's review, in the submitted tab
    assert "Follow-up" not in submitted


def test_a_reviewer_submits_a_review_through_the_form(world, browser):
    client = browser(world.users["reviewer"])
    url = reverse("allocations:review_detail", args=[world.objects["open_review"]])
    page = client.get(url).content.decode()
    assert 'name="merit"' in page and 'name="amount__cpu"' in page
    assert 'value="20000"' in page  # recommended amounts start from what was asked

    response = client.post(url, review_data())

    assert response.status_code == 302
    assert response["Location"] == reverse("allocations:review_queue")
    review = Review.objects.get(pk=world.objects["open_review"])
    assert review.state == Review.State.SUBMITTED
    assert (review.merit, review.feasibility, review.readiness) == (5, 4, 3)
    assert review.recommended_amounts == {"cpu": 20000, "gpu:v100": 300}
    assert review.comment.startswith("Well prepared")
    page = client.get(url).content.decode()
    assert "Submit the review" not in page and "Well prepared" in page


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"merit": "6"}, "Select a valid choice."),
        ({"feasibility": ""}, "Give a score from 0 to 5."),
        ({"amount__cpu": "-1"}, "Amounts cannot be negative."),
        ({"comment": ""}, "This field is required."),
    ],
    ids=["score-too-high", "score-missing", "negative-amount", "no-comment"],
)
def test_a_bad_review_comes_back_with_the_error_and_stays_open(world, browser, overrides, message):
    url = reverse("allocations:review_detail", args=[world.objects["open_review"]])
    response = browser(world.users["reviewer"]).post(url, review_data(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Review.objects.get(pk=world.objects["open_review"]).state == Review.State.ASSIGNED


def test_declaring_a_conflict_removes_the_request_from_the_reviewer(world, browser):
    client = browser(world.users["reviewer"])
    review_url = reverse("allocations:review_detail", args=[world.objects["open_review"]])
    request_url = reverse("allocations:request_detail", args=[world.objects["open"]])
    assert client.get(request_url).status_code == 200

    assert (
        client.post(
            reverse("allocations:review_conflict", args=[world.objects["open_review"]]), {"reason": ""}
        ).status_code
        == 400
    )
    response = client.post(
        reverse("allocations:review_conflict", args=[world.objects["open_review"]]),
        {"reason": "Co-author of the PI."},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == reverse("allocations:review_queue")
    assert "You declared a conflict of interest" in response.content.decode()
    assert Review.objects.get(pk=world.objects["open_review"]).state == Review.State.DECLINED
    assert client.get(review_url).status_code == 404
    assert client.get(request_url).status_code == 404
    assert client.post(review_url, review_data()).status_code == 404
    assert "Follow-up" not in client.get(reverse("allocations:review_queue")).content.decode()
    # Another reviewer took the place.
    replacement = User.objects.get(email="reviewer3@nju.edu.cn")
    assert Review.objects.filter(request_id=world.objects["open"], reviewer=replacement).exists()


def test_a_withdrawn_request_leaves_the_to_review_tab(world, browser):
    from accounts.actors import Actor
    from allocations import workflow
    from allocations.models import AllocationRequest

    workflow.request_withdraw(
        actor=Actor(user=world.users["pi_a"]), request=AllocationRequest.objects.get(pk=world.objects["open"])
    )
    client = browser(world.users["reviewer"])
    assert "Follow-up" not in client.get(reverse("allocations:review_queue")).content.decode()
    page = client.get(reverse("allocations:review_detail", args=[world.objects["open_review"]])).content.decode()
    assert "This request is not under review any more." in page
    assert reverse("allocations:review_conflict", args=[world.objects["open_review"]]) not in page
