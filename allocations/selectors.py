"""Reads for allocations: balances in display units, usage over time, published catalogue."""

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import TruncDate

from allocations.ledger import to_display
from allocations.models import Allocation, AllocationBalance, LedgerEntry, LedgerKind, ResourceClass


def resource_classes() -> list[ResourceClass]:
    return list(ResourceClass.objects.filter(active=True).select_related("family"))


def balances_by_allocation(allocation_ids: list[int]) -> dict[int, list[dict]]:
    """{allocation id: [{class, unit, awarded, held, charged, available, credits_available}]} in one query."""
    result: dict[int, list[dict]] = defaultdict(list)
    rows = AllocationBalance.objects.filter(allocation_id__in=allocation_ids).select_related("resource_class")
    for b in rows.order_by("allocation_id", "resource_class__code"):
        rc = b.resource_class
        available = to_display(rc, b.available)
        result[b.allocation_id].append(
            {
                "resource_class": rc.code,
                "unit": rc.unit,
                "awarded": to_display(rc, b.awarded),
                "held": to_display(rc, b.held),
                "charged": to_display(rc, b.charged),
                "available": available,
                "credits_available": (available * rc.credits_per_unit).quantize(Decimal("0.01")),
            }
        )
    return result


def allocation_balance(allocation: Allocation) -> list[dict]:
    return balances_by_allocation([allocation.pk]).get(allocation.pk, [])


def usage_over_time(allocation: Allocation) -> list[dict]:
    """Charges per day and class, with the running total, for the usage chart."""
    rows = (
        LedgerEntry.objects.filter(allocation=allocation, kind__in=[LedgerKind.CHARGE, LedgerKind.REFUND])
        .annotate(day=TruncDate("created_at"))
        .values("day", "resource_class__code", "resource_class__scale")
        .annotate(total=Sum("amount"))
        .order_by("day", "resource_class__code")
    )
    running: dict[str, Decimal] = defaultdict(Decimal)
    series = []
    for row in rows:
        code = row["resource_class__code"]
        used = Decimal(row["total"]) / row["resource_class__scale"]
        running[code] += used
        series.append(
            {
                "day": row["day"].isoformat() if isinstance(row["day"], date) else str(row["day"]),
                "resource_class": code,
                "used": used.quantize(Decimal("0.01")),
                "cumulative": running[code].quantize(Decimal("0.01")),
            }
        )
    return series
