import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import InstitutionRole, User
from tests.portal.conftest import PASSWORD, client_as

pytestmark = pytest.mark.django_db


def test_login_with_email_and_password_lands_on_the_dashboard(world):
    client = client_as(None)
    response = client.post(reverse("portal:login"), {"username": "Admin@PKU.edu.cn", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("portal:dashboard")
    assert response.status_code == 200
    assert "张伟 Zhang Wei" in response.content.decode()
    assert response.wsgi_request.user == world.pku_admin


def test_login_with_a_wrong_password_shows_an_error(world):
    response = client_as(None).post(reverse("portal:login"), {"username": "admin@pku.edu.cn", "password": "nope"})
    assert response.status_code == 200
    assert "The email address or password is not correct." in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated


def test_pages_need_a_login(world):
    for url in [
        reverse("portal:dashboard"),
        reverse("portal:institution_members", args=[world.pku.pk]),
        reverse("portal:institution_tokens", args=[world.pku.pk]),
        reverse("portal:institution_audit", args=[world.pku.pk]),
        reverse("portal:federation_institutions"),
    ]:
        response = client_as(None).get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("portal:login"))


def test_logout_is_a_post_and_ends_the_session(world, pku_admin_client):
    page = pku_admin_client.get(reverse("portal:dashboard")).content.decode()
    assert f'action="{reverse("portal:logout")}" method="post"' in page
    response = pku_admin_client.post(reverse("portal:logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:login")
    assert pku_admin_client.get(reverse("portal:dashboard")).status_code == 302


def test_an_invited_member_chooses_a_password_through_the_emailed_link(
    world, pku_admin_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = pku_admin_client.post(
            reverse("portal:institution_members", args=[world.pku.pk]),
            {"email": "newcomer@pku.edu.cn", "full_name": "新人", "role": InstitutionRole.RESEARCHER},
        )
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    path = re.search(r"https?://[^/]+(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)

    client = client_as(None)
    response = client.get(path, follow=True)
    assert response.status_code == 200
    assert response.context["validlink"] is True
    new_password = "a-long-new-password-2026"
    response = client.post(
        response.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:password_reset_complete")
    assert User.objects.get(email="newcomer@pku.edu.cn").check_password(new_password)
    assert client.login(username="newcomer@pku.edu.cn", password=new_password)


def test_a_used_or_forged_reset_link_says_it_no_longer_works(world):
    response = client_as(None).get("/accounts/reset/MQ/forged-token/", follow=True)
    assert response.status_code == 200
    assert response.context["validlink"] is False
    assert "This link no longer works" in response.content.decode()


def test_forgot_password_mails_a_link_also_to_a_member_who_never_set_one(world):
    user = User.objects.create_user(email="invited@pku.edu.cn")  # unusable password, as after member_add
    assert not user.has_usable_password()
    client = client_as(None)
    response = client.post(reverse("portal:password_reset"), {"email": "invited@pku.edu.cn"})
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:password_reset_done")
    assert len(mail.outbox) == 1
    assert "/accounts/reset/" in mail.outbox[0].body
    assert client.get(reverse("portal:password_reset_done")).status_code == 200
