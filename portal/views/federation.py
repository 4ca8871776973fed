"""Federation admin: all member institutions, and creating a new one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts import services
from accounts.access import institutions_for
from portal.errors import ApplicationError
from portal.forms import InstitutionCreateForm
from portal.views.common import apply_service_error, portal_actor


def _render(request, *, form=None, status=200):
    actor = portal_actor(request)
    institutions = institutions_for(actor).annotate(member_count=Count("memberships")).order_by("code")
    context = {"institutions": institutions, "form": form or InstitutionCreateForm()}
    return render(request, "portal/federation/institutions.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def institutions(request):
    actor = portal_actor(request)
    if not actor.is_federation_admin:
        raise PermissionDenied(_("Only a federation admin can see this page."))
    if request.method == "GET":
        return _render(request)

    form = InstitutionCreateForm(request.POST)
    if not form.is_valid():
        return _render(request, form=form, status=400)
    data = form.cleaned_data
    try:
        institution = services.institution_create(
            actor=actor, name=data["name"], code=data["code"], kind=data["kind"], email_domains=data["email_domains"]
        )
    except ApplicationError as exc:
        apply_service_error(form, exc, name=data["name"].strip(), code=data["code"].strip().upper())
        return _render(request, form=form, status=exc.status_code)
    messages.success(
        request, _("%(name)s (%(code)s) was created.") % {"name": institution.name, "code": institution.code}
    )
    return redirect("portal:federation_institutions")
