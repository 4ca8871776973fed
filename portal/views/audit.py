"""Institution admin: the institution's audit trail, newest first, filterable by action."""

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from accounts.access import audit_events_for
from portal.forms import AuditFilterForm
from portal.views.common import administered_institution, portal_actor

EVENTS_PER_PAGE = 50

ACTION_LABELS = {
    "institution.create": _("Institution created"),
    "institution.update": _("Institution changed"),
    "user.create": _("Account created"),
    "membership.create": _("Member added"),
    "membership.change_role": _("Member role changed"),
    "membership.delete": _("Member removed"),
    "federation_role.grant": _("Federation role granted"),
    "api_token.create": _("API token created"),
    "api_token.revoke": _("API token revoked"),
}


def _display(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def changes(before: dict | None, after: dict | None) -> list[dict]:
    """One row per field of the before/after pictures; only fields that differ are marked changed."""
    if not isinstance(before or {}, dict) or not isinstance(after or {}, dict):
        return [{"field": "", "before": _display(before), "after": _display(after), "changed": True}]
    old, new = before or {}, after or {}
    rows = []
    for key in dict.fromkeys([*old, *new]):
        rows.append(
            {
                "field": key,
                "before": _display(old.get(key)),
                "after": _display(new.get(key)),
                "changed": old.get(key) != new.get(key),
            }
        )
    return rows


def change_kind(before, after) -> str:
    """created (only an after picture), deleted (only before) or changed (both)."""
    if before is None and after is not None:
        return "created"
    if after is None and before is not None:
        return "deleted"
    return "changed"


@login_required
@require_GET
def audit(request, institution_id: int):
    institution = administered_institution(request, institution_id)
    events = audit_events_for(portal_actor(request), institution).select_related("actor_user")
    present = events.order_by("action").values_list("action", flat=True).distinct()
    actions = [(code, f"{ACTION_LABELS.get(code, code)} ({code})") for code in present]
    form = AuditFilterForm(request.GET or None, actions=actions)
    selected = ""
    if form.is_bound and form.is_valid():
        selected = form.cleaned_data["action"]
    if selected:
        events = events.filter(action=selected)
    page = Paginator(events.order_by("-created_at", "-id"), EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        {
            "event": event,
            "action_label": ACTION_LABELS.get(event.action, event.action),
            "changes": changes(event.before, event.after),
            "change_kind": change_kind(event.before, event.after),
        }
        for event in page.object_list
    ]
    context = {
        "institution": institution,
        "tab": "audit",
        "form": form,
        "selected_action": selected,
        "page": page,
        "rows": rows,
        "time_zone": "Asia/Shanghai",
    }
    return render(request, "portal/institution/audit.html", context)
