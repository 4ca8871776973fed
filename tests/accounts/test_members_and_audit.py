import pytest

from accounts.models import AuditEvent, Institution, Membership, User
from tests.factories import client_for

pytestmark = pytest.mark.django_db


def members_url(fed, pk=None):
    base = f"/api/v1/institutions/{fed.a.pk}/members/"
    return f"{base}{pk}/" if pk else base


def test_admin_adds_member_and_audit_records_actor_and_ip(fed, mailoutbox, django_capture_on_commit_callbacks):
    admin = client_for(fed.users["admin_a"])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            members_url(fed),
            {"email": " New.Student@PKU.EDU.CN", "full_name": "新同学", "role": "researcher"},
            format="json",
            REMOTE_ADDR="10.1.2.3",
        )
    assert response.status_code == 201, response.json()
    user = User.objects.get(email="new.student@pku.edu.cn")
    assert not user.has_usable_password()
    assert len(mailoutbox) == 1 and "/accounts/reset/" in mailoutbox[0].body

    event = AuditEvent.objects.get(action="membership.create", object_id=str(response.json()["id"]))
    assert event.actor_user == fed.users["admin_a"]
    assert event.actor_token is None
    assert event.ip == "10.1.2.3"
    assert event.institution == fed.a
    assert event.after == {"user": "new.student@pku.edu.cn", "role": "researcher"}


def test_token_actions_are_audited_with_the_token_as_actor(fed):
    response = fed.client("token_a_admin").post(
        members_url(fed), {"email": "bot@pku.edu.cn", "role": "pi"}, format="json"
    )
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="membership.create", object_id=str(response.json()["id"]))
    assert event.actor_user is None
    assert event.actor_token.name == "campus-admin"
    assert event.actor_label.startswith("token:")


def test_change_role_records_before_and_after(fed):
    membership = fed.membership("researcher_a")
    response = client_for(fed.users["admin_a"]).patch(members_url(fed, membership.pk), {"role": "pi"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "pi"
    event = AuditEvent.objects.get(action="membership.change_role")
    assert (event.before, event.after) == ({"role": "researcher"}, {"role": "pi"})


def test_last_institution_admin_cannot_be_demoted_or_removed(fed):
    admin = client_for(fed.users["admin_a"])
    own = fed.membership("admin_a")
    demote = admin.patch(members_url(fed, own.pk), {"role": "researcher"}, format="json")
    assert demote.status_code == 409 and demote.json()["error"]["code"] == "last_institution_admin"
    remove = admin.delete(members_url(fed, own.pk))
    assert remove.status_code == 409
    assert Membership.objects.get(pk=own.pk).role == "institution_admin"


def test_remove_member_is_audited(fed):
    membership = fed.membership("researcher_a")
    assert client_for(fed.users["admin_a"]).delete(members_url(fed, membership.pk)).status_code == 204
    assert not Membership.objects.filter(pk=membership.pk).exists()
    event = AuditEvent.objects.get(action="membership.delete")
    assert event.before == {"user": "researcher@pku.edu.cn", "role": "researcher"}


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"email": "someone@gmail.com", "role": "researcher"}, 400, "email_domain_mismatch", "email"),
        ({"email": "not-an-email", "role": "researcher"}, 400, "invalid", "email"),
        ({"email": "x@pku.edu.cn", "role": "king"}, 400, "invalid", "role"),
        ({"email": "x@pku.edu.cn", "role": "researcher", "admin": True}, 400, "unknown_field", "admin"),
        ({"email": "pi@pku.edu.cn", "role": "researcher"}, 409, "already_member", "email"),
        ({"email": "x@pku.edu.cn", "full_name": "n" * 151, "role": "pi"}, 400, "invalid", "full_name"),
    ],
)
def test_add_member_bad_input_is_refused_and_nothing_written(fed, body, status, code, field):
    counts = (User.objects.count(), Membership.objects.count(), AuditEvent.objects.count())
    response = client_for(fed.users["admin_a"]).post(members_url(fed), body, format="json")
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert error["code"] == code
    assert field in error["fields"]
    assert (User.objects.count(), Membership.objects.count(), AuditEvent.objects.count()) == counts


def test_institution_codes_are_unique_with_clear_message(fed):
    client = client_for(fed.users["fedadmin"])
    response = client.post(
        "/api/v1/institutions/", {"name": "Another", "code": "pku", "kind": "university"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "institution_code_taken"
    assert "PKU" in response.json()["error"]["message"]
    assert Institution.objects.filter(code="PKU").count() == 1


def test_federation_admin_creates_institution_with_normalised_fields(fed):
    client = client_for(fed.users["fedadmin"])
    response = client.post(
        "/api/v1/institutions/",
        {"name": " 浙江大学 ", "code": "zju", "kind": "university", "email_domains": ["@ZJU.edu.cn", "zju.edu.cn"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["code"], body["email_domains"]) == ("浙江大学", "ZJU", ["zju.edu.cn"])
    assert AuditEvent.objects.filter(
        action="institution.create", object_id=str(body["id"]), actor_user=fed.users["fedadmin"]
    ).exists()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "X", "code": "-bad", "kind": "university"},
        {"name": "X", "code": "OK", "kind": "club"},
        {"name": "X", "code": "OK", "kind": "university", "email_domains": ["not a domain"]},
        {"name": "", "code": "OK", "kind": "university"},
    ],
)
def test_institution_create_validates(fed, body):
    response = client_for(fed.users["fedadmin"]).post("/api/v1/institutions/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]
    assert not Institution.objects.filter(code="OK").exists()


def test_institution_admin_cannot_change_code(fed):
    response = client_for(fed.users["admin_a"]).patch(
        f"/api/v1/institutions/{fed.a.pk}/", {"code": "PKU2"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "federation_admin_required"


def test_audit_endpoint_shows_only_own_institution(fed):
    client_for(fed.users["admin_b"]).post(
        f"/api/v1/institutions/{fed.b.pk}/members/", {"email": "x@tsinghua.edu.cn", "role": "researcher"}, format="json"
    )
    rows = client_for(fed.users["admin_a"]).get(f"/api/v1/institutions/{fed.a.pk}/audit/").json()["results"]
    assert rows
    assert all("tsinghua" not in str(row) for row in rows)
    filtered = (
        client_for(fed.users["admin_a"])
        .get(f"/api/v1/institutions/{fed.a.pk}/audit/", {"action": "api_token.create"})
        .json()["results"]
    )
    assert filtered and {r["action"] for r in filtered} == {"api_token.create"}
