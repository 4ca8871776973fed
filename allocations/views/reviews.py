"""Reviewers: their queue (assigned / submitted), the review form, and declaring a conflict of interest."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from allocations import access, workflow
from allocations.forms import ConflictForm, ReviewForm
from allocations.models import RequestState, Review
from allocations.views.common import (
    amount_rows,
    apply_service_error,
    classes_by_code,
    error_message,
    fetch,
    forbid,
    is_reviewer,
    portal_actor,
)
from portal.errors import ApplicationError

REVIEWS_PER_PAGE = 50


def _own_review(request, review_id: int) -> Review:
    """The reviewer's own assignment: 404 when they cannot open it (foreign, conflicted, declined)."""
    actor = portal_actor(request)
    if not is_reviewer(actor):
        forbid(_("Only reviewers have a review queue."))
    review = fetch(access.get_review, actor, review_id)
    if review.reviewer_id != request.user.pk:
        forbid(_("Only the assigned reviewer can open this review."))
    return review


@login_required
@require_GET
def review_queue(request):
    actor = portal_actor(request)
    if not is_reviewer(actor):
        forbid(_("Only reviewers have a review queue."))
    mine = access.reviews_for(actor).filter(reviewer=request.user).select_related("request__institution")
    # The domain leaves assignments open when a request is withdrawn or decided without them
    # (see the report): they cannot be reviewed any more, so "to review" lists those under review only.
    tabs = {
        "assigned": mine.filter(state=Review.State.ASSIGNED, request__state=RequestState.UNDER_REVIEW),
        "submitted": mine.filter(state=Review.State.SUBMITTED),
    }
    tab = request.GET.get("state") if request.GET.get("state") in tabs else "assigned"
    counts = {name: reviews.count() for name, reviews in tabs.items()}
    ordering = ("assigned_at", "id") if tab == "assigned" else ("-submitted_at", "-id")
    reviews = tabs[tab].order_by(*ordering)
    page = Paginator(reviews, REVIEWS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "queue_tab": tab, "counts": counts, "tab": "reviews"}
    return render(request, "allocations/review_queue.html", context)


def _asked_classes(classes, target) -> list:
    """Recommendations are per class asked for: an award can only grant what was asked."""
    return [rc for code, rc in classes.items() if code in target.amounts]


def _render_review(request, review, *, form=None, conflict_form=None, status=200):
    classes = classes_by_code()
    target = review.request
    if form is None and review.state == Review.State.ASSIGNED:
        form = ReviewForm(classes=_asked_classes(classes, target), recommended=target.amounts)
    context = {
        "review": review,
        "req": target,
        "amounts": amount_rows(target.amounts, classes),
        "recommended": amount_rows(review.recommended_amounts, classes),
        "form": form,
        "conflict_form": conflict_form or ConflictForm(),
        "can_review": review.state == Review.State.ASSIGNED and target.state == RequestState.UNDER_REVIEW,
        "tab": "reviews",
    }
    return render(request, "allocations/review_detail.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def review_detail(request, review_id: int):
    review = _own_review(request, review_id)
    if request.method == "GET":
        return _render_review(request, review)
    form = ReviewForm(request.POST, classes=_asked_classes(classes_by_code(), review.request))
    if not form.is_valid():
        return _render_review(request, review, form=form, status=400)
    data = form.cleaned_data
    try:
        workflow.review_submit(
            actor=portal_actor(request),
            review=review,
            merit=data["merit"],
            feasibility=data["feasibility"],
            readiness=data["readiness"],
            comment=data["comment"],
            recommended_amounts=form.cleaned_amounts(),
        )
    except ApplicationError as exc:
        apply_service_error(form, exc, field_map={"recommended_amounts": "amounts"})
        return _render_review(request, review, form=form, status=exc.status_code)
    messages.success(
        request, _("Your review of “%(title)s” was submitted. Thank you.") % {"title": review.request.title}
    )
    return redirect("allocations:review_queue")


@login_required
@require_POST
def review_conflict(request, review_id: int):
    review = _own_review(request, review_id)
    form = ConflictForm(request.POST)
    if not form.is_valid():
        return _render_review(request, review, conflict_form=form, status=400)
    try:
        workflow.declare_conflict(actor=portal_actor(request), review=review, reason=form.cleaned_data["reason"])
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
        return redirect("allocations:review_detail", review_id=review.pk)
    messages.success(
        request,
        _("You declared a conflict of interest with “%(title)s”. It was removed from your queue.")
        % {"title": review.request.title},
    )
    return redirect("allocations:review_queue")
