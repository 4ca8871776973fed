"""Projects: the list, a new project (a PI, in an institution where they are PI), and the members."""

from datetime import date, timedelta

import pytest
from django.urls import reverse

from allocations.models import Project, ProjectMember

pytestmark = pytest.mark.django_db


def test_a_pi_creates_a_project_in_their_institution(world, browser):
    client = browser(world.users["pi_a"])
    page = client.get(reverse("allocations:project_create")).content.decode()
    assert f'<option value="{world.a.pk}"' in page
    assert f'<option value="{world.b.pk}"' not in page  # only institutions where they are PI

    response = client.post(
        reverse("allocations:project_create"),
        {
            "institution": world.a.pk,
            "title": "Turbulence",
            "abstract": "DNS of channel flow.",
            "discipline": "physics",
            "start": date.today().isoformat(),
            "end": (date.today() + timedelta(days=365)).isoformat(),
        },
    )
    project = Project.objects.get(title="Turbulence")
    assert response.status_code == 302
    assert response["Location"] == reverse("allocations:project_detail", args=[project.pk])
    assert project.pi == world.users["pi_a"] and project.institution == world.a
    assert "Turbulence" in client.get(reverse("allocations:project_list")).content.decode()


def test_a_bad_project_is_refused_and_nothing_created(world, browser):
    client = browser(world.users["pi_a"])
    data = {
        "institution": world.a.pk,
        "title": "Bad",
        "abstract": "x",
        "discipline": "physics",
        "start": "2030-01-01",
        "end": "2029-01-01",
    }
    response = client.post(reverse("allocations:project_create"), data)
    assert response.status_code == 400
    assert "The end must be after the start." in response.content.decode()
    response = client.post(
        reverse("allocations:project_create"), {**data, "end": "2031-01-01", "institution": world.b.pk}
    )
    assert response.status_code == 400  # not one of their institutions
    assert not Project.objects.filter(title="Bad").exists()


def test_the_pi_adds_and_removes_members(world, browser, fed):
    from tests.factories import make_member

    newcomer = make_member(world.a, "researcher", "newcomer@pku.edu.cn")
    client = browser(world.users["pi_a"])
    project_id = world.objects["project"]
    url = reverse("allocations:project_member_add", args=[project_id])

    response = client.post(url, {"email": "NEWCOMER@pku.edu.cn"})
    assert response.status_code == 302
    member = ProjectMember.objects.get(project_id=project_id, user=newcomer)

    again = client.post(url, {"email": "newcomer@pku.edu.cn"})
    assert again.status_code == 409 and "newcomer@pku.edu.cn is already on the project." in again.content.decode()
    foreign = client.post(url, {"email": world.users["researcher_b"].email})
    assert foreign.status_code == 400
    assert "is not a member of the project&#x27;s institution." in foreign.content.decode()

    response = client.post(reverse("allocations:project_member_remove", args=[project_id, member.pk]))
    assert response.status_code == 302
    assert not ProjectMember.objects.filter(pk=member.pk).exists()

    pi_member = ProjectMember.objects.get(project_id=project_id, user=world.users["pi_a"])
    response = client.post(reverse("allocations:project_member_remove", args=[project_id, pi_member.pk]), follow=True)
    assert "The PI cannot be removed from their project." in response.content.decode()
    assert ProjectMember.objects.filter(pk=pi_member.pk).exists()


def test_members_cannot_manage_members_but_the_institution_admin_can(world, browser):
    url = reverse("allocations:project_member_add", args=[world.objects["project"]])
    assert browser(world.users["researcher_a"]).post(url, {"email": "admin@pku.edu.cn"}).status_code == 403
    assert browser(world.users["admin_b"]).post(url, {"email": "admin@pku.edu.cn"}).status_code == 404
    assert browser(world.users["admin_a"]).post(url, {"email": "admin@pku.edu.cn"}).status_code == 302
    page = (
        browser(world.users["researcher_a"])
        .get(reverse("allocations:project_detail", args=[world.objects["project"]]))
        .content.decode()
    )
    assert "admin@pku.edu.cn" in page and url not in page
