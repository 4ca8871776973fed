"""Helpers shared by the allocation pages: tenancy errors as HTTP, service refusals as form errors,
the conversion table, and amounts shown with their credits."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from accounts.models import FederationRoleKind
from allocations import access, selectors
from allocations.forms import class_label
from allocations.models import ResourceClass, Tier
from allocations.rules import APPEAL_WINDOW_DAYS, TIERS
from portal.errors import ApplicationError
from portal.views.common import portal_actor, raise_as_http

__all__ = ["class_label", "portal_actor", "raise_as_http"]


class _Params(dict):
    def __missing__(self, key):
        return ""


# Service messages are English and some carry numbers: the pages show their own wording, by error code.
MESSAGES_BY_CODE = {
    # requests
    "end_before_start": _("The end must be after the start."),
    "duration_too_long": _("A %(tier)s allocation lasts at most %(days)s days."),
    "outside_project_dates": _("The allocation must lie within the project's dates (%(start)s to %(end)s)."),
    "extension_has_amounts": _("An extension changes the end date only: leave the amounts empty."),
    "invalid_amount": _("Ask for a positive whole number of units in at least one resource class."),
    "unknown_resource_class": _("Unknown resource class."),
    "allocation_required": _("Choose an allocation of this project."),
    "allocation_not_active": _("Only an active allocation can be supplemented or extended."),
    "extension_not_later": _("An extension must move the end date past the allocation's end (%(allocation_end)s)."),
    "appeal_target_required": _("Choose the decided request of this project that you appeal."),
    "not_appealable": _("Only a decision on a request can be appealed, and only once."),
    "appeal_window_closed": _("Appeals are possible within %(appeal_days)s days of the decision."),
    "over_tier_cap": _("%(credits)s credits is over the %(tier)s tier cap of %(cap)s credits."),
    "attachment_too_large": _("The attachment is larger than 10 MB."),
    "attachment_not_pdf": _("The attachment must be a PDF file."),
    "project_pi_required": _("Only the project's PI can do this."),
    "request_not_editable": _("Only drafts and requests sent back for revision can be edited."),
    "illegal_transition": _("The request cannot do this in its current state."),
    "not_allowed_to_transition": _("You are not allowed to move this request."),
    # projects
    "pi_required": _("Only a PI of the institution can create projects."),
    "institution_not_found": _("Institution not found."),
    "not_institution_member": _("%(email)s is not a member of the project's institution."),
    "already_project_member": _("%(email)s is already on the project."),
    "cannot_remove_pi": _("The PI cannot be removed from their project."),
    # reviews and decisions
    "not_a_reviewer": _("That person is not a reviewer."),
    "reviewer_conflicted": _("That reviewer has a conflict of interest with this request."),
    "already_assigned": _("That reviewer is already assigned."),
    "request_not_reviewable": _("Reviewers are assigned to submitted requests only."),
    "committee_required": _("Only the allocation committee can do this."),
    "not_your_review": _("Only the assigned reviewer can do this."),
    "review_closed": _("This review is already closed."),
    "request_not_under_review": _("The request is not under review."),
    "invalid_score": _("Scores are whole numbers from 0 to 5."),
    "reason_required": _("A decision needs a reason the PI will read."),
    "not_enough_reviews": _("%(needed)s reviews are needed before a decision; %(done)s are in."),
    "award_exceeds_request": _("An award cannot exceed what was asked."),
}

# Field messages the services use verbatim with the generic code "invalid": marked for translation.
SERVICE_FIELD_MESSAGES = [
    gettext_noop("Required."),
    gettext_noop("Required, at most 200 characters."),
    gettext_noop("Required, at most 5000 characters."),
    gettext_noop("Unknown field of science."),
    gettext_noop("The end must be after the start."),
    gettext_noop("Unknown kind."),
    gettext_noop("Unknown tier."),
    gettext_noop("Not for this kind."),
    gettext_noop("award, reject or revise."),
]


def error_message(exc: ApplicationError, overrides: dict | None = None, **params) -> str:
    template = (overrides or {}).get(exc.code) or MESSAGES_BY_CODE.get(exc.code)
    if template is None:
        return gettext(exc.message)
    return str(template) % _Params(params)


def apply_service_error(
    form: forms.Form,
    exc: ApplicationError,
    *,
    field_map: dict[str, str] | None = None,
    overrides: dict | None = None,
    **params,
) -> None:
    """Show a service's refusal on the form, on the field it names (amounts: next to the amounts table)."""
    field_map = field_map or {}
    named = [field_map.get(name, name) for name in (exc.fields or {})]
    if "amounts" in named and hasattr(form, "amount_errors"):
        form.amount_errors.append(error_message(exc, overrides, **params))
        return
    targets = [name for name in named if name in form.fields]
    if exc.code in MESSAGES_BY_CODE or (overrides and exc.code in overrides) or not targets:
        form.add_error(targets[0] if targets else None, error_message(exc, overrides, **params))
        return
    for name, messages in (exc.fields or {}).items():
        name = field_map.get(name, name)
        if name not in form.fields:
            continue
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(name, gettext(str(message)))


def forbid(message) -> None:
    raise HttpForbidden(str(message))


def fetch(helper, *args):
    """Call an access helper; its NotFound becomes a 404 (missing or another tenant's)."""
    try:
        return helper(*args)
    except ApplicationError as exc:
        raise_as_http(exc)


def is_reviewer(actor) -> bool:
    return actor.has_federation_role(FederationRoleKind.REVIEWER)


def is_committee(actor) -> bool:
    return access.sees_everything(actor)


# --- the conversion table -----------------------------------------------------------------
def classes_by_code() -> dict[str, ResourceClass]:
    return {rc.code: rc for rc in selectors.resource_classes()}


def amount_rows(amounts: dict, classes: dict[str, ResourceClass]) -> list[dict]:
    """Amounts in display units with their price and credits, in catalogue order."""
    order = {code: n for n, code in enumerate(classes)}
    rows = []
    for code in sorted(amounts or {}, key=lambda c: (order.get(c, len(order)), c)):
        rc = classes.get(code)
        amount = amounts[code]
        price = rc.credits_per_unit if rc else None
        rows.append(
            {
                "code": code,
                "name": class_label(rc) if rc else code,
                "unit": rc.unit if rc else "",
                "amount": amount,
                "price": price,
                "credits": (Decimal(amount) * price) if price is not None else None,
            }
        )
    return rows


def tier_label(code: str) -> str:
    return str(Tier(code).label) if code in Tier.values else code


def tier_rows() -> list[dict]:
    """The published tiers, for the wizard and the request pages."""
    return [
        {
            "code": rule.code,
            "label": tier_label(rule.code),
            "cap": rule.credit_cap,
            "min_reviews": rule.min_reviews,
            "automatic": rule.automatic_approval,
            "committee": rule.committee_decision,
            "max_days": rule.max_duration_days,
        }
        for rule in TIERS.values()
    ]


def request_error_params(*, project, tier: str, amounts: dict, classes, allocation=None) -> dict:
    """Values that the request refusals' messages mention."""
    rule = TIERS.get(tier)
    credits = sum(
        (Decimal(v) * classes[c].credits_per_unit for c, v in (amounts or {}).items() if c in classes), Decimal(0)
    )
    return {
        "tier": tier_label(tier),
        "days": rule.max_duration_days if rule else "",
        "start": project.start.isoformat(),
        "end": project.end.isoformat(),
        "allocation_end": allocation.end.isoformat() if allocation is not None else "",
        "credits": f"{credits:,.0f}",
        "cap": f"{rule.credit_cap:,.0f}" if rule and rule.credit_cap is not None else "",
        "appeal_days": APPEAL_WINDOW_DAYS,
    }
