"""The allocation committee: requests awaiting reviewers or a decision, and the decision page
(reviews side by side, reviewer assignment, award / reject / ask for revision)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from allocations import access, workflow
from allocations.forms import AssignReviewerForm, DecisionForm, RequestFilterForm
from allocations.models import Decision, RequestState, Review
from allocations.views.common import (
    amount_rows,
    apply_service_error,
    classes_by_code,
    fetch,
    forbid,
    is_committee,
    portal_actor,
)
from allocations.views.requests import timeline
from portal.errors import ApplicationError, ValidationFailed

REQUESTS_PER_PAGE = 50
OPEN_STATES = [RequestState.SUBMITTED, RequestState.APPEALED, RequestState.UNDER_REVIEW]
COMMITTEE_STATES = [
    ("open", gettext_lazy("Awaiting reviewers or a decision")),
    *[(s.value, s.label) for s in RequestState if s != RequestState.DRAFT],
]


def _require_committee(actor) -> None:
    if not is_committee(actor):
        forbid(_("Only the allocation committee can open this page."))


def reviews_needed(req) -> int:
    return workflow.min_reviews(req)


@login_required
@require_GET
def committee_home(request):
    actor = portal_actor(request)
    _require_committee(actor)
    form = RequestFilterForm(request.GET or None, states=COMMITTEE_STATES)
    selected = "open"
    if form.is_bound and form.is_valid() and form.cleaned_data["state"]:
        selected = form.cleaned_data["state"]
    elif not form.is_bound:
        form = RequestFilterForm(initial={"state": "open"}, states=COMMITTEE_STATES)
    visible = access.requests_for(actor).exclude(state=RequestState.DRAFT)
    counts = visible.aggregate(
        awaiting_reviewers=Count("pk", filter=Q(state__in=[RequestState.SUBMITTED, RequestState.APPEALED])),
        under_review=Count("pk", filter=Q(state=RequestState.UNDER_REVIEW)),
    )
    rows = visible.filter(state__in=OPEN_STATES) if selected == "open" else visible.filter(state=selected)
    rows = rows.select_related("project__institution").annotate(
        reviews_in=Count("reviews", filter=Q(reviews__state=Review.State.SUBMITTED), distinct=True),
        reviews_open=Count("reviews", filter=Q(reviews__state=Review.State.ASSIGNED), distinct=True),
    )
    ordering = ("submitted_at", "id") if selected in ("open", *OPEN_STATES) else ("-submitted_at", "-id")
    page = Paginator(rows.order_by(*ordering), REQUESTS_PER_PAGE).get_page(request.GET.get("page"))
    for req in page.object_list:
        req.reviews_needed = reviews_needed(req)
        req.ready = req.state == RequestState.UNDER_REVIEW and req.reviews_in >= req.reviews_needed
    context = {"page": page, "form": form, "selected_state": selected, "counts": counts, "tab": "committee"}
    return render(request, "allocations/committee_home.html", context)


def _render_decision(request, target, *, assign_form=None, decision_form=None, status=200):
    classes = classes_by_code()
    reviews = list(target.reviews.select_related("reviewer").order_by("assigned_at", "id"))
    submitted = [r for r in reviews if r.state == Review.State.SUBMITTED]
    for review in reviews:
        review.recommended_rows = amount_rows(review.recommended_amounts, classes)
    means = [r.mean_score for r in submitted]
    can_decide = target.state == RequestState.UNDER_REVIEW
    if decision_form is None and can_decide:
        decision_form = DecisionForm(
            classes=list(classes.values()), asked=target.amounts, initial={"outcome": Decision.Outcome.AWARD}
        )
    can_assign = target.state in (RequestState.SUBMITTED, RequestState.APPEALED, RequestState.UNDER_REVIEW)
    context = {
        "req": target,
        "amounts": amount_rows(target.amounts, classes),
        "reviews": reviews,
        "reviews_in": len(submitted),
        "reviews_needed": reviews_needed(target),
        "overall_mean": round(sum(means) / len(means), 2) if means else None,
        "eligible_reviewers": list(workflow.eligible_reviewers(target)[:50]) if can_assign else [],
        "assign_form": assign_form or AssignReviewerForm(),
        "decision_form": decision_form,
        "can_assign": can_assign,
        "can_decide": can_decide,
        "timeline": timeline(target),
        "tab": "committee",
    }
    return render(request, "allocations/decision.html", context, status=status)


def _committee_request(request, request_id: int):
    actor = portal_actor(request)
    target = fetch(access.get_request, actor, request_id)
    _require_committee(actor)
    return actor, target


@login_required
@require_GET
def decision_page(request, request_id: int):
    _, target = _committee_request(request, request_id)
    return _render_decision(request, target)


@login_required
@require_POST
def assign_reviewer(request, request_id: int):
    actor, target = _committee_request(request, request_id)
    form = AssignReviewerForm(request.POST)
    if not form.is_valid():
        return _render_decision(request, target, assign_form=form, status=400)
    email = "" if "auto" in request.POST else form.cleaned_data["reviewer"]
    try:
        if email:
            reviewer = User.objects.filter(email=email).first()
            if reviewer is None:
                raise ValidationFailed("No such reviewer.", code="not_a_reviewer", fields={"reviewer": ["Unknown."]})
            assigned = [workflow.assign_reviewer(actor=actor, request=target, reviewer=reviewer)]
        else:
            assigned = workflow.auto_assign_reviewers(actor=actor, request=target)
    except ApplicationError as exc:
        apply_service_error(form, exc)
        return _render_decision(request, target, assign_form=form, status=exc.status_code)
    if assigned:
        names = ", ".join(review.reviewer.email for review in assigned)
        messages.success(request, _("Assigned: %(names)s.") % {"names": names})
    else:
        messages.info(request, _("No reviewer was assigned: the request has enough reviewers, or none is eligible."))
    return redirect("allocations:decision_page", request_id=target.pk)


@login_required
@require_POST
def decide(request, request_id: int):
    actor, target = _committee_request(request, request_id)
    classes = classes_by_code()
    form = DecisionForm(request.POST, classes=list(classes.values()), asked=target.amounts)
    if not form.is_valid():
        return _render_decision(request, target, decision_form=form, status=400)
    outcome = form.cleaned_data["outcome"]
    try:
        decided = workflow.decide(
            actor=actor,
            request=target,
            outcome=outcome,
            amounts=form.cleaned_amounts() if outcome == Decision.Outcome.AWARD else {},
            reason=form.cleaned_data["reason"],
        )
    except ApplicationError as exc:
        done = target.reviews.filter(state=Review.State.SUBMITTED).count()
        apply_service_error(
            form,
            exc,
            overrides={"invalid_amount": gettext_lazy("Award at least one resource class, or reject.")},
            needed=reviews_needed(target),
            done=done,
        )
        return _render_decision(request, target, decision_form=form, status=exc.status_code)
    labels = {
        RequestState.APPROVED: _("The request was approved and the allocation awarded."),
        RequestState.REJECTED: _("The request was rejected."),
        RequestState.REVISION_REQUESTED: _("The request was sent back to the PI for revision."),
    }
    messages.success(request, labels.get(decided.state, _("The decision was recorded.")))
    return redirect("allocations:decision_page", request_id=target.pk)
