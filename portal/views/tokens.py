"""Institution admin: API tokens. The secret is shown once, in the response to the create POST, and never again."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.access import get_token, tokens_for
from accounts.models import TokenScope
from portal.errors import ApplicationError
from portal.forms import TokenCreateForm
from portal.views.common import (
    administered_institution,
    apply_service_error,
    error_message,
    portal_actor,
    raise_as_http,
)

DISPLAY_TIME_ZONE = ZoneInfo("Asia/Shanghai")


def expiry_from_date(day) -> datetime | None:
    """A token "valid until <day>" stops at the end of that day, Beijing time."""
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=DISPLAY_TIME_ZONE)


def _render_tokens(request, institution, *, form=None, error=None, status=200):
    actor = portal_actor(request)
    context = {
        "institution": institution,
        "tab": "tokens",
        "tokens": tokens_for(actor, institution),
        "form": form or TokenCreateForm(),
        "scope_labels": dict(TokenScope.choices),
        "error": error,
    }
    return render(request, "portal/institution/tokens.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request, institution_id: int):
    institution = administered_institution(request, institution_id)
    if request.method == "GET":
        return _render_tokens(request, institution)

    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _render_tokens(request, institution, form=form, status=400)
    data = form.cleaned_data
    try:
        token, secret = services.token_create(
            actor=portal_actor(request),
            institution=institution,
            name=data["name"],
            scopes=data["scopes"],
            expires_at=expiry_from_date(data["expires_on"]),
        )
    except ApplicationError as exc:
        apply_service_error(
            form,
            exc,
            field_map={"expires_at": "expires_on"},
            name=data["name"],
            max_days=settings.SUANWANG["TOKEN_MAX_LIFETIME_DAYS"],
        )
        return _render_tokens(request, institution, form=form, status=exc.status_code)
    # Rendered straight into this response: the plain secret is never stored, redirected or put in the session.
    response = render(
        request,
        "portal/institution/token_created.html",
        {
            "institution": institution,
            "tab": "tokens",
            "token": token,
            "secret": secret,
            "scope_labels": dict(TokenScope.choices),
        },
    )
    add_never_cache_headers(response)
    return response


@login_required
@require_POST
def token_revoke(request, institution_id: int, token_id: int):
    institution = administered_institution(request, institution_id)
    actor = portal_actor(request)
    try:
        token = get_token(actor, institution, token_id)
    except ApplicationError as exc:
        raise_as_http(exc)
    try:
        services.token_revoke(actor=actor, token=token)
    except ApplicationError as exc:
        return _render_tokens(request, institution, error=error_message(exc), status=exc.status_code)
    messages.success(request, _("The token “%(name)s” was revoked.") % {"name": token.name})
    return redirect("portal:institution_tokens", institution_id=institution.pk)
