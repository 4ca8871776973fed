"""The landing page: what this person can do here, by role."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.access import audit_events_for, institutions_for, memberships_for, tokens_for
from accounts.models import FederationRoleKind, InstitutionRole
from portal.views.common import portal_actor

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
    return render(request, "portal/dashboard.html", context)
