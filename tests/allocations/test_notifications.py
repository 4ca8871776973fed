"""Emails after commit (submission, assignment, decision), expiry warnings and expiry."""

from datetime import timedelta

import pytest

from accounts.models import AuditEvent
from allocations.models import Allocation
from allocations.notifications import warn_expiring_allocations
from allocations.workflow import expire_due_allocations
from tests.allocations.helpers import (
    STANDARD_AMOUNTS,
    allocation_of,
    create_and_submit,
    create_request,
    decide,
    open_reviews,
    submit,
    submit_all_reviews,
)

pytestmark = pytest.mark.django_db


def test_nothing_is_sent_before_commit(fed, project, reviewers, mailoutbox):
    create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    assert mailoutbox == []


def test_submission_emails_the_pi_and_committee_and_each_assigned_reviewer(
    fed, project, reviewers, mailoutbox, django_capture_on_commit_callbacks
):
    pi = fed.client("pi_a")
    draft = create_request(pi, project["id"], tier="standard", amounts=STANDARD_AMOUNTS, title="Protein folding")

    with django_capture_on_commit_callbacks(execute=True):
        submit(pi, draft["id"])

    by_recipient = {tuple(m.to): m for m in mailoutbox}
    assert set(by_recipient) == {
        ("pi@pku.edu.cn",),
        ("committee@scnet.example.cn",),
        (reviewers[0].email,),
        (reviewers[1].email,),
    }
    to_pi = by_recipient[("pi@pku.edu.cn",)]
    assert to_pi.subject == f"[Suanwang] Request #{draft['id']} submitted / 申请已提交: Protein folding"
    assert "130000 credits" in to_pi.body and f"/allocations/requests/{draft['id']}/" in to_pi.body
    assert "awaits review" in by_recipient[("committee@scnet.example.cn",)].body
    review = open_reviews(draft["id"])[0]
    to_reviewer = by_recipient[(reviewers[0].email,)]
    assert "Review assignment" in to_reviewer.subject
    assert "'Protein folding'" in to_reviewer.body and f"/allocations/reviews/{review.pk}/" in to_reviewer.body


def test_explore_submission_emails_only_the_pi_submitted_then_approved(
    fed, project, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = create_and_submit(fed.client("pi_a"), project["id"])

    assert [m.to for m in mailoutbox] == [["pi@pku.edu.cn"], ["pi@pku.edu.cn"]]
    assert "submitted" in mailoutbox[0].subject
    assert mailoutbox[1].subject == f"[Suanwang] Request #{request['id']} approved / 已批准"
    assert "cpu: 5000" in mailoutbox[1].body and "Reason: Explore tier: approved automatically." in mailoutbox[1].body


@pytest.mark.parametrize(
    ("outcome", "amounts", "subject"),
    [
        ("award", {"cpu": 70_000}, "approved / 已批准"),
        ("reject", None, "rejected / 未批准"),
        ("revise", None, "returned for revision / 需修改"),
    ],
)
def test_decision_emails_the_pi_with_the_reason(
    fed, project, reviewers, mailoutbox, django_capture_on_commit_callbacks, outcome, amounts, subject
):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    submit_all_reviews(request["id"])

    with django_capture_on_commit_callbacks(execute=True):
        response = decide(fed.client("committee"), request["id"], outcome, "Panel: timely, cut to 70k.", amounts)

    assert response.status_code == 200
    [mail] = mailoutbox
    assert mail.to == ["pi@pku.edu.cn"]
    assert mail.subject == f"[Suanwang] Request #{request['id']} {subject}"
    assert "Reason: Panel: timely, cut to 70k." in mail.body
    assert ("cpu: 70000" in mail.body) == (outcome == "award")


def test_refused_decision_sends_nothing(fed, project, reviewers, mailoutbox, django_capture_on_commit_callbacks):
    request = create_and_submit(fed.client("pi_a"), project["id"], tier="standard", amounts=STANDARD_AMOUNTS)
    with django_capture_on_commit_callbacks(execute=True):
        response = decide(fed.client("committee"), request["id"], "award", amounts={"cpu": 1})
    assert response.status_code == 409
    assert mailoutbox == []


# --- expiry --------------------------------------------------------------------------------
@pytest.fixture
def allocation(fed, project) -> Allocation:
    return allocation_of(create_and_submit(fed.client("pi_a"), project["id"])["id"])


def test_expiry_warnings_are_sent_once_at_thirty_and_once_at_seven_days(allocation, mailoutbox):
    end = allocation.end

    assert warn_expiring_allocations(today=end - timedelta(days=31)) == 0
    assert warn_expiring_allocations(today=end - timedelta(days=30)) == 1
    assert warn_expiring_allocations(today=end - timedelta(days=30)) == 0
    assert warn_expiring_allocations(today=end - timedelta(days=20)) == 0
    assert warn_expiring_allocations(today=end - timedelta(days=7)) == 1
    assert warn_expiring_allocations(today=end - timedelta(days=7)) == 0
    assert warn_expiring_allocations(today=end - timedelta(days=1)) == 0

    assert [m.to for m in mailoutbox] == [["pi@pku.edu.cn"], ["pi@pku.edu.cn"]]
    assert f"Allocation #{allocation.pk} ends {end}" in mailoutbox[0].subject
    assert "(in 30 days)" in mailoutbox[0].body and "(in 7 days)" in mailoutbox[1].body
    allocation.refresh_from_db()
    assert allocation.warned_30_at and allocation.warned_7_at


def test_expiry_warnings_skip_allocations_that_are_not_active(fed, allocation, mailoutbox):
    Allocation.objects.filter(pk=allocation.pk).update(state="suspended")
    assert warn_expiring_allocations(today=allocation.end - timedelta(days=7)) == 0
    assert mailoutbox == []


def test_extension_restarts_the_expiry_warnings(fed, project, allocation, mailoutbox, today):
    warn_expiring_allocations(today=allocation.end - timedelta(days=7))
    sent = len(mailoutbox)
    create_and_submit(
        fed.client("pi_a"),
        project["id"],
        kind="extension",
        amounts={},
        allocation=allocation.pk,
        start=today + timedelta(days=100),
        end=today + timedelta(days=400),
    )

    assert warn_expiring_allocations(today=today + timedelta(days=370)) == 1
    assert len(mailoutbox) == sent + 1 and "(in 30 days)" in mailoutbox[-1].body


def test_allocations_past_their_end_expire_with_an_audit_row(allocation):
    end = allocation.end

    assert expire_due_allocations(today=end) == 0  # the last day is still usable
    allocation.refresh_from_db()
    assert allocation.state == "active"

    assert expire_due_allocations(today=end + timedelta(days=1)) == 1

    allocation.refresh_from_db()
    assert allocation.state == "expired"
    audit = AuditEvent.objects.get(action="allocation.expired", object_id=str(allocation.pk))
    assert (audit.actor_label, audit.institution_id) == ("system", allocation.institution_id)
    assert audit.before == {"state": "active"}
    assert audit.after == {"state": "expired", "reason": f"Ended before {(end + timedelta(days=1)).isoformat()}."}
    assert expire_due_allocations(today=end + timedelta(days=2)) == 0
    assert AuditEvent.objects.filter(action="allocation.expired").count() == 1


def test_suspended_allocations_past_their_end_expire_too(fed, allocation):
    Allocation.objects.filter(pk=allocation.pk).update(state="suspended")
    assert expire_due_allocations(today=allocation.end + timedelta(days=1)) == 1
    allocation.refresh_from_db()
    assert allocation.state == "expired"
