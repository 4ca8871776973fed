"""Presentation helpers for the job and centre pages: state badges, durations, sizes, charged hours."""

from decimal import Decimal

from django import template
from django.utils.translation import gettext as _

from allocations.templatetags.allocations_tags import num
from federation.models import JobState, SiteState

register = template.Library()

JOB_BADGES = {
    JobState.SUBMITTED: "badge-role",
    JobState.ROUTED: "badge-role",
    JobState.DISPATCHED: "badge-role",
    JobState.QUEUED: "badge-warn",
    JobState.RUNNING: "badge-ok fd-live",
    JobState.COMPLETED: "badge-ok",
    JobState.FAILED: "badge-bad",
    JobState.CANCELLED: "",
    JobState.TIMED_OUT: "badge-bad",
}
SITE_BADGES = {
    SiteState.ONLINE: "badge-ok",
    SiteState.DEGRADED: "badge-warn",
    SiteState.DRAINING: "fd-badge-draining",
    SiteState.OFFLINE: "badge-bad",
}


@register.filter
def job_badge(state) -> str:
    return JOB_BADGES.get(str(state), "")


@register.filter
def site_badge(state) -> str:
    return SITE_BADGES.get(str(state), "")


@register.filter
def job_state_label(state) -> str:
    """The translated label of a job state value (events store plain values)."""
    return str(JobState(state).label) if state in JobState.values else (state or "")


@register.filter
def site_state_label(state) -> str:
    return str(SiteState(state).label) if state in SiteState.values else (state or "")


# One number format across the portal: the allocations app's filter, registered here too.
register.filter("num", num)


@register.filter
def price(value) -> str:
    """A price in credits: two to four decimals (1.00, 0.92, 0.0825)."""
    if value is None or value == "":
        return "—"
    text = f"{Decimal(str(value)):,.4f}"
    while text.endswith("0") and len(text.split(".")[1]) > 2:
        text = text[:-1]
    return text


@register.filter
def duration(seconds) -> str:
    """Seconds as a short, readable duration: 45 s, 12 min, 2 h 30 min, 3 d 4 h."""
    if seconds is None or seconds == "":
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return _("%(n)s s") % {"n": seconds}
    minutes = seconds // 60
    if minutes < 60:
        return _("%(n)s min") % {"n": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _("%(h)s h %(m)s min") % {"h": hours, "m": minutes} if minutes else _("%(h)s h") % {"h": hours}
    days, hours = divmod(hours, 24)
    return _("%(d)s d %(h)s h") % {"d": days, "h": hours} if hours else _("%(d)s d") % {"d": days}


@register.filter
def walltime(seconds) -> str:
    """Seconds as hours:minutes (the form's own notation)."""
    if seconds in (None, ""):
        return "—"
    minutes = int(seconds) // 60
    return f"{minutes // 60}:{minutes % 60:02d}"


@register.filter
def gb(megabytes) -> str:
    """Megabytes as gigabytes: 16 GB, 0.5 GB, 1.5 TB."""
    if megabytes in (None, ""):
        return "—"
    value = Decimal(int(megabytes)) / 1024
    if value >= 1024:
        return f"{(value / 1024).quantize(Decimal('0.1')).normalize():f} TB"
    value = value.quantize(Decimal("0.01")).normalize()
    return f"{value:f} GB"


def _is_gpu(job) -> bool:
    rc = getattr(job, "resource_class", None)
    return (rc.kind == "gpu") if rc is not None else bool(job.gpus_per_node)


@register.filter
def charged_hours(job) -> str:
    """What a job was charged, in core-hours (CPU) or card-hours (GPU)."""
    rc = job.resource_class
    if rc is None:
        return "—"
    hours = (Decimal(job.charged or 0) / Decimal(rc.scale)).quantize(Decimal("0.01"))
    amount = num(hours, 2)
    return _("%(amount)s card-hours") % {"amount": amount} if _is_gpu(job) else _("%(amount)s core-hours") % {
        "amount": amount}


@register.filter
def held_hours(job) -> str:
    """The job's part of the hold placed at submission (its whole walltime), in core- or card-hours."""
    rc = job.resource_class
    if rc is None or not job.hold_part:
        return "—"
    amount = num((Decimal(job.hold_part) / Decimal(rc.scale)).quantize(Decimal("0.01")), 2)
    return _("%(amount)s card-hours") % {"amount": amount} if _is_gpu(job) else _("%(amount)s core-hours") % {
        "amount": amount}


@register.filter
def score(value) -> str:
    if value in (None, ""):
        return "—"
    return f"{float(value):.4f}"


@register.filter
def hour(value) -> str:
    if value in (None, ""):
        return "—"
    return f"{int(value) % 24:02d}:00"
