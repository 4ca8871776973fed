"""The audit trail. Every state-changing service calls ``audit_record`` inside its transaction."""

from typing import Any

from django.db import models

from accounts.actors import Actor
from accounts.models import AuditEvent, Institution


def snapshot(obj: models.Model, fields: list[str]) -> dict[str, Any]:
    """A JSON-safe picture of some fields of a model, for before/after."""
    data: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name)
        if isinstance(value, models.Model):
            value = value.pk
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        elif isinstance(value, (set, frozenset, tuple)):
            value = sorted(value)
        data[name] = value
    return data


def audit_record(
    *,
    actor: Actor,
    action: str,
    obj: models.Model,
    institution: Institution | int | None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    institution_id = institution.pk if isinstance(institution, Institution) else institution
    return AuditEvent.objects.create(
        actor_user=actor.user,
        actor_token=actor.token,
        actor_label=actor.label[:300],
        ip=actor.ip,
        institution_id=institution_id,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:300],
        before=before,
        after=after,
    )
