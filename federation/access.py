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
