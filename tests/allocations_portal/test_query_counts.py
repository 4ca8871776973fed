"""List pages do not run a query per row: the count stays the same when the rows multiply, and is pinned."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.actors import Actor
from allocations import ledger, projects, workflow
from allocations.models import Allocation, Project, ResourceClass

pytestmark = pytest.mark.django_db

# The most queries each page may run, whatever the number of rows (session, user, roles and
# memberships for the top bar, the page's own reads). Raise only with a reason.
PINNED = {
    "pi_a:allocation_list": 8,
    "pi_a:project_list": 8,
    "pi_a:request_list": 7,
    "pi_a:allocation_detail": 12,
    "reviewer:review_queue": 9,
    "committee:committee_home": 7,
    "admin_a:institution_overview": 13,
}


def _url(world, page: str) -> str:
    if page == "allocation_detail":
        return reverse("allocations:allocation_detail", args=[world.objects["allocation"]])
    if page == "institution_overview":
        return reverse("allocations:institution_overview", args=[world.a.pk])
    return reverse(f"allocations:{page}")


def _grow(world, n: int) -> None:
    """n more of everything: submitted standard requests (reviewers assigned), drafts, projects with an
    explore allocation each, and charges on the first allocation's ledger."""
    pi = Actor(user=world.users["pi_a"])
    today = timezone.localdate()
    project = Project.objects.get(pk=world.objects["project"])
    for i in range(n):
        request = workflow.request_create(
            actor=pi,
            project=project,
            kind="new",
            tier="standard",
            title=f"More {i}",
            justification="More.",
            amounts={"cpu": 1000 + i, "storage": 10},
            start=today,
            end=today + timedelta(days=100),
        )
        workflow.request_submit(actor=pi, request=request)
        workflow.request_create(
            actor=pi,
            project=project,
            kind="new",
            tier="standard",
            title=f"Draft {i}",
            justification="Later.",
            amounts={"cpu": 10},
            start=today,
            end=today + timedelta(days=100),
        )
        other = projects.project_create(
            actor=pi,
            institution_id=world.a.pk,
            title=f"Side project {i}",
            abstract="Side.",
            discipline="chemistry",
            start=today,
            end=today + timedelta(days=300),
        )
        projects.project_member_add(actor=pi, project=other, email=world.users["researcher_a"].email)
        explore = workflow.request_create(
            actor=pi,
            project=other,
            kind="new",
            tier="explore",
            title=f"Pilot {i}",
            justification="Pilot.",
            amounts={"cpu": 100, "gpu:v100": 10},
            start=today,
            end=today + timedelta(days=100),
        )
        workflow.request_submit(actor=pi, request=explore)
    allocation = Allocation.objects.get(pk=world.objects["allocation"])
    rc = ResourceClass.objects.get(code="cpu")
    for i in range(n):
        hold = ledger.place_hold(allocation=allocation, resource_class=rc, amount=rc.scale, job_ref=f"job-{i}")
        ledger.settle(hold=hold, actual=rc.scale // 2)


def _count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("key", sorted(PINNED))
def test_list_pages_run_the_same_number_of_queries_for_many_rows(world, browser, django_assert_max_num_queries, key):
    who, page = key.split(":")
    client = browser(world.users[who])
    url = _url(world, page)
    client.get(url)  # warm up: the session, the content types
    few = _count(client, url)

    _grow(world, 6)
    many = _count(client, url)

    assert many == few, f"{key}: {few} queries with few rows, {many} with many"
    with django_assert_max_num_queries(PINNED[key]):
        client.get(url)
