"""The job pages: submitting through the form (routed → the job's page, refused → the form again with
nothing written), tenancy (404 for another institution), cancelling, filters."""

import pytest
from django.urls import reverse

from accounts.actors import Actor
from allocations.models import Hold, Project
from federation.jobs import JobRequest, job_cancel, jobs_submit
from federation.models import Job, JobEvent, JobState

pytestmark = pytest.mark.django_db

FORM = {
    "name": "climate-ensemble",
    "nodes": "1",
    "cores_per_node": "4",
    "memory_gb_per_node": "8",
    "gpus_per_node": "0",
    "accepted_family": "",
    "application": "",
    "walltime": "1:30",
    "dataset": "",
}


def _form(world, **changes) -> dict:
    return {"project": str(world.objects["project"]), **FORM, **changes}


def test_a_member_submits_a_job_and_lands_on_its_page_with_the_routing_explanation(world, browser):
    client = browser(world.users["researcher_a"])
    before = Job.objects.count()
    response = client.post(reverse("jobs:job_list"), _form(world))
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.latest("pk")
    assert Job.objects.count() == before + 1
    assert response["Location"] == reverse("jobs:job_detail", args=[job.pk])
    assert job.state == JobState.ROUTED and job.site.code in ("zhengzhou", "tianjin")
    # The form speaks GB and hours:minutes; the service gets MB and seconds.
    assert (job.memory_mb_per_node, job.walltime_s, job.cores_per_node) == (8192, 5400, 4)

    page = client.get(response["Location"]).content.decode()
    assert "climate-ensemble" in page
    assert "Why this centre" in page and "lower is better" in page
    assert 'class="fd-chosen"' in page and job.site.code in page and job.partition.name in page
    assert "was routed to" in page  # the flash message after the redirect
    assert [e.to_state for e in job.events.all()] == ["submitted", "routed"]
    assert "Cancel job" in page


def test_the_form_passes_family_application_dataset_and_preferred_centres(world, browser):
    response = browser(world.users["pi_a"]).post(
        reverse("jobs:job_list"),
        _form(world, application="gromacs", dataset="tianjin:/data/climate", preferred_sites=["tianjin"],
              walltime="2"),
    )
    assert response.status_code == 302
    job = Job.objects.latest("pk")
    assert (job.application, job.dataset, job.preferred_sites, job.walltime_s) == (
        "gromacs", "tianjin:/data/climate", ["tianjin"], 7200)


def test_an_impossible_job_re_renders_the_form_with_the_refusal_and_creates_nothing(world, browser):
    before = Job.objects.count(), JobEvent.objects.count(), Hold.objects.count()
    response = browser(world.users["researcher_a"]).post(reverse("jobs:job_list"), _form(world, gpus_per_node="64"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "The job was not submitted." in page
    assert "No compatible partition has nodes large enough or enough nodes for the job." in page
    assert 'value="climate-ensemble"' in page  # the person's input is kept
    assert (Job.objects.count(), JobEvent.objects.count(), Hold.objects.count()) == before


def test_invalid_input_is_shown_on_the_fields_and_not_sent(world, browser):
    before = Job.objects.count()
    response = browser(world.users["researcher_a"]).post(
        reverse("jobs:job_list"), _form(world, walltime="soon", cores_per_node="0", accepted_family="v100"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Write hours and minutes, e.g. 2:30." in page
    assert "Ask for at least one GPU per node, or leave the GPU family empty." in page
    assert Job.objects.count() == before


def test_only_projects_the_person_belongs_to_can_be_chosen(world, browser):
    # The institution admin sees the project's jobs but is not a member: no form, and a forged post is refused.
    client = browser(world.users["admin_a"])
    page = client.get(reverse("jobs:job_list")).content.decode()
    assert f"#{world.objects['job']}" in page
    assert 'name="cores_per_node"' not in page
    before = Job.objects.count()
    response = client.post(reverse("jobs:job_list"), _form(world))
    assert response.status_code == 400
    assert Job.objects.count() == before


def test_a_foreign_institution_gets_404_and_sees_nothing_of_the_job(world, browser):
    job = Job.objects.get(pk=world.objects["job"])
    for who in ("researcher_b", "admin_b"):
        client = browser(world.users[who])
        assert client.get(reverse("jobs:job_detail", args=[job.pk])).status_code == 404
        assert client.post(reverse("jobs:job_cancel", args=[job.pk])).status_code == 404
        page = client.get(reverse("jobs:job_list")).content.decode()
        assert reverse("jobs:job_detail", args=[job.pk]) not in page
        assert "Climate" not in page  # not even the project in the filter
    assert Job.objects.get(pk=job.pk).state == JobState.ROUTED


def test_cancel_works_from_the_job_page(world, browser):
    job_id = world.objects["job"]
    client = browser(world.users["researcher_a"])
    response = client.post(reverse("jobs:job_cancel", args=[job_id]))
    assert response.status_code == 302 and response["Location"] == reverse("jobs:job_detail", args=[job_id])
    job = Job.objects.get(pk=job_id)
    assert job.state == JobState.CANCELLED
    page = client.get(response["Location"]).content.decode()
    assert "was cancelled" in page and "Cancel job" not in page
    assert [e.to_state for e in job.events.all()][-1] == "cancelled"
    # A second cancel is refused with a message, not an error page.
    page = client.post(reverse("jobs:job_cancel", args=[job_id]), follow=True).content.decode()
    assert "The job has already finished." in page


def test_a_person_who_sees_but_may_not_cancel_gets_403(world, browser):
    job_id = world.objects["job"]
    client = browser(world.users["admin_a"])
    page = client.get(reverse("jobs:job_detail", args=[job_id])).content.decode()
    assert "Cancel job" not in page
    assert client.post(reverse("jobs:job_cancel", args=[job_id])).status_code == 403
    assert Job.objects.get(pk=job_id).state == JobState.ROUTED


def test_the_list_filters_by_state_and_project(world, browser):
    pi = Actor(user=world.users["pi_a"])
    project = Project.objects.get(pk=world.objects["project"])
    jobs_submit(actor=pi, project=project, enqueue_dispatch=False,
                requests=[JobRequest(name="second-job", cores_per_node=2, walltime_s=600)])
    client = browser(world.users["pi_a"])
    job_cancel(actor=pi, job=Job.objects.get(name="second-job"))
    page = client.get(reverse("jobs:job_list"), {"state": "cancelled"}).content.decode()
    assert "second-job" in page and reverse("jobs:job_detail", args=[world.objects["job"]]) not in page
    page = client.get(reverse("jobs:job_list"), {"state": "routed", "project": project.pk}).content.decode()
    assert "second-job" not in page and reverse("jobs:job_detail", args=[world.objects["job"]]) in page
    page = client.get(reverse("jobs:job_list"), {"state": "bogus"}).content.decode()
    assert "second-job" in page  # an unknown filter value filters nothing


def test_the_nav_shows_jobs_to_members_and_centres_to_everyone(world, browser):
    page = browser(world.users["researcher_a"]).get(reverse("portal:dashboard")).content.decode()
    assert f'href="{reverse("jobs:job_list")}"' in page and f'href="{reverse("centres:site_list")}"' in page
    page = browser(world.users["operator"]).get(reverse("centres:site_list")).content.decode()
    assert f'href="{reverse("jobs:job_list")}"' not in page
    assert f'href="{reverse("centres:site_list")}" class="active"' in page


def test_pages_need_a_login(world, browser):
    for url in (reverse("jobs:job_list"), reverse("centres:site_list"),
                reverse("jobs:job_detail", args=[world.objects["job"]])):
        response = browser().get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_every_refusal_code_of_the_router_has_the_pages_own_wording():
    from django.utils import translation

    from federation.routing import REFUSAL_MESSAGES
    from federation.views.common import REFUSAL_MESSAGES as PAGE_MESSAGES

    assert set(PAGE_MESSAGES) == set(REFUSAL_MESSAGES)
    with translation.override("en"):
        assert {code: str(message) for code, message in PAGE_MESSAGES.items()} == REFUSAL_MESSAGES


def test_a_job_the_allocation_cannot_pay_for_is_refused_with_409_and_nothing_held(world, browser):
    # The world's allocation holds cpu only: a GPU job is refused before anything is held.
    before = Job.objects.count(), Hold.objects.count()
    response = browser(world.users["researcher_a"]).post(reverse("jobs:job_list"),
                                                         _form(world, gpus_per_node="1", accepted_family="v100"))
    assert response.status_code == 409
    page = response.content.decode()
    assert "The project&#x27;s allocation has not enough left for this job." in page
    assert (Job.objects.count(), Hold.objects.count()) == before
