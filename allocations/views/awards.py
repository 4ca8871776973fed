"""Allocations (the awards): the list with balances, and one allocation with its balance per class,
a usage-over-time chart (inline SVG, drawn here) and its ledger."""

from datetime import date
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from allocations import access, selectors, workflow
from allocations.forms import LedgerFilterForm
from allocations.ledger import to_display
from allocations.models import AllocationState, RequestKind
from allocations.views.common import class_label, classes_by_code, fetch, portal_actor

ALLOCATIONS_PER_PAGE = 25
LEDGER_PER_PAGE = 50
SERIES_COLOURS = ["#0b3a78", "#c8102e", "#1a7f37", "#b26b00", "#6b21a8", "#0e7490", "#9d174d", "#4d7c0f"]


def _pct(part, whole) -> float:
    if not whole:
        return 0.0
    return round(max(0.0, min(100.0, float(Decimal(part) / Decimal(whole) * 100))), 2)


def balance_rows(balances: list[dict], classes) -> list[dict]:
    """Balances with the bar widths (percent of the award charged, held and still available)."""
    rows = []
    for b in balances:
        rc = classes.get(b["resource_class"])
        rows.append(
            {
                **b,
                "name": class_label(rc) if rc else b["resource_class"],
                "charged_pct": _pct(b["charged"], b["awarded"]),
                "held_pct": _pct(b["held"], b["awarded"]),
                "available_pct": _pct(b["available"], b["awarded"]),
            }
        )
    return rows


@login_required
@require_GET
def allocation_list(request):
    actor = portal_actor(request)
    allocations = access.allocations_for(actor).select_related("origin")
    state = request.GET.get("state", "")
    if state in AllocationState.values:
        allocations = allocations.filter(state=state)
    else:
        state = ""
    page = Paginator(allocations.order_by("-start", "-id"), ALLOCATIONS_PER_PAGE).get_page(request.GET.get("page"))
    balances = selectors.balances_by_allocation([a.pk for a in page.object_list])
    rows = [{"allocation": a, "balances": balances.get(a.pk, [])} for a in page.object_list]
    context = {
        "page": page,
        "rows": rows,
        "states": AllocationState.choices,
        "selected_state": state,
        "tab": "allocations",
    }
    return render(request, "allocations/allocation_list.html", context)


# --- the usage chart ---------------------------------------------------------------------------
CHART_WIDTH, CHART_HEIGHT = 760, 280
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 20, 16, 40


def usage_chart(*, start: date, end: date, today: date, usage: list[dict], balances: list[dict], classes) -> dict:
    """Cumulative use of each class as a share of its award, over the allocation's period, as SVG coordinates.

    Classes have different units (core-hours, card-hours, TB-days), so one axis in percent of the
    award makes them comparable; the legend gives the amounts in real units.
    """
    span = max((end - start).days, 1)
    plot_w = CHART_WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = CHART_HEIGHT - PAD_TOP - PAD_BOTTOM
    awarded = {b["resource_class"]: b["awarded"] for b in balances}

    def x(day: date) -> float:
        return round(PAD_LEFT + max(0.0, min(1.0, (day - start).days / span)) * plot_w, 1)

    def y(pct: float) -> float:
        return round(PAD_TOP + plot_h - pct / 100 * plot_h, 1)

    by_class: dict[str, list[tuple[date, Decimal]]] = {}
    for row in usage:
        by_class.setdefault(row["resource_class"], []).append((date.fromisoformat(row["day"]), row["cumulative"]))
    until = min(max(today, start), end)
    series = []
    for n, code in enumerate(sorted(set(awarded) | set(by_class))):
        points = [(x(start), y(0))]
        last_pct = 0.0
        cumulative = Decimal(0)
        for day, cumulative in by_class.get(code, []):
            pct = _pct(cumulative, awarded.get(code))
            points += [(x(day), y(last_pct)), (x(day), y(pct))]
            last_pct = pct
        points.append((max(x(until), points[-1][0]), y(last_pct)))
        rc = classes.get(code)
        series.append(
            {
                "code": code,
                "name": class_label(rc) if rc else code,
                "unit": rc.unit if rc else "",
                "colour": SERIES_COLOURS[n % len(SERIES_COLOURS)],
                "points": " ".join(f"{px},{py}" for px, py in points),
                "used": cumulative,
                "awarded": awarded.get(code, Decimal(0)),
                "pct": last_pct,
                "has_usage": code in by_class,
            }
        )
    ticks = 4
    x_ticks = [
        {"x": x(start + (end - start) * i / ticks), "label": (start + (end - start) * i / ticks).isoformat()}
        for i in range(ticks + 1)
    ]
    y_ticks = [{"y": y(p), "label": f"{p}%"} for p in (0, 25, 50, 75, 100)]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": PAD_LEFT,
        "right": CHART_WIDTH - PAD_RIGHT,
        "top": PAD_TOP,
        "bottom": PAD_TOP + plot_h,
        "x_ticks": x_ticks,
        "y_ticks": y_ticks,
        "series": series,
        "today_x": x(today) if start <= today <= end else None,
        "has_usage": bool(usage),
        "rows": usage,
    }


@login_required
@require_GET
def allocation_detail(request, allocation_id: int):
    actor = portal_actor(request)
    allocation = fetch(access.get_allocation, actor, allocation_id)
    classes = classes_by_code()
    balances = selectors.allocation_balance(allocation)
    usage = selectors.usage_over_time(allocation)

    form = LedgerFilterForm(request.GET or None)
    kind = form.cleaned_data["kind"] if form.is_bound and form.is_valid() else ""
    entries = access.ledger_for(actor, allocation)
    if kind:
        entries = entries.filter(kind=kind)
    page = Paginator(entries.order_by("-created_at", "-id"), LEDGER_PER_PAGE).get_page(request.GET.get("page"))
    ledger_rows = [{"entry": e, "amount": to_display(e.resource_class, e.amount)} for e in page.object_list]
    export_url = reverse("api:ledger-export", args=[allocation.pk])
    if kind:
        export_url += "?" + urlencode({"kind": kind})

    is_pi = workflow.acts_for_pi(actor, allocation.project)
    today = timezone.localdate()
    context = {
        "allocation": allocation,
        "balances": balance_rows(balances, classes),
        "credits_available": sum((b["credits_available"] for b in balances), Decimal(0)),
        "chart": usage_chart(
            start=allocation.start, end=allocation.end, today=today, usage=usage, balances=balances, classes=classes
        ),
        "form": form,
        "selected_kind": kind,
        "page": page,
        "ledger_rows": ledger_rows,
        "export_url": export_url,
        "can_change": is_pi and allocation.state == AllocationState.ACTIVE,
        "can_renew": is_pi,
        "kinds": RequestKind,
        "tab": "allocations",
    }
    return render(request, "allocations/allocation_detail.html", context)
