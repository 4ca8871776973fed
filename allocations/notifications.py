"""Emails about allocation requests and allocations (console backend in the embedded mode).

Called after commit with ids, so a rolled-back change sends nothing.
"""

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import FederationRoleKind, User
from allocations.models import Allocation, AllocationRequest, AllocationState, Decision, Review
from allocations.rules import EXPIRY_WARNING_DAYS


def _portal(path: str) -> str:
    return f"{getattr(settings, 'PORTAL_BASE_URL', 'http://127.0.0.1:8000')}{path}"


def _committee_emails() -> list[str]:
    return list(
        User.objects.filter(is_active=True, federation_roles__role=FederationRoleKind.COMMITTEE)
        .values_list("email", flat=True)
        .distinct()
    )


def request_submitted(request_id: int) -> None:
    request = AllocationRequest.objects.select_related("project__pi").get(pk=request_id)
    link = _portal(f"/allocations/requests/{request.pk}/")
    send_mail(
        f"[Suanwang] Request #{request.pk} submitted / 申请已提交: {request.title}",
        f"Your {request.tier} {request.kind} request '{request.title}' was submitted ({request.credits:.0f} "
        f"credits).\nFollow it here: {link}\n\n您的资源申请已提交，可在门户中查看进度。\n",
        None,
        [request.project.pi.email],
    )
    committee = _committee_emails()
    if committee and request.tier != "explore":
        send_mail(
            f"[Suanwang] New {request.tier} request #{request.pk}: {request.title}",
            f"A {request.tier} {request.kind} request from {request.institution.name} awaits review.\n{link}\n",
            None,
            committee,
        )


def reviewer_assigned(review_id: int) -> None:
    review = Review.objects.select_related("reviewer", "request").get(pk=review_id)
    send_mail(
        f"[Suanwang] Review assignment / 评审任务: request #{review.request_id}",
        f"You were asked to review '{review.request.title}'.\n"
        f"If you have a conflict of interest, declare it on the review page.\n"
        f"{_portal(f'/allocations/reviews/{review.pk}/')}\n\n您有一项新的评审任务。\n",
        None,
        [review.reviewer.email],
    )


def request_decided(decision_id: int) -> None:
    decision = Decision.objects.select_related("request__project__pi").get(pk=decision_id)
    request = decision.request
    outcome = {"award": "approved / 已批准", "reject": "rejected / 未批准", "revise": "returned for revision / 需修改"}[
        decision.outcome
    ]
    amounts = "".join(f"  {code}: {amount}\n" for code, amount in sorted(decision.amounts.items()))
    send_mail(
        f"[Suanwang] Request #{request.pk} {outcome}",
        f"Decision on '{request.title}': {decision.outcome}.\n{amounts}\nReason: {decision.reason}\n"
        f"{_portal(f'/allocations/requests/{request.pk}/')}\n",
        None,
        [request.project.pi.email],
    )


def warn_expiring_allocations(today=None) -> int:
    """Email PIs 30 and 7 days before their allocation ends (once each)."""
    today = today or timezone.localdate()
    sent = 0
    for days, field in zip(EXPIRY_WARNING_DAYS, ("warned_30_at", "warned_7_at"), strict=True):
        due = Allocation.objects.filter(
            state=AllocationState.ACTIVE,
            end__lte=today + timedelta(days=days),
            end__gte=today,
            **{f"{field}__isnull": True},
        ).select_related("project__pi")
        for allocation in due:
            with transaction.atomic():
                claimed = Allocation.objects.filter(pk=allocation.pk, **{f"{field}__isnull": True}).update(
                    **{field: timezone.now()}
                )
                if not claimed:
                    continue
                send_mail(
                    f"[Suanwang] Allocation #{allocation.pk} ends {allocation.end} / 资源即将到期",
                    f"The allocation of '{allocation.project.title}' ends on {allocation.end} "
                    f"(in {(allocation.end - today).days} days). Ask for an extension or a renewal in the "
                    f"portal: {_portal(f'/allocations/{allocation.pk}/')}\n",
                    None,
                    [allocation.project.pi.email],
                )
                sent += 1
    return sent
