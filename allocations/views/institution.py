"""Institution admins: every request and allocation of their institution, on one page."""

from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import render
from django.views.decorators.http import require_GET

from allocations import access, selectors
from allocations.forms import RequestFilterForm
from allocations.models import AllocationState, RequestState
from allocations.views.common import portal_actor
from portal.views.common import administered_institution

ROWS_PER_PAGE = 25


@login_required
@require_GET
def institution_overview(request, institution_id: int):
    # 404 for another tenant's id, 403 for a member who does not run the institution.
    institution = administered_institution(request, institution_id)
    actor = portal_actor(request)

    allocations = (
        access.allocations_for(actor)
        .filter(institution_id=institution.pk)
        .select_related("project__pi")
        .order_by("-start", "-id")
    )
    allocation_page = Paginator(allocations, ROWS_PER_PAGE).get_page(request.GET.get("apage"))
    balances = selectors.balances_by_allocation([a.pk for a in allocation_page.object_list])
    allocation_rows = []
    for allocation in allocation_page.object_list:
        rows = balances.get(allocation.pk, [])
        allocation_rows.append(
            {
                "allocation": allocation,
                "balances": rows,
                "credits_available": sum((b["credits_available"] for b in rows), Decimal(0)),
            }
        )

    form = RequestFilterForm(request.GET or None)
    selected = form.cleaned_data["state"] if form.is_bound and form.is_valid() else ""
    requests_qs = access.requests_for(actor).filter(institution_id=institution.pk).select_related("project__pi")
    counts = {row["state"]: row["n"] for row in requests_qs.order_by().values("state").annotate(n=Count("pk"))}
    if selected:
        requests_qs = requests_qs.filter(state=selected)
    request_page = Paginator(requests_qs.order_by("-created_at", "-id"), ROWS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "institution": institution,
        "allocation_page": allocation_page,
        "allocation_rows": allocation_rows,
        "active_allocations": allocations.filter(state=AllocationState.ACTIVE).count(),
        "request_page": request_page,
        "form": form,
        "selected_state": selected,
        "state_counts": [
            {"state": s.value, "label": s.label, "count": counts.get(s.value, 0)}
            for s in RequestState
            if counts.get(s.value)
        ],
        "tab": "institution",
    }
    return render(request, "allocations/institution_overview.html", context)
