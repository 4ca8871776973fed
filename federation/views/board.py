"""The federation status board: every centre as a card with live use per accelerator family, cores,
queue and state. Public to everyone signed in (federation-wide aggregates, no tenant's job named)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from federation import board as board_reads
from federation import selectors, services
from federation.access import site_jobs_for
from federation.models import TERMINAL_JOB_STATES, SiteState
from federation.templatetags.federation_tags import SITE_BADGES
from federation.views.common import operated_site_ids, portal_actor, raise_as_http
from portal.errors import NotFound, PermissionDenied

# The operators' buttons, in the order the centre page shows them (federation.views.sites.OPERATOR_MOVES).
MOVE_ORDER = (SiteState.DRAINING, SiteState.OFFLINE, SiteState.ONLINE, SiteState.DEGRADED)


def site_state_labels() -> dict:
    """State → label, badge class and the operators' moves from it (state and button label), for the pages'
    script: the same words the server renders, and the centre page redraws its buttons when the state changes."""
    buttons = {SiteState.DRAINING: _("Drain"), SiteState.OFFLINE: _("Take offline"),
               SiteState.ONLINE: _("Bring online"), SiteState.DEGRADED: _("Mark degraded")}
    return {
        state.value: {
            "label": str(state.label),
            "badge": SITE_BADGES.get(state, ""),
            "moves": [{"state": move.value, "label": str(buttons[move])} for move in MOVE_ORDER
                      if (state, move) in services.SITE_TRANSITIONS],
        }
        for state in SiteState
    }


@login_required
@require_GET
def status_board(request):
    actor = portal_actor(request)
    data = board_reads.board()
    context = {
        "board": data,
        "operated": operated_site_ids(actor),
        "site_states": site_state_labels(),
        "now_state": _("%(name)s is now %(state)s."),  # announced to screen readers when a centre changes
    }
    return render(request, "federation/status_board.html", context)


# --- a centre's jobs, for its operators (the centre page's live list) ------------------------------------
SITE_JOBS_SHOWN = 50


def site_jobs(actor, site) -> dict:
    """The jobs at a centre that have not finished (newest first, at most SITE_JOBS_SHOWN) and their count."""
    active = site_jobs_for(actor, site).exclude(state__in=TERMINAL_JOB_STATES)
    jobs = list(active.order_by("-submitted_at", "-id")[:SITE_JOBS_SHOWN + 1])
    count = len(jobs) if len(jobs) <= SITE_JOBS_SHOWN else active.count()  # counted only when there are more
    return {"jobs": jobs[:SITE_JOBS_SHOWN], "count": count}


@login_required
@require_GET
def site_jobs_fragment(request, code: str):
    """The centre page's job list alone: the page's script fetches it when the centre's stream says
    something moved (jobs leaving for another centre fade out)."""
    actor = portal_actor(request)
    try:
        site = selectors.get_site(code)
    except NotFound as exc:
        raise_as_http(exc)
    if not services.can_operate(actor, site):
        raise_as_http(PermissionDenied("Only this centre's operators or a federation admin can do this.",
                                       code="site_operator_required"))
    return render(request, "federation/_site_jobs.html", {"site": site, "site_jobs": site_jobs(actor, site)})
