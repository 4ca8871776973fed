from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken, AuditEvent
from accounts.services import hash_secret
from tests.factories import client_for, make_token

pytestmark = pytest.mark.django_db

TOKENS_URL = "/api/v1/institutions/{}/tokens/"


def test_token_secret_is_shown_once_and_stored_only_as_hash(fed):
    admin = client_for(fed.users["admin_a"])
    response = admin.post(
        TOKENS_URL.format(fed.a.pk), {"name": "hpc-gateway", "scopes": ["read", "jobs:submit"]}, format="json"
    )
    assert response.status_code == 201, response.json()
    secret = response.json()["token"]
    assert secret.startswith("sw_") and len(secret) > 50
    assert response["Cache-Control"] == "no-store"

    token = ApiToken.objects.get(name="hpc-gateway")
    stored = {f.name: str(getattr(token, f.attname)) for f in ApiToken._meta.fields}
    assert all(secret.split("_", 2)[2] not in value for value in stored.values())
    assert token.secret_hash == hash_secret(secret.split("_", 2)[2])

    listing = admin.get(TOKENS_URL.format(fed.a.pk)).json()["results"]
    assert any(t["name"] == "hpc-gateway" for t in listing)
    assert secret not in str(listing)
    assert all("token" not in t for t in listing)


def test_valid_token_authenticates_as_institution_system(fed):
    me = fed.client("token_a_read").get("/api/v1/me/")
    assert me.status_code == 200
    body = me.json()
    assert body["kind"] == "token" and body["email"] is None
    assert body["memberships"] == [{"institution_id": fed.a.pk, "institution_code": "PKU", "role": "system"}]
    assert ApiToken.objects.get(name="campus-read").last_used_at is not None


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer sw_nothere1_" + "x" * 43, "token_invalid"),
        ("Bearer not-a-token", "token_malformed"),
        ("Bearer a b", "token_malformed"),
    ],
)
def test_bad_tokens_get_401_with_code(fed, header, code):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert "WWW-Authenticate" in response


def test_wrong_secret_with_right_prefix_is_refused(fed):
    good = fed.tokens["token_a_read"]
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    response = client_for(token=forged).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"


def test_revoked_token_is_refused_immediately(fed):
    admin = client_for(fed.users["admin_a"])
    token = ApiToken.objects.get(name="campus-read")
    assert fed.client("token_a_read").get("/api/v1/me/").status_code == 200

    response = admin.post(f"{TOKENS_URL.format(fed.a.pk)}{token.pk}/revoke/")
    assert response.status_code == 200 and response.json()["status"] == "revoked"

    refused = fed.client("token_a_read").get("/api/v1/me/")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_revoked"

    again = admin.post(f"{TOKENS_URL.format(fed.a.pk)}{token.pk}/revoke/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "token_already_revoked"


def test_expired_token_is_refused(fed):
    token, secret = make_token(fed.a, ["read"], fed.users["admin_a"], expires_at=timezone.now() + timedelta(days=1))
    assert client_for(token=secret).get("/api/v1/me/").status_code == 200
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save(update_fields=["expires_at"])  # a change through the ORM: the cached copy is marked stale
    response = client_for(token=secret).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


def test_token_of_inactive_institution_is_refused(fed):
    fed.a.active = False
    fed.a.save()
    response = fed.client("token_a_read").get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "institution_inactive"


def test_read_scope_cannot_write(fed):
    response = fed.client("token_a_read").post(
        f"/api/v1/institutions/{fed.a.pk}/members/", {"email": "new@pku.edu.cn", "role": "researcher"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_scope_without_read_cannot_read(fed):
    _, secret = make_token(fed.a, ["jobs:submit"], fed.users["admin_a"])
    response = client_for(token=secret).get(f"/api/v1/institutions/{fed.a.pk}/members/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_admin_scope_can_manage_members_but_not_tokens(fed):
    client = fed.client("token_a_admin")
    created = client.post(
        f"/api/v1/institutions/{fed.a.pk}/members/",
        {"email": "Student@PKU.edu.cn ", "role": "researcher"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["email"] == "student@pku.edu.cn"
    tokens = client.post(TOKENS_URL.format(fed.a.pk), {"name": "x", "scopes": ["read"]}, format="json")
    assert tokens.status_code == 403
    assert tokens.json()["error"]["code"] == "token_cannot_manage_tokens"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "t", "scopes": []}, "scopes"),
        ({"name": "t", "scopes": ["root"]}, "scopes"),
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x" * 101, "scopes": ["read"]}, "name"),
        ({"name": "t", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "t", "scopes": ["read"], "owner": "me"}, "owner"),
    ],
)
def test_token_create_rejects_bad_input_and_writes_nothing(fed, body, field):
    before = (ApiToken.objects.count(), AuditEvent.objects.count())
    response = client_for(fed.users["admin_a"]).post(TOKENS_URL.format(fed.a.pk), body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert (ApiToken.objects.count(), AuditEvent.objects.count()) == before


def test_duplicate_token_name_is_a_conflict(fed):
    response = client_for(fed.users["admin_a"]).post(
        TOKENS_URL.format(fed.a.pk), {"name": "campus-read", "scopes": ["read"]}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "token_name_taken"


def test_expiring_tokens_warning_emails_institution_admins(fed, mailoutbox):
    from accounts.tasks import warn_expiring_tokens

    make_token(fed.a, ["read"], fed.users["admin_a"], name="soon", expires_at=timezone.now() + timedelta(days=3))
    make_token(fed.a, ["read"], fed.users["admin_a"], name="later", expires_at=timezone.now() + timedelta(days=30))
    assert warn_expiring_tokens() == 1
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["admin@pku.edu.cn"]
    assert "soon" in mailoutbox[0].subject


# --- the token cache: no token query on a repeated call, revocation still immediate ----------------
def _token_queries(client) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get("/api/v1/me/").status_code == 200
    return sum('FROM "accounts_apitoken"' in q["sql"] for q in captured.captured_queries)


def test_a_repeated_call_reads_no_token_and_revocation_still_refuses_at_once(fed, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    from accounts.actors import Actor
    from accounts.services import TokenRejected, _token_cache_key, token_authenticate, token_revoke

    _, secret = make_token(fed.a, ["read"], fed.users["admin_a"], name="cached")
    client = client_for(token=secret)
    assert _token_queries(client) == 1
    assert _token_queries(client) == 0  # cached
    token = ApiToken.objects.get(name="cached")
    key = _token_cache_key(token.prefix, token.secret_hash)
    with django_capture_on_commit_callbacks(execute=True):
        token_revoke(actor=Actor(user=fed.users["admin_a"]), token=token)
    refused = client.get("/api/v1/me/")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
    # a request that read the row before the revocation committed cannot put it back into the cache
    assert cache.add(key, token, 30) is False
    with pytest.raises(TokenRejected):
        token_authenticate(secret)


def test_deactivating_the_institution_refuses_its_cached_tokens_at_once(fed):
    from accounts.actors import system_actor
    from accounts.services import institution_update

    _, secret = make_token(fed.a, ["read"], fed.users["admin_a"], name="cached")
    client = client_for(token=secret)
    assert _token_queries(client) == 1 and _token_queries(client) == 0
    institution_update(actor=system_actor(), institution=fed.a, active=False)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "institution_inactive"


def test_a_cached_token_still_expires_and_records_its_last_use(fed):
    from unittest import mock

    token, secret = make_token(fed.a, ["read"], fed.users["admin_a"], name="cached",
                               expires_at=timezone.now() + timedelta(hours=1))
    client = client_for(token=secret)
    assert _token_queries(client) == 1 and _token_queries(client) == 0
    first_use = ApiToken.objects.get(pk=token.pk).last_used_at
    later = timezone.now() + timedelta(minutes=2)  # past the cache's lifetime and the last-use resolution
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert client.get("/api/v1/me/").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at == later > first_use
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(hours=2)):
        response = client.get("/api/v1/me/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "token_expired"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_revocation_reaches_every_process_through_redis():
    import redis
    from django.conf import settings
    from django.core.cache import cache, caches

    from accounts.actors import Actor
    from accounts.models import InstitutionRole
    from accounts.services import _token_cache_key, token_revoke
    from tests.factories import make_institution, make_member

    assert type(caches["default"]).__name__ == "RedisCache"
    institution = make_institution("RCU", "Redis Cache University", ["rcu.edu.cn"])
    admin = make_member(institution, InstitutionRole.INSTITUTION_ADMIN, "admin@rcu.edu.cn")
    token, secret = make_token(institution, ["read"], admin, name="shared")
    client = client_for(token=secret)
    assert client.get("/api/v1/me/").status_code == 200
    key = cache.make_and_validate_key(_token_cache_key(token.prefix, token.secret_hash))
    server = redis.Redis.from_url(settings.REDIS_URL)
    assert server.exists(key)  # what the other processes see
    token_revoke(actor=Actor(user=admin), token=token)
    assert cache.get(_token_cache_key(token.prefix, token.secret_hash)) == "stale"
    refused = client.get("/api/v1/me/")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_revoked"
