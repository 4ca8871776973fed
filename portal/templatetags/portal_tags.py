"""Small presentation helpers for portal templates (labels, not rules)."""

from django import template

from accounts.models import FederationRoleKind, InstitutionRole, TokenScope

register = template.Library()

_LABELS = {**dict(TokenScope.choices), **dict(InstitutionRole.choices), **dict(FederationRoleKind.choices)}


@register.filter
def choice_label(value):
    """The translated label of a role or scope value; the raw value when unknown."""
    return _LABELS.get(value, value)


@register.simple_tag(takes_context=True)
def page_url(context, page_number):
    """The current URL with ?page= replaced, keeping the other query parameters (filters)."""
    query = context["request"].GET.copy()
    query["page"] = page_number
    return f"?{query.urlencode()}"
