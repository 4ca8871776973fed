"""Reads for the live streams: who may join which groups, and the snapshots (via the access helpers).

Everything here is synchronous ORM code; the consumers call it through ``database_sync_to_async``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q

from accounts.access import institutions_for
from accounts.actors import Actor
from accounts.models import InstitutionRole, TokenScope
from allocations.access import allocations_for, get_project, requests_for
from allocations.models import ProjectMember, ResourceClass
from federation.access import get_job, jobs_for
from federation.models import AcceleratorFamily
from federation.selectors import sites_with_partitions
from portal.errors import NotFound
from portal.events import SITES_GROUP, institution_group, project_group
from portal.live import protocol
from portal.live.capacity import reported_rows


class Refused(Exception):
    """A connection the server will not serve: close code, error code, message."""

    def __init__(self, close_code: int, code: str, message: str):
        super().__init__(message)
        self.close_code, self.code, self.message = close_code, code, message


@dataclass
class Scope:
    stream: str
    groups: list[str]
    institution_ids: set[int] = field(default_factory=set)  # every job/allocation of these
    project_ids: set[int] = field(default_factory=set)  # and of these projects
    job_id: int | None = None  # ?job=: only this job
    institution: dict | None = None


# --- authentication -------------------------------------------------------------------------
def authenticate(raw_token: str | None, user, ip: str | None) -> Actor:
    from accounts.services import TokenRejected, token_authenticate

    if raw_token is not None:
        try:
            token = token_authenticate(raw_token, ip=ip)
        except TokenRejected as exc:
            raise Refused(protocol.CLOSE_UNAUTHENTICATED, exc.code, exc.message) from None
        actor = Actor(token=token, ip=ip)
        if not actor.has_scope(TokenScope.READ):
            raise Refused(protocol.CLOSE_FORBIDDEN, "insufficient_scope", "The token needs the read scope.")
        return actor
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        raise Refused(protocol.CLOSE_UNAUTHENTICATED, "not_authenticated",
                      "Log in, or present an API token with the read scope.")
    return Actor(user=user, ip=ip)


def recheck_token(raw_token: str, ip: str | None) -> Refused | None:
    """A connected token may have been revoked or expired meanwhile."""
    try:
        authenticate(raw_token, None, ip)
    except Refused as refused:
        return refused
    return None


def recheck_person(user_id: int, ip: str | None, *, session_key: str | None, has_session: bool, resolve,
                   groups: list[str]) -> Refused | None:
    """A browser's connection, re-checked like a token's: the session may have ended (logout, expiry), the
    person may have been deactivated or lost access to what the connection follows (removed from the
    project or the institution). ``resolve(actor)`` gives the connection's scope as it would be now."""
    if has_session:
        from importlib import import_module

        from django.conf import settings
        from django.contrib.auth import SESSION_KEY

        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        if not session_key or str(store.get(SESSION_KEY)) != str(user_id):
            return Refused(protocol.CLOSE_UNAUTHENTICATED, "session_ended", "The session has ended: log in again.")
    from django.contrib.auth import get_user_model

    try:
        scope = resolve(authenticate(None, get_user_model().objects.filter(pk=user_id).first(), ip))
    except Refused as refused:
        return refused
    if not set(groups) <= set(scope.groups):
        return Refused(protocol.CLOSE_FORBIDDEN, "access_changed",
                       "What this connection may read has changed: reconnect for a new snapshot.")
    return None


def _administered(actor: Actor) -> set[int]:
    if actor.is_token:
        return {actor.token.institution_id}
    return {pk for pk, role in actor.memberships.items() if role == InstitutionRole.INSTITUTION_ADMIN}


def _forbidden(message: str) -> Refused:
    return Refused(protocol.CLOSE_FORBIDDEN, "permission_denied", message)


# --- which groups ----------------------------------------------------------------------------
def jobs_scope(actor: Actor, *, project: int | None = None, job: int | None = None) -> Scope:
    if job is not None:
        try:
            found = get_job(actor, job)
        except NotFound:
            raise _forbidden("You cannot read that job.") from None
        return Scope("jobs", [project_group(found.project_id)], project_ids={found.project_id}, job_id=found.pk)
    if project is not None:
        try:
            found = get_project(actor, project)
        except NotFound:
            raise _forbidden("You cannot read that project.") from None
        member = actor.user is not None and ProjectMember.objects.filter(project=found, user=actor.user).exists()
        if not (actor.is_federation_admin or found.institution_id in _administered(actor) or member):
            raise _forbidden("You cannot read that project's jobs.")
        return Scope("jobs", [project_group(found.pk)], project_ids={found.pk})
    administered = _administered(actor)
    projects = set()
    if actor.user is not None:
        projects = {pid for pid, iid in ProjectMember.objects.filter(user=actor.user)
                    .values_list("project_id", "project__institution_id") if iid not in administered}
    groups = [institution_group(i) for i in sorted(administered)] + [project_group(p) for p in sorted(projects)]
    return Scope("jobs", groups, institution_ids=administered, project_ids=projects)


def institution_scope(actor: Actor, *, code: str | None = None) -> Scope:
    administered = _administered(actor)
    if code is not None:
        institution = institutions_for(actor).filter(code=code).first()
        if institution is None or not (actor.is_federation_admin or institution.pk in administered):
            raise _forbidden("You cannot read that institution's stream.")
    else:
        if len(administered) != 1:
            if administered or actor.is_federation_admin:
                raise Refused(protocol.CLOSE_FORBIDDEN, "institution_required",
                              "Name the institution: ?institution=<code>.")
            raise Refused(protocol.CLOSE_FORBIDDEN, "institution_admin_required",
                          "Only institution admins and the institution's systems read this stream.")
        institution = institutions_for(actor).get(pk=next(iter(administered)))
    return Scope("institution", [institution_group(institution.pk)], institution_ids={institution.pk},
                 institution={"id": institution.pk, "code": institution.code, "name": institution.name})


def sites_scope(actor: Actor) -> Scope:
    return Scope("sites", [SITES_GROUP])


# --- snapshots -------------------------------------------------------------------------------
def _scoped(qs, scope: Scope, institution_field: str = "institution_id", project_field: str = "project_id"):
    if scope.job_id is not None:
        return qs.filter(pk=scope.job_id)
    return qs.filter(Q(**{f"{institution_field}__in": scope.institution_ids})
                     | Q(**{f"{project_field}__in": scope.project_ids}))


def _classes() -> dict:
    return {rc.code: {"scale": rc.scale, "credits_per_unit": str(rc.credits_per_unit), "unit": rc.unit}
            for rc in ResourceClass.objects.filter(active=True)}


def _jobs_table(actor: Actor, scope: Scope) -> tuple[dict, bool]:
    limit = protocol.live_setting("LIVE_SNAPSHOT_JOBS")
    jobs = list(_scoped(jobs_for(actor).select_related(None), scope).order_by("-id")[: limit + 1])
    return {"fields": list(protocol.FIELDS["jobs"]), "rows": [protocol.job_row(j) for j in jobs[:limit]]}, \
        len(jobs) > limit


def _allocations_table(actor: Actor, scope: Scope) -> dict:
    if scope.job_id is not None:
        allocations = allocations_for(actor).filter(jobs__pk=scope.job_id)
    else:
        allocations = _scoped(allocations_for(actor), scope)
    rows = []
    for allocation in allocations.select_related(None).prefetch_related("balances").order_by("-start", "-id"):
        rows.extend(protocol.allocation_rows(allocation, sorted(allocation.balances.all(),
                                                                key=lambda b: b.resource_class_id)))
    return {"fields": list(protocol.FIELDS["allocation"]), "rows": rows}


def jobs_snapshot(actor: Actor, scope: Scope) -> dict:
    jobs, truncated = _jobs_table(actor, scope)
    if scope.job_id is not None:
        projects = _project_list(actor, project_ids={r[1] for r in jobs["rows"]})
    else:
        projects = _project_list(actor, institution_ids=scope.institution_ids, project_ids=scope.project_ids)
    return {"jobs": jobs, "truncated": truncated, "allocations": _allocations_table(actor, scope),
            "classes": _classes(), "projects": projects}


def _project_list(actor: Actor, *, institution_ids=(), project_ids=()) -> list[dict]:
    from allocations.access import projects_for

    qs = projects_for(actor).filter(Q(institution_id__in=institution_ids) | Q(pk__in=project_ids))
    return [{"id": p.pk, "title": p.title, "institution": p.institution.code} for p in qs.order_by("pk")]


def institution_snapshot(actor: Actor, scope: Scope) -> dict:
    jobs, truncated = _jobs_table(actor, scope)
    requests = (requests_for(actor).filter(institution_id__in=scope.institution_ids).select_related(None)
                .order_by("-id")[:200])
    return {"institution": scope.institution, "jobs": jobs, "truncated": truncated,
            "allocations": _allocations_table(actor, scope), "classes": _classes(),
            "requests": {"fields": list(protocol.FIELDS["request"]),
                         "rows": [protocol.request_row(r, "", r.decided_at or r.submitted_at) for r in requests]},
            "projects": _project_list(actor, institution_ids=scope.institution_ids)}


def sites_snapshot(actor: Actor, scope: Scope) -> dict:
    sites = list(sites_with_partitions())
    reported = reported_rows([s.code for s in sites])
    site_rows, capacity_rows = [], []
    for site in sites:
        site_rows.append(protocol.site_row(site))
        known = {row[1]: row for row in reported.get(site.code, [])}
        for p in site.partitions.all():
            capacity_rows.append(known.get(p.name) or protocol.capacity_row(
                site.code, p, p.family.code if p.family_id else None, p.accelerator_model, None, None))
    return {"sites": {"fields": list(protocol.FIELDS["site"]), "rows": site_rows},
            "capacity": {"fields": list(protocol.FIELDS["capacity"]), "rows": capacity_rows},
            "families": dict(AcceleratorFamily.objects.values_list("code", "name"))}


SNAPSHOTS = {"jobs": jobs_snapshot, "institution": institution_snapshot, "sites": sites_snapshot}
