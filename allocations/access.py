"""Access helpers for allocation objects: scoped by actor, "not found" for missing and foreign.

Who sees what:
- institution admins and the institution's tokens: everything of their institution;
- PIs and researchers: the projects they belong to, and those projects' requests and allocations;
- the committee and federation admins: every project, every non-draft request, every allocation;
- reviewers: only the requests assigned to them (never a conflicted one), read-only.
"""

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.actors import Actor
from accounts.models import FederationRoleKind, InstitutionRole
from allocations.models import (
    Allocation,
    AllocationRequest,
    ConflictOfInterest,
    LedgerEntry,
    Project,
    ProjectMember,
    RequestState,
    Review,
)
from portal.errors import NotFound


def _pk(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NotFound("Not found.") from None


def sees_everything(actor: Actor) -> bool:
    return actor.is_federation_admin or actor.has_federation_role(FederationRoleKind.COMMITTEE)


def _administered(actor: Actor) -> list[int]:
    """Institutions whose every project the actor may read (admins, and tokens for their own)."""
    if actor.is_token:
        return [actor.token.institution_id]
    return [pk for pk, role in actor.memberships.items() if role == InstitutionRole.INSTITUTION_ADMIN]


def _project_filter(actor: Actor, prefix: str = "") -> Q:
    member_of = Q(**{f"{prefix}members__user": actor.user}) if actor.user else Q(pk__in=[])
    return Q(**{f"{prefix}institution_id__in": _administered(actor)}) | member_of


def projects_for(actor: Actor) -> QuerySet[Project]:
    qs = Project.objects.select_related("institution", "pi")
    if sees_everything(actor):
        return qs
    return qs.filter(_project_filter(actor)).distinct()


def get_project(actor: Actor, pk) -> Project:
    try:
        return projects_for(actor).get(pk=_pk(pk))
    except Project.DoesNotExist:
        raise NotFound("Project not found.", code="project_not_found") from None


def project_members_for(actor: Actor, project: Project) -> QuerySet[ProjectMember]:
    project = get_project(actor, project.pk)
    return ProjectMember.objects.filter(project=project).select_related("user").order_by("user__email")


def get_project_member(actor: Actor, project: Project, pk) -> ProjectMember:
    try:
        return project_members_for(actor, project).get(pk=_pk(pk))
    except ProjectMember.DoesNotExist:
        raise NotFound("Project member not found.", code="project_member_not_found") from None


def requests_for(actor: Actor) -> QuerySet[AllocationRequest]:
    qs = AllocationRequest.objects.select_related("project", "institution", "created_by")
    if sees_everything(actor):
        own = Q(project__in=Project.objects.filter(_project_filter(actor))) if actor.user else Q(pk__in=[])
        return qs.filter(~Q(state=RequestState.DRAFT) | own)
    visible = Q(project__in=Project.objects.filter(_project_filter(actor)))
    if actor.has_federation_role(FederationRoleKind.REVIEWER) and actor.user:
        visible |= Q(pk__in=reviewable_request_ids(actor))
    return qs.filter(visible)


def reviewable_request_ids(actor: Actor) -> QuerySet:
    """Requests this reviewer was assigned and may open (no declared conflict, not own institution)."""
    conflicted = ConflictOfInterest.objects.filter(reviewer=actor.user).filter(
        Q(request=OuterRef("request")) | Q(institution=OuterRef("request__institution"))
    )
    return (
        Review.objects.filter(reviewer=actor.user)
        .exclude(state=Review.State.DECLINED)
        .exclude(request__institution_id__in=actor.institution_ids())
        .exclude(Exists(conflicted))
        .values("request_id")
    )


def get_request(actor: Actor, pk) -> AllocationRequest:
    try:
        return requests_for(actor).get(pk=_pk(pk))
    except AllocationRequest.DoesNotExist:
        raise NotFound("Allocation request not found.", code="request_not_found") from None


def reviews_for(actor: Actor) -> QuerySet[Review]:
    """A reviewer's own assignments; the committee sees all reviews; PIs never see reviewer names."""
    qs = Review.objects.select_related("request", "request__project", "reviewer")
    if sees_everything(actor):
        return qs
    if actor.user is None:
        return qs.none()
    return qs.filter(reviewer=actor.user, request_id__in=reviewable_request_ids(actor))


def get_review(actor: Actor, pk) -> Review:
    try:
        return reviews_for(actor).get(pk=_pk(pk))
    except Review.DoesNotExist:
        raise NotFound("Review not found.", code="review_not_found") from None


def allocations_for(actor: Actor) -> QuerySet[Allocation]:
    qs = Allocation.objects.select_related("project", "institution")
    if sees_everything(actor):
        return qs
    return qs.filter(project__in=Project.objects.filter(_project_filter(actor)))


def get_allocation(actor: Actor, pk) -> Allocation:
    try:
        return allocations_for(actor).get(pk=_pk(pk))
    except Allocation.DoesNotExist:
        raise NotFound("Allocation not found.", code="allocation_not_found") from None


def ledger_for(actor: Actor, allocation: Allocation) -> QuerySet[LedgerEntry]:
    """The allocation's ledger, scoped in the same query (no second fetch of the allocation:
    callers already hold it from get_allocation, which answered 404 for foreign ones)."""
    visible = allocations_for(actor).filter(pk=allocation.pk).values("pk")
    return LedgerEntry.objects.filter(allocation_id__in=visible).select_related("resource_class")
