import hashlib
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from accounts.models import ApiToken, AuditEvent
from accounts.services import token_authenticate
from tests.portal.conftest import client_as

pytestmark = pytest.mark.django_db


def tokens_url(institution):
    return reverse("portal:institution_tokens", args=[institution.pk])


def create(client, institution, **data):
    payload = {"name": "campus-gateway", "scopes": ["read", "jobs:submit"], **data}
    return client.post(tokens_url(institution), payload)


def test_creating_a_token_shows_the_secret_once_and_never_on_the_list(world, pku_admin_client):
    response = create(pku_admin_client, world.pku)
    assert response.status_code == 200
    page = response.content.decode()
    secret = re.search(r'value="(sw_[a-z0-9]{8}_[A-Za-z0-9_-]{43})"', page).group(1)
    assert "It will not be shown again." in page
    assert "data-copy-target=" in page
    assert "no-store" in response["Cache-Control"]

    token = ApiToken.objects.get(institution=world.pku, name="campus-gateway")
    assert token.scopes == ["jobs:submit", "read"]
    assert token.created_by == world.pku_admin
    assert token.secret_hash == hashlib.sha256(secret.split("_", 2)[2].encode()).hexdigest()
    assert token_authenticate(secret) == token
    assert secret not in pku_admin_client.session.values()

    listing = pku_admin_client.get(tokens_url(world.pku)).content.decode()
    assert secret not in listing
    assert secret.split("_", 2)[2] not in listing
    assert f"sw_{token.prefix}_…" in listing
    assert "Submit jobs" in listing and "Active" in listing
    assert "张伟 Zhang Wei" in listing


def test_an_expiry_date_ends_at_midnight_beijing_time(world, pku_admin_client):
    day = date.today() + timedelta(days=30)
    response = create(pku_admin_client, world.pku, expires_on=day.isoformat())
    assert response.status_code == 200
    token = ApiToken.objects.get(name="campus-gateway")
    # Midnight after that day in Beijing (UTC+8) is 16:00 UTC on the day itself.
    assert token.expires_at == datetime(day.year, day.month, day.day, 16, 0, tzinfo=UTC)


def test_an_admin_revokes_a_token(world, pku_admin_client):
    create(pku_admin_client, world.pku)
    token = ApiToken.objects.get(name="campus-gateway")
    revoke_url = reverse("portal:token_revoke", args=[world.pku.pk, token.pk])
    assert pku_admin_client.get(revoke_url).status_code == 405
    response = pku_admin_client.post(revoke_url, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "The token “campus-gateway” was revoked." in page
    assert "Revoked" in page
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == world.pku_admin
    assert AuditEvent.objects.filter(action="api_token.revoke", object_id=str(token.pk)).exists()
    again = pku_admin_client.post(revoke_url)
    assert again.status_code == 409
    assert "This token is already revoked." in again.content.decode()


@pytest.mark.parametrize(
    ("data", "message", "status"),
    [
        ({"scopes": ["read", "root"]}, "Select a valid choice. root is not one of the available choices.", 400),
        ({"scopes": []}, "Choose at least one scope.", 400),
        ({"name": ""}, "This field is required.", 400),
        ({"expires_on": "2001-01-01"}, "The expiry date must be in the future and within 730 days.", 400),
        ({"expires_on": (date.today() + timedelta(days=3000)).isoformat()}, "within 730 days", 400),
    ],
)
def test_bad_token_input_is_shown_on_the_form_and_writes_nothing(world, pku_admin_client, data, message, status):
    events = AuditEvent.objects.count()
    response = create(pku_admin_client, world.pku, **data)
    assert response.status_code == status
    assert message in response.content.decode()
    assert not re.search(r"sw_[a-z0-9]{8}_[A-Za-z0-9_-]{43}", response.content.decode())
    assert ApiToken.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_a_duplicate_token_name_is_refused(world, pku_admin_client):
    create(pku_admin_client, world.pku)
    response = create(pku_admin_client, world.pku)
    assert response.status_code == 409
    assert "A token named “campus-gateway” already exists." in response.content.decode()
    assert ApiToken.objects.count() == 1


def test_another_institution_cannot_revoke_or_create(world, pku_admin_client):
    create(pku_admin_client, world.pku)
    token = ApiToken.objects.get(name="campus-gateway")
    thu_client = client_as(world.thu_admin)
    assert thu_client.post(reverse("portal:token_revoke", args=[world.pku.pk, token.pk])).status_code == 404
    assert thu_client.post(reverse("portal:token_revoke", args=[world.thu.pk, token.pk])).status_code == 404
    assert create(thu_client, world.pku, name="sneaky").status_code == 404
    researcher = client_as(world.pku_researcher)
    assert researcher.post(reverse("portal:token_revoke", args=[world.pku.pk, token.pk])).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None
    assert ApiToken.objects.count() == 1
