"""The pages that update live: the federation status board, the centre page's job list for operators,
the job pages' live hooks, the dashboard's allocations and recent jobs. Access (anonymous, foreign
tenants, other centres' operators), what is marked, and query counts that do not grow with the rows."""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.actors import Actor, system_actor
from allocations.models import Project
from federation import services
from federation.jobs import JobRequest, apply_moves, jobs_submit
from federation.models import Job, Site

pytestmark = pytest.mark.django_db


def _run(job_id: int) -> Job:
    """Move a routed job to running, as a centre's status feed would."""
    now = timezone.now()
    apply_moves([(job_id, "dispatched", "test: dispatched", now - timedelta(seconds=2), None),
                 (job_id, "running", "test: running", now - timedelta(seconds=1), None)])
    return Job.objects.get(pk=job_id)


def _submit(world, n: int, **spec) -> list[int]:
    pi = Actor(user=world.users["pi_a"])
    project = Project.objects.get(pk=world.objects["project"])
    result = jobs_submit(actor=pi, project=project, enqueue_dispatch=False,
                         requests=[JobRequest(name=f"live-{i}", cores_per_node=spec.get("cores", 4),
                                              walltime_s=600) for i in range(n)])
    assert len(result.accepted) == n, result.refused
    return [a.job_id for a in result.accepted]


def _card(html: str, code: str) -> str:
    match = re.search(rf'<li class="sb-card[^"]*" data-site="{code}".*?</li>', html, re.S)
    assert match, code
    return match.group(0)


# --- the federation status board -------------------------------------------------------------------
def test_the_status_board_is_for_everyone_signed_in_and_linked_in_the_top_bar(world, browser):
    url = reverse("centres:status_board")
    assert browser().get(url).status_code == 302  # to the login page
    for who in ("researcher_a", "researcher_b", "reviewer", "operator", "fedadmin"):
        response = browser(world.users[who]).get(url)
        assert response.status_code == 200, who
        page = response.content.decode()
        assert f'href="{url}"' in page  # the top bar's link
        assert 'data-live-page="board"' in page and "portal/live.js" in page


def test_the_board_shows_every_centre_with_running_use_and_marks_drained_and_offline_ones(world, browser):
    job = _run(world.objects["job"])
    services.site_set_state(actor=system_actor(), site=Site.objects.get(code="tianjin"), state="offline",
                            reason="cooling failure")
    page = browser(world.users["researcher_b"]).get(reverse("centres:status_board")).content.decode()
    assert job.site.code == "zhengzhou"  # the world's cpu job
    zhengzhou, tianjin = _card(page, "zhengzhou"), _card(page, "tianjin")
    # The running job's cores are counted at its centre; no tenant's job is named on the board.
    assert re.search(r'data-family="cores".*?<strong data-f="used">4</strong>', zhengzhou, re.S)
    assert '<strong data-f="running">1</strong>' in zhengzhou
    assert "live-0" not in page and "Climate" not in page
    # Offline: a class for the colour, and the state and reason written out (not colour alone).
    assert 'class="sb-card sb-offline"' in tianjin and "Offline" in tianjin and "cooling failure" in tianjin
    assert 'data-f="icon">✕</span>' in tianjin
    data = json.loads(re.search(r'<script id="site-states" type="application/json">(.*?)</script>', page,
                                re.S).group(1))
    assert data["draining"]["label"] == "Draining" and data["offline"]["badge"]


def test_the_board_speaks_chinese(world, browser):
    page = browser(world.users["researcher_a"], language="zh-hans").get(reverse("centres:status_board"))
    text = page.content.decode()
    assert "联邦状态" in text and "在用加速卡" in text and "正在连接…" in text


def test_the_boards_query_count_does_not_grow_with_centres_or_jobs(world, browser):
    client = browser(world.users["researcher_a"])
    url = reverse("centres:status_board")
    client.get(url)

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    few = count()
    for job_id in _submit(world, 6):
        _run(job_id)
    from tests.federation_portal.test_query_counts import _more_centres

    _more_centres(("wuxi", "hefei"))
    assert count() == few <= 10


# --- a centre's jobs, for its operators --------------------------------------------------------------
def test_the_operator_watches_the_centres_jobs_and_nobody_else_does(world, browser):
    job = Job.objects.get(pk=world.objects["job"])
    page = browser(world.users["operator"]).get(reverse("centres:site_detail", args=[job.site.code]))
    html = page.content.decode()
    assert 'data-live-site-jobs="/centres/zhengzhou/jobs/"' in html
    assert f'data-job="{job.pk}"' in html and "PKU" in html
    fragment = browser(world.users["operator"]).get(reverse("centres:site_jobs", args=["zhengzhou"]))
    assert fragment.status_code == 200 and f'data-job="{job.pk}"' in fragment.content.decode()
    assert "Climate" not in fragment.content.decode()  # the centre's work, not whose research it is
    assert "<html" not in fragment.content.decode()
    # Another centre's operator page lists nothing of it; other people get 403, unknown centres 404.
    assert browser(world.users["operator"]).get(reverse("centres:site_jobs", args=["tianjin"])).status_code == 403
    for who in ("researcher_a", "pi_a", "admin_a", "admin_b"):
        response = browser(world.users[who]).get(reverse("centres:site_jobs", args=["zhengzhou"]))
        assert response.status_code == 403, who
        detail = browser(world.users[who]).get(reverse("centres:site_detail", args=["zhengzhou"]))
        assert "data-live-site-jobs" not in detail.content.decode(), who
    assert browser(world.users["operator"]).get(reverse("centres:site_jobs", args=["nowhere"])).status_code == 404
    assert browser(world.users["fedadmin"]).get(reverse("centres:site_jobs", args=["zhengzhou"])).status_code == 200


def test_jobs_that_left_the_centre_are_not_in_its_list(world, browser):
    job = Job.objects.get(pk=world.objects["job"])
    client = browser(world.users["operator"])
    assert f'data-job="{job.pk}"' in client.get(reverse("centres:site_jobs", args=["zhengzhou"])).content.decode()
    from federation.jobs import job_cancel

    job_cancel(actor=Actor(user=world.users["pi_a"]), job=job)
    html = client.get(reverse("centres:site_jobs", args=["zhengzhou"])).content.decode()
    assert f'data-job="{job.pk}"' not in html and '<span class="count" data-count>0</span>' in html


# --- the job pages' live hooks --------------------------------------------------------------------------
def test_job_rows_and_the_job_page_carry_what_the_live_script_updates(world, browser):
    job = _run(world.objects["job"])
    client = browser(world.users["researcher_a"])
    listing = client.get(reverse("jobs:job_list")).content.decode()
    assert f'data-job="{job.pk}" data-state="running"' in listing
    assert 'data-live-page="jobs"' in listing and "data-live-insert" in listing
    assert 'data-f="state"' in listing and 'data-f="so_far"' in listing and 'data-f="times"' in listing
    states = json.loads(re.search(r'<script id="job-states" type="application/json">(.*?)</script>', listing,
                                  re.S).group(1))
    assert states["completed"] == {"label": "Completed", "badge": "badge-ok", "terminal": True}
    detail = client.get(reverse("jobs:job_detail", args=[job.pk])).content.decode()
    assert 'data-live-page="job"' in detail and 'data-f="timeline"' in detail
    assert 'data-event-state="running"' in detail  # the timeline the live events append to
    assert "Why this centre" in detail  # the routing explanation stays


def test_a_filtered_job_list_follows_only_that_project(world, browser):
    client = browser(world.users["researcher_a"])
    project = world.objects["project"]
    html = client.get(reverse("jobs:job_list") + f"?project={project}").content.decode()
    assert f'data-live-project="{project}"' in html
    assert "data-live-insert" in html


def test_foreign_tenants_get_404_on_job_pages_and_see_none_of_the_jobs(world, browser):
    job_id = world.objects["job"]
    client = browser(world.users["researcher_b"])
    assert client.get(reverse("jobs:job_detail", args=[job_id])).status_code == 404
    assert f'data-job="{job_id}"' not in client.get(reverse("jobs:job_list")).content.decode()
    assert f'data-job="{job_id}"' not in client.get(reverse("portal:dashboard")).content.decode()


# --- the dashboard ---------------------------------------------------------------------------------------
def test_the_dashboard_shows_active_allocations_with_balances_and_chart_and_recent_jobs(world, browser):
    job = _run(world.objects["job"])
    page = browser(world.users["researcher_a"]).get(reverse("portal:dashboard")).content.decode()
    allocation = world.objects["allocation"]
    assert f'data-balance="{allocation}:cpu"' in page
    assert 'class="al-chart"' in page and "<polyline" in page
    assert f'data-job="{job.pk}"' in page and 'data-live-page="jobs"' in page
    assert "data-live-indicator" in page


def test_people_without_an_institution_get_no_jobs_section(world, browser):
    page = browser(world.users["fedadmin"]).get(reverse("portal:dashboard")).content.decode()
    assert "data-live-page" not in page and "data-balance" not in page


def test_the_dashboards_query_count_does_not_grow_with_jobs(world, browser):
    client = browser(world.users["researcher_a"])
    url = reverse("portal:dashboard")
    client.get(url)

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    few = count()
    _submit(world, 12)
    assert count() == few <= 20


def test_page_titles_are_plain_text(world, client):
    import re

    client.force_login(world.users["pi_a"])
    for url in ("/", "/jobs/", "/centres/status/", f"/jobs/{world.objects['job']}/"):
        title = re.search(r"<title>(.*?)</title>", client.get(url).content.decode(), re.S).group(1)
        assert "<" not in title and "{" not in title, (url, title)
