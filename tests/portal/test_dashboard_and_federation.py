import re

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, Institution
from tests.portal.conftest import client_as

pytestmark = pytest.mark.django_db


def links(html: str) -> set[str]:
    return {href for href in re.findall(r'href="([^"]+)"', html) if href.startswith("/") and "/static/" not in href}


def test_an_institution_admin_sees_cards_with_counts(world, pku_admin_client):
    response = pku_admin_client.get(reverse("portal:dashboard"))
    cards = response.context["institution_cards"]
    assert [(c["institution"].code, c["role"], c["is_admin"]) for c in cards] == [("PKU", "institution_admin", True)]
    assert cards[0]["member_count"] == 4
    assert cards[0]["active_token_count"] == 0
    assert cards[0]["audit_count"] == AuditEvent.objects.filter(institution=world.pku).count()
    page = response.content.decode()
    for name in ["institution_members", "institution_tokens", "institution_audit"]:
        assert reverse(f"portal:{name}", args=[world.pku.pk]) in page


def test_a_researcher_sees_the_institution_and_role_without_admin_links(world):
    response = client_as(world.pku_researcher).get(reverse("portal:dashboard"))
    page = response.content.decode()
    assert "北京大学" in page and "Researcher" in page
    assert f"/institutions/{world.pku.pk}/" not in page
    assert reverse("portal:federation_institutions") not in page


def test_a_reviewer_sees_the_federation_role_described(world):
    page = client_as(world.reviewer).get(reverse("portal:dashboard")).content.decode()
    assert "Your federation roles" in page
    assert "Reviewer" in page
    assert "You score the allocation requests assigned to you." in page


def test_a_federation_admin_gets_the_institutions_link(world):
    page = client_as(world.fed_admin).get(reverse("portal:dashboard")).content.decode()
    assert reverse("portal:federation_institutions") in page
    assert "You are not a member of any institution." not in page  # their card is the federation one


@pytest.mark.parametrize("who", ["pku_admin", "pku_researcher", "pku_pi", "reviewer", "fed_admin", "thu_admin"])
def test_no_dead_links_on_the_dashboard(world, who):
    client = client_as(getattr(world, who))
    page = client.get(reverse("portal:dashboard")).content.decode()
    for href in links(page):
        assert client.get(href).status_code == 200, href


def test_the_federation_admin_lists_and_creates_institutions(world):
    client = client_as(world.fed_admin)
    url = reverse("portal:federation_institutions")
    page = client.get(url).content.decode()
    assert "北京大学" in page and "清华大学" in page
    response = client.post(
        url,
        {
            "name": "中国科学技术大学",
            "code": "ustc",
            "kind": "university",
            "email_domains": "ustc.edu.cn, mail.ustc.edu.cn",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "中国科学技术大学 (USTC) was created." in response.content.decode()
    created = Institution.objects.get(code="USTC")
    assert created.email_domains == ["ustc.edu.cn", "mail.ustc.edu.cn"]
    assert AuditEvent.objects.filter(action="institution.create", institution=created).exists()


def test_a_duplicate_code_shows_the_service_message(world):
    client = client_as(world.fed_admin)
    count = Institution.objects.count()
    response = client.post(
        reverse("portal:federation_institutions"), {"name": "Another", "code": "PKU", "kind": "university"}
    )
    assert response.status_code == 409
    assert "An institution with code PKU already exists." in response.content.decode()
    assert Institution.objects.count() == count


def test_a_bad_email_domain_is_shown_on_its_field(world):
    client = client_as(world.fed_admin)
    response = client.post(
        reverse("portal:federation_institutions"),
        {"name": "Broken", "code": "BRK", "kind": "university", "email_domains": "not a domain"},
    )
    assert response.status_code == 400
    assert "Not a domain name: &#x27;not a domain&#x27;." in response.content.decode()
    assert not Institution.objects.filter(code="BRK").exists()


@pytest.mark.parametrize("who", ["pku_admin", "pku_researcher", "reviewer"])
def test_only_federation_admins_reach_the_institutions_page(world, who):
    client = client_as(getattr(world, who))
    url = reverse("portal:federation_institutions")
    assert client.get(url).status_code == 403
    assert client.post(url, {"name": "X", "code": "XX", "kind": "university"}).status_code == 403
    assert not Institution.objects.filter(code="XX").exists()


def test_a_federation_admin_can_open_any_institution_admin_page(world):
    client = client_as(world.fed_admin)
    assert client.get(reverse("portal:institution_members", args=[world.thu.pk])).status_code == 200
