"""The PI's request wizard: a draft is saved through the services, then submitted from its page;
bad input re-renders the form with the error and creates nothing."""

import json
import re
from datetime import date, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from allocations.models import AllocationRequest, RequestState
from tests.factories import pdf_upload

pytestmark = pytest.mark.django_db


def wizard_url(world) -> str:
    return reverse("allocations:request_create", args=[world.objects["project"]])


def form_data(world, **overrides) -> dict:
    data = {
        "kind": "new",
        "tier": "standard",
        "title": "Ensemble runs",
        "start": world.objects["start"],
        "end": world.objects["end"],
        "justification": "Forty ensemble members at 25 km.",
        "amount__cpu": "40000",
        "amount__gpu__v100": "1000",
        "amount__storage": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_the_pi_creates_a_draft_through_the_wizard_and_submits_it(world, browser):
    client = browser(world.users["pi_a"])
    before = AllocationRequest.objects.count()

    response = client.post(wizard_url(world), form_data(world))

    assert response.status_code == 302
    created = AllocationRequest.objects.get(title="Ensemble runs")
    assert AllocationRequest.objects.count() == before + 1
    assert response["Location"] == reverse("allocations:request_detail", args=[created.pk])
    assert created.state == RequestState.DRAFT
    assert created.amounts == {"cpu": 40000, "gpu:v100": 1000}
    assert created.credits == 40000 + 1000 * 15
    page = client.get(response["Location"]).content.decode()
    assert "Submit the request" in page
    assert "55,000" in page  # the credits of the amounts

    response = client.post(reverse("allocations:request_submit", args=[created.pk]))

    assert response.status_code == 302
    created.refresh_from_db()
    assert created.state == RequestState.UNDER_REVIEW  # reviewers were assigned at once
    assert created.reviews.count() == 2
    page = client.get(response["Location"]).content.decode()
    assert "Submitted. Reviewers are being assigned." in page
    assert "Submit the request" not in page


def test_an_explore_request_is_approved_on_submit_and_links_to_its_allocation(world, browser):
    from accounts.actors import Actor
    from allocations import projects

    project = projects.project_create(
        actor=Actor(user=world.users["pi_a"]),
        institution_id=world.a.pk,
        title="Second project",
        abstract="Another.",
        discipline="physics",
        start=date.today(),
        end=date.today() + timedelta(days=300),
    )
    client = browser(world.users["pi_a"])
    response = client.post(
        reverse("allocations:request_create", args=[project.pk]),
        form_data(world, tier="explore", amount__cpu="2000", amount__gpu__v100="", end=str(project.end)),
    )
    assert response.status_code == 302
    created = AllocationRequest.objects.get(project=project)
    response = client.post(reverse("allocations:request_submit", args=[created.pk]), follow=True)
    created.refresh_from_db()
    assert created.state == RequestState.APPROVED
    page = response.content.decode()
    assert "approved automatically" in page
    allocation = project.allocations.get()
    assert reverse("allocations:allocation_detail", args=[allocation.pk]) in page


def test_the_wizard_page_carries_the_conversion_table_and_the_tier_caps_for_the_live_estimate(world, browser):
    page = browser(world.users["pi_a"]).get(wizard_url(world)).content.decode()

    table = json.loads(
        re.search(r'<script id="conversion-table" type="application/json">(.*?)</script>', page).group(1)
    )
    assert table["classes"]["cpu"]["credits_per_unit"] == "1.0000"
    assert table["classes"]["gpu:v100"]["credits_per_unit"] == "15.0000"
    assert table["classes"]["storage"]["unit"] == "TB-day"
    assert table["tiers"]["explore"]["cap"] == "10000"
    assert table["tiers"]["standard"]["cap"] == "500000"
    assert 'data-resource-class="gpu:v100"' in page
    assert "allocations/allocations.js" in page
    assert "up to 10,000 credits" in page and "up to 500,000 credits" in page  # the published caps
    assert "core-hour" in page and "card-hour" in page and "TB-day" in page


def test_the_server_side_estimate_shows_when_the_form_comes_back_with_an_error(world, browser):
    response = browser(world.users["pi_a"]).post(
        wizard_url(world), form_data(world, tier="explore", amount__cpu="9000", amount__gpu__v100="100")
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "10,500" in page  # 9,000 + 100 × 15
    assert "is-over" in page


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"amount__cpu": "-5"}, 400, "Amounts cannot be negative."),
        (
            {"tier": "explore"},
            400,
            "55,000 credits is over the Explore tier cap of 10,000 credits.",
        ),
        ({"end": "2020-01-01", "start": "2020-06-01"}, 400, "The end must be after the start."),
        ({"amount__cpu": "", "amount__gpu__v100": ""}, 400, "Ask for a positive whole number of units"),
        ({"title": ""}, 400, "This field is required."),
        ({"kind": "supplement"}, 400, "Choose the allocation this request changes."),
        ({"start": "2000-01-01", "end": "2000-06-01"}, 400, "must lie within the project"),
    ],
    ids=[
        "negative",
        "over-cap",
        "end-before-start",
        "no-amounts",
        "no-title",
        "supplement-without-allocation",
        "outside-project",
    ],
)
def test_bad_input_re_renders_the_form_with_the_error_and_creates_nothing(world, browser, overrides, status, message):
    before = AllocationRequest.objects.count()
    response = browser(world.users["pi_a"]).post(wizard_url(world), form_data(world, **overrides))
    assert response.status_code == status
    page = response.content.decode()
    assert message in page
    assert 'name="title"' in page  # the form again, with what was typed
    assert AllocationRequest.objects.count() == before


def test_a_pdf_attachment_is_kept_and_anything_else_refused(world, browser, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client = browser(world.users["pi_a"])
    fake = SimpleUploadedFile("proposal.pdf", b"GIF89a not a pdf", content_type="application/pdf")
    response = client.post(wizard_url(world), {**form_data(world), "attachment": fake})
    assert response.status_code == 400
    assert "The attachment must be a PDF file." in response.content.decode()
    assert not AllocationRequest.objects.filter(title="Ensemble runs").exists()

    response = client.post(wizard_url(world), {**form_data(world), "attachment": pdf_upload()})
    assert response.status_code == 302
    created = AllocationRequest.objects.get(title="Ensemble runs")
    assert created.attachment
    download = client.get(reverse("allocations:request_attachment", args=[created.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"%PDF-")
    assert (
        browser(world.users["researcher_b"])
        .get(reverse("allocations:request_attachment", args=[created.pk]))
        .status_code
        == 404
    )


def test_a_supplement_names_an_allocation_of_the_project(world, browser):
    url = wizard_url(world) + f"?kind=supplement&allocation={world.objects['allocation']}"
    page = browser(world.users["pi_a"]).get(url).content.decode()
    assert f'<option value="{world.objects["allocation"]}" selected>' in page

    response = browser(world.users["pi_a"]).post(
        wizard_url(world),
        form_data(
            world,
            kind="supplement",
            allocation=str(world.objects["allocation"]),
            tier="explore",
            amount__cpu="500",
            amount__gpu__v100="",
        ),
    )
    assert response.status_code == 302
    created = AllocationRequest.objects.get(title="Ensemble runs")
    assert created.kind == "supplement" and created.allocation_id == world.objects["allocation"]


def test_the_pi_edits_a_draft_and_withdraws_it(world, browser):
    client = browser(world.users["pi_a"])
    draft = world.objects["draft"]
    edit_url = reverse("allocations:request_edit", args=[draft])
    page = client.get(edit_url).content.decode()
    assert 'value="Draft"' in page and 'value="100"' in page  # prefilled

    response = client.post(edit_url, form_data(world, title="Draft, revised", amount__cpu="300", amount__gpu__v100=""))
    assert response.status_code == 302
    request = AllocationRequest.objects.get(pk=draft)
    assert request.title == "Draft, revised" and request.amounts == {"cpu": 300}

    response = client.post(edit_url, form_data(world, tier="explore", amount__cpu="20000", amount__gpu__v100=""))
    assert response.status_code == 400
    assert "over the Explore tier cap" in response.content.decode()
    request.refresh_from_db()
    assert request.amounts == {"cpu": 300} and request.tier == "standard"

    response = client.post(reverse("allocations:request_withdraw", args=[draft]), {"reason": "Not needed."})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.state == RequestState.WITHDRAWN
    assert client.get(edit_url).status_code == 302  # no longer editable: back to the request page


def test_only_the_pi_submits_and_another_tenant_cannot_even_find_the_request(world, pi_b, browser):
    draft = world.objects["draft"]
    url = reverse("allocations:request_submit", args=[draft])
    assert browser(world.users["researcher_a"]).post(url).status_code == 403
    assert browser(pi_b).post(url).status_code == 404
    assert browser(pi_b).post(wizard_url(world), form_data(world)).status_code == 404
    assert AllocationRequest.objects.get(pk=draft).state == RequestState.DRAFT
    assert not AllocationRequest.objects.filter(title="Ensemble runs").exists()


def test_the_pi_appeals_a_rejection_through_the_wizard(world, browser):
    from allocations import workflow

    reviewed = AllocationRequest.objects.get(pk=world.objects["reviewed"])
    workflow.decide(actor=world.objects["committee"], request=reviewed, outcome="reject", amounts=None, reason="No.")
    client = browser(world.users["pi_a"])
    page = client.get(wizard_url(world) + f"?appeal_of={reviewed.pk}").content.decode()
    assert f'<option value="{reviewed.pk}" selected>' in page
    assert '<input type="radio" name="kind" value="appeal" id="id_kind_4" required checked>' in page

    response = client.post(wizard_url(world), form_data(world, kind="appeal", appeal_of=str(reviewed.pk)))
    assert response.status_code == 302
    appeal = AllocationRequest.objects.get(appeal_of=reviewed)
    client.post(reverse("allocations:request_submit", args=[appeal.pk]))
    appeal.refresh_from_db()
    assert appeal.state == RequestState.UNDER_REVIEW  # appeals are reviewed again (two reviews)
    again = client.post(wizard_url(world), form_data(world, kind="appeal", appeal_of=str(reviewed.pk), title="Again"))
    assert again.status_code == 409
    assert "Only a decision on a request can be appealed, and only once." in again.content.decode()


def test_an_extension_moves_the_end_date_and_asks_for_no_amounts(world, browser):
    from allocations.models import Allocation

    allocation = Allocation.objects.get(pk=world.objects["allocation"])
    new_end = allocation.end + timedelta(days=60)
    client = browser(world.users["pi_a"])
    data = form_data(
        world,
        kind="extension",
        allocation=str(allocation.pk),
        tier="explore",
        end=new_end.isoformat(),
        amount__cpu="",
        amount__gpu__v100="",
    )
    response = client.post(wizard_url(world), data)
    assert response.status_code == 302
    extension = AllocationRequest.objects.get(kind="extension")
    assert extension.amounts == {} and extension.credits == 0

    client.post(reverse("allocations:request_submit", args=[extension.pk]))
    allocation.refresh_from_db()
    assert allocation.end == new_end

    with_amounts = client.post(wizard_url(world), {**data, "amount__cpu": "10", "title": "With amounts"})
    assert with_amounts.status_code == 400
    assert "An extension changes the end date only: leave the amounts empty." in with_amounts.content.decode()
