"""Who sees which projects, requests, reviews and allocations."""

from datetime import timedelta

import pytest

from tests.allocations.helpers import (
    API,
    STANDARD_AMOUNTS,
    allocation_of,
    client_for,
    counts,
    create_and_submit,
    create_project,
    create_request,
    open_reviews,
    post,
    request_body,
    submit,
)

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_reviewer_sees_only_the_requests_assigned_to_them(fed, project, reviewers):
    pi = fed.client("pi_a")
    first = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    second = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS, title="Second")
    explore = create_and_submit(pi, project["id"])
    draft = create_request(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    assert [r.reviewer for r in open_reviews(first["id"])] == reviewers[:2]
    assert [r.reviewer for r in open_reviews(second["id"])] == reviewers[2:]
    reviewer = client_for(reviewers[0])

    assert ids(reviewer.get(f"{API}/requests/")) == [first["id"]]
    assert reviewer.get(f"{API}/requests/{first['id']}/").status_code == 200
    for other in (second, explore, draft):
        assert reviewer.get(f"{API}/requests/{other['id']}/").status_code == 404
        assert reviewer.get(f"{API}/requests/{other['id']}/history/").status_code == 404
    own, colleague = open_reviews(first["id"])
    assert ids(reviewer.get(f"{API}/reviews/")) == [own.pk]
    assert reviewer.get(f"{API}/reviews/{colleague.pk}/").status_code == 404
    assert ids(reviewer.get(f"{API}/projects/")) == []
    assert ids(reviewer.get(f"{API}/allocations/")) == []
    assert ids(client_for(reviewers[2]).get(f"{API}/requests/")) == [second["id"]]


def test_committee_does_not_see_drafts_until_they_are_submitted(fed, project, reviewers):
    pi, committee = fed.client("pi_a"), fed.client("committee")
    draft = create_request(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)

    assert ids(committee.get(f"{API}/requests/")) == []
    assert committee.get(f"{API}/requests/{draft['id']}/").status_code == 404
    assert ids(fed.client("fedadmin").get(f"{API}/requests/")) == []
    assert ids(committee.get(f"{API}/projects/")) == [project["id"]]  # projects are not secret to the committee

    submit(pi, draft["id"])

    assert ids(committee.get(f"{API}/requests/")) == [draft["id"]]
    assert len(ids(committee.get(f"{API}/reviews/"))) == 2
    assert ids(pi.get(f"{API}/reviews/")) == []  # the PI never sees who reviews


def test_request_list_filters_by_state_tier_and_project(fed, project, reviewers):
    pi = fed.client("pi_a")
    explore = create_and_submit(pi, project["id"])
    standard = create_and_submit(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    draft = create_request(pi, project["id"])

    assert ids(pi.get(f"{API}/requests/")) == [draft["id"], standard["id"], explore["id"]]
    assert ids(pi.get(f"{API}/requests/?state=approved")) == [explore["id"]]
    assert ids(pi.get(f"{API}/requests/?tier=standard")) == [standard["id"]]
    assert ids(pi.get(f"{API}/requests/?project={project['id'] + 1}")) == []
    assert pi.get(f"{API}/requests/?state=lost").status_code == 400


def test_pi_of_another_institution_sees_nothing_of_a(fed, project, reviewers, pi_b, today):
    pi_a = fed.client("pi_a")
    allocation = allocation_of(create_and_submit(pi_a, project["id"])["id"])
    reviewed = create_and_submit(pi_a, project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    draft = create_request(pi_a, project["id"])
    review = open_reviews(reviewed["id"])[0]
    other = client_for(pi_b)
    own = create_project(other, fed.b.pk, start=today, end=today + timedelta(days=400), title="THU project")

    assert ids(other.get(f"{API}/projects/")) == [own["id"]]
    assert ids(other.get(f"{API}/requests/")) == []
    assert ids(other.get(f"{API}/allocations/")) == []
    assert ids(other.get(f"{API}/reviews/")) == []
    urls = [
        f"/projects/{project['id']}/",
        f"/projects/{project['id']}/members/",
        f"/requests/{draft['id']}/",
        f"/requests/{reviewed['id']}/",
        f"/requests/{reviewed['id']}/history/",
        f"/requests/{reviewed['id']}/reviews/",
        f"/reviews/{review.pk}/",
        f"/allocations/{allocation.pk}/",
        f"/allocations/{allocation.pk}/ledger/",
        f"/allocations/{allocation.pk}/ledger/export/",
    ]
    for url in urls:
        assert other.get(f"{API}{url}").status_code == 404, url
    before = counts()
    writes = [
        ("post", "/requests/", request_body(project["id"])),
        ("post", "/requests/", request_body(own["id"], kind="renewal", allocation=allocation.pk)),
        ("patch", f"/requests/{draft['id']}/", {"title": "Mine now"}),
        ("post", f"/requests/{draft['id']}/submit/", {}),
        ("post", f"/requests/{reviewed['id']}/withdraw/", {}),
        ("post", f"/projects/{project['id']}/members/", {"email": "pi@tsinghua.edu.cn"}),
    ]
    for method, url, body in writes:
        response = getattr(other, method)(f"{API}{url}", body, format="json")
        assert response.status_code == 404, (url, response.content)
    assert counts() == before


def test_pi_of_b_cannot_create_a_project_in_a(fed, pi_b, today):
    body = {
        "institution_id": fed.a.pk,
        "title": "Squatter",
        "abstract": "x",
        "discipline": "physics",
        "start": today.isoformat(),
        "end": (today + timedelta(days=10)).isoformat(),
    }
    before = counts()
    assert post(client_for(pi_b), "/projects/", body).status_code == 404
    assert counts() == before
