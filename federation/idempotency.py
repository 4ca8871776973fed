"""``Idempotency-Key``: a retried request creates nothing new and gets the original answer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from django.db import IntegrityError, transaction

from accounts.actors import Actor
from federation.models import IdempotencyRecord
from portal.errors import Conflict, ValidationFailed


def run_idempotently(*, actor: Actor, institution_id: int, key: str | None, body,
                     run: Callable[[], tuple[int, dict]]) -> tuple[int, dict]:
    """Run ``run`` once per (institution, caller, key); later calls with the same key and body get
    the first answer back. The same key with another body is refused (409)."""
    if not key:
        return run()
    if len(key) > 200:
        raise ValidationFailed("Idempotency-Key is at most 200 characters.", code="invalid_idempotency_key")
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    lookup = {"institution_id": institution_id, "actor_label": actor.label[:300], "key": key}

    def replay(record: IdempotencyRecord) -> tuple[int, dict]:
        if record.request_hash != digest:
            raise Conflict("This Idempotency-Key was used for another request.", code="idempotency_key_reused")
        return record.status_code, record.response

    existing = IdempotencyRecord.objects.filter(**lookup).first()
    if existing is not None:
        return replay(existing)
    try:
        with transaction.atomic():
            status, payload = run()
            IdempotencyRecord.objects.create(request_hash=digest, status_code=status, response=payload, **lookup)
    except IntegrityError:
        # A concurrent retry with the same key won: our work was rolled back with this transaction.
        return replay(IdempotencyRecord.objects.get(**lookup))
    return status, payload
