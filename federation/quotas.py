"""Site quotas: the quota broker (``federation/broker.py``) wired into awards, centres and the router.

An award is split per resource class across the centres that serve it, within the capacity each
centre committed for the period (``CapacityCommitment`` covering the allocation's first usable day,
less what the shares of other allocations overlapping that period already take), honouring the PI's
site preferences (``AllocationRequest.site_preferences``) and the centres' prices. The shares are
``SiteQuota`` rows, one per (allocation, centre, class):

- ``proposed``: the broker placed it; the centre's operator has not answered yet. **Usable by the
  router at once** (provisionally), so an awarded project can run without waiting for the centres;
- ``accepted``: the operator accepted it as proposed, or lowered it (``modify``);
- ``declined``: the operator declined; the share keeps only what jobs had already used there and
  that centre gets no more of this class for this allocation;
- ``withdrawn``: the centre drained or went offline; its unused part was moved to other centres
  (it keeps what jobs used there; coming back does not take anything back).

Whatever a centre gives back (decline, lower amount, drain, outage) is re-brokered at once to the
other centres; what finds no capacity stays *unplaced* (awarded minus the shares) and is placed by
``broker_pending`` (after a centre comes back online, or when a federation admin asks). A PI moves
unused quota between centres with ``quota_transfer`` (refused with ``site_capacity_exhausted`` when
the target centre has no committed capacity left).

Every step writes ``quota`` ledger entries (signed units placed at or taken from the centre named in
``site_code``; zero for an acceptance; the award's balances do not move) and an audit event.

Amounts are smallest units (core-seconds, card-seconds, GB-days), as in the ledger and the
commitments. A share's *used* part is what the allocation's jobs at that centre hold (live jobs) and
were charged (finished jobs): its ``held``/``charged`` counters, kept by the ledger's ``quota_usage``
signal as holds are placed at a centre and settled, so no read ever sums a project's job history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from accounts.actors import Actor, system_actor
from accounts.audit import audit_record
from accounts.models import FederationRoleKind
from allocations.ledger import record_quota_moves, to_display
from allocations.models import Allocation, AllocationBalance, AllocationRequest, AllocationState, ResourceClass
from federation import broker
from federation.models import CapacityCommitment, Partition, Site, SiteQuota, SiteState
from federation.routing.model import CHINA_UTC_OFFSET_S, PERMILLE, SECONDS_PER_HOUR
from federation.routing.pricing import utc_hour, utc_hour_multipliers
from federation.services import can_operate
from portal.errors import Conflict, PermissionDenied, ValidationFailed

Q_ = SiteQuota.State
LIVE = (Q_.PROPOSED, Q_.ACCEPTED)  # shares the router may use


# --- reads ---------------------------------------------------------------------------------------
def usage(allocation_ids: Iterable[int], *, finished_only: bool = False) -> dict[tuple[int, int, int], int]:
    """(allocation, site, class) → units its jobs there hold (live jobs) and were charged (finished ones),
    from the shares' counters. ``finished_only``: the charges only (a centre going offline: its live jobs
    are re-routed and take their holds with them)."""
    rows = SiteQuota.objects.filter(allocation_id__in=list(allocation_ids)).values_list(
        "allocation_id", "site_id", "resource_class_id", "held", "charged")
    return {(a, s, c): charged + (0 if finished_only else held) for a, s, c, held, charged in rows}


def _on_usage(sender, *, allocation_id: int, resource_class_id: int, site_ref: int, held: int, charged: int,
              **kwargs) -> None:
    """Receiver of ``allocations.signals.quota_usage``: keep the share's counters (one UPDATE). Use at a
    centre where the allocation has no share row (none was ever brokered there) gets a withdrawn row of 0."""
    share = SiteQuota.objects.filter(allocation_id=allocation_id, site_id=site_ref, resource_class_id=resource_class_id)
    if share.update(held=F("held") + held, charged=F("charged") + charged):
        return
    try:
        with transaction.atomic():  # a savepoint: a concurrent first use may create the row first
            SiteQuota.objects.create(allocation_id=allocation_id, site_id=site_ref,
                                     resource_class_id=resource_class_id, amount=0, state=Q_.WITHDRAWN,
                                     held=max(0, held), charged=max(0, charged),
                                     reason="used without a brokered share")
    except IntegrityError:  # it did (site_quota_unique): add to its row instead
        share.update(held=F("held") + held, charged=F("charged") + charged)


def _period_day(allocation: Allocation) -> date:
    """The day whose commitments an allocation is brokered against: its first usable day."""
    return max(allocation.start, timezone.localdate())


def _prices(site_ids: Iterable[int], classes: Iterable[ResourceClass]) -> dict[tuple[int, int], int]:
    """(site, class) → the centre's cheapest price for the class, credit milli-units per unit."""
    by_code = {rc.code: rc for rc in classes}
    prices: dict[tuple[int, int], int] = {}
    for p in Partition.objects.filter(site_id__in=list(site_ids)).select_related("family"):
        rc = by_code.get(f"gpu:{p.family.code}" if p.family_id else "cpu")
        if rc is None:
            continue
        price = int((p.price_card_hour if p.family_id else p.price_core_hour) * 1000)
        key = (p.site_id, rc.pk)
        prices[key] = min(price, prices.get(key, price))
    storage = by_code.get("storage")
    if storage is not None:
        for site_id in site_ids:
            prices[(site_id, storage.pk)] = int(storage.credits_per_unit * 1000)
    return prices


@dataclass
class _World:
    """What the broker needs about one allocation: its shares, the centres' offers and its demand."""

    allocation: Allocation
    classes: dict[int, ResourceClass]  # by pk
    rows: dict[tuple[int, int], SiteQuota]  # (site, class) → this allocation's row
    used: dict[tuple[int, int], int]  # (site, class) → used by this allocation's jobs
    offers: list[broker.SiteOffer]
    sites: dict[int, Site]
    gap: dict[int, int]  # class → awarded − Σ shares (not yet placed)
    preferences: list[str]

    def shares(self) -> list[broker.Share]:
        return [broker.Share(site_id, self.classes[c].code, row.amount, self.sites[site_id].code,
                             min(row.amount, self.used.get((site_id, c), 0)))
                for (site_id, c), row in sorted(self.rows.items()) if row.state in LIVE]

    def class_by_code(self, code: str) -> ResourceClass:
        return next(rc for rc in self.classes.values() if rc.code == code)


def _world(allocation: Allocation, *, own_in_offers: bool, preferences: list[str] | None = None) -> _World:
    """Lock the allocation's shares and the commitments it is brokered against, and build the offers.

    ``own_in_offers``: count this allocation's own shares in ``already_brokered`` (fresh brokering of a
    remainder) or not (``rebroker``/``rebalance``, which account for the plan's own shares themselves).
    """
    balances = {b.resource_class_id: b.awarded for b in AllocationBalance.objects.filter(allocation=allocation)}
    classes = {rc.pk: rc for rc in ResourceClass.objects.filter(pk__in=list(balances))}
    rows = {(q.site_id, q.resource_class_id): q
            for q in SiteQuota.objects.select_for_update().filter(allocation=allocation).order_by("pk")}
    day = _period_day(allocation)
    commitments = list(CapacityCommitment.objects.select_for_update().filter(
        resource_class_id__in=list(classes), period_start__lte=day, period_end__gt=day).order_by("pk"))
    sites = {s.pk: s for s in Site.objects.filter(Q(pk__in={c.site_id for c in commitments})
                                                  | Q(pk__in={k[0] for k in rows}))}
    others: dict[tuple[int, int], int] = defaultdict(int)
    if commitments:
        periods = {(c.site_id, c.resource_class_id): c for c in commitments}
        taken = (SiteQuota.objects.filter(site_id__in={c.site_id for c in commitments},
                                          resource_class_id__in=list(classes))
                 .exclude(allocation=allocation)
                 .values_list("site_id", "resource_class_id", "allocation__start", "allocation__end", "amount"))
        for site_id, class_id, start, end, amount in taken:
            c = periods.get((site_id, class_id))
            if c is not None and start < c.period_end and end >= c.period_start:
                others[(site_id, class_id)] += amount
    prices = _prices(sites, classes.values())
    offers = []
    for c in commitments:
        key = (c.site_id, c.resource_class_id)
        own = rows.get(key)
        if own is not None and own.state == Q_.DECLINED:
            continue  # the centre said no to this class for this allocation
        brokered = others[key] + (own.amount if own_in_offers and own is not None else 0)
        offers.append(broker.SiteOffer(c.site_id, sites[c.site_id].code, classes[c.resource_class_id].code,
                                       c.amount, brokered, prices.get(key, 0), sites[c.site_id].state))
    used = {(s, c): u for (_a, s, c), u in usage([allocation.pk]).items()}
    placed: dict[int, int] = defaultdict(int)
    for (_s, c), row in rows.items():
        placed[c] += row.amount
    gap = {c: max(0, awarded - placed[c]) for c, awarded in balances.items()}
    if preferences is None:
        preferences = list(allocation.origin.site_preferences or [])
    return _World(allocation, classes, rows, used, offers, sites, gap, preferences)


# --- applying a plan --------------------------------------------------------------------------------
def _apply(actor: Actor, world: _World, plan: broker.BrokerPlan, *, memo: str,
           fixed: dict[tuple[int, int], tuple[int, str]] | None = None) -> list[tuple[str, str, int]]:
    """Write the plan's amounts: rows that grow become ``proposed`` again (their centre answers the new
    amount); ``fixed`` rows get the amount and state the caller decided. Ledger entries for every change.
    Returns the moves (class, site, signed units)."""
    fixed = fixed or {}
    new_amounts = {(s.site_id, world.class_by_code(s.resource_class).pk): s.amount for s in plan.shares}
    moves, ledger_moves = [], []
    for key in sorted(set(new_amounts) | set(fixed)):
        site_id, class_id = key
        row = world.rows.get(key)
        old = row.amount if row is not None else 0
        if key in fixed:
            amount, state = fixed[key]
        else:
            amount = new_amounts[key]
            if amount <= old:
                continue  # unchanged (only the caller's fixed rows shrink)
            state = Q_.PROPOSED
        if row is None:
            row = SiteQuota(allocation=world.allocation, site_id=site_id, resource_class_id=class_id, amount=0)
            world.rows[key] = row
        row.amount = amount
        if state == Q_.PROPOSED and key not in fixed:
            row.proposed_amount, row.decided_by, row.decided_at, row.reason = amount, "", None, ""
        row.state = state
        row.save()
        delta = amount - old
        if delta:
            rc = world.classes[class_id]
            code = world.sites[site_id].code
            moves.append((rc.code, code, delta))
            ledger_moves.append((rc, code, delta, memo))
    record_quota_moves(actor=actor, allocation=world.allocation, moves=ledger_moves)
    return moves


def _summary(world: _World, plan: broker.BrokerPlan | None = None) -> dict:
    shares: dict[str, dict[str, int]] = defaultdict(dict)
    for (site_id, class_id), row in sorted(world.rows.items()):
        if row.state in LIVE:
            shares[world.classes[class_id].code][world.sites[site_id].code] = row.amount
    out = {"allocation": world.allocation.pk, "shares": dict(shares)}
    if plan is not None:
        out["unplaced"] = {c: n for c, n in plan.unplaced.items() if n}
        out["explanation"] = list(plan.explanation)[:20]
    return out



# --- brokering -------------------------------------------------------------------------------------
def _lock_allocation(allocation: Allocation) -> Allocation:
    return Allocation.objects.select_for_update(of=("self",)).select_related("origin").get(pk=allocation.pk)


@transaction.atomic
def broker_allocation(*, actor: Actor, allocation: Allocation, request: AllocationRequest | None = None,
                      reason: str = "award") -> dict:
    """Place what of the allocation's award has no share yet (all of it at the award) at the centres.

    Called in the award's transaction (the ``allocation_awarded`` hook), by ``broker_pending`` and by
    the seed. Returns the summary written to the audit log (shares, unplaced, the broker's explanation).
    """
    allocation = _lock_allocation(allocation)
    preferences = list(request.site_preferences) if request is not None and request.site_preferences else None
    world = _world(allocation, own_in_offers=True, preferences=preferences)
    demand = [broker.ClassDemand(world.classes[c].code, n) for c, n in sorted(world.gap.items()) if n > 0]
    if not demand:
        return _summary(world)
    plan = broker.broker(demand, world.offers, world.preferences)
    totals = []  # the plan places the remainder: a centre's new share is what it had plus its part
    for share in plan.shares:
        row = world.rows.get((share.site_id, world.class_by_code(share.resource_class).pk))
        totals.append(broker.Share(share.site_id, share.resource_class,
                                   share.amount + (row.amount if row is not None else 0), share.site_code))
    moves = _apply(actor, world, broker.BrokerPlan(tuple(totals), plan.unplaced, plan.objective, plan.cost),
                   memo=f"brokered ({reason})")
    summary = _summary(world, plan)
    audit_record(actor=actor, action="quota.broker", obj=allocation, institution=allocation.institution_id,
                 after={**summary, "reason": reason, "moves": moves})
    return summary


def _on_award(sender, *, actor: Actor, allocation: Allocation, request: AllocationRequest, amounts: dict,
              **kwargs) -> None:
    """Receiver of ``allocations.signals.allocation_awarded`` (connected in ``FederationConfig.ready``)."""
    broker_allocation(actor=actor, allocation=allocation, request=request, reason=f"award of request #{request.pk}")


def allocations_with_unplaced(class_ids: Iterable[int] | None = None) -> list[int]:
    """Active allocations (not yet ended) whose award is not fully placed at centres."""
    today = timezone.localdate()
    balances = AllocationBalance.objects.filter(allocation__state=AllocationState.ACTIVE, allocation__end__gte=today,
                                                awarded__gt=0)
    if class_ids is not None:
        balances = balances.filter(resource_class_id__in=list(class_ids))
    awarded = {(b.allocation_id, b.resource_class_id): b.awarded for b in balances}
    if not awarded:
        return []
    placed: dict[tuple[int, int], int] = defaultdict(int)
    rows = SiteQuota.objects.filter(allocation_id__in={a for a, _ in awarded}).values_list(
        "allocation_id", "resource_class_id").annotate(total=Sum("amount"))
    for a, c, total in rows:
        placed[(a, c)] = total or 0
    return sorted({a for (a, c), amount in awarded.items() if amount > placed[(a, c)]})


def broker_pending(*, actor: Actor, class_ids: Iterable[int] | None = None) -> list[int]:
    """Broker the unplaced part of every active allocation (after capacity came back or was committed)."""
    if not (actor.system or actor.is_federation_admin or actor.has_federation_role(FederationRoleKind.COMMITTEE)):
        raise PermissionDenied("Only the committee or a federation admin runs the broker.", code="committee_required")
    pending = allocations_with_unplaced(class_ids)
    for allocation_id in pending:
        broker_allocation(actor=actor, allocation=Allocation(pk=allocation_id), reason="pending")
    return pending


# --- a centre answers --------------------------------------------------------------------------------
RESPONSES = (broker.ACCEPT, broker.MODIFY, broker.DECLINE)


@transaction.atomic
def quota_respond(*, actor: Actor, quota: SiteQuota, action: str, amount: int | None = None,
                  reason: str = "") -> SiteQuota:
    """The centre's operator (or a federation admin) accepts, lowers (``modify``, ``amount`` in display
    units: core-hours, card-hours, TB-days) or declines a proposed share; what it gives back is
    re-brokered to the other centres at once."""
    if action not in RESPONSES:
        raise ValidationFailed("Answer accept, modify or decline.", code="invalid",
                               fields={"action": ["accept, modify or decline."]})
    site = Site.objects.get(pk=quota.site_id)
    if not can_operate(actor, site):
        raise PermissionDenied("Only this centre's operators or a federation admin answer its shares.",
                               code="site_operator_required")
    allocation = _lock_allocation(Allocation(pk=quota.allocation_id))
    world = _world(allocation, own_in_offers=False)
    key = (quota.site_id, quota.resource_class_id)
    row = world.rows[key]
    if row.state != Q_.PROPOSED:
        raise Conflict("Only a proposed share can be answered.", code="quota_not_pending")
    rc = world.classes[row.resource_class_id]
    used = min(row.amount, world.used.get(key, 0))
    reason = (reason or "").strip()[:500]
    if action == broker.ACCEPT:
        keep, state = row.amount, Q_.ACCEPTED
    elif action == broker.MODIFY:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValidationFailed("Name the amount the centre accepts.", code="invalid",
                                   fields={"amount": ["A whole number ≥ 0 (display units)."]})
        units = amount * rc.scale
        if units >= row.amount:
            raise ValidationFailed("A modification lowers the share (decline or accept otherwise).",
                                   code="quota_modify_not_lower",
                                   fields={"amount": [f"Below {to_display(rc, row.amount)}."]})
        keep, state = max(units, used), Q_.ACCEPTED
    else:
        if not reason:
            raise ValidationFailed("Say why the centre declines.", code="reason_required",
                                   fields={"reason": ["Required."]})
        keep, state = used, Q_.DECLINED
    before = {"state": row.state, "amount": row.amount}
    row.decided_by, row.decided_at, row.reason = actor.label[:300], timezone.now(), reason
    moves: list[tuple[str, str, int]] = []
    if action == broker.ACCEPT:
        row.state = Q_.ACCEPTED
        row.save()
        memo = f"{site.code} accepted its share" + (f": {reason}" if reason else "")
        record_quota_moves(actor=actor, allocation=allocation, moves=[(rc, site.code, 0, memo)])
        plan = None
    else:
        response = broker.SiteResponse(row.site_id, rc.code, action, keep if action == broker.MODIFY else None)
        current = broker.BrokerPlan(tuple(world.shares()), {world.classes[c].code: n for c, n in world.gap.items()},
                                    0.0, 0)
        plan = broker.rebroker(current, [response], world.offers, world.preferences)
        verb = "lowered" if action == broker.MODIFY else "declined"
        moves = _apply(actor, world, plan, memo=f"{site.code} {verb} its share; re-brokered",
                       fixed={key: (keep, state)})
    audit_record(actor=actor, action=f"quota.{action}", obj=row, institution=allocation.institution_id,
                 before=before, after={"state": row.state, "amount": row.amount, "reason": reason,
                                       "rebrokered": moves, **({"unplaced": {c: n for c, n in plan.unplaced.items()
                                                                             if n}} if plan else {})})
    return row


# --- a centre leaves ----------------------------------------------------------------------------------
def rebalance_site(*, actor: Actor, site: Site) -> list[int]:
    """The centre drains or goes offline: move the unused part of its live shares to other centres
    (jobs already there keep what they hold or were charged). A drained centre going offline also gives
    up what its running jobs held (they are re-routed with their holds). Returns the allocations touched."""
    allocation_ids = sorted(set(SiteQuota.objects.filter(site=site, state__in=_leaving_states(site),
                                                         amount__gt=0).values_list("allocation_id", flat=True)))
    for allocation_id in allocation_ids:
        _rebalance_one(actor, Allocation(pk=allocation_id), site)
    return allocation_ids


def _leaving_states(site: Site) -> tuple[str, ...]:
    return (*LIVE, Q_.WITHDRAWN) if site.state == SiteState.OFFLINE else LIVE


def _rebalance_one(actor: Actor, allocation: Allocation, site: Site) -> None:
    allocation = _lock_allocation(allocation)
    world = _world(allocation, own_in_offers=False)
    leaving = {key: row for key, row in world.rows.items()
               if key[0] == site.pk and row.state in _leaving_states(site) and row.amount > 0}
    if not leaving:
        return
    if site.state == SiteState.OFFLINE:
        # Jobs at an offline centre are lost and re-routed with their holds: only charges stay there.
        finished = usage([allocation.pk], finished_only=True)
        for key in leaving:
            world.used[key] = finished.get((allocation.pk, *key), 0)
    current = world.shares() + [  # (shares withdrawn when the centre drained: their running jobs' part)
        broker.Share(key[0], world.classes[key[1]].code, row.amount, site.code, min(row.amount, world.used[key]))
        for key, row in leaving.items() if row.state == Q_.WITHDRAWN]
    plan = broker.rebalance(current, {site.pk}, world.offers, world.preferences)
    fixed = {}
    for key, row in leaving.items():
        used = min(row.amount, world.used.get(key, 0))
        fixed[key] = (used, Q_.WITHDRAWN if used < row.amount else row.state)
    before = _summary(world)
    moves = _apply(actor, world, plan, memo=f"{site.code} is {site.state}: unused share moved", fixed=fixed)
    for key in leaving:
        if world.rows[key].state == Q_.WITHDRAWN:
            SiteQuota.objects.filter(pk=world.rows[key].pk).update(
                reason=f"{site.state}: {site.state_reason}"[:500], decided_by=actor.label[:300],
                decided_at=timezone.now())
    audit_record(actor=actor, action="quota.rebalance", obj=allocation, institution=allocation.institution_id,
                 before=before, after={**_summary(world, plan), "site": site.code, "state": site.state,
                                       "moves": moves})


def on_site_state(*, actor: Actor, site: Site, before: str) -> None:
    """Called by ``services.site_set_state`` in its transaction."""
    if site.state == SiteState.OFFLINE or (site.state == SiteState.DRAINING and before in broker.ACCEPTING_STATES):
        rebalance_site(actor=actor, site=site)
    elif site.state in broker.ACCEPTING_STATES and before not in broker.ACCEPTING_STATES:
        # Back: nothing is taken back from the centres that covered for it; only what found no place
        # during the outage is brokered now.
        broker_pending(actor=system_actor())


# --- a PI moves quota ------------------------------------------------------------------------------
@transaction.atomic
def quota_transfer(*, actor: Actor, allocation: Allocation, resource_class: ResourceClass, from_site: Site,
                   to_site: Site, amount: int, reason: str = "") -> tuple[SiteQuota, SiteQuota]:
    """Move ``amount`` display units of unused quota from one centre to another. Applied only if the
    target centre accepts new shares and has committed capacity left for the period; the moved part is
    proposed to the target centre (usable at once, like any proposed share)."""
    from allocations.workflow import acts_for_pi

    if not (acts_for_pi(actor, allocation.project) or actor.is_federation_admin
            or actor.has_federation_role(FederationRoleKind.COMMITTEE)):
        raise PermissionDenied("Only the project's PI moves quota between centres.", code="pi_required")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationFailed("Move a whole, positive amount.", code="invalid_amount",
                               fields={"amount": ["A whole number > 0 (display units)."]})
    if from_site.pk == to_site.pk:
        raise ValidationFailed("Choose two different centres.", code="invalid_transfer",
                               fields={"to_site": ["Another centre."]})
    allocation = _lock_allocation(allocation)
    if allocation.state != AllocationState.ACTIVE or allocation.end < timezone.localdate():
        raise Conflict("The allocation is not active.", code="allocation_not_active")
    world = _world(allocation, own_in_offers=True)
    units = amount * resource_class.scale
    source_key, target_key = (from_site.pk, resource_class.pk), (to_site.pk, resource_class.pk)
    source = world.rows.get(source_key)
    unused = 0 if source is None or source.state not in LIVE else source.amount - min(
        source.amount, world.used.get(source_key, 0))
    if unused < units:
        raise Conflict(f"{from_site.code} holds {to_display(resource_class, unused)} unused "
                       f"{resource_class.unit}s of this allocation.", code="quota_insufficient_unused")
    target = world.rows.get(target_key)
    if target is not None and target.state == Q_.DECLINED:
        raise Conflict(f"{to_site.code} declined this allocation's {resource_class.code}.",
                       code="site_declined_quota")
    offer = next((o for o in world.offers if (o.site_id, o.resource_class) == (to_site.pk, resource_class.code)), None)
    if offer is None or not offer.accepting:
        raise Conflict(f"{to_site.code} takes no new {resource_class.code} shares now.", code="site_not_accepting")
    if offer.remaining < units:
        raise Conflict(f"{to_site.code} has {to_display(resource_class, offer.remaining)} {resource_class.unit}s of "
                       f"committed capacity left.", code="site_capacity_exhausted")
    reason = (reason or "").strip()[:300]
    before = _summary(world)
    target_amount = (target.amount if target is not None else 0) + units
    shares = {(s.site_id, world.class_by_code(s.resource_class).pk): s for s in world.shares()}
    shares[target_key] = broker.Share(to_site.pk, resource_class.code, target_amount, to_site.code)
    plan = broker.BrokerPlan(tuple(shares.values()), {}, 0.0, 0)
    memo = f"transfer {from_site.code} → {to_site.code}" + (f": {reason}" if reason else "")
    _apply(actor, world, plan, memo=memo, fixed={source_key: (source.amount - units, source.state)})
    audit_record(actor=actor, action="quota.transfer", obj=allocation, institution=allocation.institution_id,
                 before=before, after={**_summary(world), "class": resource_class.code, "from": from_site.code,
                                       "to": to_site.code, "units": units, "reason": reason})
    return world.rows[source_key], world.rows[target_key]


# --- the router's view ---------------------------------------------------------------------------
def remaining_credits_by_site(allocation: Allocation, partitions: Iterable[Partition], now: datetime,
                              kinds: set[str] | None = None) -> dict[int, int]:
    """The allocation's remaining brokered quota per centre, in the router's unit (credit milli-units at
    the price in force ``now``). One query: the live shares with their use counters (what the
    allocation's jobs at that centre hold and were charged, kept by the ledger: no job history is read).

    Per (centre, class): ``remaining = share − used`` in unit-seconds, converted at the centre's
    cheapest price for the class × its peak/valley multiplier now — the router prices a job as
    ``units × price × multiplier``, so a CPU job fits a centre's quota exactly when its core-seconds
    fit the remaining share. A GPU job's router cost also prices its cores while the hold counts cards
    only, so GPU shares convert at the card price alone: a centre's GPU share is never overrun (a job
    whose cores tip it over goes to another centre). ``kinds`` ({"cpu", "gpu"}: the kinds of the jobs
    being routed) leaves out the classes those jobs cannot use.
    """
    shares = list(SiteQuota.objects.filter(allocation=allocation, state__in=LIVE, amount__gt=0).values_list(
        "site_id", "resource_class__code", "amount", "held", "charged"))
    quota: dict[int, int] = {}
    if not shares:
        return quota
    rates: dict[tuple[int, str], int] = {}
    multipliers: dict[int, int] = {}
    hour = utc_hour(now)
    for p in partitions:
        code = f"gpu:{p.family.code}" if p.family_id else "cpu"
        price = int((p.price_card_hour if p.family_id else p.price_core_hour) * 1000)
        key = (p.site_id, code)
        rates[key] = min(price, rates.get(key, price))
        if p.site_id not in multipliers:
            schedule = tuple((e["start_hour"] % 24, e["end_hour"] % 24, e["multiplier_permille"])
                             for e in p.site.price_schedule)
            multipliers[p.site_id] = utc_hour_multipliers(schedule, CHINA_UTC_OFFSET_S)[hour]
    for site_id, code, amount, held, charged in shares:
        if kinds is not None and code.split(":", 1)[0] not in kinds:
            continue
        rate = rates.get((site_id, code))
        if rate is None:
            continue  # storage, or a class the centre's partitions do not serve
        remaining = max(0, amount - held - charged)
        credits = remaining * rate * multipliers[site_id] // (SECONDS_PER_HOUR * PERMILLE)
        quota[site_id] = quota.get(site_id, 0) + credits
    return quota


# --- for portal pages and the API -----------------------------------------------------------------------
def share_used(quotas: list[SiteQuota]) -> dict[int, int]:
    """quota pk → units its allocation's jobs hold or were charged at its centre (its counters: no query)."""
    return {q.pk: q.held + q.charged for q in quotas}
