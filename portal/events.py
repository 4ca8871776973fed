"""The one way events leave the system: published to channel-layer groups after commit.

Services call ``publish``; nothing is sent if the transaction rolls back. Consumers (the
websocket streams) subscribe to the groups named here.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def institution_group(institution_id: int) -> str:
    return f"institution.{institution_id}"


def publish(*, groups: list[str], event: str, payload: dict) -> None:
    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "stream.event", "event": event, "payload": payload}
        for group in groups:
            try:
                async_to_sync(layer.group_send)(group, message)
            except Exception:  # delivery is best-effort; the database is the record
                log.exception("publishing %s to %s failed", event, group)

    transaction.on_commit(send)
