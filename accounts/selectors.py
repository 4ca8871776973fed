"""Reads for identity and tenancy that are not scoped to one actor (system tasks)."""

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiToken, InstitutionRole, Membership


def tokens_expiring_within(days: int) -> QuerySet[ApiToken]:
    now = timezone.now()
    return ApiToken.objects.filter(
        revoked_at__isnull=True, expires_at__gt=now, expires_at__lte=now + timedelta(days=days)
    ).select_related("institution")


def institution_admin_emails(institution_ids: set[int]) -> dict[int, list[str]]:
    rows = Membership.objects.filter(
        institution_id__in=institution_ids, role=InstitutionRole.INSTITUTION_ADMIN, user__is_active=True
    ).values_list("institution_id", "user__email")
    result: dict[int, list[str]] = {}
    for institution_id, email in rows:
        result.setdefault(institution_id, []).append(email)
    return result
