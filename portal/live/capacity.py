"""Capacity reports of the centres → the federation status stream (a service: it publishes).

Whoever ticks the centres (``federation.ticker``: the embedded server, or ``manage.py run_sites``
in production) calls ``report_capacity`` with each centre's snapshot. Changed partitions are
published to ``federation.sites``; the latest rows of every centre are kept in the cache (Redis
in production) so that any ASGI process can build a ``/ws/sites/`` snapshot.
"""

from __future__ import annotations

import threading
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

from portal.events import publish_capacity
from portal.live.protocol import capacity_row

CACHE_KEY = "live:capacity:{}"
CACHE_TTL_S = 24 * 3600
_lock = threading.Lock()
_meta: dict[tuple[int, str], tuple[str | None, str]] = {}
_last: dict[tuple[int, str], tuple] = {}


def _partition_meta(site_id: int, name: str) -> tuple[str | None, str]:
    if (site_id, name) not in _meta:
        from federation.models import Partition

        loaded = {(site, n): (family, model or "") for site, n, family, model in
                  Partition.objects.values_list("site_id", "name", "family__code", "accelerator_model")}
        with _lock:
            _meta.update(loaded)
    return _meta.get((site_id, name), (None, ""))


def report_capacity(site, snapshot, at: datetime | None = None) -> int:
    """Publish the partitions of ``site`` whose capacity changed since the last report; returns how many."""
    at = at or timezone.now()
    rows, changed = [], []
    for p in snapshot.partitions:
        family, model = _partition_meta(site.pk, p.name)
        row = capacity_row(site.code, _Named(p.name), family, model, p, at)
        rows.append(row)
        signature = tuple(row[:-1])
        if _last.get((site.pk, p.name)) != signature:
            changed.append(row)
            _last[(site.pk, p.name)] = signature
    if changed:
        cache.set(CACHE_KEY.format(site.code), rows, CACHE_TTL_S)
        publish_capacity(changed)
    return len(changed)


def reported_rows(site_codes: list[str]) -> dict[str, list[list]]:
    """The latest reported rows per centre code (centres that never reported are missing)."""
    found = cache.get_many([CACHE_KEY.format(code) for code in site_codes])
    return {key.split(":", 2)[2]: rows for key, rows in found.items()}


class _Named:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name
