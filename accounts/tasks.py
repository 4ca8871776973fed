"""Periodic work for accounts (scheduled by CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from accounts.notifications import notify_expiring_tokens
from accounts.selectors import tokens_expiring_within


@shared_task(name="accounts.tasks.warn_expiring_tokens")
def warn_expiring_tokens(days: int = 7) -> int:
    """Email each institution's admins about active tokens that expire within ``days``."""
    tokens = list(tokens_expiring_within(days))
    notify_expiring_tokens(tokens)
    return len(tokens)
