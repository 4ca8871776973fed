"""Daily allocation upkeep (scheduled in CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from allocations.notifications import warn_expiring_allocations
from allocations.workflow import expire_due_allocations


@shared_task(name="allocations.tasks.expire_allocations")
def expire_allocations() -> int:
    return expire_due_allocations()


@shared_task(name="allocations.tasks.warn_expiring_allocations")
def warn_expiring_allocations_task() -> int:
    return warn_expiring_allocations()
