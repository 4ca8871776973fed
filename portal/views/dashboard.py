"""The landing page: what this person can do here, by role; for members of institutions, their active
allocations (balances and usage over time) and their most recent jobs, both updated live."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.access import audit_events_for, institutions_for, memberships_for, tokens_for
from accounts.models import FederationRoleKind, InstitutionRole
from allocations import access as allocation_access
from allocations import selectors as allocation_selectors
from allocations.models import AllocationState
from allocations.views.awards import balance_rows, usage_chart
from allocations.views.common import classes_by_code
from federation.access import jobs_for
from federation.views.jobs import live_context
from portal.views.common import portal_actor

DASHBOARD_ALLOCATIONS = 3  # active allocations shown, each with its balances and usage chart
DASHBOARD_JOBS = 8  # most recent jobs shown (new ones slide in live)

# What each federation role is for; their own pages come with later work.
FEDERATION_AREAS = {
    FederationRoleKind.REVIEWER: _(
        "You score the allocation requests assigned to you. Requests from your own institution are never "
        "assigned to you."
    ),
    FederationRoleKind.COMMITTEE: _(
        "You decide awards on reviewed allocation requests and run the quota broker that commits credits "
        "at the centres."
    ),
    FederationRoleKind.SITE_OPERATOR: _(
        "You watch and drain your centre and set the capacity it commits to the federation."
    ),
    FederationRoleKind.FEDERATION_ADMIN: _("You manage the member institutions, the sites and their prices."),
}


def _institution_card(actor, institution, role: str, now) -> dict:
    card = {
        "institution": institution,
        "role": role,
        "role_label": InstitutionRole(role).label if role in InstitutionRole.values else role,
        "is_admin": actor.can_admin_institution(institution.pk),
    }
    if card["is_admin"]:
        card["member_count"] = memberships_for(actor, institution).count()
        card["active_token_count"] = (
            tokens_for(actor, institution).filter(revoked_at__isnull=True).exclude(expires_at__lte=now).count()
        )
        card["audit_count"] = audit_events_for(actor, institution).count()
    return card


def _allocations(actor, today) -> list[dict]:
    """The person's institutions' active allocations (scoped by the access helper), newest first, with their
    balances and usage charts: 2 queries + 1 per allocation shown."""
    allocations = list(
        allocation_access.allocations_for(actor)
        .filter(state=AllocationState.ACTIVE, institution_id__in=actor.institution_ids())
        .select_related("project")
        .order_by("-start", "-id")[:DASHBOARD_ALLOCATIONS]
    )
    if not allocations:
        return []
    classes = classes_by_code()
    balances = allocation_selectors.balances_by_allocation([a.pk for a in allocations])
    cards = []
    for allocation in allocations:
        rows = balances.get(allocation.pk, [])
        for row in rows:
            rc = classes.get(row["resource_class"])
            row["scale"] = rc.scale if rc else 1
        cards.append({
            "allocation": allocation,
            "balances": balance_rows(rows, classes),
            "chart": usage_chart(start=allocation.start, end=allocation.end, today=today,
                                 usage=allocation_selectors.usage_over_time(allocation), balances=rows,
                                 classes=classes),
        })
    return cards


def _recent_jobs(actor) -> list:
    return list(
        jobs_for(actor).filter(institution_id__in=actor.institution_ids())
        .select_related("resource_class").order_by("-submitted_at", "-id")[:DASHBOARD_JOBS]
    )


@login_required
def dashboard(request):
    actor = portal_actor(request)
    now = timezone.now()
    institutions = institutions_for(actor).filter(pk__in=actor.institution_ids()).order_by("code")
    cards = [_institution_card(actor, inst, actor.memberships[inst.pk], now) for inst in institutions]
    federation_roles = [
        {"role": kind, "label": kind.label, "description": FEDERATION_AREAS[kind]}
        for kind in FederationRoleKind
        if kind in actor.federation_roles
    ]
    context = {
        "institution_cards": cards,
        "federation_roles": federation_roles,
        "institution_total": institutions_for(actor).count() if actor.is_federation_admin else None,
    }
    if actor.memberships:
        context.update({
            "allocation_cards": _allocations(actor, timezone.localdate()),
            "recent_jobs": _recent_jobs(actor),
            "show_work": True,
            **live_context(),
        })
    return render(request, "portal/dashboard.html", context)
