"""Projects: the list of my projects, a project with its members, requests and allocations; a new project."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import institutions_for
from accounts.models import InstitutionRole
from allocations import access, projects, selectors, workflow
from allocations.forms import ProjectForm, ProjectMemberAddForm
from allocations.models import RequestState
from allocations.views.common import apply_service_error, error_message, fetch, forbid, portal_actor
from portal.errors import ApplicationError

PROJECTS_PER_PAGE = 25


def _pi_institutions(actor):
    ids = [pk for pk, role in actor.memberships.items() if role == InstitutionRole.PI]
    return list(institutions_for(actor).filter(pk__in=ids).order_by("code")) if ids else []


@login_required
@require_GET
def project_list(request):
    actor = portal_actor(request)
    # The committee does not see other people's drafts: do not count them either.
    counted = ~Q(requests__state=RequestState.DRAFT) if access.sees_everything(actor) else Q()
    projects_qs = (
        access.projects_for(actor)
        .annotate(
            request_count=Count("requests", filter=counted, distinct=True),
            allocation_count=Count("allocations", distinct=True),
        )
        .order_by("-created_at", "-id")
    )
    page = Paginator(projects_qs, PROJECTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "can_create": bool(_pi_institutions(actor)), "tab": "projects"}
    return render(request, "allocations/project_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request):
    actor = portal_actor(request)
    institutions = _pi_institutions(actor)
    if not institutions:
        forbid(_("Only a PI of an institution can create projects."))
    form = ProjectForm(request.POST or None, institutions=institutions)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            project = projects.project_create(
                actor=actor,
                institution_id=data["institution"],
                title=data["title"],
                abstract=data["abstract"],
                discipline=data["discipline"],
                start=data["start"],
                end=data["end"],
            )
        except ApplicationError as exc:
            apply_service_error(form, exc)
            return render(request, "allocations/project_form.html", {"form": form, "tab": "projects"}, status=400)
        messages.success(request, _("The project “%(title)s” was created.") % {"title": project.title})
        return redirect("allocations:project_detail", project_id=project.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "allocations/project_form.html", {"form": form, "tab": "projects"}, status=status)


def _render_project(request, project, *, member_form=None, status=200):
    actor = portal_actor(request)
    allocations = list(access.allocations_for(actor).filter(project=project).order_by("-start", "-id"))
    balances = selectors.balances_by_allocation([a.pk for a in allocations])
    context = {
        "project": project,
        "members": access.project_members_for(actor, project),
        "requests": access.requests_for(actor).filter(project=project).order_by("-created_at", "-id")[:50],
        "allocations": [{"allocation": a, "balances": balances.get(a.pk, [])} for a in allocations],
        "can_manage": projects.can_manage_project(actor, project),
        "is_pi": workflow.acts_for_pi(actor, project),
        "member_form": member_form or ProjectMemberAddForm(),
        "tab": "projects",
    }
    return render(request, "allocations/project_detail.html", context, status=status)


@login_required
@require_GET
def project_detail(request, project_id: int):
    project = fetch(access.get_project, portal_actor(request), project_id)
    return _render_project(request, project)


@login_required
@require_POST
def project_member_add(request, project_id: int):
    actor = portal_actor(request)
    project = fetch(access.get_project, actor, project_id)
    if not projects.can_manage_project(actor, project):
        forbid(_("Only the project's PI or an institution admin can do this."))
    form = ProjectMemberAddForm(request.POST)
    if not form.is_valid():
        return _render_project(request, project, member_form=form, status=400)
    email = form.cleaned_data["email"]
    try:
        projects.project_member_add(actor=actor, project=project, email=email)
    except ApplicationError as exc:
        apply_service_error(form, exc, email=email)
        return _render_project(request, project, member_form=form, status=exc.status_code)
    messages.success(request, _("%(email)s was added to the project.") % {"email": email})
    return redirect("allocations:project_detail", project_id=project.pk)


@login_required
@require_POST
def project_member_remove(request, project_id: int, member_id: int):
    actor = portal_actor(request)
    project = fetch(access.get_project, actor, project_id)
    member = fetch(access.get_project_member, actor, project, member_id)
    if not projects.can_manage_project(actor, project):
        forbid(_("Only the project's PI or an institution admin can do this."))
    email = member.user.email
    try:
        projects.project_member_remove(actor=actor, member=member)
    except ApplicationError as exc:
        messages.error(request, error_message(exc, email=email))
    else:
        messages.success(request, _("%(email)s was removed from the project.") % {"email": email})
    return redirect("allocations:project_detail", project_id=project.pk)
