"""The one way events leave the system: published to channel-layer groups after commit.

Services call ``publish`` (or the ``publish_*`` helpers below, which build the rows and pick the
groups) inside their transaction; nothing is sent if the transaction rolls back. The publishing
process coalesces per group and numbers the deltas (``portal.live.hub``); the websocket
consumers (``portal.live.consumers``) subscribe to the groups named here. Wire format:
docs/websockets.md.

Groups, each readable by everyone who joins it:
- ``project.<id>``: the project's jobs and allocation balances (its members, its institution's
  admins and tokens, federation admins);
- ``institution.<id>``: all of that, for every project of the institution, plus allocation
  requests (institution admins, the institution's tokens, federation admins);
- ``federation.sites``: centre states and capacity (everyone authenticated).
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import SimpleNamespace

from django.conf import settings
from django.db import transaction

from portal.live import protocol

log = logging.getLogger(__name__)

SITES_GROUP = "federation.sites"


def institution_group(institution_id: int) -> str:
    return f"institution.{institution_id}"


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


def listening() -> bool:
    """Whether anyone could receive: always with Redis (other processes); in the embedded mode only
    once a websocket consumer runs in this process. Helpers skip building rows otherwise."""
    from portal.live.hub import publisher

    return bool(settings.REDIS_URL) or (publisher.consumer_loop is not None and not publisher.consumer_loop.is_closed())


def publish(*, groups: list[str], event: str, payload: dict) -> None:
    """After commit, send ``payload["rows"]`` (rows of kind ``event``, columns ``payload["fields"]`` or
    all of the kind's columns) to ``groups``."""
    if event not in protocol.FIELDS:
        raise ValueError(f"unknown live event kind {event!r}")
    rows = payload["rows"]
    fields = tuple(payload.get("fields") or protocol.FIELDS[event])
    if fields[: protocol.KEY_LEN[event]] != protocol.FIELDS[event][: protocol.KEY_LEN[event]] or not set(
            fields) <= set(protocol.FIELDS[event]):
        raise ValueError(f"bad columns for {event!r}: {fields}")
    if not rows:
        return
    groups = list(groups)

    def send() -> None:
        from portal.live.hub import publisher

        try:
            publisher.submit(groups, event, rows, fields)
        except Exception:  # delivery is best-effort; the database is the record
            log.exception("publishing %s to %s failed", event, groups)

    transaction.on_commit(send)


# --- helpers for services ----------------------------------------------------------------------
def _by_scope(items) -> dict[tuple[int, int], list]:
    """(institution id, project id) → rows."""
    scoped: dict[tuple[int, int], list] = {}
    for institution_id, project_id, row in items:
        scoped.setdefault((institution_id, project_id), []).append(row)
    return scoped


def _publish_scoped(kind: str, items, fields: tuple[str, ...] | None = None) -> None:
    by_institution: dict[int, list] = {}
    for (institution_id, project_id), rows in _by_scope(items).items():
        publish(groups=[project_group(project_id)], event=kind, payload={"rows": rows, "fields": fields})
        by_institution.setdefault(institution_id, []).extend(rows)
    for institution_id, rows in by_institution.items():
        publish(groups=[institution_group(institution_id)], event=kind, payload={"rows": rows, "fields": fields})


def _after_commit(build, what: str) -> None:
    """Run ``build`` (which publishes) right after commit, in the committing thread: rows are built
    outside the transaction (no locks held meanwhile, no queries inside it)."""

    def run() -> None:
        try:
            build()
        except Exception:  # delivery is best-effort; the database is the record
            log.exception("publishing %s failed", what)

    transaction.on_commit(run)


def publish_jobs(jobs, last_events: dict[int, tuple[str, datetime]] | None = None) -> None:
    """Full rows of changed jobs (Job instances) to their project's and institution's groups;
    ``last_events`` maps a job id to the (cause, at) of the transition that changed it."""
    if not listening():
        return
    jobs, last_events, none = list(jobs), dict(last_events or {}), ("", None)
    _after_commit(lambda: _publish_scoped("jobs", (
        (job.institution_id, job.project_id, protocol.job_row(job, *last_events.get(job.pk, none))) for job in jobs)),
        "job changes")


def publish_job_states(items: list[tuple[int, int, int, str, str, datetime]]) -> None:
    """Partial rows (id, state, cause, at) for (institution id, project id, job id, state, cause, at)."""
    if not listening():
        return
    _publish_scoped("jobs", ((i, p, [job_id, state, cause, protocol.iso(at)]) for i, p, job_id, state, cause, at
                             in items), fields=protocol.JOB_STATE_FIELDS)


def publish_balances(allocation, resource_class_ids: list[int] | None = None) -> None:
    """The allocation's balance rows, read right after commit (so the locked balance rows are not held
    longer for it, and a later commit's publish carries later figures)."""
    if not listening():
        return
    snapshot = SimpleNamespace(pk=allocation.pk, project_id=allocation.project_id, state=allocation.state,
                               start=allocation.start, end=allocation.end)
    institution_id = allocation.institution_id

    def build() -> None:
        from allocations.models import AllocationBalance

        balances = AllocationBalance.objects.filter(allocation_id=snapshot.pk)
        if resource_class_ids is not None:
            balances = balances.filter(resource_class_id__in=resource_class_ids)
        rows = protocol.allocation_rows(snapshot, list(balances.values_list("resource_class_id", "awarded", "held",
                                                                            "charged")))
        _publish_scoped("allocation", ((institution_id, snapshot.project_id, row) for row in rows))

    _after_commit(build, f"the balances of allocation {snapshot.pk}")


def publish_request(request, from_state: str, at: datetime | None) -> None:
    publish(groups=[institution_group(request.institution_id)], event="request",
            payload={"rows": [protocol.request_row(request, from_state, at)]})


def publish_site(site) -> None:
    publish(groups=[SITES_GROUP], event="site", payload={"rows": [protocol.site_row(site)]})


def publish_capacity(rows: list[list]) -> None:
    publish(groups=[SITES_GROUP], event="capacity", payload={"rows": rows})


def publish_submitted_jobs(project, accepted, now: datetime) -> None:
    """Full rows of a just-persisted batch, built (after commit) from what the submit path holds in
    memory: ``accepted`` is [(job id, JobRequest, Partition with its site and family loaded)]."""
    if not listening():
        return
    accepted = list(accepted)

    def build() -> None:
        from federation.models import AdapterKind, JobState

        sim_scale = float(settings.SUANWANG.get("SIM_TIME_SCALE", 1.0))
        at = protocol.iso(now)
        rows = []
        for job_id, req, partition in accepted:
            site = partition.site
            scale = sim_scale if site.adapter == AdapterKind.SIMULATED else 1.0
            rate = req.nodes * (req.gpus_per_node or req.cores_per_node) * scale
            rows.append([job_id, project.pk, req.name[:200], JobState.ROUTED.value, site.code, partition.name,
                         f"gpu:{partition.family.code}" if partition.family_id else "cpu", at, None, None,
                         int(rate) if float(rate).is_integer() else round(rate, 3), req.units, 0, "", 1,
                         f"routed to {site.code}/{partition.name}", at])
        _publish_scoped("jobs", ((project.institution_id, project.pk, row) for row in rows))

    _after_commit(build, "submitted jobs")


def publish_dispatched(job_ids: list[int], state: str, cause: str, at: datetime) -> None:
    """Partial rows (id, state, cause, at) for jobs a centre accepted; their projects are looked up
    after commit (one query, outside the dispatch transaction)."""
    if not job_ids or not listening():
        return
    ids = list(job_ids)

    def build() -> None:
        from federation.models import Job

        scope = Job.objects.filter(pk__in=ids).values_list("institution_id", "project_id", "pk")
        publish_job_states([(i, p, pk, state, cause, at) for i, p, pk in scope])

    _after_commit(build, "dispatched jobs")
