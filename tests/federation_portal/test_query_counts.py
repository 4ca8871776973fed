"""List pages do not run a query per row: the count stays the same when the rows multiply, and is pinned."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actors import Actor, system_actor
from allocations.models import Project
from federation import services
from federation.jobs import JobRequest, job_cancel, jobs_submit
from federation.models import Job, Site

pytestmark = pytest.mark.django_db

# The most queries each page may run, whatever the number of rows (session, user, roles and memberships
# for the top bar, the page's own reads). Raise only with a reason.
PINNED = {
    "jobs:job_list": 12,
    "jobs:job_detail": 10,
    "centres:site_list": 7,
    "centres:site_detail": 10,
}


def _url(world, name: str) -> str:
    if name == "jobs:job_detail":
        return reverse(name, args=[world.objects["job"]])
    if name == "centres:site_detail":
        return reverse(name, args=["zhengzhou"])
    return reverse(name)


def _more_centres(codes: tuple[str, ...]) -> None:
    from allocations.catalogue import ensure_resource_classes
    from federation.applications import APPLICATIONS
    from federation.inventory import DEFAULT_INVENTORY, NATIONAL_CENTRES, plan_federation, read_inventory

    prices = {rc.code: rc.credits_per_unit for rc in ensure_resource_classes()}
    centres = [c for c in NATIONAL_CENTRES if c.code in codes]
    services.sites_build(actor=system_actor(), national_prices=prices,
                         plans=plan_federation(read_inventory(DEFAULT_INVENTORY), scale=1, centres=centres))
    services.applications_publish(actor=system_actor(), catalogue=APPLICATIONS)


def _grow(world, n: int) -> None:
    """n more jobs (half of them cancelled), a drained centre, and more centres when n is large."""
    pi = Actor(user=world.users["pi_a"])
    project = Project.objects.get(pk=world.objects["project"])
    result = jobs_submit(actor=pi, project=project, enqueue_dispatch=False,
                         requests=[JobRequest(name=f"job-{i}", cores_per_node=1 + i % 4, walltime_s=600)
                                   for i in range(n)])
    assert len(result.accepted) == n
    for accepted in result.accepted[: n // 2]:
        job_cancel(actor=pi, job=Job.objects.get(pk=accepted.job_id))
    services.site_set_state(actor=system_actor(), site=Site.objects.get(code="tianjin"), state="draining")
    if n >= 10:
        _more_centres(("wuxi", "guangzhou", "hefei", "shenzhen"))


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_list_pages_do_not_grow_with_their_rows(world, browser, name):
    client = browser(world.users["researcher_a"])
    url = _url(world, name)
    client.get(url)  # warm the session
    _grow(world, 3)
    few = _count(client, url)
    _grow(world, 12)
    assert _count(client, url) == few


@pytest.mark.parametrize("name", sorted(PINNED))
def test_page_query_counts_are_pinned(world, browser, name, django_assert_max_num_queries):
    client = browser(world.users["researcher_a"])
    _grow(world, 5)
    with django_assert_max_num_queries(PINNED[name]):
        assert client.get(_url(world, name)).status_code == 200


def test_the_operators_centre_page_is_pinned_too(world, browser, django_assert_max_num_queries):
    client = browser(world.users["operator"])
    # + the operator's binding, + the live list of the centre's jobs (one query while it fits the page),
    # + the shares proposed to the centre (one query)
    with django_assert_max_num_queries(PINNED["centres:site_detail"] + 3):
        assert client.get(_url(world, "centres:site_detail")).status_code == 200
