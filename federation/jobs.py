"""Jobs: submit (single or batch), route, hold, persist, dispatch, follow, settle.

The hot path is batch-shaped from end to end, so 10,000 jobs/s are within reach on two cores:
routing happens in memory over one capacity snapshot (``federation.routing.Router``), the
ledger gets one *aggregated* hold per (site, resource class, batch) instead of one per job,
and jobs and their events are written with PostgreSQL ``COPY`` (``bulk_create`` elsewhere).

One job state machine (``JOB_TRANSITIONS``); ``_plan_moves`` is the only code that decides a
job's next state, for single jobs and for batches of status changes alike.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from accounts.actors import Actor
from accounts.audit import audit_record
from accounts.models import TokenScope
from allocations import ledger
from allocations.models import Allocation, AllocationState, Hold, Project, ResourceClass
from federation import routing_cache
from federation.adapters import DispatchJob, adapter_for
from federation.models import TERMINAL_JOB_STATES, Job, JobEvent, JobState, Partition, Site
from federation.routing import JobSpec, PartitionView, Router
from federation.simulator import DETAIL_NODE_FAILURE, DETAIL_SITE_OUTAGE, REFUSED_DUPLICATE
from portal.errors import Conflict, PermissionDenied, ValidationFailed
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


# --- submit --------------------------------------------------------------------------------
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
    now = now or timezone.now()
    allocation = active_allocation(project, now.date())
    classes = {rc.code: rc for rc in ResourceClass.objects.filter(active=True)}
    if router is None or partitions is None:
        router, partitions = routing_cache.current_router()  # static part cached ≤ 2 s, live capacity fresh
    quota = _quota_by_site(allocation, partitions.values(), now,
                           {"gpu" if r.gpus_per_node else "cpu" for r in requests})
    funded = _funded_card_models(allocation, partitions)
    result = SubmitResult(batch_id=uuid.uuid4())
    specs, routable = [], []
    for index, req in enumerate(requests):
        spec = req.spec()
        if req.gpus_per_node:
            # Only cards the allocation has card-hours for: a V100 award does not pay for T4s.
            models = funded & (spec.accepted_models or funded)
            if not models:
                result.refused.append(_unfunded_or_impossible(index, spec, router, quota, now))
                continue
            spec = replace(spec, accepted_models=frozenset(models))
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

    with transaction.atomic():
        holds: dict[int, Hold] = {}
        for (site_id, code), indexes in sorted(groups.items()):
            units = sum(requests[i].units for i in indexes)
            if code not in classes:
                result.refused.extend(Refused(i, "insufficient_balance", f"No {code} in the allocation.")
                                      for i in indexes)
                continue
            try:
                with transaction.atomic():
                    hold = ledger.place_hold(allocation=allocation, resource_class=classes[code], amount=units,
                                             job_ref=f"batch:{result.batch_id}:{site_id}:{code}", actor=actor)
            except Conflict as exc:
                result.refused.extend(Refused(i, exc.code, exc.message) for i in indexes)
                continue
            for i in indexes:
                holds[i] = hold
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
        if rows:
            audit_record(actor=actor, action="jobs.submit", obj=project, institution=project.institution_id,
                         after={"batch": str(result.batch_id), "accepted": len(rows),
                                "refused": len(result.refused)})
            publish_submitted_jobs(project, [(job_id, req, partition) for (_i, req, _d, partition, _h), job_id
                                             in zip(rows, ids, strict=True)], now)
            site_ids = sorted({partition.site_id for _, _, _, partition, _ in rows})
            if enqueue_dispatch:
                transaction.on_commit(lambda: _enqueue_dispatch(site_ids))
    result.refused.sort(key=lambda r: r.index)
    return result


def _routing_summary(decision, partition: Partition) -> str:
    """What the portal needs to say why: the choice, its score parts, the runners-up the router
    scored, and how many partitions each filter excluded (compact: a few µs per job)."""
    explained = decision.explain(limit=4)
    candidates = [
        {"site": c["site_code"], "partition": c["partition_id"], "status": c["status"], "total": c["total"],
         "wait": c["wait"], "price": c["price"], "locality": c["locality"], "balance": c["balance"],
         "preference": c["preference"], "wait_s": c["estimated_wait_s"], "cost": c["estimated_cost"]}
        for c in explained["candidates"]
    ]
    return json.dumps({"site": partition.site.code, "partition": partition.name, "score": explained["score"],
                       "estimated_wait_s": explained["estimated_wait_s"],
                       "estimated_cost": explained["estimated_cost"], "candidates": candidates,
                       "excluded": explained["excluded"], "skipped_by_kind": explained["skipped_by_kind"]},
                      separators=(",", ":"))


JOB_COLUMNS = ("id", "institution_id", "project_id", "allocation_id", "submitted_by", "batch_id", "name", "state",
               "reason", "nodes", "cores_per_node", "memory_mb_per_node", "gpus_per_node", "accepted_models",
               "accepted_family", "walltime_s", "application", "dataset", "preferred_sites", "site_id",
               "partition_id", "routing", "attempts", "site_job_id", "resource_class_id", "hold_id", "hold_part",
               "charged", "submitted_at")
EVENT_COLUMNS = ("job_id", "from_state", "to_state", "cause", "at")


def _persist(rows, *, project, allocation, actor, batch_id, now, classes) -> list[int]:
    if not rows:
        return []
    class_id = {code: rc.pk for code, rc in classes.items()}
    label = actor.label[:300]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence('federation_job', 'id')) "
                           "FROM generate_series(1, %s)", [len(rows)])
            ids = [r[0] for r in cursor.fetchall()]
    else:
        ids = []
    job_rows = []
    for n, (_index, req, decision, partition, hold) in enumerate(rows):
        code = f"gpu:{partition.family.code}" if partition.family_id else "cpu"
        job_rows.append((
            ids[n] if ids else None, project.institution_id, project.pk, allocation.pk, label, batch_id,
            req.name[:200], J.ROUTED, "", req.nodes, req.cores_per_node, req.memory_mb_per_node, req.gpus_per_node,
            json.dumps(list(req.accepted_models)), req.accepted_family, req.walltime_s, req.application,
            req.dataset, json.dumps(list(req.preferred_sites)), partition.site_id, partition.pk,
            _routing_summary(decision, partition), 1, "", class_id[code], hold.pk, req.units, 0, now))
    submitted = f"submitted by {label}"[:300]
    if ids:
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY federation_job ({', '.join(JOB_COLUMNS)}) FROM STDIN") as copy:
                for row in job_rows:
                    copy.write_row(row)
        events = []
        for job_id, (_i, _req, _d, partition, _h) in zip(ids, rows, strict=True):
            events.append((job_id, "", J.SUBMITTED, submitted, now))
            events.append((job_id, J.SUBMITTED, J.ROUTED, f"routed to {partition.site.code}/{partition.name}", now))
        write_events(events)
        return ids
    objs = [Job(**{k: v for k, v in zip(JOB_COLUMNS[1:], row[1:], strict=True)
                   if k not in ("accepted_models", "preferred_sites", "routing")},
                accepted_models=json.loads(row[13]), preferred_sites=json.loads(row[18]), routing=json.loads(row[21]))
            for row in job_rows]
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
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY federation_jobevent ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)
        return
    JobEvent.objects.bulk_create([JobEvent(job_id=j, from_state=f, to_state=t, cause=c[:300], at=a)
                                  for j, f, t, c, a in events], batch_size=4000)


def _enqueue_dispatch(site_ids: list[int]) -> None:
    from federation.tasks import dispatch_site

    for site_id in site_ids:
        dispatch_site.delay(site_id)


# --- dispatch: routed rows → the site's adapter -----------------------------------------------
DISPATCH_CHUNK = 5000


def dispatch_routed(site: Site, *, limit: int = DISPATCH_CHUNK, now: datetime | None = None) -> int:
    """Hand routed jobs of a site to its adapter. Durable and idempotent: the rows stay ``routed``
    until the site acknowledged them, concurrent dispatchers skip each other's rows, and a job
    handed over twice is refused by the site as a duplicate (its first acknowledgement stands)."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = list(Job.objects.select_for_update(skip_locked=True, of=("self",))
                       .filter(site=site, state=J.ROUTED).order_by("id")
                       .values_list("id", "partition__name", "nodes", "cores_per_node", "memory_mb_per_node",
                                    "gpus_per_node", "walltime_s")[:limit])
        if not claimed:
            return 0
        acks = adapter_for(site).submit_batch([DispatchJob(*row) for row in claimed])
        accepted = [int(a.job_id) for a in acks if a.accepted or a.reason == REFUSED_DUPLICATE]
        refused = [(int(a.job_id), J.FAILED, f"refused by {site.code}: {a.reason}", now, {"detail": a.reason})
                   for a in acks if not a.accepted and a.reason != REFUSED_DUPLICATE]
        # The claimed rows are locked and routed, so routed → dispatched is legal for every one:
        # one set-based UPDATE and one COPY instead of a write per job.
        assert J.DISPATCHED in JOB_TRANSITIONS[J.ROUTED]
        moved = _set_state(accepted, J.ROUTED, J.DISPATCHED)
        if moved != len(accepted):
            raise RuntimeError("dispatched rows changed under their lock")
        cause = f"accepted by {site.code}"
        write_events([(job_id, J.ROUTED, J.DISPATCHED, cause, now) for job_id in accepted])
        publish_dispatched(accepted, J.DISPATCHED, cause, now)
        apply_moves(refused)
    return len(accepted)


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
                                      "partition", "routing", "attempts", "hold", "hold_part", "resource_class"],
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
                                                 job_ref=f"job:{job.pk}:attempt:{job.attempts + 1}")
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
            job.routing = json.loads(_routing_summary(decision, partition))
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
            adapter_for(job.site).cancel(job.pk)
        apply_moves([(job.pk, J.CANCELLED, f"cancelled by {actor.label}", timezone.now(), {"detail": "cancelled"})])
        audit_record(actor=actor, action="job.cancel", obj=job, institution=job.institution_id,
                     before={"state": job.state}, after={"state": J.CANCELLED})
    return Job.objects.get(pk=job.pk)
