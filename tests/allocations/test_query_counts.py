"""List endpoints make a fixed number of queries, however many rows they return."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.actors import Actor
from accounts.models import FederationRoleKind
from allocations import ledger, projects, workflow
from allocations.models import Allocation, Project
from tests.allocations.helpers import API, STANDARD_AMOUNTS, client_for
from tests.factories import make_institution, make_person

pytestmark = pytest.mark.django_db


class World:
    """Builds rows of one list through the services, n at a time."""

    def __init__(self, fed, catalogue):
        self.fed, self.catalogue = fed, catalogue
        self.pi = Actor(user=fed.users["pi_a"])
        self.today = timezone.localdate()
        self.project = self.new_project("Main")
        self.allocation: Allocation | None = None

    def new_project(self, title: str) -> Project:
        return projects.project_create(
            actor=self.pi,
            institution_id=self.fed.a.pk,
            title=title,
            abstract="x",
            discipline="physics",
            start=self.today,
            end=self.today + timedelta(days=1000),
        )

    def new_request(self, tier: str = "explore", amounts: dict | None = None, **kw):
        return workflow.request_create(
            actor=self.pi,
            project=self.project,
            kind=kw.pop("kind", "new"),
            tier=tier,
            title="r",
            justification="j",
            amounts=amounts or {"cpu": 10},
            start=self.today,
            end=self.today + timedelta(days=300),
            **kw,
        )

    def approved(self, **kw) -> Allocation:
        request = self.new_request(**kw)
        workflow.request_submit(actor=self.pi, request=request)
        return Allocation.objects.get(origin=request)

    def first_allocation(self) -> Allocation:
        if self.allocation is None:
            self.allocation = self.approved()
        return self.allocation

    # one builder per list
    def projects(self, n: int) -> None:
        for i in range(n):
            self.new_project(f"P{i}")

    def requests(self, n: int) -> None:
        for _ in range(n):
            self.new_request()

    def reviews(self, n: int) -> None:
        for _ in range(n):
            workflow.request_submit(actor=self.pi, request=self.new_request("standard", STANDARD_AMOUNTS))

    def allocations(self, n: int) -> None:
        for _ in range(n):
            if self.allocation is None:
                self.first_allocation()
            else:
                self.approved(kind="renewal", allocation=self.allocation)

    def ledger(self, n: int) -> None:
        allocation = self.first_allocation()
        for i in range(n):
            ledger.place_hold(allocation=allocation, resource_class=self.catalogue["cpu"], amount=1, job_ref=f"j{i}")


def count_queries(client, url: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured), response.json()["count"]


# list -> (who reads it, its url, the queries measured for it; the same for 2 rows as for 10)
CASES = {
    "requests": ("pi_a", lambda w: "/requests/", 6),
    "projects": ("pi_a", lambda w: "/projects/", 6),
    "reviews": ("reviewer", lambda w: "/reviews/", 6),
    "allocations": ("pi_a", lambda w: "/allocations/", 7),
    "ledger": ("pi_a", lambda w: f"/allocations/{w.first_allocation().pk}/ledger/", 8),
}


@pytest.mark.parametrize("name", CASES)
def test_list_makes_the_same_number_of_queries_for_two_rows_as_for_ten(
    fed, catalogue, name, django_assert_max_num_queries
):
    make_person("reviewer@ict.edu.cn", FederationRoleKind.REVIEWER, make_institution("ICT"))
    who, url, pinned = CASES[name]
    world = World(fed, catalogue)
    client = client_for(fed.users[who])
    build = getattr(world, name)

    build(2)
    with django_assert_max_num_queries(pinned):
        few, few_rows = count_queries(client, API + url(world))
    build(8)
    with django_assert_max_num_queries(pinned):
        many, many_rows = count_queries(client, API + url(world))

    assert few_rows >= 2 and many_rows == few_rows + 8
    assert many == few
