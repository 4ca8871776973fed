"""Replaying a job trace through the real router and simulated centres, on a virtual clock (a pure core:
no Django, checked by tests/test_architecture.py).

Input: the federation as the router sees it (``PartitionView``s at full capacity, with each
partition's name) and trace jobs (``TraceJob``, read from the Alibaba openb pod CSV by
``read_trace``). The replay

1. compresses arrivals: a job created ``c`` seconds after the first one arrives at ``c / compress``
   virtual seconds; run times stay as the trace measured them (capped at ``runtime_cap_s``);
2. every ``tick_s`` virtual seconds advances every centre (a ``SimulatedSite`` per site, FIFO with
   EASY backfill), reads their capacity snapshots, builds a ``Router`` over them and routes the jobs
   that arrived during the tick as one batch (``Router.route_batch``: later jobs see the load earlier
   ones created), then submits each routed job to its centre. The project's quota is not modelled:
   every site may take every job;
3. after the last arrival, advances the centres until every job ended (or ``drain_limit_s`` passed).

Reported per site: jobs accepted, completed, failed (by exit code, node failure, outage), timed out,
unfinished; wait in the centre's queue (from submission to start: routing adds at most one tick)
at p50/p90/p99; utilisation of cards and cores, time-averaged over the replay (from 0 to the end of
the drain) and over the arrival window. Rejected jobs are counted by reason: the router's refusal
codes (``unknown_accelerator_model``, ``no_partition_fits``, ``no_site_online``, …) or the centre's
(``site:<reason>``). Jobs that never started in the trace have no run time and are skipped (counted).

Deterministic: the same inputs and ``seed`` give the same report (walltime requests and the
centres' random streams are seeded).
"""

from __future__ import annotations

import csv
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from federation.routing import JobSpec, PartitionView, Router
from federation.sim.model import (
    CANCELLED,
    COMPLETED,
    FAILED,
    QUEUED,
    RUNNING,
    TIMED_OUT,
    PartitionSpec,
    SimJob,
)
from federation.sim.openb import requested_walltime
from federation.sim.site import SimulatedSite

REQUIRED_COLUMNS = ("cpu_milli", "memory_mib", "num_gpu", "creation_time", "scheduled_time", "deletion_time")
OPTIONAL_COLUMNS = ("name", "gpu_milli", "gpu_spec", "pod_phase")
DAY = 86400
# Monday 00:00 in Beijing: the virtual clock's origin, for the sites' peak/valley prices.
EPOCH = datetime(2026, 3, 2, 0, 0, tzinfo=UTC) - timedelta(hours=8)
UNLIMITED_QUOTA = 10**18


class TraceError(ValueError):
    """The trace cannot be read: a missing file, missing columns or a malformed row."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    name: str
    created_s: int
    cores: int
    memory_mb: int
    gpus: int
    accepted_models: frozenset[str] | None  # from gpu_spec ("V100M16|V100M32"); None: any card
    runtime_s: int | None  # None: never started in the trace
    exit_code: int


def _number(row: dict, column: str, line: int, path: str, *, optional: bool = False) -> int | None:
    text = (row.get(column) or "").strip()
    if not text:
        if optional:
            return None
        raise TraceError(f"{path}:{line}: empty {column}")
    try:
        return int(text)
    except ValueError:
        raise TraceError(f"{path}:{line}: {column} is not a whole number: {text!r}") from None


def read_trace(path: str | Path, *, limit: int | None = None) -> list[TraceJob]:
    """Jobs of an openb-shaped pod CSV, in arrival order (the first ``limit`` arrivals)."""
    path = str(path)
    try:
        handle = open(path, newline="")
    except OSError as exc:
        raise TraceError(f"{path}: {exc.strerror or exc}") from None
    jobs = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(f"{path}: missing columns {', '.join(missing)} (an openb pod list has "
                             f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})")
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise TraceError(f"{path}:{line}: more fields than columns")
            cpu_milli = _number(row, "cpu_milli", line, path)
            memory = _number(row, "memory_mib", line, path)
            gpus = _number(row, "num_gpu", line, path)
            created = _number(row, "creation_time", line, path)
            scheduled = _number(row, "scheduled_time", line, path, optional=True)
            deleted = _number(row, "deletion_time", line, path, optional=True)
            if cpu_milli < 0 or memory < 0 or gpus < 0:
                raise TraceError(f"{path}:{line}: negative resources")
            spec = (row.get("gpu_spec") or "").strip()
            models = frozenset(m.strip() for m in spec.split("|") if m.strip()) or None
            runtime = max(0, deleted - scheduled) if scheduled is not None and deleted is not None else None
            jobs.append(TraceJob(
                name=(row.get("name") or f"line-{line}").strip(), created_s=created,
                cores=max(1, math.ceil(cpu_milli / 1000)), memory_mb=memory, gpus=gpus,
                accepted_models=models if gpus else None, runtime_s=runtime,
                exit_code=1 if (row.get("pod_phase") or "").strip() == "Failed" else 0))
    if not jobs:
        raise TraceError(f"{path}: no jobs")
    jobs.sort(key=lambda j: j.created_s)  # stable: file order among equal times
    return jobs[:limit] if limit is not None else jobs


@dataclass
class SiteReport:
    code: str
    cards: int
    cores: int
    accepted: int = 0
    completed: int = 0
    failed: int = 0
    failed_by: Counter = field(default_factory=Counter)
    timed_out: int = 0
    cancelled: int = 0
    unfinished: int = 0
    waits: list[float] = field(default_factory=list)
    card_utilisation: float = 0.0
    core_utilisation: float = 0.0
    card_utilisation_arrivals: float = 0.0
    core_utilisation_arrivals: float = 0.0

    def wait_percentile(self, q: float) -> float | None:
        return percentile(self.waits, q)

    def as_dict(self) -> dict:
        return {
            "site": self.code, "cards": self.cards, "cores": self.cores, "accepted": self.accepted,
            "completed": self.completed, "failed": self.failed, "failed_by": dict(sorted(self.failed_by.items())),
            "timed_out": self.timed_out, "cancelled": self.cancelled, "unfinished": self.unfinished,
            "started": len(self.waits),
            "wait_p50_s": _round(self.wait_percentile(0.50)), "wait_p90_s": _round(self.wait_percentile(0.90)),
            "wait_p99_s": _round(self.wait_percentile(0.99)),
            "card_utilisation": round(self.card_utilisation, 4), "core_utilisation": round(self.core_utilisation, 4),
            "card_utilisation_arrivals": round(self.card_utilisation_arrivals, 4),
            "core_utilisation_arrivals": round(self.core_utilisation_arrivals, 4),
        }


@dataclass
class ReplayReport:
    jobs: int  # read from the trace
    skipped_never_started: int
    compress: float
    tick_s: int
    seed: int
    arrival_window_s: float
    span_s: float  # virtual time from 0 to the end of the drain
    sites: list[SiteReport]
    rejected: Counter

    @property
    def routed(self) -> int:
        return sum(s.accepted for s in self.sites)

    def as_dict(self) -> dict:
        waits = [w for s in self.sites for w in s.waits]
        return {
            "jobs": self.jobs, "skipped_never_started": self.skipped_never_started, "accepted": self.routed,
            "rejected": sum(self.rejected.values()), "rejected_by": dict(sorted(self.rejected.items())),
            "completed": sum(s.completed for s in self.sites), "failed": sum(s.failed for s in self.sites),
            "timed_out": sum(s.timed_out for s in self.sites), "unfinished": sum(s.unfinished for s in self.sites),
            "wait_p50_s": _round(percentile(waits, 0.5)), "wait_p90_s": _round(percentile(waits, 0.9)),
            "wait_p99_s": _round(percentile(waits, 0.99)),
            "compress": self.compress, "tick_s": self.tick_s, "seed": self.seed,
            "arrival_window_s": round(self.arrival_window_s, 1), "span_s": round(self.span_s, 1),
            "sites": [s.as_dict() for s in self.sites],
        }


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None without values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def replay(
    views: list[PartitionView],
    names: dict[int, str],
    jobs: list[TraceJob],
    *,
    compress: float = 60.0,
    tick_s: int = 10,
    seed: int = 0,
    runtime_cap_s: int = 2 * DAY,
    drain_limit_s: int = 30 * DAY,
    node_failures_per_hour: float = 0.0,
    outages_per_day: float = 0.0,
) -> ReplayReport:
    """Replay ``jobs`` on the federation ``views`` (``names``: partition id -> partition name)."""
    if compress <= 0:
        raise ValueError("compress must be positive")
    if tick_s < 1:
        raise ValueError("tick_s must be at least 1")
    if not views:
        raise ValueError("the federation has no partitions")
    rng = random.Random(f"{seed}/walltime")
    by_site: dict[int, list[PartitionView]] = defaultdict(list)
    for view in sorted(views, key=lambda v: v.partition_id):
        by_site[view.site_id].append(view)
    site_ids = sorted(by_site)
    sims: dict[int, SimulatedSite] = {}
    reports: dict[int, SiteReport] = {}
    for site_id in site_ids:
        parts = by_site[site_id]
        specs = [PartitionSpec(names[v.partition_id], v.nodes, v.cores_per_node, v.memory_mb_per_node,
                               v.gpus_per_node, v.max_walltime_s) for v in parts]
        sim = SimulatedSite(parts[0].site_code, specs, seed=seed * 100_003 + site_id,
                            node_failure_rate_per_hour=node_failures_per_hour, outage_rate_per_day=outages_per_day)
        if parts[0].site_state == "offline":
            sim.set_offline()
        elif parts[0].site_state == "draining":
            sim.drain()
        sims[site_id] = sim
        reports[site_id] = SiteReport(parts[0].site_code, sum(v.nodes * v.gpus_per_node for v in parts),
                                      sum(v.nodes * v.cores_per_node for v in parts))
    max_walltime = max(v.max_walltime_s for v in views)
    static = sorted(views, key=lambda v: v.partition_id)
    keys = [(v.site_id, names[v.partition_id]) for v in static]
    position = {v.partition_id: i for i, v in enumerate(static)}

    replayable = [j for j in jobs if j.runtime_s is not None]
    first = min((j.created_s for j in replayable), default=0)
    ticks: dict[int, list[tuple[int, TraceJob]]] = defaultdict(list)
    for k, job in enumerate(replayable):
        arrival = (job.created_s - first) / compress
        ticks[int(arrival // tick_s) + 1].append((k, job))  # dispatched at the end of its tick

    rejected: Counter = Counter()
    queued_at: dict[str, float] = {}
    site_of: dict[str, int] = {}
    open_jobs = set()
    last_end = [0.0]  # when the last job ended: the span ends there (nothing is allocated after it)

    def consume(site_id: int, changes) -> None:
        report = reports[site_id]
        for change in changes:
            state = change.state
            if state is QUEUED:
                queued_at[change.job_id] = change.time
                continue
            if state is RUNNING:
                report.waits.append(change.time - queued_at.pop(change.job_id))
                continue
            open_jobs.discard(change.job_id)
            queued_at.pop(change.job_id, None)
            last_end[0] = max(last_end[0], change.time)
            if state is COMPLETED:
                report.completed += 1
            elif state is FAILED:
                report.failed += 1
                report.failed_by[change.detail.partition("=")[0] or "exit_code"] += 1
            elif state is TIMED_OUT:
                report.timed_out += 1
            elif state is CANCELLED:
                report.cancelled += 1

    def advance(t: float) -> None:
        for site_id in site_ids:
            consume(site_id, sims[site_id].advance_to(t))

    quota = dict.fromkeys(site_ids, UNLIMITED_QUOTA)
    t = 0.0
    for tick in sorted(ticks):
        t = float(tick * tick_s)
        advance(t)
        live = {}
        for site_id in site_ids:
            for p in sims[site_id].capacity_snapshot().partitions:
                live[(site_id, p.name)] = p
        snapshot = []
        for view, key in zip(static, keys, strict=True):
            p = live[key]
            snapshot.append(replace(view, free_cores=p.cores_free, free_gpus=p.gpus_free, free_nodes=p.nodes_idle,
                                    queued_core_seconds=p.pending_core_seconds,
                                    queued_gpu_seconds=p.pending_gpu_seconds, running_jobs=p.running))
        router = Router(snapshot)
        arrivals = ticks[tick]
        walltimes = [requested_walltime(min(job.runtime_s, runtime_cap_s), rng, max_walltime_s=max_walltime)
                     for _, job in arrivals]
        specs = [JobSpec(nodes=1, cores_per_node=job.cores, memory_mb_per_node=job.memory_mb, gpus_per_node=job.gpus,
                         walltime_s=wall, accepted_models=job.accepted_models)
                 for (_, job), wall in zip(arrivals, walltimes, strict=True)]
        decisions = router.route_batch(specs, quota, EPOCH + timedelta(seconds=t))
        batches: dict[int, list[SimJob]] = defaultdict(list)
        for (k, job), wall, decision in zip(arrivals, walltimes, decisions, strict=True):
            if not decision.routed:
                rejected[decision.refusal] += 1
                continue
            view = static[position[decision.chosen_partition_id]]
            batches[view.site_id].append(SimJob(f"r{k}", names[view.partition_id], 1, job.cores, job.memory_mb,
                                                job.gpus, wall, min(job.runtime_s, runtime_cap_s), job.exit_code))
        for site_id in sorted(batches):
            for ack in sims[site_id].submit_batch(batches[site_id]):
                if ack.accepted:
                    reports[site_id].accepted += 1
                    open_jobs.add(ack.job_id)
                    site_of[ack.job_id] = site_id
                else:
                    rejected[f"site:{ack.reason}"] += 1
    arrival_window = t
    for site_id in site_ids:  # utilisation over the arrival window, before the drain
        _utilisation(reports[site_id], sims[site_id], t, arrivals_window=True)

    # Drain: step an hour at a time until every job ended (failures and outages keep scheduling events).
    limit = t + drain_limit_s
    while open_jobs and t < limit:
        t = min(limit, t + 3600.0)
        advance(t)
    for job_id in open_jobs:
        reports[site_of[job_id]].unfinished += 1
    if not open_jobs:
        t = max(arrival_window, last_end[0])
    for site_id in site_ids:
        _utilisation(reports[site_id], sims[site_id], t, arrivals_window=False)
    return ReplayReport(jobs=len(jobs), skipped_never_started=len(jobs) - len(replayable), compress=compress,
                        tick_s=tick_s, seed=seed, arrival_window_s=arrival_window, span_s=t,
                        sites=[reports[s] for s in site_ids], rejected=rejected)


def _utilisation(report: SiteReport, sim: SimulatedSite, t: float, *, arrivals_window: bool) -> None:
    snap = sim.capacity_snapshot()
    cards = sum(p.gpus_total for p in snap.partitions)
    cores = sum(p.cores_total for p in snap.partitions)
    card = sum(p.gpu_seconds_allocated for p in snap.partitions) / (cards * t) if cards and t else 0.0
    core = sum(p.core_seconds_allocated for p in snap.partitions) / (cores * t) if cores and t else 0.0
    if arrivals_window:
        report.card_utilisation_arrivals, report.core_utilisation_arrivals = card, core
    else:
        report.card_utilisation, report.core_utilisation = card, core


__all__ = ["EPOCH", "REQUIRED_COLUMNS", "ReplayReport", "SiteReport", "TraceError", "TraceJob", "percentile",
           "read_trace", "replay"]
