"""Project services: a PI creates projects in their institution and manages who is on them."""

from __future__ import annotations

from datetime import date

from django.db import transaction

from accounts.actors import Actor
from accounts.audit import audit_record, snapshot
from accounts.models import InstitutionRole, User, normalize_email
from allocations.models import Discipline, Project, ProjectMember
from portal.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

PROJECT_FIELDS = ["title", "abstract", "discipline", "start", "end"]


def _clean(title: str, abstract: str, discipline: str, start: date, end: date) -> tuple[str, str]:
    errors: dict[str, list[str]] = {}
    title, abstract = (title or "").strip(), (abstract or "").strip()
    if not title or len(title) > 200:
        errors["title"] = ["Required, at most 200 characters."]
    if not abstract or len(abstract) > 5000:
        errors["abstract"] = ["Required, at most 5000 characters."]
    if discipline not in Discipline.values:
        errors["discipline"] = ["Unknown field of science."]
    if start and end and end <= start:
        errors["end"] = ["The end must be after the start."]
    if errors:
        raise ValidationFailed("Invalid project.", code="invalid", fields=errors)
    return title, abstract


def can_manage_project(actor: Actor, project: Project) -> bool:
    if actor.is_federation_admin or actor.can_admin_institution(project.institution_id):
        return True
    return actor.user is not None and project.pi_id == actor.user.pk


def _require_manager(actor: Actor, project: Project) -> None:
    if not can_manage_project(actor, project):
        raise PermissionDenied("Only the project's PI or an institution admin can do this.", code="project_pi_required")


@transaction.atomic
def project_create(
    *, actor: Actor, institution_id: int, title: str, abstract: str, discipline: str, start: date, end: date
) -> Project:
    """A PI creates a project in an institution where they hold the PI role."""
    if actor.user is None:
        raise PermissionDenied("Projects are created by a PI in person.", code="pi_required")
    if actor.role_in(institution_id) != InstitutionRole.PI:
        if actor.role_in(institution_id) is None and not actor.is_federation_admin:
            raise NotFound("Institution not found.", code="institution_not_found")
        raise PermissionDenied("Only a PI of the institution can create projects.", code="pi_required")
    title, abstract = _clean(title, abstract, discipline, start, end)
    project = Project.objects.create(
        institution_id=institution_id,
        pi=actor.user,
        title=title,
        abstract=abstract,
        discipline=discipline,
        start=start,
        end=end,
    )
    ProjectMember.objects.create(project=project, user=actor.user, role=ProjectMember.Role.PI)
    audit_record(
        actor=actor,
        action="project.create",
        obj=project,
        institution=institution_id,
        after=snapshot(project, PROJECT_FIELDS),
    )
    return project


@transaction.atomic
def project_update(*, actor: Actor, project: Project, **changes) -> Project:
    _require_manager(actor, project)
    project = Project.objects.select_for_update().get(pk=project.pk)
    before = snapshot(project, PROJECT_FIELDS)
    for name in PROJECT_FIELDS:
        if name in changes:
            setattr(project, name, changes[name])
    project.title, project.abstract = _clean(
        project.title, project.abstract, project.discipline, project.start, project.end
    )
    project.save()
    after = snapshot(project, PROJECT_FIELDS)
    if after != before:
        audit_record(
            actor=actor,
            action="project.update",
            obj=project,
            institution=project.institution_id,
            before=before,
            after=after,
        )
    return project


@transaction.atomic
def project_member_add(*, actor: Actor, project: Project, email: str) -> ProjectMember:
    """Add a member of the project's institution to the project."""
    _require_manager(actor, project)
    email = normalize_email(email)
    user = User.objects.filter(email=email, memberships__institution_id=project.institution_id).first()
    if user is None:
        raise ValidationFailed(
            f"{email} is not a member of the project's institution.",
            code="not_institution_member",
            fields={"email": ["Not a member of the institution."]},
        )
    if ProjectMember.objects.filter(project=project, user=user).exists():
        raise Conflict(
            f"{email} is already on the project.",
            code="already_project_member",
            fields={"email": ["Already on the project."]},
        )
    member = ProjectMember.objects.create(project=project, user=user, role=ProjectMember.Role.MEMBER)
    audit_record(
        actor=actor,
        action="project_member.create",
        obj=member,
        institution=project.institution_id,
        after={"project": project.pk, "user": email},
    )
    return member


@transaction.atomic
def project_member_remove(*, actor: Actor, member: ProjectMember) -> None:
    project = member.project
    _require_manager(actor, project)
    if member.user_id == project.pi_id:
        raise Conflict("The PI cannot be removed from their project.", code="cannot_remove_pi")
    audit_record(
        actor=actor,
        action="project_member.delete",
        obj=member,
        institution=project.institution_id,
        before={"project": project.pk, "user": member.user.email},
    )
    member.delete()

