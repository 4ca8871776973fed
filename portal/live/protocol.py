"""The live-update wire format (docs/websockets.md): event kinds, their columns, and row builders.

Services build rows with the helpers here (from objects they already hold: no extra queries on
the hot path apart from the cached id → code maps) and hand them to ``portal.events.publish``.
"""

from __future__ import annotations

import threading
from datetime import date, datetime

from django.conf import settings

# Columns of each event kind; rows are upserts keyed by the first KEY_LEN[kind] columns.
FIELDS: dict[str, tuple[str, ...]] = {
    "jobs": ("id", "project", "name", "state", "site", "partition", "resource_class", "submitted_at", "started_at",
             "ended_at", "rate", "held", "charged", "reason", "attempts", "cause", "at"),
    "allocation": ("allocation", "project", "state", "class", "awarded", "held", "charged", "available", "start",
                   "end"),
    "request": ("id", "project", "kind", "state", "from", "at"),
    "site": ("code", "name", "city", "state", "reason"),
    "capacity": ("site", "partition", "family", "model", "cards_total", "cards_free", "cores_total", "cores_free",
                 "nodes_total", "nodes_up", "queued", "running", "at"),
}
KEY_LEN = {"jobs": 1, "allocation": 2, "request": 1, "site": 1, "capacity": 2}
# A partial jobs row (a centre accepted a batch): only these columns change.
JOB_STATE_FIELDS = ("id", "state", "cause", "at")

# Close codes (sent after one "error" message saying why).
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4429
CLOSE_SERVER_ERROR = 1011
SUBPROTOCOL = "suanwang.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."  # noqa: S105  (a prefix, not a secret)


def live_setting(name: str):
    defaults = {
        "LIVE_COALESCE_MS": 100,  # publisher: merge a group's events over this window
        "LIVE_MAX_ROWS": 1000,  # rows per delta (bigger batches become several deltas)
        "LIVE_REPLAY": 200,  # deltas kept per group for resume
        "LIVE_REPLAY_TTL_S": 3600,
        "LIVE_QUEUE": 200,  # outgoing messages buffered per connection
        "LIVE_SNAPSHOT_JOBS": 500,
        "LIVE_REAUTH_S": 60,  # tokens are re-checked this often on open connections
        "LIVE_MAX_CLIENT_MESSAGE": 4096,
    }
    return settings.SUANWANG.get(name, defaults[name])


def iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- id → code maps (sites, partitions, classes change rarely; refreshed on a miss) -------------
class _Codes:
    def __init__(self):
        self._lock = threading.Lock()
        self.partitions: dict[int, tuple[str, str]] = {}
        self.sites: dict[int, tuple[str, float]] = {}
        self.classes: dict[int, str] = {}

    def _load(self) -> None:
        from allocations.models import ResourceClass
        from federation.models import AdapterKind, Partition, Site

        scale = float(settings.SUANWANG.get("SIM_TIME_SCALE", 1.0))
        sites = {pk: (code, scale if adapter == AdapterKind.SIMULATED else 1.0)
                 for pk, code, adapter in Site.objects.values_list("pk", "code", "adapter")}
        partitions = {pk: (sites[site_id][0], name)
                      for pk, site_id, name in Partition.objects.values_list("pk", "site_id", "name")}
        classes = dict(ResourceClass.objects.values_list("pk", "code"))
        with self._lock:
            self.sites, self.partitions, self.classes = sites, partitions, classes

    def site(self, pk: int | None) -> tuple[str | None, float]:
        if pk is None:
            return None, 1.0
        if pk not in self.sites:
            self._load()
        return self.sites.get(pk, (None, 1.0))

    def partition(self, pk: int | None) -> str | None:
        if pk is None:
            return None
        if pk not in self.partitions:
            self._load()
        found = self.partitions.get(pk)
        return found[1] if found else None

    def resource_class(self, pk: int | None) -> str | None:
        if pk is None:
            return None
        if pk not in self.classes:
            self._load()
        return self.classes.get(pk)

    def clear(self) -> None:
        with self._lock:
            self.sites, self.partitions, self.classes = {}, {}, {}


codes = _Codes()


def _number(value: float):
    return int(value) if float(value).is_integer() else round(value, 3)


def job_row(job, cause: str = "", at: datetime | None = None) -> list:
    """A full jobs row from a Job instance (ids only: no related object is fetched)."""
    site_code, scale = codes.site(job.site_id)
    per_second = job.nodes * (job.gpus_per_node or job.cores_per_node)
    return [job.pk, job.project_id, job.name, job.state, site_code, codes.partition(job.partition_id),
            codes.resource_class(job.resource_class_id), iso(job.submitted_at), iso(job.started_at),
            iso(job.ended_at), _number(per_second * scale), job.hold_part, job.charged, job.reason, job.attempts,
            cause, iso(at)]


def allocation_rows(allocation, balances) -> list[list]:
    """Rows for an allocation's balances (AllocationBalance objects, or (class_id, awarded, held, charged))."""
    rows = []
    for b in balances:
        class_id, awarded, held, charged = (b if isinstance(b, tuple)
                                            else (b.resource_class_id, b.awarded, b.held, b.charged))
        rows.append([allocation.pk, allocation.project_id, allocation.state, codes.resource_class(class_id),
                     awarded, held, charged, awarded - held - charged, iso(allocation.start), iso(allocation.end)])
    return rows


def request_row(request, from_state: str, at: datetime | None) -> list:
    return [request.pk, request.project_id, request.kind, request.state, from_state, iso(at)]


def site_row(site) -> list:
    return [site.code, site.name, site.city, site.state, site.state_reason]


def capacity_row(site_code: str, partition, family: str | None, model: str, snap, at: datetime | None) -> list:
    """A capacity row from a Partition and its PartitionSnapshot (None: nothing reported yet)."""
    if snap is None:
        return [site_code, partition.name, family, model or None, partition.total_cards, partition.total_cards,
                partition.total_cores, partition.total_cores, partition.nodes, partition.nodes, 0, 0, None]
    return [site_code, partition.name, family, model or None, snap.gpus_total, snap.gpus_free, snap.cores_total,
            snap.cores_free, snap.nodes_total, snap.nodes_up, snap.queued, snap.running, iso(at)]
