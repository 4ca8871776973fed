from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, InstitutionRole, Membership, User
from tests.portal.conftest import add_member, client_as

pytestmark = pytest.mark.django_db


def members_url(institution):
    return reverse("portal:institution_members", args=[institution.pk])


def test_the_members_page_lists_email_name_role_and_join_date(world, pku_admin_client):
    response = pku_admin_client.get(members_url(world.pku))
    assert response.status_code == 200
    page = response.content.decode()
    for email in ["admin@pku.edu.cn", "researcher@pku.edu.cn", "pi@pku.edu.cn"]:
        assert email in page
    assert "李明 Li Ming" in page
    assert "admin@tsinghua.edu.cn" not in page
    membership = Membership.objects.get(user=world.pku_pi)
    assert '<option value="pi" selected>Principal investigator</option>' in page
    assert membership.created_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d") in page


def test_an_admin_adds_a_member(world, pku_admin_client):
    response = pku_admin_client.post(
        members_url(world.pku), {"email": "New.Person@pku.edu.cn", "full_name": "新人", "role": "pi"}, follow=True
    )
    assert response.status_code == 200
    assert "new.person@pku.edu.cn was added as Principal investigator." in response.content.decode()
    membership = Membership.objects.get(user__email="new.person@pku.edu.cn", institution=world.pku)
    assert membership.role == InstitutionRole.PI
    event = AuditEvent.objects.filter(action="membership.create").first()
    assert event.actor_user == world.pku_admin


def test_an_admin_changes_a_role(world, pku_admin_client):
    membership = Membership.objects.get(user=world.pku_researcher)
    response = pku_admin_client.post(
        reverse("portal:member_change_role", args=[world.pku.pk, membership.pk]), {"role": "pi"}
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == InstitutionRole.PI
    assert AuditEvent.objects.filter(action="membership.change_role", object_id=str(membership.pk)).exists()


def test_an_admin_removes_a_member_with_a_confirmed_post(world, pku_admin_client):
    membership = Membership.objects.get(user=world.pku_researcher)
    page = pku_admin_client.get(members_url(world.pku)).content.decode()
    remove_url = reverse("portal:member_remove", args=[world.pku.pk, membership.pk])
    assert f'action="{remove_url}"' in page
    assert "data-confirm=" in page

    assert pku_admin_client.get(remove_url).status_code == 405
    response = pku_admin_client.post(remove_url, follow=True)
    assert response.status_code == 200
    assert "researcher@pku.edu.cn was removed from 北京大学." in response.content.decode()
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_adding_someone_already_a_member_shows_the_reason_and_writes_nothing(world, pku_admin_client):
    events, users = AuditEvent.objects.count(), User.objects.count()
    response = pku_admin_client.post(members_url(world.pku), {"email": "researcher@pku.edu.cn", "role": "pi"})
    assert response.status_code == 409
    assert "researcher@pku.edu.cn is already a member of 北京大学." in response.content.decode()
    assert (AuditEvent.objects.count(), User.objects.count()) == (events, users)
    assert Membership.objects.get(user=world.pku_researcher).role == InstitutionRole.RESEARCHER


def test_an_address_outside_the_institution_domains_is_refused(world, pku_admin_client):
    events = AuditEvent.objects.count()
    response = pku_admin_client.post(members_url(world.pku), {"email": "someone@gmail.com", "role": "researcher"})
    assert response.status_code == 400
    assert "someone@gmail.com is not an address of 北京大学 (pku.edu.cn)." in response.content.decode()
    assert 'value="someone@gmail.com"' in response.content.decode()  # the form keeps what was typed
    assert not User.objects.filter(email="someone@gmail.com").exists()
    assert AuditEvent.objects.count() == events


def test_a_malformed_email_or_role_is_caught_by_the_form(world, pku_admin_client):
    events = AuditEvent.objects.count()
    response = pku_admin_client.post(members_url(world.pku), {"email": "not-an-email", "role": "overlord"})
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert AuditEvent.objects.count() == events


def test_the_last_admin_cannot_be_demoted_or_removed(world, pku_admin_client):
    membership = Membership.objects.get(user=world.pku_admin)
    response = pku_admin_client.post(
        reverse("portal:member_change_role", args=[world.pku.pk, membership.pk]), {"role": "researcher"}
    )
    assert response.status_code == 409
    assert "An institution needs at least one admin." in response.content.decode()
    response = pku_admin_client.post(reverse("portal:member_remove", args=[world.pku.pk, membership.pk]))
    assert response.status_code == 409
    membership.refresh_from_db()
    assert membership.role == InstitutionRole.INSTITUTION_ADMIN


@pytest.mark.parametrize("page", ["institution_members", "institution_tokens", "institution_audit"])
def test_a_researcher_or_pi_is_forbidden_from_admin_pages(world, page):
    for user in [world.pku_researcher, world.pku_pi]:
        response = client_as(user).get(reverse(f"portal:{page}", args=[world.pku.pk]))
        assert response.status_code == 403
        assert "You are not allowed to see this page" in response.content.decode()


@pytest.mark.parametrize("page", ["institution_members", "institution_tokens", "institution_audit"])
def test_an_admin_of_another_institution_gets_not_found(world, page):
    response = client_as(world.thu_admin).get(reverse(f"portal:{page}", args=[world.pku.pk]))
    assert response.status_code == 404
    missing = client_as(world.thu_admin).get(reverse(f"portal:{page}", args=[99999]))
    assert missing.status_code == 404


def test_writes_against_another_institution_are_not_found_and_change_nothing(world):
    thu_client = client_as(world.thu_admin)
    membership = Membership.objects.get(user=world.pku_researcher)
    events = AuditEvent.objects.count()
    assert thu_client.post(members_url(world.pku), {"email": "x@pku.edu.cn", "role": "pi"}).status_code == 404
    assert (
        thu_client.post(
            reverse("portal:member_change_role", args=[world.pku.pk, membership.pk]), {"role": "pi"}
        ).status_code
        == 404
    )
    assert thu_client.post(reverse("portal:member_remove", args=[world.pku.pk, membership.pk])).status_code == 404
    # A PKU membership addressed through THU's own URL is not found either.
    assert thu_client.post(reverse("portal:member_remove", args=[world.thu.pk, membership.pk])).status_code == 404
    assert AuditEvent.objects.count() == events
    assert Membership.objects.filter(pk=membership.pk, role=InstitutionRole.RESEARCHER).exists()


def test_the_members_page_query_count_does_not_grow_with_members(
    world, pku_admin_client, django_assert_max_num_queries
):
    pku_admin_client.get(members_url(world.pku))  # warm up session and translations
    with django_assert_max_num_queries(12) as few:
        pku_admin_client.get(members_url(world.pku))
    for i in range(15):
        add_member(world.pku, f"extra{i}@pku.edu.cn", InstitutionRole.RESEARCHER)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = pku_admin_client.get(members_url(world.pku))
    assert "extra14@pku.edu.cn" in response.content.decode()


def test_an_admin_who_demotes_themselves_lands_on_the_dashboard(world, pku_admin_client):
    add_member(world.pku, "second-admin@pku.edu.cn", InstitutionRole.INSTITUTION_ADMIN)
    own = Membership.objects.get(user=world.pku_admin)
    response = pku_admin_client.post(
        reverse("portal:member_change_role", args=[world.pku.pk, own.pk]), {"role": "researcher"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:dashboard")
    assert pku_admin_client.get(members_url(world.pku)).status_code == 403
