"""Helpers shared by the federation pages: public catalogue reads, refusals worded by code, units."""

from __future__ import annotations

import re
from decimal import Decimal

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import FederationRoleKind
from federation.models import AcceleratorFamily, Application, Partition, Site, SiteOperator, SiteState
from portal.errors import ApplicationError
from portal.views.common import portal_actor, raise_as_http

__all__ = ["portal_actor", "raise_as_http"]


# --- public catalogue reads (not tenant-owned) ---------------------------------------------
def accelerator_families() -> list[AcceleratorFamily]:
    """The accelerator families jobs may ask for (the federation's public catalogue)."""
    return list(AcceleratorFamily.objects.order_by("code"))


def application_choices() -> list[Application]:
    """The application catalogue, names only (the submit form's choice)."""
    return list(Application.objects.only("code", "name", "category").order_by("name"))


def site_choices() -> list[Site]:
    """Every centre, code and city only (the submit form's preferred centres)."""
    return list(Site.objects.only("code", "name", "city").order_by("code"))


def operated_site_ids(actor) -> set[int]:
    """The centres a site operator is bound to (to mark them in the overview); empty for everyone else."""
    if actor.user is None or not actor.has_federation_role(FederationRoleKind.SITE_OPERATOR):
        return set()
    return set(SiteOperator.objects.filter(user=actor.user).values_list("site_id", flat=True))


def partitions_by_id(ids) -> dict[int, Partition]:
    """Partitions by id, with their centre: to name the candidates of a routing explanation."""
    ids = {int(i) for i in ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())}
    if not ids:
        return {}
    return {p.pk: p for p in Partition.objects.filter(pk__in=ids).select_related("site", "family")}


# --- refusals and service errors, worded by the pages ----------------------------------------
# The router's refusal codes (federation.routing.REFUSAL_MESSAGES): same English, translated here.
REFUSAL_MESSAGES = {
    "unknown_accelerator_model": _("No partition has an accelerator the job accepts."),
    "no_compatible_ecosystem": _("No partition with suitable accelerators speaks the job's software ecosystem."),
    "application_unavailable": _("No compatible partition offers the requested application."),
    "walltime_over_limit": _("The requested walltime exceeds the limit of every compatible partition."),
    "no_partition_fits": _("No compatible partition has nodes large enough or enough nodes for the job."),
    "no_site_online": _("Every site that could run the job is draining or offline."),
    "insufficient_quota": _(
        "The project's remaining quota at every suitable site is below the job's estimated cost."
    ),
    "no_partitions": _("The federation publishes no partitions."),
}

MESSAGES_BY_CODE = {
    "no_active_allocation": _("The project has no active allocation to charge."),
    "allocation_not_active": _("The project's allocation is not active today."),
    "not_project_member": _("Only the project's members can submit or cancel its jobs."),
    "job_finished": _("The job has already finished."),
    "illegal_transition": _("A centre cannot go from %(from)s to %(to)s."),
    "site_operator_required": _("Only this centre's operators or a federation admin can do this."),
    "empty_batch": _("Submit at least one job."),
}

_CLASS_IN_MESSAGE = re.compile(r"\b(cpu|storage|gpu:[\w-]+)\b")


def class_name(code: str, families: dict[str, str] | None = None) -> str:
    """A resource class code as people say it: CPU, or the accelerator family's name."""
    if code == "cpu":
        return gettext("CPU")
    if code.startswith("gpu:"):
        family = code.split(":", 1)[1]
        return (families or {}).get(family, family)
    return code


def refusal_message(code: str, message: str = "", *, families: dict[str, str] | None = None) -> str:
    """The page's wording of a job refusal (router codes and the ledger's insufficient_balance)."""
    if code in REFUSAL_MESSAGES:
        return str(REFUSAL_MESSAGES[code])
    if code == "insufficient_balance":
        match = _CLASS_IN_MESSAGE.search(message or "")
        if match:
            return gettext(
                "The project's allocation has not enough %(class)s left for this job at the centre it was routed "
                "to (a job holds its whole walltime when it is submitted)."
            ) % {"class": class_name(match.group(1), families)}
        return gettext("The project's allocation has not enough left for this job.")
    if code in MESSAGES_BY_CODE:
        return str(MESSAGES_BY_CODE[code])
    return gettext(message) if message else gettext("The job was refused.")


def error_message(exc: ApplicationError, **params) -> str:
    template = MESSAGES_BY_CODE.get(exc.code)
    if template is None:
        return refusal_message(exc.code, exc.message)
    return str(template) % params if params else str(template)


def site_state_label(state: str) -> str:
    return str(SiteState(state).label) if state in SiteState.values else state


# --- units --------------------------------------------------------------------------------
def hours(units: int, scale: int = 3600) -> Decimal:
    """Smallest units (core-seconds, card-seconds) as hours with two decimals."""
    return (Decimal(units or 0) / Decimal(scale or 3600)).quantize(Decimal("0.01"))
