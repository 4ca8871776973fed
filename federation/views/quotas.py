"""Site-quota pages: a centre's operators answer the shares proposed to it (on the centre page), and an
allocation's shares per centre with the PI's transfer form."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import FederationRoleKind
from allocations.access import get_allocation
from allocations.ledger import to_display
from allocations.workflow import acts_for_pi
from federation import quotas, selectors
from federation.access import get_quota, quotas_for
from federation.quota_forms import QuotaResponseForm, QuotaTransferForm
from federation.views.common import class_name, portal_actor, raise_as_http, site_choices
from portal.errors import ApplicationError, NotFound

QUOTA_MESSAGES = {
    "quota_not_pending": gettext_lazy("This share has already been answered."),
    "quota_modify_not_lower": gettext_lazy("A lower amount lowers the share: enter less than proposed, or accept it."),
    "reason_required": gettext_lazy("Say why the centre declines the share."),
    "site_operator_required": gettext_lazy("Only this centre's operators or a federation admin can do this."),
    "quota_insufficient_unused": gettext_lazy("The centre you move from does not hold that much unused quota."),
    "site_capacity_exhausted": gettext_lazy("The target centre has not enough committed capacity left for that."),
    "site_not_accepting": gettext_lazy(
        "The target centre takes no new shares of this class now (draining, offline, or no capacity committed)."),
    "site_declined_quota": gettext_lazy("The target centre declined this allocation's quota of this class."),
    "allocation_not_active": gettext_lazy("The allocation is not active."),
    "pi_required": gettext_lazy("Only the project's PI moves quota between centres."),
    "invalid_amount": gettext_lazy("Enter a whole, positive amount."),
    "invalid_transfer": gettext_lazy("Choose two different centres."),
}


def quota_message(exc: ApplicationError) -> str:
    return str(QUOTA_MESSAGES.get(exc.code) or _("The change was refused."))


def share_rows(shares: list) -> list[dict]:
    used = quotas.share_used(shares)
    return [{"quota": q, "amount": to_display(q.resource_class, q.amount),
             "proposed": to_display(q.resource_class, q.proposed_amount),
             "used": to_display(q.resource_class, used.get(q.pk, 0)),
             "class_name": class_name(q.resource_class.code)} for q in shares]


@login_required
@require_POST
def quota_respond(request, code: str, quota_id: int):
    actor = portal_actor(request)
    try:
        quota = get_quota(actor, quota_id)
    except NotFound as exc:
        raise_as_http(exc)
    back = reverse("centres:site_detail", args=[quota.site.code]) + "#quotas"
    form = QuotaResponseForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, errors[0])
        return redirect(back)
    data = form.cleaned_data
    try:
        quotas.quota_respond(actor=actor, quota=quota, action=data["action"], amount=data["amount"],
                             reason=data["reason"])
    except ApplicationError as exc:
        messages.error(request, quota_message(exc))
        return redirect(back)
    labels = {"accept": _("Share accepted."), "modify": _("Share lowered: the rest goes to other centres."),
              "decline": _("Share declined: it goes to other centres.")}
    messages.success(request, labels[data["action"]])
    return redirect(back)


@login_required
@require_http_methods(["GET", "POST"])
def allocation_quotas(request, allocation_id: int):
    actor = portal_actor(request)
    try:
        allocation = get_allocation(actor, allocation_id)
    except NotFound as exc:
        raise_as_http(exc)
    shares = list(quotas_for(actor).filter(allocation=allocation).order_by("resource_class__code", "site__code"))
    rows = share_rows(shares)
    can_transfer = acts_for_pi(actor, allocation.project) or actor.is_federation_admin or actor.has_federation_role(
        FederationRoleKind.COMMITTEE)
    classes = sorted({(q.resource_class.code, class_name(q.resource_class.code)) for q in shares})
    live_sites = sorted({(q.site.code, f"{q.site.name} ({q.site.code})") for q in shares if q.state in quotas.LIVE})
    all_sites = [(s.code, f"{s.name} ({s.code})") for s in site_choices()]
    form_kwargs = {"classes": classes, "from_sites": live_sites, "to_sites": all_sites}
    form, error, status = QuotaTransferForm(**form_kwargs), "", 200
    if request.method == "POST":
        form = QuotaTransferForm(request.POST, **form_kwargs)
        if form.is_valid():
            data = form.cleaned_data
            rc = next(q.resource_class for q in shares if q.resource_class.code == data["resource_class"])
            try:
                quotas.quota_transfer(actor=actor, allocation=allocation, resource_class=rc,
                                      from_site=selectors.get_site(data["from_site"]),
                                      to_site=selectors.get_site(data["to_site"]), amount=data["amount"],
                                      reason=data["reason"])
            except ApplicationError as exc:
                error, status = quota_message(exc), exc.status_code
            else:
                messages.success(request, _("Quota moved: the target centre sees it as a proposed share."))
                return redirect("centres:allocation_quotas", allocation_id=allocation.pk)
        else:
            status = 400
    by_class: dict[str, list] = defaultdict(list)
    for r in rows:
        by_class[r["quota"].resource_class.code].append(r)
    context = {"allocation": allocation, "by_class": sorted(by_class.items()), "form": form, "error": error,
               "can_transfer": can_transfer and bool(live_sites)}
    return render(request, "federation/allocation_quotas.html", context, status=status)
