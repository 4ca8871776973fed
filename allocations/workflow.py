"""The allocation request state machine and everything that moves a request along it.

One ``TRANSITIONS`` table says which moves exist and who may make them; ``transition()``
is the only code that assigns ``AllocationRequest.state``: it locks the row, checks the
move and the actor's right, saves, writes the history row and the audit row, and publishes
after commit. Anything else is refused with 409 ``illegal_transition``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.actors import Actor, system_actor
from accounts.audit import audit_record
from accounts.models import FederationRole, FederationRoleKind, TokenScope, User
from allocations import notifications
from allocations.ledger import ledger_award
from allocations.models import (
    Allocation,
    AllocationRequest,
    AllocationState,
    ConflictOfInterest,
    Decision,
    Project,
    RequestKind,
    RequestState,
    ResourceClass,
    Review,
    Tier,
)
from allocations.rules import APPEAL_WINDOW_DAYS, MAX_ATTACHMENT_BYTES, TIERS, credits_for
from allocations.signals import allocation_awarded
from portal.errors import Conflict, PermissionDenied, ValidationFailed
from portal.events import publish_balances, publish_request

S = RequestState


# --- who may move a request -------------------------------------------------------------
def acts_for_pi(actor: Actor, project: Project) -> bool:
    """The project's PI in person, or their institution's system with the allocations:write scope."""
    if actor.token is not None:
        return actor.token.institution_id == project.institution_id and actor.has_scope(TokenScope.ALLOCATIONS_WRITE)
    return actor.user is not None and project.pi_id == actor.user.pk


def is_pi(actor: Actor, request: AllocationRequest) -> bool:
    return acts_for_pi(actor, request.project)


def is_committee(actor: Actor, request: AllocationRequest) -> bool:
    return actor.system or actor.is_federation_admin or actor.has_federation_role(FederationRoleKind.COMMITTEE)


def is_system(actor: Actor, request: AllocationRequest) -> bool:
    return actor.system


@dataclass(frozen=True)
class Move:
    action: str
    allowed: Callable[[Actor, AllocationRequest], bool]
    who: str


TRANSITIONS: dict[tuple[str, str], Move] = {
    (S.DRAFT, S.SUBMITTED): Move("submit", is_pi, "the PI"),
    (S.DRAFT, S.APPEALED): Move("submit", is_pi, "the PI"),
    (S.REVISION_REQUESTED, S.SUBMITTED): Move("submit", is_pi, "the PI"),
    (S.REVISION_REQUESTED, S.APPEALED): Move("submit", is_pi, "the PI"),
    (S.SUBMITTED, S.UNDER_REVIEW): Move("start_review", is_committee, "the committee"),
    (S.APPEALED, S.UNDER_REVIEW): Move("start_review", is_committee, "the committee"),
    (S.UNDER_REVIEW, S.REVISION_REQUESTED): Move("decide", is_committee, "the committee"),
    (S.UNDER_REVIEW, S.APPROVED): Move("decide", is_committee, "the committee"),
    (S.UNDER_REVIEW, S.REJECTED): Move("decide", is_committee, "the committee"),
    (S.SUBMITTED, S.REJECTED): Move("decide", is_system, "the eligibility check"),
    (S.DRAFT, S.WITHDRAWN): Move("withdraw", is_pi, "the PI"),
    (S.SUBMITTED, S.WITHDRAWN): Move("withdraw", is_pi, "the PI"),
    (S.UNDER_REVIEW, S.WITHDRAWN): Move("withdraw", is_pi, "the PI"),
}


def transition(*, actor: Actor, request: AllocationRequest, to_state: str, reason: str = "") -> AllocationRequest:
    """The one function that changes a request's state. Call inside a transaction."""
    with transaction.atomic():
        request = AllocationRequest.objects.select_for_update(of=("self",)).select_related("project").get(pk=request.pk)
        from_state = request.state
        move = TRANSITIONS.get((from_state, to_state))
        if move is None:
            raise Conflict(f"A request cannot go from {from_state} to {to_state}.", code="illegal_transition")
        if not move.allowed(actor, request):
            raise PermissionDenied(f"Only {move.who} can do this.", code="not_allowed_to_transition")
        request.state = to_state
        now = timezone.now()
        fields = ["state"]
        if to_state in (S.SUBMITTED, S.APPEALED):
            request.submitted_at = now
            fields.append("submitted_at")
        if to_state in (S.APPROVED, S.REJECTED):
            request.decided_at = now
            fields.append("decided_at")
        request.save(update_fields=fields)
        if to_state in (S.APPROVED, S.REJECTED, S.WITHDRAWN):
            # Assignments still open are closed: they leave the reviewers' queues.
            request.reviews.filter(state=Review.State.ASSIGNED).update(state=Review.State.CLOSED)
        request.transitions.create(
            from_state=from_state,
            to_state=to_state,
            actor_user=actor.user,
            actor_label=actor.label[:300],
            reason=reason[:5000],
            created_at=now,
        )
        audit_record(
            actor=actor,
            action=f"allocation_request.{move.action}",
            obj=request,
            institution=request.institution_id,
            before={"state": from_state},
            after={"state": to_state},
        )
        publish_request(request, from_state, now)
    return request


# --- creating and editing requests ------------------------------------------------------
def _prices() -> dict[str, ResourceClass]:
    return {rc.code: rc for rc in ResourceClass.objects.filter(active=True)}


def _clean_amounts(amounts: dict, classes: dict[str, ResourceClass], *, field: str = "amounts") -> dict[str, int]:
    errors = []
    cleaned: dict[str, int] = {}
    if not isinstance(amounts, dict):
        raise ValidationFailed("Amounts must be an object of class: amount.", code="invalid", fields={field: ["..."]})
    for code, value in amounts.items():
        if code not in classes:
            errors.append(f"Unknown resource class {code!r}.")
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            errors.append(f"{code}: a positive whole number of {classes[code].unit}s.")
            continue
        if value > 10**12:
            errors.append(f"{code}: too large.")
            continue
        cleaned[code] = value
    if errors:
        code = "unknown_resource_class" if any("Unknown resource" in e for e in errors) else "invalid_amount"
        raise ValidationFailed("Invalid amounts.", code=code, fields={field: errors})
    return cleaned


def effective_kind(kind: str, appeal_of: AllocationRequest | None) -> str:
    """What a request does: an appeal does what the request it appeals would have done."""
    return appeal_of.kind if kind == RequestKind.APPEAL and appeal_of is not None else kind


def _validate_request(
    *,
    project: Project,
    kind: str,
    tier: str,
    amounts: dict,
    start: date,
    end: date,
    allocation: Allocation | None,
    appeal_of: AllocationRequest | None,
    exclude_pk: int | None = None,
) -> tuple[dict, object]:
    classes = _prices()
    if kind not in RequestKind.values:
        raise ValidationFailed("Unknown request kind.", code="invalid", fields={"kind": ["Unknown kind."]})
    if tier not in TIERS:
        raise ValidationFailed("Unknown tier.", code="invalid", fields={"tier": ["Unknown tier."]})
    rule = TIERS[tier]
    if end <= start:
        raise ValidationFailed(
            "The end must be after the start.", code="end_before_start", fields={"end": ["Must be after the start."]}
        )
    if (end - start).days > rule.max_duration_days:
        raise ValidationFailed(
            f"A {tier} allocation lasts at most {rule.max_duration_days} days.",
            code="duration_too_long",
            fields={"end": ["Too long for this tier."]},
        )
    if start < project.start or end > project.end:
        raise ValidationFailed(
            "The allocation must lie within the project's dates.",
            code="outside_project_dates",
            fields={"start": ["Within the project."], "end": ["Within the project."]},
        )

    if effective_kind(kind, appeal_of) == RequestKind.EXTENSION:
        if amounts:
            raise ValidationFailed(
                "An extension changes the end date only.",
                code="extension_has_amounts",
                fields={"amounts": ["Must be empty for an extension."]},
            )
        cleaned = {}
    else:
        cleaned = _clean_amounts(amounts, classes)
        if not cleaned:
            raise ValidationFailed(
                "Ask for at least one resource class.",
                code="invalid_amount",
                fields={"amounts": ["At least one class."]},
            )

    if kind in (RequestKind.RENEWAL, RequestKind.SUPPLEMENT, RequestKind.EXTENSION):
        if allocation is None or allocation.project_id != project.pk:
            raise ValidationFailed(
                "Name an allocation of this project.",
                code="allocation_required",
                fields={"allocation": ["Required: an allocation of this project."]},
            )
        if kind in (RequestKind.SUPPLEMENT, RequestKind.EXTENSION) and allocation.state != AllocationState.ACTIVE:
            raise Conflict("Only an active allocation can be supplemented or extended.", code="allocation_not_active")
        if kind == RequestKind.EXTENSION and end <= allocation.end:
            raise ValidationFailed(
                "An extension must move the end date later.",
                code="extension_not_later",
                fields={"end": [f"Must be after {allocation.end.isoformat()}."]},
            )
    elif allocation is not None:
        raise ValidationFailed(
            "Only renewals, supplements and extensions name an allocation.",
            code="invalid",
            fields={"allocation": ["Not for this kind."]},
        )

    if kind == RequestKind.APPEAL:
        if appeal_of is None or appeal_of.project_id != project.pk:
            raise ValidationFailed(
                "Name the decided request of this project you appeal.",
                code="appeal_target_required",
                fields={"appeal_of": ["Required."]},
            )
        if appeal_of.state not in (S.APPROVED, S.REJECTED) or appeal_of.kind == RequestKind.APPEAL:
            raise Conflict("Only a decision on a request can be appealed, once.", code="not_appealable")
        earlier = AllocationRequest.objects.filter(appeal_of=appeal_of).exclude(state=S.WITHDRAWN)
        if earlier.exclude(pk=exclude_pk).exists():
            raise Conflict("This decision was already appealed; a decision can be appealed once.",
                           code="not_appealable")
        if timezone.now() - appeal_of.decided_at > timedelta(days=APPEAL_WINDOW_DAYS):
            raise Conflict(
                f"Appeals are possible within {APPEAL_WINDOW_DAYS} days of the decision.", code="appeal_window_closed"
            )
    elif appeal_of is not None:
        raise ValidationFailed(
            "Only appeals name a request.", code="invalid", fields={"appeal_of": ["Not for this kind."]}
        )

    credits = credits_for(cleaned, {c: classes[c].credits_per_unit for c in cleaned})
    if rule.credit_cap is not None and credits > rule.credit_cap:
        raise ValidationFailed(
            f"{credits:.0f} credits is over the {tier} tier cap of {rule.credit_cap:.0f}.",
            code="over_tier_cap",
            fields={"amounts": [f"At most {rule.credit_cap:.0f} credits for {tier}."]},
        )
    return cleaned, credits


def _check_attachment(attachment) -> None:
    if attachment is None:
        return
    if attachment.size > MAX_ATTACHMENT_BYTES:
        raise ValidationFailed(
            "The attachment is larger than 10 MB.",
            code="attachment_too_large",
            fields={"attachment": ["At most 10 MB."]},
        )
    head = attachment.read(5)
    attachment.seek(0)
    if head != b"%PDF-":
        raise ValidationFailed(
            "The attachment must be a PDF.", code="attachment_not_pdf", fields={"attachment": ["PDF files only."]}
        )


@transaction.atomic
def request_create(
    *,
    actor: Actor,
    project: Project,
    kind: str,
    tier: str,
    title: str,
    justification: str,
    amounts: dict,
    start: date,
    end: date,
    allocation: Allocation | None = None,
    appeal_of: AllocationRequest | None = None,
    attachment=None,
    site_preferences: list[str] | None = None,
) -> AllocationRequest:
    if not acts_for_pi(actor, project):
        raise PermissionDenied("Only the project's PI writes allocation requests.", code="project_pi_required")
    title, justification = (title or "").strip(), (justification or "").strip()
    if not title or len(title) > 200 or not justification:
        raise ValidationFailed(
            "Title and justification are required.",
            code="invalid",
            fields={k: ["Required."] for k, v in (("title", title), ("justification", justification)) if not v},
        )
    cleaned, credits = _validate_request(
        project=project,
        kind=kind,
        tier=tier,
        amounts=amounts,
        start=start,
        end=end,
        allocation=allocation,
        appeal_of=appeal_of,
    )
    _check_attachment(attachment)
    request = AllocationRequest.objects.create(
        institution_id=project.institution_id,
        project=project,
        kind=kind,
        tier=tier,
        title=title,
        justification=justification,
        amounts=cleaned,
        credits=credits,
        start=start,
        end=end,
        allocation=allocation,
        appeal_of=appeal_of,
        site_preferences=list(site_preferences or [])[:20],
        created_by=actor.user or project.pi,
    )
    if attachment is not None:
        request.attachment.save(attachment.name, attachment, save=True)
    audit_record(
        actor=actor,
        action="allocation_request.create",
        obj=request,
        institution=project.institution_id,
        after={"kind": kind, "tier": tier, "amounts": cleaned, "credits": str(credits)},
    )
    return request


EDITABLE = ("title", "justification", "amounts", "start", "end", "tier", "site_preferences")


@transaction.atomic
def request_update(*, actor: Actor, request: AllocationRequest, attachment=None, **changes) -> AllocationRequest:
    request = AllocationRequest.objects.select_for_update(of=("self",)).select_related("project").get(pk=request.pk)
    if not is_pi(actor, request):
        raise PermissionDenied("Only the project's PI edits the request.", code="project_pi_required")
    if request.state not in (S.DRAFT, S.REVISION_REQUESTED):
        raise Conflict("Only drafts and requests sent back for revision can be edited.", code="request_not_editable")
    before = {k: getattr(request, k) for k in EDITABLE}
    for key in EDITABLE:
        if key in changes:
            setattr(request, key, changes[key])
    cleaned, credits = _validate_request(
        project=request.project,
        kind=request.kind,
        tier=request.tier,
        amounts=request.amounts,
        start=request.start,
        end=request.end,
        allocation=request.allocation,
        appeal_of=request.appeal_of,
        exclude_pk=request.pk,
    )
    _check_attachment(attachment)
    request.amounts, request.credits = cleaned, credits
    request.save()
    if attachment is not None:
        request.attachment.save(attachment.name, attachment, save=True)
    after = {k: getattr(request, k) for k in EDITABLE}
    audit_record(
        actor=actor,
        action="allocation_request.update",
        obj=request,
        institution=request.institution_id,
        before={k: str(v) for k, v in before.items()},
        after={k: str(v) for k, v in after.items()},
    )
    return request


# --- submit, eligibility, review ---------------------------------------------------------
def explore_eligibility_problems(request: AllocationRequest) -> list[str]:
    """Why an explore request cannot be approved automatically (empty: it can)."""
    problems = []
    project = request.project
    if not project.institution.active:
        problems.append("The institution is not active.")
    if project.end < timezone.localdate():
        problems.append("The project has ended.")
    if not project.members.filter(user_id=project.pi_id).exists():
        problems.append("The PI is not on the project.")
    if request.kind == RequestKind.EXTENSION and request.end <= request.allocation.end:
        problems.append("The allocation already ends on or after the requested date.")
    other_explore = Allocation.objects.filter(
        project=project, state=AllocationState.ACTIVE, origin__tier=Tier.EXPLORE
    ).exclude(origin=request)
    if request.kind == RequestKind.NEW and other_explore.exists():
        problems.append("The project already has an active explore allocation.")
    if request.allocation_id and request.allocation.origin.tier != Tier.EXPLORE:
        problems.append("Only explore allocations are renewed, supplemented or extended in the explore tier.")
    # The explore cap is per project and year, not per request: no slicing past it.
    year_ago = timezone.now() - timedelta(days=365)
    granted = sum(
        AllocationRequest.objects.filter(project=project, tier=Tier.EXPLORE, state=S.APPROVED,
                                         decided_at__gte=year_ago).exclude(pk=request.pk)
        .values_list("credits", flat=True)
    )
    cap = TIERS[Tier.EXPLORE].credit_cap
    if granted + request.credits > cap:
        problems.append(f"Explore awards to this project in the last year would reach {granted + request.credits:.0f} "
                        f"credits, over the explore cap of {cap:.0f}.")
    return problems


@transaction.atomic
def request_submit(*, actor: Actor, request: AllocationRequest) -> AllocationRequest:
    if request.kind == RequestKind.APPEAL and request.state == S.DRAFT:
        decided = request.appeal_of.decided_at
        if decided is None or timezone.now() - decided > timedelta(days=APPEAL_WINDOW_DAYS):
            raise Conflict(f"Appeals are filed within {APPEAL_WINDOW_DAYS} days of the decision.",
                           code="appeal_window_closed")
    target = S.APPEALED if request.kind == RequestKind.APPEAL else S.SUBMITTED
    request = transition(actor=actor, request=request, to_state=target)
    transaction.on_commit(lambda: notifications.request_submitted(request.pk))
    rule = TIERS[request.tier]
    if rule.automatic_approval and request.kind != RequestKind.APPEAL:
        problems = explore_eligibility_problems(request)
        system = system_actor()
        if problems:
            return _decide(
                actor=system,
                request=request,
                outcome=Decision.Outcome.REJECT,
                amounts={},
                reason="Automatic eligibility check failed: " + " ".join(problems),
            )
        request = transition(
            actor=system, request=request, to_state=S.UNDER_REVIEW, reason="Explore tier: eligibility checks passed."
        )
        return _decide(
            actor=system,
            request=request,
            outcome=Decision.Outcome.AWARD,
            amounts=request.amounts,
            reason="Explore tier: approved automatically.",
        )
    system = system_actor()
    auto_assign_reviewers(actor=system, request=request)
    request = AllocationRequest.objects.get(pk=request.pk)
    if request.state in (S.SUBMITTED, S.APPEALED) and _open_reviews(request) >= max(min_reviews(request), 1):
        # A revised request goes back to the reviewers it already has (their earlier reviews stay
        # on record; the committee may ask for more).
        request = transition(actor=system, request=request, to_state=S.UNDER_REVIEW,
                             reason="Resubmitted to the assigned reviewers.")
    return request


def _open_reviews(request: AllocationRequest) -> int:
    return request.reviews.exclude(state=Review.State.DECLINED).count()


@transaction.atomic
def request_withdraw(*, actor: Actor, request: AllocationRequest, reason: str = "") -> AllocationRequest:
    return transition(actor=actor, request=request, to_state=S.WITHDRAWN, reason=reason)


def min_reviews(request: AllocationRequest) -> int:
    """Reviews a request needs before a decision: the tier's minimum, and two for an appeal."""
    return max(TIERS[request.tier].min_reviews, 2 if request.kind == RequestKind.APPEAL else 0)


def reviewer_is_conflicted(reviewer: User, request: AllocationRequest) -> bool:
    if reviewer.memberships.filter(institution_id=request.institution_id).exists():
        return True
    return (
        ConflictOfInterest.objects.filter(reviewer=reviewer)
        .filter(Q(request=request) | Q(institution_id=request.institution_id))
        .exists()
    )


def eligible_reviewers(request: AllocationRequest):
    """Reviewers who may review this request, least loaded first (open assignments)."""
    conflicted = ConflictOfInterest.objects.filter(Q(request=request) | Q(institution_id=request.institution_id))
    return (
        User.objects.filter(is_active=True, federation_roles__role=FederationRoleKind.REVIEWER)
        .exclude(memberships__institution_id=request.institution_id)
        .exclude(pk__in=conflicted.values("reviewer_id"))
        .exclude(reviews__request=request)
        .annotate(load=Count("reviews", filter=Q(reviews__state=Review.State.ASSIGNED)))
        .order_by("load", "pk")
    )


@transaction.atomic
def assign_reviewer(*, actor: Actor, request: AllocationRequest, reviewer: User) -> Review:
    """The committee assigns a reviewer; conflicted reviewers are refused."""
    if not is_committee(actor, request):
        raise PermissionDenied("Only the committee assigns reviewers.", code="committee_required")
    request = AllocationRequest.objects.select_for_update().get(pk=request.pk)
    if request.state not in (S.SUBMITTED, S.APPEALED, S.UNDER_REVIEW):
        raise Conflict("Reviewers are assigned to submitted requests.", code="request_not_reviewable")
    if not FederationRole.objects.filter(user=reviewer, role=FederationRoleKind.REVIEWER).exists():
        raise ValidationFailed(
            "That person is not a reviewer.", code="not_a_reviewer", fields={"reviewer": ["Not a reviewer."]}
        )
    if reviewer_is_conflicted(reviewer, request):
        raise Conflict("That reviewer has a conflict of interest with this request.", code="reviewer_conflicted")
    if Review.objects.filter(request=request, reviewer=reviewer).exists():
        raise Conflict("That reviewer is already assigned.", code="already_assigned")
    review = Review.objects.create(request=request, reviewer=reviewer, assigned_by=actor.label[:300])
    audit_record(
        actor=actor,
        action="review.assign",
        obj=review,
        institution=request.institution_id,
        after={"request": request.pk, "reviewer": reviewer.email},
    )
    transaction.on_commit(lambda: notifications.reviewer_assigned(review.pk))
    if request.state in (S.SUBMITTED, S.APPEALED):
        transition(actor=actor, request=request, to_state=S.UNDER_REVIEW, reason=f"Reviewer assigned by {actor.label}.")
    return review


@transaction.atomic
def auto_assign_reviewers(*, actor: Actor, request: AllocationRequest) -> list[Review]:
    """Assign the least-loaded eligible reviewers until the tier's minimum is met."""
    if not is_committee(actor, request):
        raise PermissionDenied("Only the committee assigns reviewers.", code="committee_required")
    request = AllocationRequest.objects.get(pk=request.pk)
    needed = min_reviews(request) - _open_reviews(request)
    assigned = []
    for reviewer in eligible_reviewers(request)[: max(needed, 0)]:
        assigned.append(assign_reviewer(actor=actor, request=request, reviewer=reviewer))
    return assigned


@transaction.atomic
def declare_conflict(*, actor: Actor, review: Review, reason: str) -> Review:
    """A reviewer declares a conflict: the assignment is declined and they lose access."""
    review = Review.objects.select_for_update(of=("self",)).select_related("request").get(pk=review.pk)
    if actor.user is None or review.reviewer_id != actor.user.pk:
        raise PermissionDenied("Only the assigned reviewer can declare a conflict.", code="not_your_review")
    if review.state != Review.State.ASSIGNED:
        raise Conflict("This review is already closed.", code="review_closed")
    ConflictOfInterest.objects.create(reviewer=actor.user, request=review.request, reason=(reason or "")[:500])
    review.state = Review.State.DECLINED
    review.save(update_fields=["state"])
    audit_record(
        actor=actor,
        action="review.decline_conflict",
        obj=review,
        institution=review.request.institution_id,
        after={"reason": reason[:500]},
    )
    if review.request.state in (S.SUBMITTED, S.APPEALED, S.UNDER_REVIEW):
        auto_assign_reviewers(actor=system_actor(), request=review.request)
    return review


@transaction.atomic
def review_submit(
    *,
    actor: Actor,
    review: Review,
    merit: int,
    feasibility: int,
    readiness: int,
    comment: str,
    recommended_amounts: dict,
) -> Review:
    review = Review.objects.select_for_update(of=("self",)).select_related("request").get(pk=review.pk)
    request = review.request
    if actor.user is None or review.reviewer_id != actor.user.pk:
        raise PermissionDenied("Only the assigned reviewer can submit this review.", code="not_your_review")
    if reviewer_is_conflicted(actor.user, request):
        raise PermissionDenied(
            "Reviewers cannot review their own institution or a conflicted request.", code="reviewer_conflicted"
        )
    if review.state != Review.State.ASSIGNED:
        raise Conflict("This review was already submitted or declined.", code="review_closed")
    if request.state != S.UNDER_REVIEW:
        raise Conflict("The request is not under review.", code="request_not_under_review")
    errors = {
        name: ["A score from 0 to 5."]
        for name, value in (("merit", merit), ("feasibility", feasibility), ("readiness", readiness))
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 5
    }
    if errors:
        raise ValidationFailed("Scores are whole numbers from 0 to 5.", code="invalid_score", fields=errors)
    recommended = _clean_amounts(recommended_amounts or {}, _prices(), field="recommended_amounts")
    review.merit, review.feasibility, review.readiness = merit, feasibility, readiness
    review.comment, review.recommended_amounts = (comment or "").strip()[:10000], recommended
    review.state, review.submitted_at = Review.State.SUBMITTED, timezone.now()
    review.save()
    audit_record(
        actor=actor,
        action="review.submit",
        obj=review,
        institution=request.institution_id,
        after={"merit": merit, "feasibility": feasibility, "readiness": readiness},
    )
    return review


# --- decisions and their effect ---------------------------------------------------------
@transaction.atomic
def decide(
    *, actor: Actor, request: AllocationRequest, outcome: str, amounts: dict | None, reason: str
) -> AllocationRequest:
    """The committee's decision: award (≤ asked), reject, or ask for revision, with a reason."""
    if not (actor.is_federation_admin or actor.has_federation_role(FederationRoleKind.COMMITTEE)):
        raise PermissionDenied("Only the allocation committee decides.", code="committee_required")
    if outcome not in Decision.Outcome.values:
        raise ValidationFailed("Unknown outcome.", code="invalid", fields={"outcome": ["award, reject or revise."]})
    if not (reason or "").strip():
        raise ValidationFailed(
            "A decision needs a reason the PI will read.", code="reason_required", fields={"reason": ["Required."]}
        )
    request = AllocationRequest.objects.select_for_update().get(pk=request.pk)
    if request.state != S.UNDER_REVIEW:
        raise Conflict("Only a request under review can be decided.", code="illegal_transition")
    done = request.reviews.filter(state=Review.State.SUBMITTED).count()
    needed = min_reviews(request)
    if outcome != Decision.Outcome.REVISE and done < needed:
        raise Conflict(f"{needed} reviews are needed before a decision; {done} are in.", code="not_enough_reviews")
    return _decide(actor=actor, request=request, outcome=outcome, amounts=amounts or {}, reason=reason.strip())


def _decide(*, actor: Actor, request: AllocationRequest, outcome: str, amounts: dict, reason: str) -> AllocationRequest:
    if outcome == Decision.Outcome.AWARD:
        extension = effective_kind(request.kind, request.appeal_of) == RequestKind.EXTENSION
        awarded = _clean_amounts(amounts, _prices()) if not extension else {}
        over = [c for c, v in awarded.items() if v > request.amounts.get(c, 0)]
        if over:
            raise ValidationFailed(
                "An award cannot exceed what was asked.",
                code="award_exceeds_request",
                fields={"amounts": [f"{c}: at most {request.amounts.get(c, 0)}." for c in over]},
            )
        if not extension and not awarded:
            raise ValidationFailed(
                "Award at least one class, or reject.",
                code="invalid_amount",
                fields={"amounts": ["Required for an award."]},
            )
        target = S.APPROVED
    else:
        awarded = {}
        target = S.REJECTED if outcome == Decision.Outcome.REJECT else S.REVISION_REQUESTED
    request = transition(actor=actor, request=request, to_state=target, reason=reason)
    decision = Decision.objects.create(
        request=request,
        outcome=outcome,
        amounts=awarded,
        reason=reason,
        decided_by=actor.user,
        decided_by_label=actor.label[:300],
    )
    audit_record(
        actor=actor,
        action=f"decision.{outcome}",
        obj=decision,
        institution=request.institution_id,
        after={"request": request.pk, "amounts": awarded, "reason": reason[:500]},
    )
    if outcome == Decision.Outcome.AWARD:
        _apply_award(actor=actor, request=request, awarded=awarded)
    transaction.on_commit(lambda: notifications.request_decided(decision.pk))
    return request


def _apply_award(*, actor: Actor, request: AllocationRequest, awarded: dict[str, int]) -> Allocation:
    """Create or update the Allocation an approved request gives."""
    kind, target_id = request.kind, request.allocation_id
    if kind == RequestKind.APPEAL:
        # An upheld appeal does what the appealed request would have done: top up the allocation
        # that request created, or act on the allocation it named (supplement, extension).
        parent = request.appeal_of
        existing = Allocation.objects.filter(origin=parent).first()
        if existing is not None:
            ledger_award(actor=actor, allocation=existing, amounts=awarded, request=request)
            _awarded(actor, existing, request, awarded)
            return existing
        kind, target_id = parent.kind, parent.allocation_id
    if kind in (RequestKind.NEW, RequestKind.RENEWAL):
        allocation = Allocation.objects.create(
            institution_id=request.institution_id,
            project=request.project,
            origin=request,
            start=request.start,
            end=request.end,
        )
        audit_record(
            actor=actor,
            action="allocation.create",
            obj=allocation,
            institution=request.institution_id,
            after={"request": request.pk, "start": request.start.isoformat(), "end": request.end.isoformat()},
        )
        ledger_award(actor=actor, allocation=allocation, amounts=awarded, request=request)
        _awarded(actor, allocation, request, awarded)
        return allocation
    allocation = Allocation.objects.select_for_update().get(pk=target_id)
    if kind == RequestKind.SUPPLEMENT:
        ledger_award(actor=actor, allocation=allocation, amounts=awarded, request=request)
        _awarded(actor, allocation, request, awarded)
    elif kind == RequestKind.EXTENSION:
        if request.end <= allocation.end:
            raise Conflict("The allocation already ends on or after the requested date.", code="extension_not_later")
        before = allocation.end
        allocation.end = request.end
        allocation.warned_30_at = allocation.warned_7_at = None
        allocation.save(update_fields=["end", "warned_30_at", "warned_7_at"])
        audit_record(
            actor=actor,
            action="allocation.extend",
            obj=allocation,
            institution=request.institution_id,
            before={"end": before.isoformat()},
            after={"end": allocation.end.isoformat()},
        )
    return allocation


def _awarded(actor: Actor, allocation: Allocation, request: AllocationRequest, awarded: dict[str, int]) -> None:
    """Tell the listeners (the federation's quota broker) in the award's transaction."""
    if awarded:
        allocation_awarded.send(sender=Allocation, actor=actor, allocation=allocation, request=request,
                                amounts=dict(awarded))


# --- allocation lifecycle ---------------------------------------------------------------
ALLOCATION_TRANSITIONS = {
    (AllocationState.ACTIVE, AllocationState.EXPIRED),
    (AllocationState.ACTIVE, AllocationState.SUSPENDED),
    (AllocationState.SUSPENDED, AllocationState.ACTIVE),
    (AllocationState.SUSPENDED, AllocationState.EXPIRED),
}


@transaction.atomic
def allocation_set_state(*, actor: Actor, allocation: Allocation, to_state: str, reason: str) -> Allocation:
    if not (actor.is_federation_admin or actor.has_federation_role(FederationRoleKind.COMMITTEE)):
        raise PermissionDenied(
            "Only the committee or a federation admin can change an allocation's state.", code="committee_required"
        )
    allocation = Allocation.objects.select_for_update().get(pk=allocation.pk)
    if (allocation.state, to_state) not in ALLOCATION_TRANSITIONS:
        raise Conflict(f"An allocation cannot go from {allocation.state} to {to_state}.", code="illegal_transition")
    before = allocation.state
    allocation.state = to_state
    allocation.save(update_fields=["state"])
    audit_record(
        actor=actor,
        action=f"allocation.{to_state}",
        obj=allocation,
        institution=allocation.institution_id,
        before={"state": before},
        after={"state": to_state, "reason": reason[:500]},
    )
    publish_balances(allocation)
    return allocation


def expire_due_allocations(today: date | None = None) -> int:
    today = today or timezone.localdate()
    due = list(
        Allocation.objects.filter(
            state__in=[AllocationState.ACTIVE, AllocationState.SUSPENDED], end__lt=today
        ).values_list("pk", flat=True)
    )
    actor = system_actor()
    for pk in due:
        allocation_set_state(
            actor=actor,
            allocation=Allocation(pk=pk),
            to_state=AllocationState.EXPIRED,
            reason=f"Ended before {today.isoformat()}.",
        )
    return len(due)
