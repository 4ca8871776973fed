"""Centres: the federation's centres with their state, capacity and prices; one centre with its partitions,
and the operators' moves (drain, take offline, bring online)."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from allocations.ledger import to_display
from federation import selectors, services
from federation.forms import SiteStateForm
from federation.models import SiteState
from federation.views.board import site_jobs, site_state_labels
from federation.views.common import (
    error_message,
    operated_site_ids,
    portal_actor,
    raise_as_http,
    site_state_label,
)
from portal.errors import ApplicationError, NotFound, PermissionDenied

# The operators' buttons, in the order shown; only moves the transition table allows from the current state.
OPERATOR_MOVES = (SiteState.DRAINING, SiteState.OFFLINE, SiteState.ONLINE, SiteState.DEGRADED)


def _price_range(values) -> tuple | None:
    values = sorted(v for v in values if v)
    return (values[0], values[-1]) if values else None


def site_summary(site) -> dict:
    """A centre's totals from its prefetched partitions (no query): cores, cards per family, price ranges."""
    totals = selectors.site_totals(site)
    partitions = list(site.partitions.all())
    families = {p.family.code: p.family.name for p in partitions if p.family_id}
    return {
        "site": site,
        "totals": totals,
        "cards": [{"code": code, "name": families.get(code, code), "count": count}
                  for code, count in totals["cards"].items()],
        "partition_count": len(partitions),
        "core_price": _price_range(p.price_core_hour for p in partitions if not p.gpus_per_node),
        "card_price": _price_range(p.price_card_hour for p in partitions if p.gpus_per_node),
    }


@login_required
@require_GET
def site_list(request):
    actor = portal_actor(request)
    rows = [site_summary(site) for site in selectors.sites_with_partitions()]
    by_state = defaultdict(int)
    for row in rows:
        by_state[row["site"].state] += 1
    context = {
        "rows": rows,
        "operated": operated_site_ids(actor),
        "stats": {
            "sites": len(rows),
            "routable": by_state[SiteState.ONLINE] + by_state[SiteState.DEGRADED],
            "unavailable": by_state[SiteState.DRAINING] + by_state[SiteState.OFFLINE],
            "cores": sum(r["totals"]["cores"] for r in rows),
            "cards": sum(r["totals"]["total_cards"] for r in rows),
        },
    }
    return render(request, "federation/site_list.html", context)


def _site(code: str):
    try:
        return selectors.get_site(code)
    except NotFound as exc:
        raise_as_http(exc)


def _render_site(request, actor, site, *, form: SiteStateForm | None = None, error: str = "", status: int = 200):
    summary = site_summary(site)
    apps_by_partition: dict[int, list] = defaultdict(list)
    for app in selectors.applications():
        for partition in app.partitions.all():
            if partition.site.code == site.code:
                apps_by_partition[partition.pk].append(app)
    operator = services.can_operate(actor, site)
    moves = [{"state": state, "label": str(state.label)} for state in OPERATOR_MOVES
             if (site.state, state) in services.SITE_TRANSITIONS] if operator else []
    commitments = [
        {"commitment": c, "amount": to_display(c.resource_class, c.amount)}
        for c in selectors.commitments_for_site(site)
    ]
    context = {
        "site": site,
        "summary": summary,
        "partitions": [{"partition": p, "applications": apps_by_partition.get(p.pk, [])}
                       for p in site.partitions.all()],
        "operator": operator,
        "moves": moves,
        "form": form or SiteStateForm(),
        "error": error,
        "commitments": commitments,
        "site_jobs": site_jobs(actor, site) if operator else None,  # the live list of its jobs (operators)
        "site_states": site_state_labels(),
        "schedule": [{"start": e.get("start_hour"), "end": e.get("end_hour"),
                      "multiplier": e.get("multiplier_permille", 1000) / 1000}
                     for e in site.price_schedule or [] if isinstance(e, dict)],
    }
    return render(request, "federation/site_detail.html", context, status=status)


@login_required
@require_GET
def site_detail(request, code: str):
    actor = portal_actor(request)
    return _render_site(request, actor, _site(code))


@login_required
@require_POST
def site_set_state(request, code: str):
    actor = portal_actor(request)
    site = _site(code)
    if not services.can_operate(actor, site):
        raise_as_http(PermissionDenied(_("Only this centre's operators or a federation admin can do this."),
                                       code="site_operator_required"))
    form = SiteStateForm(request.POST)
    if not form.is_valid():
        return _render_site(request, actor, site, form=form, error=_("Choose a known state."), status=400)
    state, reason = form.cleaned_data["state"], form.cleaned_data["reason"].strip()
    before = site.state
    try:
        services.site_set_state(actor=actor, site=site, state=state, reason=reason)
    except PermissionDenied as exc:
        raise_as_http(exc)
    except ApplicationError as exc:
        message = error_message(exc, **{"from": site_state_label(before), "to": site_state_label(state)})
        return _render_site(request, actor, _site(code), form=form, error=message, status=exc.status_code)
    if before == state:
        messages.info(request, _("%(name)s is already %(state)s.")
                      % {"name": site.name, "state": site_state_label(state).lower()})
    else:
        messages.success(request, _("%(name)s is now %(state)s.")
                         % {"name": site.name, "state": site_state_label(state).lower()})
    return redirect("centres:site_detail", code=site.code)


# Why a connection check failed, in the portal's words (the code is stable; Slurm's own text follows).
PING_FAILURES = {
    "slurm_unavailable": _("slurmrestd does not answer"),
    "slurm_auth_failed": _("Slurm refused the centre's credentials"),
    "slurm_controller_down": _("slurmrestd answers but the Slurm controller is not up"),
}


@login_required
@require_POST
def site_ping(request, code: str):
    """Check the connection to a Slurm centre (operators, federation admins): latency and version."""
    from federation import slurm_services

    actor = portal_actor(request)
    site = _site(code)
    try:
        result = slurm_services.site_ping(actor=actor, site=site)
    except PermissionDenied as exc:
        raise_as_http(exc)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("centres:site_detail", code=site.code)
    if result.ok:
        messages.success(request, _("Slurm %(version)s answers in %(latency)s ms.")
                         % {"version": result.version, "latency": f"{result.latency_ms:.1f}"})
    else:
        messages.error(request, _("Connection check failed: %(why)s (%(detail)s).")
                       % {"why": PING_FAILURES.get(result.code, result.code), "detail": result.message})
    return redirect("centres:site_detail", code=site.code)

