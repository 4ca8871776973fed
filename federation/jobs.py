"""Jobs: submit (single or batch), route, hold, persist, dispatch, follow, settle.

The hot path is batch-shaped from end to end, so 10,000 jobs/s are within reach on two cores:
routing happens in memory over one capacity snapshot (``federation.routing.Router``), the
ledger gets one *aggregated* hold per (site, resource class, batch) instead of one per job,
and jobs and their events are written with PostgreSQL ``COPY`` (``bulk_create`` elsewhere).

One job state machine (``JOB_TRANSITIONS``); ``_plan_moves`` is the only code that decides a
job's next state, for single jobs and for batches of status changes alike.
"""

from __future__ import annotations

import functools
import gc
import json
import re
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from accounts.actors import Actor
from accounts.audit import audit_record
from accounts.models import TokenScope
from allocations import ledger
from allocations.models import Allocation, AllocationBalance, AllocationState, Hold, Project, ResourceClass
from federation import routing_cache
from federation.adapters import DispatchJob, adapter_for
from federation.models import TERMINAL_JOB_STATES, Job, JobEvent, JobState, Partition, Site
from federation.routing import JobSpec, PartitionView, Router
from federation.simulator import DETAIL_NODE_FAILURE, DETAIL_SITE_OUTAGE, REFUSED_DUPLICATE
from portal.errors import ApplicationError, Conflict, PermissionDenied, ValidationFailed
from portal.events import publish_dispatched, publish_jobs, publish_submitted_jobs

J = JobState
MAX_BATCH = 10_000

JOB_TRANSITIONS: dict[str, set[str]] = {
    J.SUBMITTED: {J.ROUTED, J.FAILED, J.CANCELLED},
    J.ROUTED: {J.DISPATCHED, J.FAILED, J.CANCELLED},
    J.DISPATCHED: {J.QUEUED, J.RUNNING, J.COMPLETED, J.FAILED, J.CANCELLED, J.TIMED_OUT, J.ROUTED},
    J.QUEUED: {J.RUNNING, J.COMPLETED, J.FAILED, J.CANCELLED, J.TIMED_OUT, J.ROUTED},
    J.RUNNING: {J.COMPLETED, J.FAILED, J.CANCELLED, J.TIMED_OUT, J.ROUTED},
}
# A job lost to a site fault is routed again elsewhere, at most this many times in all.
MAX_ATTEMPTS = 3
# Failures that are the site's fault: the job is not charged (its hold is released).
SITE_FAULTS = {DETAIL_NODE_FAILURE, DETAIL_SITE_OUTAGE}


# --- input -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobRequest:
    name: str
    cores_per_node: int
    walltime_s: int
    nodes: int = 1
    memory_mb_per_node: int = 1024
    gpus_per_node: int = 0
    accepted_models: tuple[str, ...] = ()
    accepted_family: str = ""
    application: str = ""
    dataset: str = ""
    preferred_sites: tuple[str, ...] = ()
    command: str = ""  # shell lines a real (Slurm) centre runs; simulated centres ignore it

    def spec(self) -> JobSpec:
        return JobSpec(nodes=self.nodes, cores_per_node=self.cores_per_node,
                       memory_mb_per_node=self.memory_mb_per_node, gpus_per_node=self.gpus_per_node,
                       walltime_s=self.walltime_s,
                       accepted_models=frozenset(self.accepted_models) if self.accepted_models else None,
                       accepted_family=self.accepted_family or None, application=self.application or None,
                       dataset=self.dataset or None, preferred_sites=self.preferred_sites)

    @property
    def units(self) -> int:
        """What the job holds: core-seconds (CPU) or card-seconds (GPU) for its whole walltime."""
        return self.nodes * (self.gpus_per_node or self.cores_per_node) * self.walltime_s


@dataclass(slots=True)
class Accepted:
    index: int
    job_id: int
    site: str
    partition: str
    estimated_units: int
    # a submission of one job: the job as written (unsaved instance, site and partition attached), so that
    # the answer is built without reading it back
    job: Job | None = None


@dataclass(slots=True)
class Refused:
    index: int
    code: str
    message: str


@dataclass(slots=True)
class SubmitResult:
    batch_id: uuid.UUID
    accepted: list[Accepted] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    # seconds spent per stage: route (in memory), hold (ledger), persist (jobs and events)
    timings: dict[str, float] = field(default_factory=dict)


# --- who may submit ------------------------------------------------------------------------
def can_submit(actor: Actor, project: Project) -> bool:
    if actor.token is not None:
        return actor.token.institution_id == project.institution_id and actor.has_scope(TokenScope.JOBS_SUBMIT)
    return actor.user is not None and project.members.filter(user=actor.user).exists()


def active_allocation(project: Project, today=None) -> Allocation:
    today = today or timezone.localdate()
    allocation = (Allocation.objects.filter(project=project, state=AllocationState.ACTIVE, start__lte=today,
                                            end__gte=today).order_by("-start", "-id").first())
    if allocation is None:
        raise Conflict("The project has no active allocation to charge.", code="no_active_allocation")
    return allocation


# --- the capacity snapshot the router decides on --------------------------------------------
def _credits_milli(value) -> int:
    return int(value * 1000)


def partition_views(*, with_live_capacity: bool = True) -> tuple[list[PartitionView], dict[int, Partition]]:
    """Every partition as the router sees it, with live capacity from this process's adapters."""
    from federation.adapters import known_adapters

    partitions = list(Partition.objects.select_related("site", "family").prefetch_related("applications"))
    live = {}
    if with_live_capacity:
        for site_id, adapter in known_adapters().items():
            snapshot = adapter.capacity()
            for p in snapshot.partitions:
                live[(site_id, p.name)] = p
    views = []
    for p in partitions:
        snap = live.get((p.site_id, p.name))
        schedule = tuple((e["start_hour"] % 24, e["end_hour"] % 24, e["multiplier_permille"])
                         for e in p.site.price_schedule)
        views.append(PartitionView(
            partition_id=p.pk, site_id=p.site_id, site_code=p.site.code, site_state=p.site.state,
            ecosystem=p.ecosystem, accelerator_family=p.family.code if p.family_id else None,
            accelerator_model=p.accelerator_model or None, nodes=p.nodes, cores_per_node=p.cores_per_node,
            memory_mb_per_node=p.memory_mb_per_node, gpus_per_node=p.gpus_per_node,
            max_walltime_s=p.max_walltime_s, applications=frozenset(a.code for a in p.applications.all()),
            free_cores=snap.cores_free if snap else p.total_cores,
            free_gpus=snap.gpus_free if snap else p.total_cards,
            free_nodes=snap.nodes_idle if snap else p.nodes,
            queued_core_seconds=snap.pending_core_seconds if snap else 0,
            queued_gpu_seconds=snap.pending_gpu_seconds if snap else 0,
            running_jobs=snap.running if snap else 0,
            price_core_hour=_credits_milli(p.price_core_hour), price_card_hour=_credits_milli(p.price_card_hour),
            peak_schedule=schedule,
        ))
    return views, {p.pk: p for p in partitions}


def _unfunded_or_impossible(index: int, spec: JobSpec, router: Router, quota, now) -> Refused:
    """Why a GPU job found no funded card: impossible anywhere (say why), or only not paid for."""
    unrestricted = router.route(spec, quota, now)
    if not unrestricted.routed and unrestricted.refusal != "insufficient_quota":  # (no quota: possible, unpaid)
        return Refused(index, unrestricted.refusal, unrestricted.refusal_message)
    return Refused(index, "insufficient_balance",
                   "The allocation holds no card-hours of an accelerator that can run this job.")


def _funded_card_models(allocation: Allocation, partitions: dict[int, Partition]) -> set[str]:
    """Card models of the accelerator families the allocation still has card-hours of."""
    funded_families = {
        b.resource_class.family_id for b in allocation.balances.select_related("resource_class")
        if b.resource_class.family_id and b.available > 0
    }
    return {p.accelerator_model for p in partitions.values()
            if p.family_id in funded_families and p.accelerator_model}


def _quota_by_site(allocation: Allocation, partitions, now: datetime, kinds: set[str] | None = None) -> dict[int, int]:
    """The allocation's remaining brokered quota at each site, in credit milli-units at the price in force
    ``now`` (share − what its jobs there hold or were charged; see ``federation.quotas``). One query."""
    from federation.quotas import remaining_credits_by_site

    return remaining_credits_by_site(allocation, partitions, now, kinds)


# --- the cyclic garbage collector during batches ---------------------------------------------
_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False
GC_PAUSE_MIN = 500  # batches of at least this many jobs pause it


@contextmanager
def gc_paused():
    """Pause CPython's cyclic garbage collector for a batch. A batch allocates tens of thousands of
    short-lived objects while the process holds many long-lived ones (a simulated centre's queues),
    so the collector would walk the old generations again and again: a quarter of a batch's CPU.
    Reference counting still frees everything as usual; only reference cycles wait until the last
    concurrent batch ends and the collector is back on."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _pauses_gc(size):
    """Run the decorated batch function with ``gc_paused()`` when ``size(kwargs)`` is large."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if size(kwargs) < GC_PAUSE_MIN:
                return function(*args, **kwargs)
            with gc_paused():
                return function(*args, **kwargs)
        return wrapper
    return decorate


# --- submit --------------------------------------------------------------------------------
@_pauses_gc(lambda kwargs: len(kwargs.get("requests") or ()))
def jobs_submit(*, actor: Actor, project: Project, requests: list[JobRequest], now: datetime | None = None,
                router: Router | None = None, partitions: dict[int, Partition] | None = None,
                enqueue_dispatch: bool = True) -> SubmitResult:
    """Route, hold and persist a batch. Entries that cannot run are refused with a reason, the rest
    are accepted (per-entry results); nothing is half-written for an accepted entry."""
    if not can_submit(actor, project):
        raise PermissionDenied("Only the project's members (or the institution's systems with the jobs:submit "
                               "scope) submit jobs to it.", code="not_project_member")
    if not requests:
        raise ValidationFailed("Submit at least one job.", code="empty_batch")
    if len(requests) > MAX_BATCH:
        raise ValidationFailed(f"At most {MAX_BATCH} jobs per batch.", code="batch_too_large")
    started = time.perf_counter()
    now = now or timezone.now()
    allocation = active_allocation(project, now.date())
    classes = {rc.code: rc for rc in ResourceClass.objects.filter(active=True)}
    if router is None or partitions is None:
        router, partitions = routing_cache.current_router()  # cached; sites re-checked every 2 s
    quota = _quota_by_site(allocation, partitions.values(), now,
                           {"gpu" if r.gpus_per_node else "cpu" for r in requests})
    # the card models the allocation pays for: read only when a GPU job asks (a CPU batch needs no balance read)
    funded = _funded_card_models(allocation, partitions) if any(r.gpus_per_node for r in requests) else set()
    result = SubmitResult(batch_id=uuid.uuid4())
    specs, routable = [], []
    shapes: dict[tuple, JobSpec | None] = {}  # a batch repeats few shapes: each is prepared once
    for index, req in enumerate(requests):
        shape = (req.nodes, req.cores_per_node, req.memory_mb_per_node, req.gpus_per_node, req.walltime_s,
                 req.accepted_models, req.accepted_family, req.application, req.dataset, req.preferred_sites)
        spec = shapes.get(shape, False)
        if spec is False:
            spec = req.spec()
            if req.gpus_per_node:
                # Only cards the allocation has card-hours for: a V100 award does not pay for T4s.
                models = funded & (spec.accepted_models or funded)
                spec = replace(spec, accepted_models=frozenset(models)) if models else None
            shapes[shape] = spec
        if spec is None:
            result.refused.append(_unfunded_or_impossible(index, req.spec(), router, quota, now))
            continue
        specs.append(spec)
        routable.append(index)
    decisions = [None] * len(requests)
    for index, decision in zip(routable, router.route_batch(specs, quota, now), strict=True):
        decisions[index] = decision

    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for index, decision in enumerate(decisions):
        if decision is None:
            continue
        if not decision.routed:
            if requests[index].gpus_per_node and decision.refusal not in ("no_site_online", "insufficient_quota"):
                result.refused.append(_unfunded_or_impossible(index, requests[index].spec(), router, quota, now))
            else:
                result.refused.append(Refused(index, decision.refusal, decision.refusal_message))
            continue
        partition = partitions[decision.chosen_partition_id]
        code = f"gpu:{partition.family.code}" if partition.family_id else "cpu"
        groups[(partition.site_id, code)].append(index)

    routed_at = time.perf_counter()
    result.timings["route"] = routed_at - started
    with transaction.atomic():
        holds: dict[int, Hold] = {}
        wanted, wanted_groups = [], []
        for (site_id, code), indexes in sorted(groups.items()):
            if code not in classes:
                result.refused.extend(Refused(i, "insufficient_balance", f"No {code} in the allocation.")
                                      for i in indexes)
                continue
            wanted.append(ledger.HoldRequest(classes[code], sum(requests[i].units for i in indexes),
                                             f"batch:{result.batch_id}:{site_id}:{code}", site_id))
            wanted_groups.append(indexes)
        # one hold per centre and class, placed together (a class that runs short: one after the other)
        placed = ledger.place_holds(allocation=allocation, requests=wanted, actor=actor) if wanted else []
        for want, hold, indexes in zip(wanted, placed, wanted_groups, strict=True):
            fitted = indexes
            if isinstance(hold, Conflict):  # short: as many of the centre's jobs as the balance still allows
                refusal = hold
                hold, fitted = (_hold_what_fits(allocation, want, indexes, requests, actor)
                                if refusal.code == "insufficient_balance" and len(indexes) > 1 else None) or (None, [])
                kept = set(fitted)
                result.refused.extend(Refused(i, refusal.code, refusal.message) for i in indexes if i not in kept)
            for i in fitted:
                holds[i] = hold
        held_at = time.perf_counter()
        result.timings["hold"] = held_at - routed_at
        rows = []
        for index, decision in enumerate(decisions):
            if index not in holds:
                continue
            partition = partitions[decision.chosen_partition_id]
            rows.append((index, requests[index], decision, partition, holds[index]))
        ids = _persist(rows, project=project, allocation=allocation, actor=actor, batch_id=result.batch_id,
                       now=now, classes=classes)
        for (index, req, _decision, partition, _hold), job_id in zip(rows, ids, strict=True):
            result.accepted.append(Accepted(index, job_id, partition.site.code, partition.name, req.units))
        if len(rows) == 1:
            result.accepted[0].job = _written_job(ids[0], rows[0], project=project, allocation=allocation,
                                                  actor=actor, batch_id=result.batch_id, now=now)
        if rows:
            audit_record(actor=actor, action="jobs.submit", obj=project, institution=project.institution_id,
                         after={"batch": str(result.batch_id), "accepted": len(rows),
                                "refused": len(result.refused)})
            publish_submitted_jobs(project, [(job_id, req, partition) for (_i, req, _d, partition, _h), job_id
                                             in zip(rows, ids, strict=True)], now)
            site_ids = sorted({partition.site_id for _, _, _, partition, _ in rows})
            if enqueue_dispatch:
                transaction.on_commit(lambda: _enqueue_dispatch(site_ids))
    result.timings["persist"] = time.perf_counter() - held_at  # with the commit
    result.refused.sort(key=lambda r: r.index)
    return result


def _hold_what_fits(allocation: Allocation, want: ledger.HoldRequest, indexes: list[int],
                     requests: list[JobRequest], actor: Actor) -> tuple[Hold, list[int]] | None:
    """A centre's part of a batch did not fit the balance whole: one hold for as many of its jobs as fit, in
    submission order (a later, smaller job may still fit). None if none fits."""
    balance = AllocationBalance.objects.select_for_update().get(allocation=allocation,
                                                               resource_class=want.resource_class)
    room, total, fitted = balance.awarded - balance.held - balance.charged, 0, []
    for i in indexes:
        if total + requests[i].units <= room:
            fitted.append(i)
            total += requests[i].units
    if not fitted:
        return None
    hold = ledger.place_hold(allocation=allocation, resource_class=want.resource_class, amount=total,
                             job_ref=want.job_ref, actor=actor, site_ref=want.site_ref)
    return hold, fitted


def _written_job(job_id: int, row, *, project, allocation, actor, batch_id, now) -> Job:
    """The job ``_persist`` wrote for ``row``, as an unsaved instance (the columns the API answers with)."""
    _index, req, _decision, partition, hold = row
    job = Job(id=job_id, institution_id=project.institution_id, project_id=project.pk, allocation_id=allocation.pk,
              submitted_by=actor.label[:300], batch_id=batch_id, name=req.name[:200], state=J.ROUTED, reason="",
              nodes=req.nodes, cores_per_node=req.cores_per_node, memory_mb_per_node=req.memory_mb_per_node,
              gpus_per_node=req.gpus_per_node, accepted_models=list(req.accepted_models),
              accepted_family=req.accepted_family, walltime_s=req.walltime_s, application=req.application,
              dataset=req.dataset, preferred_sites=list(req.preferred_sites), command=req.command,
              site=partition.site, partition=partition, attempts=1, site_job_id="", hold_id=hold.pk,
              hold_part=req.units, charged=0, exit_code=None, submitted_at=now, started_at=None, ended_at=None)
    return job


class RoutingWriter:
    """Writes routing explanations as JSON text in the compact form ``expand_routing`` reads: the choice,
    its score, wait and cost, how many partitions each filter excluded, and the candidates the router
    scored (up to 4, the choice first) with their score parts. Positions instead of keys: a third of the
    bytes to write and parse. The text is built directly (site codes, partition names and refusal codes
    are slugs, the rest numbers); one writer serves a batch and remembers what its jobs share: each
    candidate's load-independent parts and the text of the numbers (``repr``, what ``json.dumps`` writes)."""

    def __init__(self):
        self._candidates: dict[tuple, tuple[str, str, str, str]] = {}
        self._floats: dict[float, str] = {}
        self._choices: dict[int, str] = {}

    def _float(self, value: float) -> str:
        text = self._floats[value] = repr(value)
        return text

    def write(self, decision, partition: Partition) -> str:
        explained = decision.explain(limit=4)
        floats, known = self._floats, self._candidates
        parts = []
        for c in explained["candidates"]:  # a scored candidate's numbers are never None
            key = (c["partition_id"], c["price"], c["locality"], c["preference"], c["estimated_cost"])
            static = known.get(key)
            if static is None:
                static = known[key] = (f'["{c["site_code"]}",{c["partition_id"]},"',
                                       f',{c["price"]!r},{c["locality"]!r},', f',{c["preference"]!r},',
                                       f',{c["estimated_cost"]!r}]')
            total, wait, balance = c["total"], c["wait"], c["balance"]
            parts.append(f'{static[0]}{c["status"]}",{floats.get(total) or self._float(total)},'
                         f'{floats.get(wait) or self._float(wait)}{static[1]}'
                         f'{floats.get(balance) or self._float(balance)}{static[2]}{c["estimated_wait_s"]}{static[3]}')
        excluded = explained["excluded"]
        excluded = ",".join([f'"{code}":{n}' for code, n in excluded.items()]) if excluded else ""
        choice = self._choices.get(partition.pk)
        if choice is None:
            choice = self._choices[partition.pk] = f'["{partition.site.code}","{partition.name}",'
        score = explained["score"]
        score = "null" if score is None else floats.get(score) or self._float(score)
        return (f'{choice}{score},{_json_number(explained["estimated_wait_s"])},'
                f'{_json_number(explained["estimated_cost"])},{explained["skipped_by_kind"]},{{{excluded}}},'
                f'[{",".join(parts)}]]')


def _routing_compact(decision, partition: Partition) -> str:
    """One job's routing explanation as compact JSON text (``RoutingWriter``)."""
    return RoutingWriter().write(decision, partition)


def _json_number(value) -> str:
    """An int or float as JSON (``repr`` is what ``json.dumps`` writes for them), None as null."""
    return "null" if value is None else repr(value)


JOB_COLUMNS = ("id", "institution_id", "project_id", "allocation_id", "submitted_by", "batch_id", "name", "state",
               "reason", "nodes", "cores_per_node", "memory_mb_per_node", "gpus_per_node", "accepted_models",
               "accepted_family", "walltime_s", "application", "dataset", "preferred_sites", "site_id",
               "partition_id", "routing", "attempts", "site_job_id", "resource_class_id", "hold_id", "hold_part",
               "charged", "submitted_at", "command")
EVENT_COLUMNS = ("job_id", "from_state", "to_state", "cause", "at")
# One job and its two events (submitted, routed) in one statement; the id is the column's default.
_ONE_JOB_SQL = " ".join([
    "WITH job AS (INSERT INTO federation_job (", ", ".join(JOB_COLUMNS[1:]), ") VALUES (",
    ", ".join("%s::jsonb" if c in ("accepted_models", "preferred_sites") else "%s" for c in JOB_COLUMNS[1:]),
    ") RETURNING id) INSERT INTO federation_jobevent (", ", ".join(EVENT_COLUMNS), ")",
    "SELECT id, '', %s, %s, %s FROM job UNION ALL SELECT id, %s, %s, %s, %s FROM job RETURNING job_id"])


# COPY's text format: a backslash, tab, newline or carriage return in a value is written escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
COPY_CHUNK = 500  # jobs per write: PostgreSQL parses one chunk while the next one is built


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def _json_list(values) -> str:
    return json.dumps(list(values)) if values else "[]"


def _persist(rows, *, project, allocation, actor, batch_id, now, classes) -> list[int]:
    if not rows:
        return []
    class_id = {code: rc.pk for code, rc in classes.items()}
    label = actor.label[:300]
    submitted = f"submitted by {label}"[:300]
    if connection.vendor != "postgresql":
        return _persist_orm(rows, project=project, allocation=allocation, label=label, submitted=submitted,
                            batch_id=batch_id, now=now, class_id=class_id)
    if len(rows) == 1:
        return [_persist_one(rows[0], project=project, allocation=allocation, label=label, submitted=submitted,
                             batch_id=batch_id, now=now, class_id=class_id)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                       [_job_id_sequence(cursor), len(rows)])
        ids = [r[0] for r in cursor.fetchall()]
        # The rows as COPY text, built in the loop that streams them (the server parses a chunk while
        # Python builds the next); what is the same for every job of the batch is formatted once.
        at = now.isoformat()
        head = f"{project.institution_id}\t{project.pk}\t{allocation.pk}\t{_copy_text(label)}\t{batch_id}\t"
        state = f"\t{J.ROUTED.value}\t\t"  # state, and an empty reason
        submitted_line = f"\t\t{J.SUBMITTED}\t{_copy_text(submitted)}\t{at}\n"
        routing = RoutingWriter().write
        routed_causes: dict[int, str] = {}
        by_partition: dict[int, tuple[str, str]] = {}
        by_shape: dict[tuple, str] = {}  # the requirement columns of the jobs of one shape
        events: list[str] = []
        chunk: list[str] = []
        with cursor.cursor.copy(f"COPY federation_job ({', '.join(JOB_COLUMNS)}) FROM STDIN") as copy:
            for job_id, (_index, req, decision, partition, hold) in zip(ids, rows, strict=True):
                known = by_partition.get(partition.pk)
                if known is None:
                    code = f"gpu:{partition.family.code}" if partition.family_id else "cpu"
                    known = by_partition[partition.pk] = (
                        f"\t{partition.site_id}\t{partition.pk}\t", f"\t1\t\t{class_id[code]}\t")
                    cause = f"routed to {partition.site.code}/{partition.name}"[:300]
                    routed_causes[partition.pk] = f"\t{J.SUBMITTED}\t{J.ROUTED}\t{_copy_text(cause)}\t{at}\n"
                where, charge = known
                shape = (req.nodes, req.cores_per_node, req.memory_mb_per_node, req.gpus_per_node,
                         req.accepted_models, req.accepted_family, req.walltime_s, req.application, req.dataset,
                         req.preferred_sites)
                needs = by_shape.get(shape)
                if needs is None:
                    needs = by_shape[shape] = (
                        f"{req.nodes}\t{req.cores_per_node}\t{req.memory_mb_per_node}\t{req.gpus_per_node}\t"
                        f"{_copy_text(_json_list(req.accepted_models))}\t{_copy_text(req.accepted_family)}\t"
                        f"{req.walltime_s}\t{_copy_text(req.application)}\t{_copy_text(req.dataset)}\t"
                        f"{_copy_text(_json_list(req.preferred_sites))}")
                command = req.command
                chunk.append(
                    f"{job_id}\t{head}{_copy_text(req.name[:200])}{state}{needs}{where}"
                    f"{routing(decision, partition)}{charge}{hold.pk}\t{req.units}\t0\t{at}\t"
                    f"{_copy_text(command) if command else ''}\n")
                events.append(f"{job_id}{submitted_line}{job_id}{routed_causes[partition.pk]}")
                if len(chunk) == COPY_CHUNK:
                    copy.write("".join(chunk))
                    chunk.clear()
            if chunk:
                copy.write("".join(chunk))
        with cursor.cursor.copy(f"COPY federation_jobevent ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            for start in range(0, len(events), COPY_CHUNK):
                copy.write("".join(events[start:start + COPY_CHUNK]))
    return ids


def _persist_one(row, *, project, allocation, label, submitted, batch_id, now, class_id) -> int:
    """A single job on PostgreSQL: the job and its two events in one statement (one round trip instead of
    the id, the job COPY and the events COPY); the same columns and values as the COPY path."""
    _index, req, decision, partition, hold = row
    code = f"gpu:{partition.family.code}" if partition.family_id else "cpu"
    values = [project.institution_id, project.pk, allocation.pk, label, batch_id, req.name[:200], J.ROUTED.value, "",
              req.nodes, req.cores_per_node, req.memory_mb_per_node, req.gpus_per_node,
              _json_list(req.accepted_models), req.accepted_family, req.walltime_s, req.application, req.dataset,
              _json_list(req.preferred_sites), partition.site_id, partition.pk,
              RoutingWriter().write(decision, partition), 1, "", class_id[code], hold.pk, req.units, 0, now,
              req.command]
    routed = f"routed to {partition.site.code}/{partition.name}"[:300]
    with connection.cursor() as cursor:
        cursor.execute(_ONE_JOB_SQL, [*values, J.SUBMITTED.value, submitted, now, J.SUBMITTED.value, J.ROUTED.value,
                                      routed, now])
        return cursor.fetchone()[0]


_sequences: dict[str, str] = {}


def _job_id_sequence(cursor) -> str:
    """The name of federation_job's id sequence, looked up once per database (calling
    ``pg_get_serial_sequence`` inside ``nextval`` would look it up again for every id)."""
    key = connection.settings_dict["NAME"]
    name = _sequences.get(key)
    if name is None:
        cursor.execute("SELECT pg_get_serial_sequence('federation_job', 'id')")
        name = _sequences[key] = cursor.fetchone()[0]
    return name


def _persist_orm(rows, *, project, allocation, label, submitted, batch_id, now, class_id) -> list[int]:
    """SQLite and other databases: bulk inserts."""
    routing = RoutingWriter().write
    objs = []
    for _index, req, decision, partition, hold in rows:
        code = f"gpu:{partition.family.code}" if partition.family_id else "cpu"
        objs.append(Job(
            institution_id=project.institution_id, project_id=project.pk, allocation_id=allocation.pk,
            submitted_by=label, batch_id=batch_id, name=req.name[:200], state=J.ROUTED, reason="", nodes=req.nodes,
            cores_per_node=req.cores_per_node, memory_mb_per_node=req.memory_mb_per_node,
            gpus_per_node=req.gpus_per_node, accepted_models=list(req.accepted_models),
            accepted_family=req.accepted_family, walltime_s=req.walltime_s, application=req.application,
            dataset=req.dataset, preferred_sites=list(req.preferred_sites), site_id=partition.site_id,
            partition_id=partition.pk, routing_data=routing(decision, partition), attempts=1,
            site_job_id="", resource_class_id=class_id[code], hold_id=hold.pk, hold_part=req.units, charged=0,
            submitted_at=now, command=req.command))
    Job.objects.bulk_create(objs, batch_size=2000)
    events = []
    for job, (_i, _req, _d, partition, _h) in zip(objs, rows, strict=True):
        events.append((job.pk, "", J.SUBMITTED, submitted, now))
        events.append((job.pk, J.SUBMITTED, J.ROUTED, f"routed to {partition.site.code}/{partition.name}", now))
    write_events(events)
    return [job.pk for job in objs]


def _set_state(ids: list[int], from_state: str, to_state: str) -> int:
    """One set-based UPDATE (``id = ANY(array)`` on PostgreSQL: one parameter, not one per id)."""
    if not ids:
        return 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("UPDATE federation_job SET state = %s WHERE id = ANY(%s) AND state = %s",
                           [to_state, ids, from_state])
            return cursor.rowcount
    return Job.objects.filter(pk__in=ids, state=from_state).update(state=to_state)


def write_events(events: list[tuple[int, str, str, str, datetime]]) -> None:
    """Append job events: COPY on PostgreSQL, bulk insert elsewhere."""
    if not events:
        return
    if connection.vendor == "postgresql":
        # COPY text, formatted here: a batch's events share a few causes and times, each escaped or
        # formatted once
        causes: dict[str, str] = {}
        stamps: dict[datetime, str] = {}
        lines = []
        for job_id, from_state, to_state, cause, at in events:
            text = causes.get(cause)
            if text is None:
                text = causes[cause] = _copy_text(cause[:300])
            stamp = stamps.get(at)
            if stamp is None:
                stamp = stamps[at] = at.isoformat()
            lines.append(f"{job_id}\t{from_state}\t{to_state}\t{text}\t{stamp}\n")
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY federation_jobevent ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                for start in range(0, len(lines), COPY_CHUNK):
                    copy.write("".join(lines[start:start + COPY_CHUNK]))
        return
    JobEvent.objects.bulk_create([JobEvent(job_id=j, from_state=f, to_state=t, cause=c[:300], at=a)
                                  for j, f, t, c, a in events], batch_size=4000)


def _enqueue_dispatch(site_ids: list[int]) -> None:
    from federation.tasks import dispatch_site

    for site_id in site_ids:
        dispatch_site.delay(site_id)


# --- dispatch: routed rows → the site's adapter -----------------------------------------------
DISPATCH_CHUNK = 5000
# A real centre takes one HTTP request per job (~400/s into slurmrestd here) while the chunk's rows stay locked
# in the dispatch transaction: small chunks keep those locks (and what a failed commit could leave behind) short.
REMOTE_DISPATCH_CHUNK = 100


@_pauses_gc(lambda kwargs: kwargs.get("limit", DISPATCH_CHUNK))
def dispatch_routed(site: Site, *, limit: int = DISPATCH_CHUNK, now: datetime | None = None) -> int:
    """Hand routed jobs of a site to its adapter. Durable and idempotent: the rows stay ``routed``
    until the site acknowledged them (claim, hand-off and the move to ``dispatched`` are one
    transaction: if the hand-off fails, nothing moved), concurrent dispatchers skip each other's
    rows, and a job handed over twice is refused by the site as a duplicate (its first
    acknowledgement stands)."""
    now = now or timezone.now()
    assert J.DISPATCHED in JOB_TRANSITIONS[J.ROUTED]
    if site.adapter != "simulated":
        limit = min(limit, REMOTE_DISPATCH_CHUNK)
    with transaction.atomic():
        claimed = _claim_routed(site, limit)
        if not claimed:
            return 0
        acks = adapter_for(site).submit_batch([DispatchJob(*row) for row in claimed])
        accepted = [int(a.job_id) for a in acks if a.accepted or a.reason == REFUSED_DUPLICATE]
        refused = [(int(a.job_id), J.FAILED, f"refused by {site.code}: {a.reason}", now, {"detail": a.reason})
                   for a in acks if not a.accepted and a.reason != REFUSED_DUPLICATE]
        if refused:
            # claimed as dispatched in this transaction: back to routed first, so the refusal is
            # recorded (and settled) as the routed → failed move it is
            _set_state([r[0] for r in refused], J.DISPATCHED, J.ROUTED)
        answered = {int(a.job_id) for a in acks}
        if len(answered) < len(claimed):
            # A real centre that stopped answering mid-batch acknowledged only part of it: the rest was not
            # handed over and stays routed for a later pass (or for re-routing if the centre goes offline).
            _set_state([row[0] for row in claimed if row[0] not in answered], J.DISPATCHED, J.ROUTED)
        cause = f"accepted by {site.code}"
        write_events([(job_id, J.ROUTED, J.DISPATCHED, cause, now) for job_id in accepted])
        publish_dispatched(accepted, J.DISPATCHED, cause, now)
        apply_moves(refused)
    return len(accepted)


def _claim_routed(site: Site, limit: int) -> list[tuple]:
    """Claim up to ``limit`` routed jobs of a site, oldest first, and move them to ``dispatched`` in
    the caller's transaction; the rows other dispatchers hold are skipped. PostgreSQL: one
    statement (the claim's row locks and the update are one pass over the rows, not two)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # The locked rows are found again by their physical address (a TID scan): the rows cannot move
            # while this transaction holds their locks.
            cursor.execute(
                "WITH claimed AS MATERIALIZED ("
                " SELECT ctid FROM federation_job WHERE site_id = %s AND state = %s ORDER BY id LIMIT %s"
                " FOR UPDATE SKIP LOCKED)"
                " UPDATE federation_job j SET state = %s FROM federation_partition p"
                " WHERE j.ctid = ANY(ARRAY(SELECT ctid FROM claimed)) AND p.id = j.partition_id"
                " RETURNING j.id, p.name, j.nodes, j.cores_per_node, j.memory_mb_per_node, j.gpus_per_node,"
                " j.walltime_s",
                [site.pk, J.ROUTED, limit, J.DISPATCHED])
            return sorted(cursor.fetchall())
    claimed = list(Job.objects.select_for_update(skip_locked=True, of=("self",))
                   .filter(site=site, state=J.ROUTED).order_by("id")
                   .values_list("id", "partition__name", "nodes", "cores_per_node", "memory_mb_per_node",
                                "gpus_per_node", "walltime_s")[:limit])
    if _set_state([row[0] for row in claimed], J.ROUTED, J.DISPATCHED) != len(claimed):
        raise RuntimeError("dispatched rows changed under their lock")
    return claimed


# --- following jobs: status changes from the sites ---------------------------------------------
def _sim_time(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def ingest_status(site: Site, changes, *, clock=None) -> int:
    """Apply a site's status changes (queued, running, terminal with exit code) to our jobs.
    ``clock`` maps a simulator's virtual times to wall times (default: they are wall times)."""
    from federation.ticker import IDENTITY

    clock = clock or IDENTITY
    moves = []
    for change in changes:
        state = {"queued": J.QUEUED, "running": J.RUNNING, "completed": J.COMPLETED, "failed": J.FAILED,
                 "cancelled": J.CANCELLED, "timed_out": J.TIMED_OUT}.get(change.state)
        if state is None:
            continue
        cause = f"{site.code}: {change.state}" + (f" ({change.detail})" if change.detail else "")
        moves.append((int(change.job_id), state, cause, _sim_time(clock.to_wall(change.time)),
                      {"exit_code": change.exit_code, "detail": change.detail}))
    with transaction.atomic():
        return apply_moves(moves, time_scale=clock.scale)


def apply_moves(moves: list[tuple[int, str, str, datetime, dict | None]], *, time_scale: float = 1.0) -> int:
    """Apply state moves to jobs in one transaction: the transition table decides, events are written,
    terminal jobs are settled on the ledger (charged per second of use, site faults not charged)."""
    if not moves:
        return 0
    ids = sorted({m[0] for m in moves})
    jobs = {j.pk: j for j in Job.objects.select_for_update(of=("self",)).select_related("site")
            .filter(pk__in=ids).order_by("pk")}
    events, changed, to_settle, to_reroute = [], set(), defaultdict(list), []
    for job_id, to_state, cause, at, extra in moves:
        job = jobs.get(job_id)
        if job is None or to_state not in JOB_TRANSITIONS.get(job.state, set()):
            continue  # an illegal or repeated move (e.g. a retried poll) changes nothing
        detail = (extra or {}).get("detail") or ""
        if to_state == J.FAILED and detail in SITE_FAULTS and job.attempts < MAX_ATTEMPTS:
            to_reroute.append((job, cause, at))  # not the job's fault: try another centre
            continue
        events.append(JobEvent(job_id=job_id, from_state=job.state, to_state=to_state, cause=cause[:300], at=at))
        job.state = to_state
        changed.add(job_id)
        if to_state == J.RUNNING:
            job.started_at = at
        if to_state in TERMINAL_JOB_STATES:
            job.ended_at = at
            detail = (extra or {}).get("detail") or ""
            job.exit_code = (extra or {}).get("exit_code")
            job.reason = cause[:300] if to_state != J.COMPLETED else ""
            fault = detail in SITE_FAULTS or job.started_at is None
            # Wall time × scale: a job on a sped-up simulated centre is charged its virtual run time.
            used = 0 if fault else int((at - job.started_at).total_seconds() * time_scale)
            units = None if fault else job.nodes * (job.gpus_per_node or job.cores_per_node) * max(used, 0)
            if job.hold_id:
                to_settle[job.hold_id].append((job, units))
    for hold_id, items in to_settle.items():
        charges = ledger.settle_parts(
            hold=Hold(pk=hold_id),
            uses=[ledger.PartUse(job.hold_part, units, f"job:{job.pk}") for job, units in items])
        for (job, _units), charge in zip(items, charges, strict=True):
            job.charged = charge
    changed |= _reroute(to_reroute, events)
    touched = [jobs[i] for i in sorted(changed)]
    Job.objects.bulk_update(touched, ["state", "started_at", "ended_at", "exit_code", "reason", "charged", "site",
                                      "partition", "routing_data", "attempts", "hold", "hold_part",
                                      "resource_class"],
                            batch_size=1000)
    write_events([(e.job_id, e.from_state, e.to_state, e.cause, e.at) for e in events])
    publish_jobs(touched, {e.job_id: (e.cause, e.at) for e in events})
    return len(changed)


def _reroute(lost: list[tuple[Job, str, datetime]], events: list[JobEvent]) -> set[int]:
    """Route jobs lost to a site fault again, away from the centre that lost them: release their old
    hold part (a site fault is not charged), hold at the new centre, back to ``routed`` for dispatch.
    A job no other centre can take fails with the reason."""
    if not lost:
        return set()
    for job, _cause, _at in lost:  # release first: the new holds may need the same balance
        if job.hold_id:
            ledger.settle_parts(hold=Hold(pk=job.hold_id), uses=[ledger.PartUse(job.hold_part, None,
                                                                                 f"job:{job.pk}")])
        job.hold, job.hold_part = None, 0
    views, partitions = partition_views()
    router = Router(views)
    classes = {rc.code: rc for rc in ResourceClass.objects.filter(active=True)}
    now = timezone.now()
    by_allocation: dict[int, list[tuple[Job, str, datetime]]] = defaultdict(list)
    for item in lost:
        by_allocation[item[0].allocation_id].append(item)
    for allocation_id, items in by_allocation.items():
        allocation = Allocation.objects.get(pk=allocation_id)
        quota = _quota_by_site(allocation, partitions.values(), now)
        for job, _cause, _at in items:
            quota[job.site_id] = 0  # not back to the centre that just lost it
        specs = [JobSpec(nodes=j.nodes, cores_per_node=j.cores_per_node, memory_mb_per_node=j.memory_mb_per_node,
                         gpus_per_node=j.gpus_per_node, walltime_s=j.walltime_s,
                         accepted_models=frozenset(j.accepted_models) or None,
                         accepted_family=j.accepted_family or None, application=j.application or None,
                         dataset=j.dataset or None, preferred_sites=tuple(j.preferred_sites))
                 for j, _c, _a in items]
        decisions = router.route_batch(specs, quota, now)
        for (job, cause, at), decision in zip(items, decisions, strict=True):
            lost_at = job.site.code if job.site_id else "?"
            hold = None
            if decision.routed:
                partition = partitions[decision.chosen_partition_id]
                code = f"gpu:{partition.family.code}" if partition.family_id else "cpu"
                units = job.nodes * (job.gpus_per_node or job.cores_per_node) * job.walltime_s
                try:
                    with transaction.atomic():
                        hold = ledger.place_hold(allocation=allocation, resource_class=classes[code], amount=units,
                                                 job_ref=f"job:{job.pk}:attempt:{job.attempts + 1}",
                                                 site_ref=partition.site_id)
                except (Conflict, KeyError):
                    hold = None
            if hold is None:
                reason = decision.refusal if not decision.routed else "insufficient_balance"
                events.append(JobEvent(job_id=job.pk, from_state=job.state, to_state=J.FAILED,
                                       cause=f"{cause}; no other centre could take it ({reason})"[:300], at=at))
                job.state, job.ended_at, job.reason = J.FAILED, at, f"{cause}; re-routing failed: {reason}"[:300]
                continue
            events.append(JobEvent(job_id=job.pk, from_state=job.state, to_state=J.ROUTED,
                                   cause=f"{cause}; re-routed from {lost_at} to {partition.site.code}/"
                                         f"{partition.name}"[:300], at=at))
            job.state, job.site, job.partition = J.ROUTED, partition.site, partition
            job.attempts += 1
            job.hold, job.hold_part, job.resource_class = hold, units, classes[code]
            job.started_at = None
            job.routing_data = _routing_compact(decision, partition)
    new_sites = sorted({job.site_id for job, _c, _a in lost if job.state == J.ROUTED})
    if new_sites:
        transaction.on_commit(lambda: _enqueue_dispatch(new_sites))
    return {job.pk for job, _c, _a in lost}


def job_cancel(*, actor: Actor, job: Job) -> Job:
    """Cancel a job: before dispatch it never reaches the site; after, the site is told."""
    if not can_submit(actor, job.project):
        raise PermissionDenied("Only the project's members can cancel its jobs.", code="not_project_member")
    with transaction.atomic():
        job = Job.objects.select_for_update(of=("self",)).select_related("site").get(pk=job.pk)
        if job.state in TERMINAL_JOB_STATES:
            raise Conflict(f"The job is already {job.state}.", code="job_finished")
        if job.state in (J.DISPATCHED, J.QUEUED, J.RUNNING) and job.site is not None:
            try:
                adapter_for(job.site).cancel(job.pk)
            except ApplicationError as exc:  # the centre's own message may name its internals: code only
                refused = ApplicationError(
                    f"The centre {job.site.code} did not confirm the cancellation ({exc.code}); the job is "
                    "unchanged, try again.", code=exc.code)
                refused.status_code = exc.status_code
                raise refused from exc
        apply_moves([(job.pk, J.CANCELLED, f"cancelled by {actor.label}", timezone.now(), {"detail": "cancelled"})])
        audit_record(actor=actor, action="job.cancel", obj=job, institution=job.institution_id,
                     before={"state": job.state}, after={"state": J.CANCELLED})
    return Job.objects.get(pk=job.pk)
