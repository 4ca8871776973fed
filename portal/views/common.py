"""Helpers shared by the portal views: the actor, tenancy errors as HTTP, service errors on forms."""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import Http404
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from accounts.access import get_administered_institution
from accounts.actors import Actor, actor_for_request
from accounts.models import Institution
from portal.errors import ApplicationError, NotFound, PermissionDenied


def portal_actor(request) -> Actor:
    return actor_for_request(request)


def raise_as_http(exc: ApplicationError):
    """Turn a tenancy error from an access helper or a service into Django's 404 / 403."""
    if isinstance(exc, NotFound):
        raise Http404(exc.message) from exc
    if isinstance(exc, PermissionDenied):
        raise HttpForbidden(exc.message) from exc
    raise exc


def administered_institution(request, institution_id: int) -> Institution:
    """The institution if the user may run it; 404 for another tenant's id, 403 for a plain member."""
    try:
        return get_administered_institution(portal_actor(request), institution_id)
    except ApplicationError as exc:
        raise_as_http(exc)


class _Params(dict):
    def __missing__(self, key):
        return ""


# Service messages are English; the portal shows its own translated wording, chosen by error code.
MESSAGES_BY_CODE = {
    "already_member": _("%(email)s is already a member of %(institution)s."),
    "email_domain_mismatch": _("%(email)s is not an address of %(institution)s (%(domains)s)."),
    "last_institution_admin": _("An institution needs at least one admin."),
    "invalid_role": _("Unknown role."),
    "institution_code_taken": _("An institution with code %(code)s already exists."),
    "institution_name_taken": _("An institution named “%(name)s” already exists."),
    "token_name_taken": _("A token named “%(name)s” already exists."),
    "invalid_scope": _("Choose at least one known scope."),
    "invalid_expiry": _("The expiry date must be in the future and within %(max_days)s days."),
    "token_already_revoked": _("This token is already revoked."),
    "institution_admin_required": _("Only an institution admin can do this."),
    "federation_admin_required": _("Only a federation admin can do this."),
}

# Field messages the services use verbatim: marked here so that the .po file translates them.
SERVICE_FIELD_MESSAGES = [
    gettext_noop("Already taken."),
    gettext_noop("Already a member."),
    gettext_noop("Address outside the institution's domains."),
    gettext_noop("Name is required, at most 200 characters."),
    gettext_noop("2-32 characters: letters, digits and hyphens, starting with a letter or digit."),
    gettext_noop("At most 20 domains."),
    gettext_noop("Required, at most 100 characters."),
    gettext_noop("Out of range."),
    gettext_noop("Invalid institution."),
]


def error_message(exc: ApplicationError, **params) -> str:
    template = MESSAGES_BY_CODE.get(exc.code)
    if template is None:
        return gettext(exc.message)
    return str(template) % _Params(params)


def apply_service_error(
    form: forms.Form, exc: ApplicationError, *, field_map: dict[str, str] | None = None, **params
) -> None:
    """Show a service's refusal on the form: on the field it names when there is one, else on top."""
    field_map = field_map or {}
    fields = {field_map.get(name, name): messages for name, messages in (exc.fields or {}).items()}
    fields = {name: messages for name, messages in fields.items() if name in form.fields}
    if exc.code in MESSAGES_BY_CODE or not fields:
        target = next(iter(fields), None)
        form.add_error(target, error_message(exc, **params))
        return
    # A generic refusal ("invalid") with specific field messages: show each field's own message.
    for name, messages in fields.items():
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(name, gettext(str(message)))
