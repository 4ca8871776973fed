from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from accounts.models import AuditEvent, InstitutionRole, Membership
from tests.portal.conftest import add_member

pytestmark = pytest.mark.django_db


def audit_url(institution, **query):
    url = reverse("portal:institution_audit", args=[institution.pk])
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


def test_the_audit_page_shows_the_rows_the_portal_wrote(world, pku_admin_client):
    pku_admin_client.post(
        reverse("portal:institution_members", args=[world.pku.pk]),
        {"email": "audited@pku.edu.cn", "role": "researcher"},
        REMOTE_ADDR="10.1.2.3",
    )
    membership = Membership.objects.get(user__email="audited@pku.edu.cn")
    pku_admin_client.post(reverse("portal:member_change_role", args=[world.pku.pk, membership.pk]), {"role": "pi"})
    response = pku_admin_client.get(audit_url(world.pku))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Member role changed" in page and "membership.change_role" in page
    assert "Member added" in page
    assert "user:admin@pku.edu.cn" in page
    assert "10.1.2.3" in page
    assert "researcher" in page and "pi" in page  # before → after of the role change
    assert "admin@tsinghua.edu.cn" not in page  # THU's rows stay with THU


def test_times_are_shown_in_beijing_time(world, pku_admin_client):
    event = AuditEvent.objects.filter(institution=world.pku).first()
    AuditEvent.objects.filter(pk=event.pk).update(created_at=datetime(2026, 3, 1, 23, 30, 5, tzinfo=UTC))
    page = pku_admin_client.get(audit_url(world.pku)).content.decode()
    assert "2026-03-02 07:30:05" in page
    assert datetime(2026, 3, 1, 23, 30, 5, tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai")).hour == 7


def test_the_audit_page_filters_by_action(world, pku_admin_client):
    response = pku_admin_client.get(audit_url(world.pku, action="institution.create"))
    rows = response.context["rows"]
    assert [row["event"].action for row in rows] == ["institution.create"]
    choices = dict(response.context["form"].fields["action"].choices)
    assert "membership.create" in choices and "institution.create" in choices


def test_the_audit_page_paginates_and_keeps_the_filter(world, pku_admin_client, django_assert_max_num_queries):
    for i in range(60):
        add_member(world.pku, f"bulk{i}@pku.edu.cn", InstitutionRole.RESEARCHER)
    first = pku_admin_client.get(audit_url(world.pku, action="membership.create"))
    assert len(first.context["rows"]) == 50
    assert "?action=membership.create&amp;page=2" in first.content.decode()
    with django_assert_max_num_queries(15):
        second = pku_admin_client.get(audit_url(world.pku, action="membership.create", page=2))
    total = AuditEvent.objects.filter(institution=world.pku, action="membership.create").count()
    assert len(second.context["rows"]) == total - 50
