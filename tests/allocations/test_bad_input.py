"""Bad input is refused with a status and a stable code, and refused calls write nothing."""

from datetime import timedelta

import pytest

from tests.allocations.helpers import (
    API,
    STANDARD_AMOUNTS,
    client_for,
    counts,
    create_and_submit,
    create_request,
    decide,
    error_code,
    open_reviews,
    post,
    request_body,
    state_of,
    submit_all_reviews,
    submit_review,
)

pytestmark = pytest.mark.django_db


def assert_refused(response, status: int, code: str, before: dict) -> dict:
    assert (response.status_code, error_code(response)) == (status, code), response.content
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert counts() == before, "a refused call wrote something"
    return response.json()["error"]


def refuse_all(fed, project, today, cases: list[tuple[dict, str, str]]) -> None:
    """Each case changes a valid request body; each must be refused with 400, its code, the field named,
    and nothing written."""
    pi = fed.client("pi_a")
    before = counts()
    for changes, code, field in cases:
        changes = dict(changes)
        start = today + timedelta(days=changes.pop("start_days", 0))
        end = start + timedelta(days=changes.pop("end_days", 365))
        body = request_body(project["id"], start=start, end=end) | changes
        response = post(pi, "/requests/", body)
        assert (response.status_code, error_code(response)) == (400, code), (changes, response.content)
        assert field in response.json()["error"]["fields"], (changes, response.content)
        assert counts() == before, f"{changes} wrote something"


def test_negative_zero_or_missing_amounts_are_refused(fed, project, today):
    refuse_all(
        fed,
        project,
        today,
        [
            ({"amounts": {"cpu": -5}}, "invalid_amount", "amounts"),
            ({"amounts": {"cpu": 0}}, "invalid_amount", "amounts"),
            ({"amounts": {"cpu": 100, "gpu:v100": -1}}, "invalid_amount", "amounts"),
            ({"amounts": {}}, "invalid_amount", "amounts"),
            ({"amounts": {"cpu": "many"}}, "invalid", "amounts"),
        ],
    )


def test_unknown_resource_class_is_refused(fed, project, today):
    refuse_all(
        fed,
        project,
        today,
        [
            ({"amounts": {"gpu:h100": 10}}, "unknown_resource_class", "amounts"),
            ({"amounts": {"gpu:h100": 10, "cpu": -1}}, "unknown_resource_class", "amounts"),
        ],
    )


def test_request_over_its_tier_cap_is_refused(fed, project, today):
    refuse_all(
        fed,
        project,
        today,
        [
            ({"amounts": {"cpu": 10_001}}, "over_tier_cap", "amounts"),
            ({"amounts": {"gpu:v100": 667}}, "over_tier_cap", "amounts"),  # 10,005 credits
            ({"amounts": {"cpu": 8_000, "storage": 4_002}}, "over_tier_cap", "amounts"),  # 10,001 credits
            ({"tier": "standard", "amounts": {"cpu": 500_001}}, "over_tier_cap", "amounts"),
        ],
    )


def test_end_before_start_and_other_bad_dates_are_refused(fed, project, today):
    refuse_all(
        fed,
        project,
        today,
        [
            ({"end_days": -1}, "end_before_start", "end"),
            ({"end_days": 0}, "end_before_start", "end"),
            ({"end_days": 400}, "duration_too_long", "end"),
            ({"start_days": -1}, "outside_project_dates", "start"),
            ({"end": "someday"}, "invalid", "end"),
        ],
    )


def test_unknown_fields_and_bad_choices_are_refused(fed, project, today):
    refuse_all(
        fed,
        project,
        today,
        [
            ({"budget": 1000}, "unknown_field", "budget"),
            ({"tier": "huge"}, "invalid", "tier"),
            ({"kind": "gift"}, "invalid", "kind"),
            ({"title": ""}, "invalid", "title"),
            ({"justification": "   "}, "invalid", "justification"),
        ],
    )


def test_refused_edit_leaves_the_draft_as_it_was(fed, project):
    pi = fed.client("pi_a")
    draft = create_request(pi, project["id"])
    before = counts()

    for body, code in (
        ({"amounts": {"cpu": -1}}, "invalid_amount"),
        ({"amounts": {"cpu": 20_000}}, "over_tier_cap"),
        ({"amounts": {"nope": 1}}, "unknown_resource_class"),
        ({"kind": "renewal"}, "unknown_field"),
        ({"end": draft["start"]}, "end_before_start"),
    ):
        assert_refused(pi.patch(f"{API}/requests/{draft['id']}/", body, format="json"), 400, code, before)

    assert pi.get(f"{API}/requests/{draft['id']}/").json() == draft


def test_researcher_on_the_project_cannot_write_a_request(fed, project):
    pi = fed.client("pi_a")
    added = post(pi, f"/projects/{project['id']}/members/", {"email": "researcher@pku.edu.cn"})
    assert added.status_code == 201
    researcher = fed.client("researcher_a")
    assert researcher.get(f"{API}/projects/{project['id']}/").status_code == 200
    before = counts()

    response = post(researcher, "/requests/", request_body(project["id"]))

    assert_refused(response, 403, "project_pi_required", before)


def test_researcher_off_the_project_does_not_even_learn_it_exists(fed, project):
    before = counts()
    response = post(fed.client("researcher_b"), "/requests/", request_body(project["id"]))
    assert_refused(response, 404, "project_not_found", before)


@pytest.fixture
def reviewed(fed, project, reviewers) -> dict:
    """A standard request with both reviews in."""
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    submit_all_reviews(request["id"])
    return request


def test_award_exceeding_the_request_is_refused(fed, reviewed):
    committee = fed.client("committee")
    before = counts()

    for amounts in ({"cpu": 100_001}, {"cpu": 1, "gpu:a10": 1}, {"storage": 5}):
        error = assert_refused(
            decide(committee, reviewed["id"], "award", amounts=amounts), 400, "award_exceeds_request", before
        )
        assert "amounts" in error["fields"]

    assert state_of(reviewed["id"]) == "under_review"


def test_award_of_nothing_or_of_bad_amounts_is_refused(fed, reviewed):
    committee = fed.client("committee")
    before = counts()

    for amounts, code in (({}, "invalid_amount"), ({"cpu": 0}, "invalid_amount"), ({"x": 1}, "unknown_resource_class")):
        assert_refused(decide(committee, reviewed["id"], "award", amounts=amounts), 400, code, before)


def test_decision_without_a_reason_or_with_an_unknown_outcome_is_refused(fed, reviewed):
    committee = fed.client("committee")
    url = f"/requests/{reviewed['id']}/decide/"
    before = counts()

    for outcome, reason in (("award", None), ("award", ""), ("award", "   "), ("reject", None), ("revise", "  ")):
        body = {"outcome": outcome, "amounts": {"cpu": 10}} | ({} if reason is None else {"reason": reason})
        error = assert_refused(post(committee, url, body), 400, "invalid", before)
        assert list(error["fields"]) == ["reason"], (outcome, reason)
    error = assert_refused(decide(committee, reviewed["id"], "postpone"), 400, "invalid", before)
    assert list(error["fields"]) == ["outcome"]
    assert state_of(reviewed["id"]) == "under_review"


def test_bad_review_is_refused(fed, project, reviewers):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    review = open_reviews(request["id"])[0]
    reviewer = client_for(review.reviewer)
    scores = {"merit": 3, "feasibility": 3, "readiness": 3, "comment": "x"}
    before = counts()

    for body, code in (
        (scores | {"merit": 6}, "invalid"),
        (scores | {"readiness": -1}, "invalid"),
        ({k: v for k, v in scores.items() if k != "comment"}, "invalid"),
        (scores | {"verdict": "yes"}, "unknown_field"),
        (scores | {"recommended_amounts": {"cpu": -3}}, "invalid_amount"),
        (scores | {"recommended_amounts": {"gpu:h100": 3}}, "unknown_resource_class"),
    ):
        assert_refused(post(reviewer, f"/reviews/{review.pk}/submit/", body), 400, code, before)

    review.refresh_from_db()
    assert review.state == "assigned"


def test_review_can_be_submitted_once(fed, project, reviewers):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    review = open_reviews(request["id"])[0]
    assert submit_review(review).status_code == 200
    before = counts()

    assert_refused(submit_review(review, merit=1), 409, "review_closed", before)
