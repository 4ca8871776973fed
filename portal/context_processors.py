"""What every portal page needs in its top bar: the actor, the navigation for their roles, their institutions."""

from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext as _

from accounts.access import institutions_for
from accounts.actors import actor_for_request
from accounts.models import FederationRoleKind, InstitutionRole


def _nav(request, actor, institutions) -> list[dict]:
    items = [{"label": _("Dashboard"), "url": reverse("portal:dashboard"), "prefix": None}]
    for institution in institutions:
        if actor.memberships.get(institution.pk) == InstitutionRole.INSTITUTION_ADMIN:
            items.append(
                {
                    "label": _("%(code)s administration") % {"code": institution.code},
                    "url": reverse("portal:institution_members", args=[institution.pk]),
                    "prefix": f"/institutions/{institution.pk}/",
                }
            )
    if actor.memberships or actor.federation_roles:
        items.append({"label": _("Allocations"), "url": reverse("allocations:allocation_list"),
                      "prefix": "/allocations/"})
    if actor.memberships:
        items.append({"label": _("Jobs"), "url": reverse("jobs:job_list"), "prefix": "/jobs/"})
    items.append({"label": _("Centres"), "url": reverse("centres:site_list"), "prefix": "/centres/"})
    items.append({"label": _("Federation status"), "url": reverse("centres:status_board"),
                  "prefix": "/centres/status/"})
    if actor.has_federation_role(FederationRoleKind.REVIEWER):
        items.append({"label": _("Reviews"), "url": reverse("allocations:review_queue"),
                      "prefix": "/allocations/reviews/"})
    if actor.is_federation_admin or actor.has_federation_role(FederationRoleKind.COMMITTEE):
        items.append({"label": _("Committee"), "url": reverse("allocations:committee_home"),
                      "prefix": "/allocations/committee/"})
    if actor.is_federation_admin:
        items.append(
            {
                "label": _("Institutions"),
                "url": reverse("portal:federation_institutions"),
                "prefix": "/federation/",
            }
        )
    # The most specific matching prefix is the active item (/allocations/reviews/ over /allocations/).
    best = max((len(i["prefix"]) for i in items if i["prefix"] and request.path.startswith(i["prefix"])), default=0)
    for item in items:
        prefix = item.pop("prefix")
        if prefix is None:
            item["active"] = request.path == item["url"]
        else:
            item["active"] = request.path.startswith(prefix) and len(prefix) == best
    return items


def portal_context(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    actor = actor_for_request(request)

    def own_institutions():
        return list(institutions_for(actor).filter(pk__in=actor.institution_ids()).order_by("code"))

    institutions = SimpleLazyObject(own_institutions)
    return {
        "actor": actor,
        "portal_institutions": institutions,
        "portal_nav": SimpleLazyObject(lambda: _nav(request, actor, institutions)),
    }
