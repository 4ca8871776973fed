"""Each allocation page opens for the people it is for, and refuses the others: 403 for someone of the
right tenant without the right role, 404 for another institution's objects (as if they did not exist)."""

import pytest
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


def _url(world, name: str) -> str:
    o = world.objects
    args = {
        "allocation_list": [],
        "allocation_detail": [o["allocation"]],
        "project_list": [],
        "project_create": [],
        "project_detail": [o["project"]],
        "request_create": [o["project"]],
        "request_list": [],
        "request_detail": [o["reviewed"]],
        "request_edit": [o["draft"]],
        "review_queue": [],
        "review_detail": [o["open_review"]],
        "committee_home": [],
        "decision_page": [o["reviewed"]],
        "institution_overview": [world.a.pk],
    }[name]
    return reverse(f"allocations:{name}", args=args)


EXPECTED = {
    "allocation_list": {"pi_a": 200, "researcher_a": 200, "reviewer": 200, "committee": 200, "pi_b": 200},
    "allocation_detail": {
        "pi_a": 200,
        "researcher_a": 200,
        "admin_a": 200,
        "committee": 200,
        "pi_b": 404,
        "admin_b": 404,
        "reviewer": 404,
    },
    "project_list": {"pi_a": 200, "researcher_a": 200, "pi_b": 200, "committee": 200},
    "project_create": {"pi_a": 200, "pi_b": 200, "researcher_a": 403, "admin_a": 403, "reviewer": 403},
    "project_detail": {
        "pi_a": 200,
        "researcher_a": 200,
        "admin_a": 200,
        "committee": 200,
        "pi_b": 404,
        "reviewer": 404,
    },
    "request_create": {"pi_a": 200, "researcher_a": 403, "admin_a": 403, "committee": 403, "pi_b": 404},
    "request_list": {"pi_a": 200, "researcher_a": 200, "reviewer": 200, "committee": 200, "pi_b": 200},
    "request_detail": {
        "pi_a": 200,
        "researcher_a": 200,
        "admin_a": 200,
        "committee": 200,
        "reviewer": 200,
        "pi_b": 404,
        "admin_b": 404,
    },
    "request_edit": {"pi_a": 200, "researcher_a": 403, "admin_a": 403, "committee": 404, "pi_b": 404},
    "review_queue": {"reviewer": 200, "pi_a": 403, "committee": 403, "admin_a": 403},
    "review_detail": {"reviewer": 200, "pi_a": 403, "committee": 403, "pi_b": 403},
    "committee_home": {"committee": 200, "fedadmin": 200, "pi_a": 403, "reviewer": 403, "admin_a": 403},
    "decision_page": {"committee": 200, "fedadmin": 200, "pi_a": 403, "reviewer": 403, "pi_b": 404},
    "institution_overview": {"admin_a": 200, "fedadmin": 200, "pi_a": 403, "researcher_a": 403, "admin_b": 404},
}


@pytest.mark.parametrize("page", sorted(EXPECTED))
def test_each_page_opens_for_its_people_and_refuses_the_others(world, pi_b, browser, page):
    url = _url(world, page)
    seen = {who: browser(pi_b if who == "pi_b" else world.users[who]).get(url).status_code for who in EXPECTED[page]}
    assert seen == EXPECTED[page]


@pytest.mark.parametrize("page", sorted(EXPECTED))
def test_anonymous_visitors_are_sent_to_the_login_page(world, browser, page):
    response = browser().get(_url(world, page))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("portal:login"))


def test_another_institutions_pi_sees_none_of_its_projects_or_requests(world, pi_b, browser):
    client = browser(pi_b)
    assert "Climate" not in client.get(reverse("allocations:project_list")).content.decode()
    listing = client.get(reverse("allocations:request_list")).content.decode()
    assert "Production" not in listing and "Follow-up" not in listing
    assert "Climate" not in client.get(reverse("allocations:allocation_list")).content.decode()


def test_the_committee_does_not_see_drafts(world, browser):
    client = browser(world.users["committee"])
    assert client.get(reverse("allocations:request_detail", args=[world.objects["draft"]])).status_code == 404
    listing = client.get(reverse("allocations:request_list")).content.decode()
    assert reverse("allocations:request_detail", args=[world.objects["draft"]]) not in listing
    assert reverse("allocations:request_detail", args=[world.objects["reviewed"]]) in listing


def test_another_reviewer_cannot_open_a_review_that_is_not_theirs(world, browser):
    reviewer2 = User.objects.get(email="reviewer2@ict.ac.cn")
    url = reverse("allocations:review_detail", args=[world.objects["open_review"]])
    assert browser(reviewer2).get(url).status_code == 404


def test_a_reviewer_cannot_open_the_project_or_allocation_of_a_request_they_review(world, browser):
    client = browser(world.users["reviewer"])
    page = client.get(reverse("allocations:review_detail", args=[world.objects["open_review"]])).content.decode()
    assert reverse("allocations:project_detail", args=[world.objects["project"]]) not in page
    assert client.get(reverse("allocations:project_detail", args=[world.objects["project"]])).status_code == 404


def test_the_section_tabs_follow_the_roles(world, browser):
    reviewer_page = browser(world.users["reviewer"]).get(reverse("allocations:review_queue")).content.decode()
    assert reverse("allocations:review_queue") in reviewer_page
    assert reverse("allocations:committee_home") not in reviewer_page
    committee_page = browser(world.users["committee"]).get(reverse("allocations:committee_home")).content.decode()
    assert reverse("allocations:committee_home") in committee_page
    admin_page = browser(world.users["admin_a"]).get(reverse("allocations:project_list")).content.decode()
    assert reverse("allocations:institution_overview", args=[world.a.pk]) in admin_page
