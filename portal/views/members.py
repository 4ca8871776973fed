"""Institution admin: the members of an institution, add one, change a role, remove one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.access import get_membership, memberships_for
from accounts.models import InstitutionRole
from portal.errors import ApplicationError
from portal.forms import MemberAddForm, MemberRoleForm
from portal.views.common import (
    administered_institution,
    apply_service_error,
    error_message,
    portal_actor,
    raise_as_http,
)

MEMBERS_PER_PAGE = 50


def _render_members(request, institution, *, add_form=None, error=None, status=200):
    actor = portal_actor(request)
    memberships = memberships_for(actor, institution).order_by("user__email")
    page = Paginator(memberships, MEMBERS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "institution": institution,
        "tab": "members",
        "page": page,
        "add_form": add_form or MemberAddForm(),
        "roles": InstitutionRole.choices,
        "error": error,
    }
    return render(request, "portal/institution/members.html", context, status=status)


def _membership_or_404(actor, institution, membership_id):
    try:
        return get_membership(actor, institution, membership_id)
    except ApplicationError as exc:
        raise_as_http(exc)


def _gave_up_own_admin_rights(request, actor, membership, *, still_admin: bool) -> bool:
    """An admin who demoted or removed themselves can no longer open this institution's admin pages."""
    return membership.user_id == request.user.pk and not still_admin and not actor.is_federation_admin


@login_required
@require_http_methods(["GET", "POST"])
def members(request, institution_id: int):
    institution = administered_institution(request, institution_id)
    if request.method == "GET":
        return _render_members(request, institution)

    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return _render_members(request, institution, add_form=form, status=400)
    data = form.cleaned_data
    try:
        membership = services.member_add(
            actor=portal_actor(request),
            institution=institution,
            email=data["email"],
            full_name=data["full_name"],
            role=data["role"],
        )
    except ApplicationError as exc:
        apply_service_error(
            form,
            exc,
            email=data["email"],
            institution=institution.name,
            domains=", ".join(institution.email_domains),
        )
        return _render_members(request, institution, add_form=form, status=exc.status_code)
    messages.success(
        request,
        _("%(email)s was added as %(role)s.")
        % {
            "email": membership.user.email,
            "role": InstitutionRole(membership.role).label,
        },
    )
    return redirect("portal:institution_members", institution_id=institution.pk)


@login_required
@require_POST
def member_change_role(request, institution_id: int, membership_id: int):
    institution = administered_institution(request, institution_id)
    actor = portal_actor(request)
    membership = _membership_or_404(actor, institution, membership_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        return _render_members(request, institution, error=_("Choose a known role."), status=400)
    try:
        membership = services.member_change_role(actor=actor, membership=membership, role=form.cleaned_data["role"])
    except ApplicationError as exc:
        return _render_members(request, institution, error=error_message(exc), status=exc.status_code)
    messages.success(
        request,
        _("%(email)s is now %(role)s.")
        % {
            "email": membership.user.email,
            "role": InstitutionRole(membership.role).label,
        },
    )
    if _gave_up_own_admin_rights(
        request, actor, membership, still_admin=membership.role == InstitutionRole.INSTITUTION_ADMIN
    ):
        return redirect("portal:dashboard")
    return redirect("portal:institution_members", institution_id=institution.pk)


@login_required
@require_POST
def member_remove(request, institution_id: int, membership_id: int):
    institution = administered_institution(request, institution_id)
    actor = portal_actor(request)
    membership = _membership_or_404(actor, institution, membership_id)
    email = membership.user.email
    try:
        services.member_remove(actor=actor, membership=membership)
    except ApplicationError as exc:
        return _render_members(request, institution, error=error_message(exc), status=exc.status_code)
    messages.success(
        request, _("%(email)s was removed from %(institution)s.") % {"email": email, "institution": institution.name}
    )
    if _gave_up_own_admin_rights(request, actor, membership, still_admin=False):
        return redirect("portal:dashboard")
    return redirect("portal:institution_members", institution_id=institution.pk)
