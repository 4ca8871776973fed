"""The centre page's panel of shares proposed to the centre (its operators and federation admins)."""

from django import template

from federation import services
from federation.access import quotas_for
from federation.quota_forms import QuotaResponseForm
from federation.views.quotas import share_rows
from portal.views.common import portal_actor

register = template.Library()


@register.inclusion_tag("federation/_site_quotas.html", takes_context=True)
def site_quota_panel(context, site):
    request = context["request"]
    actor = portal_actor(request)
    operator = context.get("operator")  # the centre page knows already
    if not (operator if operator is not None else services.can_operate(actor, site)):
        return {"show": False}
    shares = list(quotas_for(actor).filter(site=site, state="proposed").order_by("created_at", "pk"))
    return {"show": True, "site": site, "rows": share_rows(shares), "form": QuotaResponseForm(),
            "csrf_token": context.get("csrf_token"), "request": request}
