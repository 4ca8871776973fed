"""Allocation requests: the PI's wizard (with a live credit estimate), the list, the request page
with its timeline, and the PI's actions (edit, submit, withdraw)."""

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from allocations import access, workflow
from allocations.forms import RequestFilterForm, RequestForm, WithdrawForm
from allocations.models import RequestKind, RequestState
from allocations.rules import APPEAL_WINDOW_DAYS, credits_for
from allocations.views.common import (
    amount_rows,
    apply_service_error,
    class_label,
    classes_by_code,
    error_message,
    fetch,
    forbid,
    is_committee,
    portal_actor,
    request_error_params,
    tier_label,
    tier_rows,
)
from portal.errors import ApplicationError

REQUESTS_PER_PAGE = 50
EDITABLE_STATES = (RequestState.DRAFT, RequestState.REVISION_REQUESTED)
WITHDRAWABLE_STATES = (RequestState.DRAFT, RequestState.SUBMITTED, RequestState.UNDER_REVIEW)
DECIDED_STATES = (RequestState.APPROVED, RequestState.REJECTED, RequestState.REVISION_REQUESTED)
# What a request's own state means to the PI, on the request page.
STATE_HELP = {
    RequestState.DRAFT: gettext_lazy("Draft: the committee does not see it until the PI submits it."),
    RequestState.SUBMITTED: gettext_lazy("Submitted: waiting for reviewers to be assigned."),
    RequestState.APPEALED: gettext_lazy("Appeal submitted: waiting for reviewers to be assigned."),
    RequestState.UNDER_REVIEW: gettext_lazy("Under review: the reviewers score it, then the committee decides."),
    RequestState.REVISION_REQUESTED: gettext_lazy(
        "The committee asked for a revision: edit the request and submit it again."
    ),
    RequestState.APPROVED: gettext_lazy("Approved: the allocation is ready to use."),
    RequestState.REJECTED: gettext_lazy("Rejected. You may appeal within %(days)s days of the decision."),
    RequestState.WITHDRAWN: gettext_lazy("Withdrawn."),
}


# --- the wizard -------------------------------------------------------------------------------
def _wizard_choices(actor, project):
    allocations = access.allocations_for(actor).filter(project=project).order_by("-start", "-id")
    appealable = (
        access.requests_for(actor)
        .filter(project=project, state__in=[RequestState.APPROVED, RequestState.REJECTED])
        .exclude(kind=RequestKind.APPEAL)
        .order_by("-decided_at", "-id")
    )
    return allocations, appealable


def conversion_table(classes) -> dict:
    """What the live estimate needs: the price of each class and the cap of each tier (as strings)."""
    return {
        "classes": {
            rc.code: {"name": class_label(rc), "unit": rc.unit, "credits_per_unit": str(rc.credits_per_unit)}
            for rc in classes.values()
        },
        "tiers": {
            row["code"]: {"label": row["label"], "cap": str(row["cap"]) if row["cap"] is not None else None}
            for row in tier_rows()
        },
    }


def _estimate(form: RequestForm, classes) -> dict:
    """The credit estimate of what the form holds now (the page's JavaScript keeps it live)."""
    amounts = {}
    for rc, field in form.amount_fields():
        try:
            value = int(field.value() or 0)
        except (TypeError, ValueError):
            value = 0
        if value > 0:
            amounts[rc.code] = value
    total = credits_for(amounts, {c: classes[c].credits_per_unit for c in amounts})
    tier = form["tier"].value() or ""
    cap = next((row["cap"] for row in tier_rows() if row["code"] == tier), None)
    return {
        "total": total,
        "cap": cap,
        "tier_label": tier_label(tier) if tier else "",
        "over": cap is not None and total > cap,
        "per_class": {c: Decimal(v) * classes[c].credits_per_unit for c, v in amounts.items()},
    }


def _render_wizard(request, *, project, form, classes, target=None, status=200):
    context = {
        "project": project,
        "form": form,
        "target": target,
        "tiers": tier_rows(),
        "conversion_table": conversion_table(classes),
        "estimate": _estimate(form, classes),
        "appeal_days": APPEAL_WINDOW_DAYS,
        "tab": "requests",
    }
    return render(request, "allocations/request_form.html", context, status=status)


def _request_error(form, exc, *, project, data, classes, allocation=None):
    params = request_error_params(
        project=project,
        tier=data.get("tier") or "",
        amounts=form.cleaned_amounts(),
        classes=classes,
        allocation=allocation,
    )
    apply_service_error(form, exc, **params)


@login_required
@require_http_methods(["GET", "POST"])
def request_create(request, project_id: int):
    actor = portal_actor(request)
    project = fetch(access.get_project, actor, project_id)
    if not workflow.acts_for_pi(actor, project):
        forbid(_("Only the project's PI writes allocation requests."))
    classes = classes_by_code()
    allocations, appealable = _wizard_choices(actor, project)
    initial = {"start": max(project.start, timezone.localdate()), "end": project.end}
    # Links from an allocation ("supplement", "extend") preselect the kind and the allocation.
    if request.GET.get("kind") in RequestKind.values:
        initial["kind"] = request.GET["kind"]
    if request.GET.get("allocation", "").isdigit():
        initial["allocation"] = int(request.GET["allocation"])
    if request.GET.get("appeal_of", "").isdigit():
        initial["appeal_of"] = int(request.GET["appeal_of"])
        initial["kind"] = RequestKind.APPEAL
    form = RequestForm(
        request.POST or None,
        request.FILES or None,
        classes=list(classes.values()),
        allocations=allocations,
        appealable=appealable,
        initial=initial,
    )
    if request.method == "GET":
        return _render_wizard(request, project=project, form=form, classes=classes)
    if not form.is_valid():
        return _render_wizard(request, project=project, form=form, classes=classes, status=400)
    data = form.cleaned_data
    try:
        created = workflow.request_create(
            actor=actor,
            project=project,
            kind=data["kind"],
            tier=data["tier"],
            title=data["title"],
            justification=data["justification"],
            amounts=form.cleaned_amounts(),
            start=data["start"],
            end=data["end"],
            allocation=data.get("allocation"),
            appeal_of=data.get("appeal_of"),
            attachment=data.get("attachment"),
            site_preferences=data.get("site_preferences") or [],
        )
    except ApplicationError as exc:
        _request_error(form, exc, project=project, data=data, classes=classes, allocation=data.get("allocation"))
        return _render_wizard(request, project=project, form=form, classes=classes, status=exc.status_code)
    messages.success(request, _("The draft was saved. Check it, then submit it."))
    return redirect("allocations:request_detail", request_id=created.pk)


@login_required
@require_http_methods(["GET", "POST"])
def request_edit(request, request_id: int):
    actor = portal_actor(request)
    target = fetch(access.get_request, actor, request_id)
    project = target.project
    if not workflow.is_pi(actor, target):
        forbid(_("Only the project's PI edits the request."))
    if target.state not in EDITABLE_STATES:
        messages.error(request, error_message(ApplicationError("", code="request_not_editable")))
        return redirect("allocations:request_detail", request_id=target.pk)
    classes = classes_by_code()
    allocations, appealable = _wizard_choices(actor, project)
    form = RequestForm(
        request.POST or None,
        request.FILES or None,
        classes=list(classes.values()),
        allocations=allocations,
        appealable=appealable,
        amounts=target.amounts,
        editing=True,
        initial={
            "kind": target.kind,
            "allocation": target.allocation_id,
            "appeal_of": target.appeal_of_id,
            "tier": target.tier,
            "title": target.title,
            "start": target.start,
            "end": target.end,
            "justification": target.justification,
            "site_preferences": ", ".join(target.site_preferences or []),
        },
    )
    if request.method == "GET":
        return _render_wizard(request, project=project, form=form, classes=classes, target=target)
    if not form.is_valid():
        return _render_wizard(request, project=project, form=form, classes=classes, target=target, status=400)
    data = form.cleaned_data
    try:
        workflow.request_update(
            actor=actor,
            request=target,
            attachment=data.get("attachment") or None,
            tier=data["tier"],
            title=data["title"],
            justification=data["justification"],
            amounts=form.cleaned_amounts(),
            start=data["start"],
            end=data["end"],
            site_preferences=data.get("site_preferences") or [],
        )
    except ApplicationError as exc:
        _request_error(form, exc, project=project, data=data, classes=classes, allocation=target.allocation)
        return _render_wizard(
            request, project=project, form=form, classes=classes, target=target, status=exc.status_code
        )
    messages.success(request, _("Your changes were saved."))
    return redirect("allocations:request_detail", request_id=target.pk)


# --- the list and the request page ------------------------------------------------------------
@login_required
@require_GET
def request_list(request):
    actor = portal_actor(request)
    form = RequestFilterForm(request.GET or None)
    requests_qs = access.requests_for(actor).select_related("project__institution")
    selected = ""
    if form.is_bound and form.is_valid():
        selected = form.cleaned_data["state"]
    if selected:
        requests_qs = requests_qs.filter(state=selected)
    page = Paginator(requests_qs.order_by("-created_at", "-id"), REQUESTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "form": form, "selected_state": selected, "tab": "requests"}
    return render(request, "allocations/request_list.html", context)


def anonymised_reviews(target) -> list[dict]:
    """The submitted reviews as the PI reads them once decided: scores and comments, no names."""
    rows = []
    reviews = target.reviews.filter(state="submitted").order_by("submitted_at", "id")
    for n, review in enumerate(reviews, 1):
        rows.append({"label": _("Reviewer %(n)s") % {"n": n}, "review": review})
    return rows


DECISION_STATES = {
    "award": RequestState.APPROVED,
    "reject": RequestState.REJECTED,
    "revise": RequestState.REVISION_REQUESTED,
}


def timeline(target) -> list[dict]:
    """State changes in time order; a decision is shown on the move it caused (same reason, once)."""
    events = [
        {"at": t.created_at, "transition": t, "decision": None}
        for t in target.transitions.select_related("actor_user").order_by("created_at", "id")
    ]
    for decision in target.decisions.order_by("created_at", "id"):
        move = next(
            (
                e
                for e in events
                if e["decision"] is None
                and e["transition"].to_state == DECISION_STATES.get(decision.outcome)
                and e["transition"].reason == decision.reason
            ),
            None,
        )
        if move is not None:
            move["decision"] = decision
        else:
            events.append({"at": decision.created_at, "transition": None, "decision": decision})
    return sorted(events, key=lambda e: e["at"])


@login_required
@require_GET
def request_detail(request, request_id: int):
    actor = portal_actor(request)
    target = fetch(access.get_request, actor, request_id)
    classes = classes_by_code()
    is_pi = workflow.is_pi(actor, target)
    decisions = list(target.decisions.order_by("created_at", "id"))
    award = next((d for d in reversed(decisions) if d.outcome == "award"), None)
    resulting_allocation = None
    if target.state == RequestState.APPROVED:
        # new/renewal: the allocation it created; supplement/extension: the one it changed; appeal: the
        # allocation of the appealed request (or the one the appeal created).
        changed = Q(origin=target)
        if target.allocation_id:
            changed |= Q(pk=target.allocation_id)
        if target.appeal_of_id:
            changed |= Q(origin_id=target.appeal_of_id)
            if target.appeal_of.allocation_id:
                changed |= Q(pk=target.appeal_of.allocation_id)
        resulting_allocation = access.allocations_for(actor).filter(changed).order_by("-id").first()
    context = {
        "req": target,
        "amounts": amount_rows(target.amounts, classes),
        "awarded": amount_rows(award.amounts, classes) if award else [],
        "timeline": timeline(target),
        "reviews": anonymised_reviews(target) if target.state in DECIDED_STATES else [],
        "state_help": str(STATE_HELP.get(target.state, "")) % {"days": APPEAL_WINDOW_DAYS},
        "is_pi": is_pi,
        "can_edit": is_pi and target.state in EDITABLE_STATES,
        "can_submit": is_pi and target.state in EDITABLE_STATES,
        "can_withdraw": is_pi and target.state in WITHDRAWABLE_STATES,
        "can_appeal": is_pi
        and target.state in (RequestState.APPROVED, RequestState.REJECTED)
        and target.kind != RequestKind.APPEAL,
        "is_committee": is_committee(actor),
        "withdraw_form": WithdrawForm(),
        "resulting_allocation": resulting_allocation,
        "tier": target.get_tier_display(),
        "tab": "requests",
    }
    return render(request, "allocations/request_detail.html", context)


@login_required
@require_GET
def request_attachment(request, request_id: int):
    target = fetch(access.get_request, portal_actor(request), request_id)
    if not target.attachment:
        raise Http404(_("This request has no attachment."))
    return FileResponse(
        target.attachment.open("rb"),
        as_attachment=False,
        filename=f"request-{target.pk}.pdf",
        content_type="application/pdf",
    )


@login_required
@require_POST
def request_submit(request, request_id: int):
    actor = portal_actor(request)
    target = fetch(access.get_request, actor, request_id)
    if not workflow.is_pi(actor, target):
        forbid(_("Only the project's PI submits the request."))
    try:
        target = workflow.request_submit(actor=actor, request=target)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("allocations:request_detail", request_id=target.pk)
    if target.state == RequestState.APPROVED:
        messages.success(request, _("Submitted and approved automatically: your allocation is ready."))
    elif target.state == RequestState.REJECTED:
        messages.warning(
            request, _("Submitted, but the automatic eligibility check rejected it. See the reason below.")
        )
    else:
        messages.success(request, _("Submitted. Reviewers are being assigned."))
    return redirect("allocations:request_detail", request_id=target.pk)


@login_required
@require_POST
def request_withdraw(request, request_id: int):
    actor = portal_actor(request)
    target = fetch(access.get_request, actor, request_id)
    if not workflow.is_pi(actor, target):
        forbid(_("Only the project's PI withdraws the request."))
    form = WithdrawForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        workflow.request_withdraw(actor=actor, request=target, reason=reason)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, _("The request was withdrawn."))
    return redirect("allocations:request_detail", request_id=target.pk)
