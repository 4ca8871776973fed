"""Writes for the federation's centres: building sites, operating them, committing capacity."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.actors import Actor
from accounts.audit import audit_record
from accounts.models import FederationRoleKind, User
from allocations.models import ResourceClass
from federation.inventory import SitePlan
from federation.models import (
    AcceleratorFamily,
    Application,
    CapacityCommitment,
    Partition,
    Site,
    SiteOperator,
    SiteState,
)
from portal.errors import Conflict, PermissionDenied, ValidationFailed
from portal.events import publish_site

# Which site states an operator may move between (any other move is refused with 409).
SITE_TRANSITIONS: set[tuple[str, str]] = {
    (SiteState.ONLINE, SiteState.DRAINING),
    (SiteState.ONLINE, SiteState.OFFLINE),
    (SiteState.ONLINE, SiteState.DEGRADED),
    (SiteState.DEGRADED, SiteState.ONLINE),
    (SiteState.DEGRADED, SiteState.OFFLINE),
    (SiteState.DEGRADED, SiteState.DRAINING),
    (SiteState.DRAINING, SiteState.ONLINE),
    (SiteState.DRAINING, SiteState.OFFLINE),
    (SiteState.OFFLINE, SiteState.ONLINE),
}


def can_operate(actor: Actor, site: Site) -> bool:
    if actor.system or actor.is_federation_admin:
        return True
    if actor.user is None or not actor.has_federation_role(FederationRoleKind.SITE_OPERATOR):
        return False
    return SiteOperator.objects.filter(user=actor.user, site=site).exists()


def _require_operator(actor: Actor, site: Site) -> None:
    if not can_operate(actor, site):
        raise PermissionDenied("Only this site's operators or a federation admin can do this.",
                               code="site_operator_required")


@transaction.atomic
def site_set_state(*, actor: Actor, site: Site, state: str, reason: str = "") -> Site:
    """Drain, take offline, degrade or bring a site back online (one transition table)."""
    _require_operator(actor, site)
    site = Site.objects.select_for_update().get(pk=site.pk)
    if state not in SiteState.values:
        raise ValidationFailed("Unknown site state.", code="invalid", fields={"state": ["Unknown state."]})
    if site.state == state:
        return site
    if (site.state, state) not in SITE_TRANSITIONS:
        raise Conflict(f"A site cannot go from {site.state} to {state}.", code="illegal_transition")
    before = site.state
    site.state, site.state_reason = state, (reason or "")[:300]
    site.save(update_fields=["state", "state_reason"])
    audit_record(actor=actor, action="site.set_state", obj=site, institution=None,
                 before={"state": before}, after={"state": state, "reason": site.state_reason})
    from federation import quotas  # (quotas imports this module)

    quotas.on_site_state(actor=actor, site=site, before=before)
    publish_site(site)
    return site


@transaction.atomic
def capacity_commit(*, actor: Actor, site: Site, resource_class: ResourceClass, period_start: date,
                    period_end: date, amount_display: int) -> CapacityCommitment:
    """Set what the site commits to the federation for a period (display units, e.g. card-hours)."""
    _require_operator(actor, site)
    if period_end <= period_start:
        raise ValidationFailed("The period must end after it starts.", code="invalid_period",
                               fields={"period_end": ["After the start."]})
    if isinstance(amount_display, bool) or not isinstance(amount_display, int) or amount_display < 0:
        raise ValidationFailed("Commit a whole, non-negative amount.", code="invalid_amount",
                               fields={"amount": ["A whole number ≥ 0."]})
    if not _site_serves(site, resource_class):
        raise ValidationFailed(f"{site.code} has no partition serving {resource_class.code}.",
                               code="class_not_served", fields={"resource_class": ["Not served here."]})
    amount = amount_display * resource_class.scale
    commitment = CapacityCommitment.objects.select_for_update().filter(
        site=site, resource_class=resource_class, period_start=period_start).first()
    before = {"amount": commitment.amount, "period_end": commitment.period_end.isoformat()} if commitment else None
    if commitment is None:
        commitment = CapacityCommitment(site=site, resource_class=resource_class, period_start=period_start)
    commitment.period_end, commitment.amount, commitment.set_by = period_end, amount, actor.label[:300]
    commitment.save()
    audit_record(actor=actor, action="site.commit_capacity", obj=commitment, institution=None, before=before,
                 after={"amount": amount, "period_end": period_end.isoformat(), "class": resource_class.code})
    return commitment


def _site_serves(site: Site, resource_class: ResourceClass) -> bool:
    partitions = Partition.objects.filter(site=site)
    if resource_class.kind == "gpu":
        return partitions.filter(family=resource_class.family).exists()
    if resource_class.kind == "cpu":
        return partitions.filter(gpus_per_node=0).exists()
    return True  # every centre offers storage


@transaction.atomic
def site_operator_bind(*, actor: Actor, user: User, site: Site) -> SiteOperator:
    if not (actor.system or actor.is_federation_admin):
        raise PermissionDenied("Only a federation admin binds operators to sites.", code="federation_admin_required")
    if not user.federation_roles.filter(role=FederationRoleKind.SITE_OPERATOR).exists():
        raise ValidationFailed("That person is not a site operator.", code="not_a_site_operator")
    binding, created = SiteOperator.objects.get_or_create(user=user, site=site)
    if created:
        audit_record(actor=actor, action="site.bind_operator", obj=binding, institution=None,
                     after={"user": user.email, "site": site.code})
    return binding


@transaction.atomic
def sites_build(*, actor: Actor, plans: list[SitePlan], national_prices: dict[str, Decimal]) -> list[Site]:
    """Create or update sites and partitions from an inventory plan (idempotent by codes and names).

    ``national_prices`` maps resource class codes (cpu, gpu:<family>) to credits per unit; each
    centre's prices are those times its price factor.
    """
    if not (actor.system or actor.is_federation_admin):
        raise PermissionDenied("Only a federation admin builds sites.", code="federation_admin_required")
    families = {f.code: f for f in AcceleratorFamily.objects.all()}
    sites = []
    for plan in plans:
        profile = plan.profile
        site, created = Site.objects.update_or_create(code=profile.code, defaults={
            "name": profile.name, "city": profile.city, "exchange_rate": profile.exchange_rate})
        for p in plan.partitions:
            card_price = national_prices.get(f"gpu:{p.family}", Decimal(0)) if p.family else Decimal(0)
            Partition.objects.update_or_create(site=site, name=p.name, defaults={
                "ecosystem": p.ecosystem, "family": families.get(p.family) if p.family else None,
                "accelerator_model": p.shape.model, "nodes": p.nodes, "cores_per_node": p.shape.cores,
                "memory_mb_per_node": p.shape.memory_mb, "gpus_per_node": p.shape.gpus,
                "price_core_hour": (national_prices["cpu"] * profile.price_factor).quantize(Decimal("0.0001")),
                "price_card_hour": (card_price * profile.price_factor).quantize(Decimal("0.0001")),
            })
        audit_record(actor=actor, action="site.create" if created else "site.update", obj=site, institution=None,
                     after={"partitions": len(plan.partitions), "cards": plan.cards})
        sites.append(site)
    return sites


@transaction.atomic
def applications_publish(*, actor: Actor, catalogue: list[dict]) -> list[Application]:
    """Publish the application catalogue; each app is offered by every partition of a matching ecosystem
    at the sites listed for it (all sites when none are listed)."""
    if not (actor.system or actor.is_federation_admin):
        raise PermissionDenied("Only a federation admin publishes applications.", code="federation_admin_required")
    apps = []
    for entry in catalogue:
        app, _ = Application.objects.update_or_create(code=entry["code"], defaults={
            "name": entry["name"], "category": entry["category"], "description": entry.get("description", ""),
            "ecosystems": entry["ecosystems"]})
        partitions = Partition.objects.filter(ecosystem__in=entry["ecosystems"])
        if entry.get("sites"):
            partitions = partitions.filter(site__code__in=entry["sites"])
        app.partitions.set(partitions)
        apps.append(app)
    return apps


def heartbeat(site: Site) -> None:
    """A site adapter reports that the centre answered (not a state change: no audit row)."""
    Site.objects.filter(pk=site.pk).update(heartbeat_at=timezone.now())
