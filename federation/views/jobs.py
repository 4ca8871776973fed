"""Jobs: my jobs with filters and a submit form, one job with why it went where it went, cancelling."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from allocations.access import projects_for
from federation import jobs as job_services
from federation.access import get_job, jobs_for
from federation.forms import JobFilterForm, JobSubmitForm
from federation.models import TERMINAL_JOB_STATES, JobState
from federation.templatetags.federation_tags import JOB_BADGES
from federation.views.common import (
    accelerator_families,
    application_choices,
    error_message,
    partitions_by_id,
    portal_actor,
    raise_as_http,
    refusal_message,
    site_choices,
)
from portal.errors import ApplicationError, NotFound, PermissionDenied

JOBS_PER_PAGE = 25
# Refusals that depend on the federation's state (try again later) rather than on the job: 409, as the API.
STATE_DEPENDENT_REFUSALS = {"insufficient_balance", "insufficient_quota", "no_site_online"}
SCORE_PARTS = ("wait", "price", "locality", "balance", "preference")


def live_context() -> dict:
    """What the live job pages' script needs to redraw a row the way the server does: state labels and
    badges and the wordings of amounts and times (the stream carries the numbers: docs/websockets.md)."""
    return {
        "job_states": {state.value: {"label": str(state.label), "badge": JOB_BADGES.get(state, ""),
                                     "terminal": state in TERMINAL_JOB_STATES} for state in JobState},
        "live_words": {
            "core_hours": _("%(amount)s core-hours"),
            "card_hours": _("%(amount)s card-hours"),
            "so_far": _("≈ %(amount)s so far"),
            "started": _("started %(time)s"),
            "ended": _("ended %(time)s"),
            "new_jobs": _("New jobs were submitted: show them"),
            "rerouted": _("The job was routed again: reload the page for the new explanation."),
            "job_now": _("Job #%(id)s is now %(state)s."),
        },
    }


def _submittable_projects(actor) -> list:
    """The projects the person may submit to: those they are a member of (federation.jobs.can_submit)."""
    if actor.user is None:
        return []
    return list(projects_for(actor).filter(members__user=actor.user).order_by("title"))


def _submit_form(actor, data=None, projects=None, families=None) -> JobSubmitForm:
    projects = _submittable_projects(actor) if projects is None else projects
    return JobSubmitForm(data, projects=projects, families=families or accelerator_families(),
                         applications=application_choices(), sites=site_choices())


def _render_list(request, actor, *, form: JobSubmitForm | None = None, status: int = 200):
    visible_projects = list(projects_for(actor).order_by("title"))
    filters = JobFilterForm(request.GET or None, projects=visible_projects)
    jobs = jobs_for(actor).select_related("resource_class").order_by("-submitted_at", "-id")
    state = project = None
    if filters.is_bound and filters.is_valid():
        state, project = filters.cleaned_data["state"] or None, filters.cleaned_data["project"]
        if state:
            jobs = jobs.filter(state=state)
        if project:
            jobs = jobs.filter(project_id=project)
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    if form is None:
        member_of = _submittable_projects(actor)
        form = _submit_form(actor, projects=member_of) if member_of else None
    context = {
        "page": page,
        "filters": filters,
        "filtered": bool(state or project),
        "form": form,
        "form_open": bool(form is not None and (form.is_bound or (page.paginator.count == 0 and not state
                                                                  and not project))),
        "live_project": project or "",
        "first_page": page.number == 1 and not state,
        **live_context(),
    }
    return render(request, "federation/job_list.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def job_list(request):
    actor = portal_actor(request)
    if request.method == "GET":
        return _render_list(request, actor)

    families = accelerator_families()
    form = _submit_form(actor, request.POST, families=families)
    if not form.is_valid():
        return _render_list(request, actor, form=form, status=400)
    try:
        result = job_services.jobs_submit(actor=actor, project=form.chosen_project, requests=[form.job_request()])
    except ApplicationError as exc:
        form.add_error(None, error_message(exc))
        return _render_list(request, actor, form=form, status=exc.status_code)
    if result.refused:
        refused = result.refused[0]
        names = {f.code: f.name for f in families}
        form.add_error(None, refusal_message(refused.code, refused.message, families=names))
        status = 409 if refused.code in STATE_DEPENDENT_REFUSALS else 400
        return _render_list(request, actor, form=form, status=status)
    accepted = result.accepted[0]
    messages.success(request, _("Job #%(id)s was routed to %(site)s (%(partition)s).")
                     % {"id": accepted.job_id, "site": accepted.site, "partition": accepted.partition})
    return redirect("jobs:job_detail", job_id=accepted.job_id)


def _fetch(actor, job_id):
    try:
        return get_job(actor, job_id)
    except NotFound as exc:
        raise_as_http(exc)


def routing_explanation(job) -> dict | None:
    """The routing decision as rows for the page: the chosen candidate and the runners-up, best first,
    with their weighted score parts (lower is better) and bar widths on one common scale."""
    routing = job.routing if isinstance(job.routing, dict) else {}
    candidates = [c for c in routing.get("candidates") or [] if isinstance(c, dict)]
    if not routing.get("site"):
        return None
    ids = [c.get("partition") for c in candidates]
    partitions = partitions_by_id(ids)
    worst = max((float(c.get("total") or 0) for c in candidates), default=0.0)
    scale = max(worst, 0.05)
    rows = []
    for rank, candidate in enumerate(candidates, start=1):
        ref = candidate.get("partition")
        partition = partitions.get(ref) if isinstance(ref, int) else None
        parts = []
        for key in SCORE_PARTS:
            value = float(candidate.get(key) or 0)
            parts.append({"key": key, "value": value, "width": round(min(100.0, value / scale * 100), 2)})
        chosen = (partition.pk == job.partition_id) if partition else (
            candidate.get("site") == routing.get("site") and ref == routing.get("partition"))
        rows.append({
            "rank": rank,
            "site": candidate.get("site") or "",
            "partition": partition.name if partition else (ref if isinstance(ref, str) else ""),
            "model": partition.accelerator_model if partition else "",
            "total": float(candidate.get("total") or 0),
            "wait_s": candidate.get("wait_s"),
            "parts": parts,
            "chosen": chosen,
        })
    if rows and not any(r["chosen"] for r in rows):
        rows[0]["chosen"] = rows[0]["site"] == routing.get("site")
    return {
        "site": routing.get("site"),
        "partition": routing.get("partition"),
        "score": routing.get("score"),
        "estimated_wait_s": routing.get("estimated_wait_s"),
        "rows": rows,
        "runners_up": sum(1 for r in rows if not r["chosen"]),
    }


@login_required
@require_http_methods(["GET"])
def job_detail(request, job_id: int):
    actor = portal_actor(request)
    job = _fetch(actor, job_id)
    finished = job.state in TERMINAL_JOB_STATES
    context = {
        "job": job,
        "events": list(job.events.all()),
        "routing": routing_explanation(job),
        "finished": finished,
        "can_cancel": not finished and job_services.can_submit(actor, job.project),
        **live_context(),
    }
    return render(request, "federation/job_detail.html", context)


@login_required
@require_POST
def job_cancel(request, job_id: int):
    actor = portal_actor(request)
    job = _fetch(actor, job_id)
    try:
        job_services.job_cancel(actor=actor, job=job)
    except PermissionDenied as exc:
        raise_as_http(exc)
    except ApplicationError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, _("Job #%(id)s was cancelled.") % {"id": job.pk})
    return redirect("jobs:job_detail", job_id=job.pk)
