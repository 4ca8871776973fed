"""The ledger: awards, holds, charges, releases, refunds, transfers, adjustments.

Every function writes append-only ``LedgerEntry`` rows and moves the matching
``AllocationBalance`` column in the same transaction. Locking discipline:

- a hold is one conditional UPDATE (``... WHERE awarded >= held + charged + x``): atomic in
  PostgreSQL without an explicit lock, and refused (0 rows) when it would overspend;
- operations touching several balance rows lock them with ``select_for_update`` in primary-key
  order, so concurrent writers cannot deadlock;
- the CHECK constraint ``balance_never_negative`` is the last line: a bug cannot overspend.

Amounts here are integer smallest units (see ``ResourceClass.scale``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.actors import Actor, system_actor
from accounts.audit import audit_record
from allocations.models import (
    Allocation,
    AllocationBalance,
    AllocationRequest,
    AllocationState,
    Hold,
    LedgerEntry,
    LedgerKind,
    ResourceClass,
)
from allocations.signals import quota_usage
from portal.errors import Conflict, PermissionDenied, ValidationFailed
from portal.events import publish_balances


def to_smallest(resource_class: ResourceClass, display_amount: int | Decimal) -> int:
    return int(Decimal(display_amount) * resource_class.scale)


def to_display(resource_class: ResourceClass, units: int) -> Decimal:
    return (Decimal(units) / resource_class.scale).quantize(Decimal("0.01"))


def _entry(
    allocation: Allocation, resource_class: ResourceClass, kind: str, amount: int, actor: Actor, **extra
) -> LedgerEntry:
    return LedgerEntry.objects.create(
        allocation=allocation,
        resource_class=resource_class,
        kind=kind,
        amount=amount,
        actor_label=actor.label[:300],
        **extra,
    )


def _publish_balance(allocation: Allocation, resource_class: ResourceClass, kind: str) -> None:
    publish_balances(allocation, [resource_class.pk])


def _locked_balance(allocation: Allocation, resource_class: ResourceClass) -> AllocationBalance:
    balance, _ = AllocationBalance.objects.get_or_create(allocation=allocation, resource_class=resource_class)
    return AllocationBalance.objects.select_for_update().get(pk=balance.pk)


def _require_usable(allocation: Allocation) -> None:
    today = timezone.localdate()
    if allocation.state != AllocationState.ACTIVE or not (allocation.start <= today <= allocation.end):
        raise Conflict("The allocation is not active today.", code="allocation_not_active")


@transaction.atomic
def ledger_award(
    *, actor: Actor, allocation: Allocation, amounts: dict[str, int], request: AllocationRequest | None
) -> list[LedgerEntry]:
    """Credit awarded display amounts ({class code: units}) to an allocation."""
    classes = {rc.code: rc for rc in ResourceClass.objects.filter(code__in=amounts)}
    entries = []
    for code in sorted(amounts):
        rc = classes[code]
        units = to_smallest(rc, amounts[code])
        if units <= 0:
            continue
        balance = _locked_balance(allocation, rc)
        balance.awarded = F("awarded") + units
        balance.save(update_fields=["awarded"])
        entries.append(
            _entry(
                allocation,
                rc,
                LedgerKind.AWARD,
                units,
                actor,
                request=request,
                memo=f"award of {amounts[code]} {rc.unit}",
            )
        )
        _publish_balance(allocation, rc, LedgerKind.AWARD)
    return entries


@transaction.atomic
def place_hold(
    *, allocation: Allocation, resource_class: ResourceClass, amount: int, job_ref: str, actor: Actor | None = None,
    site_ref: int | None = None,
) -> Hold:
    """Reserve ``amount`` smallest units for a job (at the centre ``site_ref``); refused with 409 if the
    balance is short."""
    actor = actor or system_actor()
    if amount <= 0:
        raise ValidationFailed("A hold must be positive.", code="invalid_amount")
    _require_usable(allocation)
    moved = AllocationBalance.objects.filter(
        allocation=allocation,
        resource_class=resource_class,
        awarded__gte=F("held") + F("charged") + amount,
    ).update(held=F("held") + amount)
    if moved != 1:
        raise Conflict(
            f"Not enough {resource_class.code} left in allocation #{allocation.pk}.", code="insufficient_balance"
        )
    hold = Hold.objects.create(allocation=allocation, resource_class=resource_class, amount=amount,
                               remaining=amount, job_ref=job_ref, site_ref=site_ref)
    if site_ref is not None:
        quota_usage.send(sender=Hold, allocation_id=allocation.pk, resource_class_id=resource_class.pk,
                         site_ref=site_ref, held=amount, charged=0)
    _entry(allocation, resource_class, LedgerKind.HOLD, amount, actor, hold=hold, job_ref=job_ref)
    _publish_balance(allocation, resource_class, LedgerKind.HOLD)
    return hold


@dataclass(frozen=True)
class HoldRequest:
    """One hold of a batch: ``amount`` smallest units of ``resource_class`` (at the centre ``site_ref``)."""

    resource_class: ResourceClass
    amount: int
    job_ref: str
    site_ref: int | None = None


@transaction.atomic
def place_holds(*, allocation: Allocation, requests: list[HoldRequest], actor: Actor | None = None
                ) -> list[Hold | Conflict]:
    """Place several holds (a batch's, one per centre and class) as ``place_hold`` would one after the
    other, in a handful of statements: per class one conditional UPDATE of the balance for the class's
    total, then the holds and their ledger entries inserted together. A class whose total does not fit
    falls back to one ``place_hold`` at a time in the given order, so exactly the holds that would have
    fitted are placed. Returns, per request, its Hold or the Conflict that refused it. Balance rows are
    updated in class order, so concurrent batches cannot deadlock on them."""
    actor = actor or system_actor()
    if any(r.amount <= 0 for r in requests):
        raise ValidationFailed("A hold must be positive.", code="invalid_amount")
    try:
        _require_usable(allocation)
    except Conflict as exc:
        return [exc] * len(requests)
    by_class: dict[int, list[int]] = {}
    for i, r in enumerate(requests):
        by_class.setdefault(r.resource_class.pk, []).append(i)
    by_class = dict(sorted(by_class.items()))
    out: list[Hold | Conflict | None] = [None] * len(requests)
    together: list[int] = []
    for indexes in by_class.values():
        rc = requests[indexes[0]].resource_class
        total = sum(requests[i].amount for i in indexes)
        moved = AllocationBalance.objects.filter(
            allocation=allocation, resource_class=rc, awarded__gte=F("held") + F("charged") + total,
        ).update(held=F("held") + total)
        if moved == 1:
            together.extend(indexes)
            continue
        for i in indexes:  # not all of them fit: as many as place_hold one after the other would place
            r = requests[i]
            try:
                with transaction.atomic():
                    out[i] = place_hold(allocation=allocation, resource_class=r.resource_class, amount=r.amount,
                                        job_ref=r.job_ref, actor=actor, site_ref=r.site_ref)
            except Conflict as exc:
                out[i] = exc
    together.sort()
    holds = Hold.objects.bulk_create([
        Hold(allocation=allocation, resource_class=requests[i].resource_class, amount=requests[i].amount,
             remaining=requests[i].amount, job_ref=requests[i].job_ref, site_ref=requests[i].site_ref)
        for i in together])
    for i, hold in zip(together, holds, strict=True):
        out[i] = hold
        if hold.site_ref is not None:
            quota_usage.send(sender=Hold, allocation_id=allocation.pk, resource_class_id=hold.resource_class_id,
                             site_ref=hold.site_ref, held=hold.amount, charged=0)
    LedgerEntry.objects.bulk_create([
        LedgerEntry(allocation=allocation, resource_class=hold.resource_class, kind=LedgerKind.HOLD,
                    amount=hold.amount, actor_label=actor.label[:300], hold=hold, job_ref=hold.job_ref)
        for hold in holds])
    for indexes in by_class.values():
        if any(isinstance(out[i], Hold) for i in indexes):
            _publish_balance(allocation, requests[indexes[0]].resource_class, LedgerKind.HOLD)
    return out


def _lock_open_hold(hold: Hold) -> Hold | None:
    hold = Hold.objects.select_for_update(of=("self",)).select_related("allocation", "resource_class").get(pk=hold.pk)
    return hold if hold.state == Hold.State.OPEN else None


@dataclass(frozen=True)
class PartUse:
    """One job's part of a hold and what it actually used (smallest units); actual None: release."""

    part: int
    actual: int | None
    job_ref: str


@transaction.atomic
def settle_parts(*, hold: Hold, uses: list[PartUse], actor: Actor | None = None) -> list[int]:
    """Close several jobs' parts of one (aggregated) hold in one transaction: charge each job's
    actual use and release the rest of its part, or release the part untouched (actual None).
    Returns what each was charged. A job that used more than its part is charged the excess only
    as far as the balance allows; the rest is written off in the memo (usage is never lost,
    balances never negative). Parts beyond what the hold still holds are capped, so a retried
    settlement cannot release twice (callers also guard by the job's own state)."""
    actor = actor or system_actor()
    if any(u.part < 0 or (u.actual is not None and u.actual < 0) for u in uses):
        raise ValidationFailed("Amounts cannot be negative.", code="invalid_amount")
    locked = _lock_open_hold(hold)
    if locked is None:
        return [0] * len(uses)
    hold = locked
    balance = AllocationBalance.objects.select_for_update().get(allocation=hold.allocation,
                                                                resource_class=hold.resource_class)
    available = balance.awarded - balance.held - balance.charged
    charges, entries = [], []
    released_total = charged_total = 0
    for use in uses:
        part = min(use.part, hold.remaining - released_total)
        released_total += part
        available += part
        charge = 0 if use.actual is None else min(use.actual, available)
        available -= charge
        charged_total += charge
        charges.append(charge)
        common = {"allocation": hold.allocation, "resource_class": hold.resource_class, "hold": hold,
                  "job_ref": use.job_ref, "actor_label": actor.label[:300]}
        if part:
            entries.append(LedgerEntry(kind=LedgerKind.RELEASE, amount=-part, **common))
        if charge:
            memo = "" if charge == use.actual else (
                f"used {use.actual}, balance allowed {charge}; {use.actual - charge} written off")
            entries.append(LedgerEntry(kind=LedgerKind.CHARGE, amount=charge, memo=memo, **common))
    balance.held -= released_total
    balance.charged += charged_total
    balance.save(update_fields=["held", "charged"])
    hold.remaining -= released_total
    if hold.remaining == 0:
        hold.state = Hold.State.SETTLED
        hold.closed_at = timezone.now()
    hold.save(update_fields=["remaining", "state", "closed_at"])
    LedgerEntry.objects.bulk_create(entries)
    if hold.site_ref is not None and (released_total or charged_total):
        quota_usage.send(sender=Hold, allocation_id=hold.allocation_id, resource_class_id=hold.resource_class_id,
                         site_ref=hold.site_ref, held=-released_total, charged=charged_total)
    _publish_balance(hold.allocation, hold.resource_class, LedgerKind.CHARGE)
    return charges


def settle(*, hold: Hold, actual: int, actor: Actor | None = None) -> int:
    """Charge a single-job hold's actual use and release the rest. Idempotent: a closed hold
    is left alone (returns 0). Returns the amount charged."""
    if actual < 0:
        raise ValidationFailed("Actual use cannot be negative.", code="invalid_amount")
    return settle_parts(hold=hold, uses=[PartUse(hold.remaining, actual, hold.job_ref)], actor=actor)[0]


@transaction.atomic
def release(*, hold: Hold, actor: Actor | None = None) -> None:
    """Give a hold back untouched (job cancelled before it ran). Idempotent."""
    locked = _lock_open_hold(hold)
    if locked is None:
        return
    settle_parts(hold=locked, uses=[PartUse(locked.remaining, None, locked.job_ref)], actor=actor)
    Hold.objects.filter(pk=locked.pk).update(state=Hold.State.RELEASED)


@transaction.atomic
def refund(
    *,
    allocation: Allocation,
    resource_class: ResourceClass,
    amount: int,
    job_ref: str,
    memo: str,
    actor: Actor | None = None,
) -> LedgerEntry:
    """Give back charged units (e.g. a job lost to a site fault)."""
    actor = actor or system_actor()
    moved = AllocationBalance.objects.filter(
        allocation=allocation, resource_class=resource_class, charged__gte=amount
    ).update(charged=F("charged") - amount)
    if amount <= 0 or moved != 1:
        raise Conflict("Cannot refund more than was charged.", code="refund_exceeds_charges")
    entry = _entry(allocation, resource_class, LedgerKind.REFUND, -amount, actor, job_ref=job_ref, memo=memo[:500])
    _publish_balance(allocation, resource_class, LedgerKind.REFUND)
    return entry


@transaction.atomic
def adjust(
    *, actor: Actor, allocation: Allocation, resource_class: ResourceClass, amount: int, memo: str
) -> LedgerEntry:
    """A federation admin's correction of the awarded amount (signed), with a reason."""
    if not actor.is_federation_admin:
        raise PermissionDenied("Only a federation admin can adjust balances.", code="federation_admin_required")
    if amount == 0 or not memo.strip():
        raise ValidationFailed("An adjustment needs a non-zero amount and a reason.", code="invalid_adjustment")
    balance = _locked_balance(allocation, resource_class)
    if balance.available + amount < 0:
        raise Conflict("The adjustment would make the balance negative.", code="insufficient_balance")
    balance.awarded += amount
    balance.save(update_fields=["awarded"])
    entry = _entry(allocation, resource_class, LedgerKind.ADJUSTMENT, amount, actor, memo=memo[:500])
    audit_record(
        actor=actor,
        action="ledger.adjust",
        obj=entry,
        institution=allocation.institution_id,
        after={"allocation": allocation.pk, "class": resource_class.code, "amount": amount, "memo": memo},
    )
    _publish_balance(allocation, resource_class, LedgerKind.ADJUSTMENT)
    return entry


@transaction.atomic
def transfer(
    *, actor: Actor, source: Allocation, target: Allocation, resource_class: ResourceClass, amount: int, memo: str
) -> tuple[LedgerEntry, LedgerEntry]:
    """Move awarded, unused units between two active allocations of one project (committee,
    federation admin, or the system acting for the quota broker)."""
    if not (actor.system or actor.is_federation_admin or actor.has_federation_role("committee")):
        raise PermissionDenied("Only the committee moves units between allocations.", code="committee_required")
    if source.state != AllocationState.ACTIVE or target.state != AllocationState.ACTIVE:
        raise Conflict("Both allocations must be active.", code="allocation_not_active")
    if source.project_id != target.project_id or source.pk == target.pk:
        raise ValidationFailed("Transfers are between two allocations of one project.", code="invalid_transfer")
    if amount <= 0:
        raise ValidationFailed("A transfer must be positive.", code="invalid_amount")
    first, second = sorted([source, target], key=lambda a: a.pk)
    locked = {a.pk: _locked_balance(a, resource_class) for a in (first, second)}
    if locked[source.pk].available < amount:
        raise Conflict("Not enough unused balance to transfer.", code="insufficient_balance")
    try:
        with transaction.atomic():
            AllocationBalance.objects.filter(pk=locked[source.pk].pk).update(awarded=F("awarded") - amount)
            AllocationBalance.objects.filter(pk=locked[target.pk].pk).update(awarded=F("awarded") + amount)
    except IntegrityError:
        raise Conflict("Not enough unused balance to transfer.", code="insufficient_balance") from None
    out = _entry(source, resource_class, LedgerKind.TRANSFER, -amount, actor, memo=f"to #{target.pk}: {memo}"[:500])
    into = _entry(target, resource_class, LedgerKind.TRANSFER, amount, actor, memo=f"from #{source.pk}: {memo}"[:500])
    audit_record(
        actor=actor,
        action="ledger.transfer",
        obj=out,
        institution=source.institution_id,
        after={"from": source.pk, "to": target.pk, "class": resource_class.code, "amount": amount},
    )
    return out, into


def record_quota_moves(
    *, actor: Actor, allocation: Allocation, moves: list[tuple[ResourceClass, str, int, str]]
) -> list[LedgerEntry]:
    """Ledger rows for the quota broker: ``(class, site code, signed units, memo)`` per move. Units placed
    at (+) or taken from (−) a centre; no balance column moves (the award is unchanged), so these are
    ``quota`` entries, never part of the awarded/held/charged sums. A zero move records a step that
    moves nothing (a centre accepting its share as proposed)."""
    entries = [
        LedgerEntry(allocation=allocation, resource_class=rc, kind=LedgerKind.QUOTA, amount=units,
                    site_code=site_code[:32], actor_label=actor.label[:300], memo=memo[:500])
        for rc, site_code, units, memo in moves
    ]
    return LedgerEntry.objects.bulk_create(entries)
