"""Presentation helpers for the allocation pages: numbers, state badges, the section navigation."""

from decimal import Decimal, InvalidOperation

from django import template
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from accounts.actors import actor_for_request
from accounts.models import FederationRoleKind, InstitutionRole
from allocations.access import sees_everything
from allocations.forms import class_label
from allocations.models import LedgerKind, RequestState

register = template.Library()

REQUEST_BADGES = {
    "draft": "",
    "submitted": "badge-role",
    "appealed": "badge-role",
    "under_review": "badge-role",
    "revision_requested": "badge-warn",
    "approved": "badge-ok",
    "rejected": "badge-bad",
    "withdrawn": "",
    # reviews
    "assigned": "badge-warn",
    "declined": "",
    # allocations
    "active": "badge-ok",
    "expired": "",
    "suspended": "badge-bad",
}


@register.filter
def state_badge(state) -> str:
    """The badge class of a request, review or allocation state."""
    return REQUEST_BADGES.get(str(state), "")


@register.filter
def num(value, places=None) -> str:
    """A number with thousands separators; whole numbers without decimals (12,500 · 1,234.50)."""
    if value is None or value == "":
        return "—"
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if places not in (None, ""):
        return f"{number:,.{int(places)}f}"
    if number == number.to_integral_value():
        return f"{number:,.0f}"
    return f"{number:,.2f}"


@register.filter
def get_item(mapping, key):
    if not mapping:
        return None
    return mapping.get(key)


@register.simple_tag(takes_context=True)
def param_url(context, name, value):
    """The current URL with one query parameter replaced (keeps filters and the other pagers)."""
    query = context["request"].GET.copy()
    query[name] = value
    return f"?{query.urlencode()}"


@register.inclusion_tag("allocations/_nav.html", takes_context=True)
def allocations_nav(context):
    """Tabs of the allocation area, by the person's roles (no extra queries beyond their memberships)."""
    actor = actor_for_request(context["request"])
    current = context.get("tab")
    items = [
        ("allocations", _("Allocations"), reverse("allocations:allocation_list")),
        ("projects", _("Projects"), reverse("allocations:project_list")),
        ("requests", _("Requests"), reverse("allocations:request_list")),
    ]
    if actor.has_federation_role(FederationRoleKind.REVIEWER):
        items.append(("reviews", _("Review queue"), reverse("allocations:review_queue")))
    if sees_everything(actor):
        items.append(("committee", _("Committee"), reverse("allocations:committee_home")))
    admin_of = sorted(pk for pk, role in actor.memberships.items() if role == InstitutionRole.INSTITUTION_ADMIN)
    # The top bar has already read the person's institutions: reuse them for the codes.
    codes = {i.pk: i.code for i in context.get("portal_institutions") or []} if len(admin_of) > 1 else {}
    for pk in admin_of:
        label = _("Institution overview")
        if len(admin_of) > 1:
            label = _("%(code)s overview") % {"code": codes.get(pk, f"#{pk}")}
        items.append((f"institution-{pk}", label, reverse("allocations:institution_overview", args=[pk])))
    active = f"institution-{context['institution'].pk}" if current == "institution" else current
    return {"items": [{"key": k, "label": label, "url": url, "active": k == active} for k, label, url in items]}


@register.filter
def request_state_label(state) -> str:
    """The translated label of a request state value (history rows store plain values)."""
    return RequestState(state).label if state in RequestState.values else state


@register.filter
def actor_display(transition) -> str:
    """Who made a move: the person's name, "the system" for automatic steps, else the recorded label."""
    if transition.actor_user_id and transition.actor_user:
        return transition.actor_user.display_name
    if transition.actor_label == "system":
        return _("the system")
    return transition.actor_label


LEDGER_KIND_LABELS = {"award": pgettext_lazy("ledger entry", "Award")}

UNIT_LABELS = {
    "core-hour": gettext_lazy("core-hour"),
    "card-hour": gettext_lazy("card-hour"),
    "TB-day": gettext_lazy("TB-day"),
}


@register.filter
def unit_label(unit) -> str:
    """The translated name of a resource class's unit (core-hour, card-hour, TB-day)."""
    return str(UNIT_LABELS.get(unit, unit))


@register.filter
def class_name(resource_class) -> str:
    """A resource class as people say it: CPU, Storage (translated), or the card's name."""
    return class_label(resource_class)


@register.filter
def ledger_kind(kind) -> str:
    """A ledger entry's kind; "award" is said as a grant here (the model's label is shared with decisions)."""
    return str(LEDGER_KIND_LABELS.get(kind) or (LedgerKind(kind).label if kind in LedgerKind.values else kind))


@register.filter
def actor_label(label) -> str:
    """A recorded actor label, with the automatic steps' "system" translated."""
    return _("the system") if label == "system" else label
