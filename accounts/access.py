"""Access helpers: the only way entry points fetch tenant-owned objects.

Each helper takes the acting ``Actor`` and answers ``NotFound`` both for objects that do
not exist and for objects of another institution, so a caller cannot probe for ids.
"""

from django.db.models import QuerySet

from accounts.actors import Actor
from accounts.models import ApiToken, AuditEvent, Institution, Membership
from portal.errors import NotFound, PermissionDenied


def _parse_pk(pk) -> int:
    try:
        return int(pk)
    except (TypeError, ValueError):
        raise NotFound("Not found.", code="not_found") from None


def institutions_for(actor: Actor) -> QuerySet[Institution]:
    qs = Institution.objects.all()
    if actor.is_federation_admin:
        return qs
    return qs.filter(pk__in=actor.institution_ids())


def get_institution(actor: Actor, pk) -> Institution:
    pk = _parse_pk(pk)
    try:
        return institutions_for(actor).get(pk=pk)
    except Institution.DoesNotExist:
        raise NotFound("Institution not found.", code="institution_not_found") from None


def get_administered_institution(actor: Actor, pk) -> Institution:
    """The institution, if the actor may administer it (403 if visible but not theirs to run)."""
    institution = get_institution(actor, pk)
    if not actor.can_admin_institution(institution.pk):
        raise PermissionDenied("Only an institution admin can do this.", code="institution_admin_required")
    return institution


def memberships_for(actor: Actor, institution: Institution) -> QuerySet[Membership]:
    get_institution(actor, institution.pk)
    return Membership.objects.filter(institution=institution).select_related("user")


def get_membership(actor: Actor, institution: Institution, pk) -> Membership:
    try:
        return memberships_for(actor, institution).get(pk=_parse_pk(pk))
    except Membership.DoesNotExist:
        raise NotFound("Member not found.", code="membership_not_found") from None


def tokens_for(actor: Actor, institution: Institution) -> QuerySet[ApiToken]:
    institution = get_administered_institution(actor, institution.pk)
    return ApiToken.objects.filter(institution=institution).select_related("created_by", "revoked_by")


def get_token(actor: Actor, institution: Institution, pk) -> ApiToken:
    try:
        return tokens_for(actor, institution).get(pk=_parse_pk(pk))
    except ApiToken.DoesNotExist:
        raise NotFound("Token not found.", code="token_not_found") from None


def audit_events_for(actor: Actor, institution: Institution | None = None) -> QuerySet[AuditEvent]:
    """Institution admins read their institution's trail; federation admins read everything."""
    qs = AuditEvent.objects.select_related("institution")
    if institution is not None:
        get_administered_institution(actor, institution.pk)
        return qs.filter(institution=institution)
    if actor.is_federation_admin:
        return qs
    administered = [pk for pk in actor.institution_ids() if actor.can_admin_institution(pk)]
    if not administered:
        raise PermissionDenied("Only an institution admin can read the audit log.", code="institution_admin_required")
    return qs.filter(institution_id__in=administered)
