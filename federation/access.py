"""Access helpers for jobs (tenant-owned): "not found" for missing and foreign alike.

Project members see the project's jobs; institution admins and the institution's tokens see
all of the institution's jobs; federation admins see everything.
"""

from django.db.models import Q, QuerySet

from accounts.actors import Actor
from accounts.models import InstitutionRole
from federation.models import Job
from portal.errors import NotFound


def jobs_for(actor: Actor) -> QuerySet[Job]:
    qs = Job.objects.select_related("site", "partition", "project")
    if actor.is_federation_admin:
        return qs
    if actor.is_token:
        return qs.filter(institution_id=actor.token.institution_id)
    administered = [pk for pk, role in actor.memberships.items() if role == InstitutionRole.INSTITUTION_ADMIN]
    if actor.user is None:
        return qs.none()
    return qs.filter(Q(institution_id__in=administered) | Q(project__members__user=actor.user)).distinct()


def get_job(actor: Actor, pk) -> Job:
    try:
        return jobs_for(actor).get(pk=int(pk))
    except (Job.DoesNotExist, TypeError, ValueError):
        raise NotFound("Job not found.", code="job_not_found") from None


def site_jobs_for(actor: Actor, site) -> QuerySet[Job]:
    """The jobs at one centre, for its operators and federation admins (everyone else: none). Operators
    watch their centre's work; the page shows what runs there, not whose research it is."""
    from accounts.models import FederationRoleKind
    from federation.models import SiteOperator

    qs = Job.objects.select_related("site", "partition", "institution", "resource_class").filter(site=site)
    if actor.is_federation_admin:
        return qs
    if actor.user is None or not actor.has_federation_role(FederationRoleKind.SITE_OPERATOR):
        return qs.none()
    # Bound to the centre: checked in the same query (no separate look-up).
    return qs.filter(site__in=SiteOperator.objects.filter(user=actor.user).values("site_id"))


# --- site quotas ------------------------------------------------------------------------------
def quotas_for(actor: Actor):
    """Site quotas the actor may see: their allocations' shares (as ``allocations_for`` scopes them), and
    every share at the centres they operate; the committee and federation admins see all."""
    from accounts.models import FederationRoleKind
    from allocations.access import allocations_for, sees_everything
    from federation.models import SiteOperator, SiteQuota

    qs = SiteQuota.objects.select_related("site", "resource_class", "allocation__project",
                                          "allocation__institution")
    if sees_everything(actor):
        return qs
    visible = Q(allocation__in=allocations_for(actor).values("pk"))
    if actor.user is not None and actor.has_federation_role(FederationRoleKind.SITE_OPERATOR):
        visible |= Q(site__in=SiteOperator.objects.filter(user=actor.user).values("site"))
    return qs.filter(visible)


def get_quota(actor: Actor, pk):
    from federation.models import SiteQuota

    try:
        return quotas_for(actor).get(pk=int(pk))
    except (SiteQuota.DoesNotExist, TypeError, ValueError):
        raise NotFound("Site quota not found.", code="quota_not_found") from None
