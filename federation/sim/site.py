"""A simulated supercomputing centre: a discrete-event scheduler per site.

The site speaks the site-adapter shape (``submit_batch``, ``cancel``, ``advance_to``,
``capacity_snapshot``, ``drain``/``resume``, ``set_offline``/``set_online``) that a real
Slurm centre will implement over slurmrestd, and reports every job state change as a
``StatusChange``, the way a real centre's status feed would.

Time is virtual and injected: nothing happens until the caller says what time it is with
``advance_to(t)`` (a test steps it by hand; the portal drives it from a ``ScaledClock``).
All randomness comes from ``random.Random`` streams seeded from ``seed`` (one stream each
for run times, node failures and outages, so one kind of event does not shift another), so
the same seed and the same calls give the same sequence of changes.

Events (job ends, node failures and repairs, outages) sit in a calendar: a heap of the
distinct times that have events, and per time the events in the order they were scheduled.
``advance_to`` applies all events of one time, then runs one scheduling pass over the
partitions they touched (see ``federation.sim.partition`` for the pass).
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_right
from collections.abc import Callable, Iterable

from federation.sim.model import (
    CANCELLED,
    COMPLETED,
    DETAIL_CANCELLED,
    DETAIL_NODE_FAILURE,
    DETAIL_SITE_OUTAGE,
    DETAIL_WALLTIME,
    FAILED,
    PARTITION_DRAINED,
    PARTITION_DRAINING,
    PARTITION_UP,
    QUEUED,
    REFUSED_DUPLICATE,
    REFUSED_INVALID,
    REFUSED_OFFLINE,
    REFUSED_TOO_LARGE,
    REFUSED_UNKNOWN_PARTITION,
    REFUSED_WALLTIME,
    RUNNING,
    SITE_DRAINING,
    SITE_OFFLINE,
    SITE_ONLINE,
    TIMED_OUT,
    Ack,
    CapacitySnapshot,
    PartitionSnapshot,
    PartitionSpec,
    SimJob,
    StatusChange,
)
from federation.sim.partition import PartitionState, SiteJob

# The calendar maps a time to its events in the order they were scheduled: a SiteJob (its end) or
# (kind, payload) for the rarer events; a list of them, or the one job alone (which saves a list
# per job, the usual case).
_NODE_FAILURE = 1
_NODE_REPAIR = 2
_OUTAGE_START = 3
_OUTAGE_END = 4


class SimulatedSite:
    """One simulated centre.

    ``node_failure_rate_per_hour`` is for the whole site (exponential inter-arrival; the failed
    node is drawn uniformly and comes back after ``node_repair_s``); ``outage_rate_per_day``
    likewise, each outage lasting ``outage_duration_s``. ``backfill_depth`` and
    ``reservation_refresh_s`` tune the scheduler (``federation.sim.partition``). ``on_change``
    (optional) receives every StatusChange as it happens; ``advance_to`` returns the same
    changes as a list, so a caller uses one path or the other.
    """

    def __init__(
        self,
        site_code: str,
        partitions: list[PartitionSpec],
        *,
        seed: int,
        node_failure_rate_per_hour: float = 0.0,
        node_repair_s: float = 4 * 3600.0,
        outage_rate_per_day: float = 0.0,
        outage_duration_s: float = 2 * 3600.0,
        clock_start: float = 0.0,
        backfill_depth: int = 100,
        reservation_refresh_s: float = 30.0,
        remember_ended: int = 1_000_000,
        on_change: Callable[[StatusChange], None] | None = None,
    ) -> None:
        if len({p.name for p in partitions}) != len(partitions):
            raise ValueError("partition names must be unique")
        self.site_code = site_code
        self.now = clock_start
        self.backfill_depth = backfill_depth
        self.reservation_refresh_s = reservation_refresh_s
        self.node_failure_rate_per_hour = node_failure_rate_per_hour
        self.node_repair_s = node_repair_s
        self.outage_rate_per_day = outage_rate_per_day
        self.outage_duration_s = outage_duration_s
        self._on_change = on_change
        self._part_list = [PartitionState(spec, k, clock_start) for k, spec in enumerate(partitions)]
        self._parts = {part.name: part for part in self._part_list}
        self._dirty: list[PartitionState] = []  # partitions a pass is due on
        self._jobs: dict[str, SiteJob] = {}
        # Final states of the jobs the site no longer holds, to answer job_state and refuse a
        # resubmission as a duplicate: the latest ``remember_ended`` to ``2 x remember_ended``.
        self._ended: dict[str, str] = {}
        self._ended_before: dict[str, str] = {}
        self._remember_ended = remember_ended
        self._times: list[float] = []  # heap of the times that have events
        self._calendar: dict[float, list | SiteJob] = {}
        self._next_site_job = 1
        self._outbox: list[StatusChange] = []
        self._manual_offline = False
        self._outage = False
        self._site_draining = False
        self._runtime_rng = random.Random(f"{seed}/runtime")
        self._failure_rng = random.Random(f"{seed}/node-failures")
        self._outage_rng = random.Random(f"{seed}/outages")
        self._node_offsets = []
        total = 0
        for part in self._part_list:
            self._node_offsets.append(total)
            total += part.spec.nodes
        self._nodes_total = total
        if node_failure_rate_per_hour > 0 and total:
            self._push(clock_start + self._failure_rng.expovariate(node_failure_rate_per_hour / 3600.0), _NODE_FAILURE)
        if outage_rate_per_day > 0:
            self._push(clock_start + self._outage_rng.expovariate(outage_rate_per_day / 86400.0), _OUTAGE_START)

    # -- the adapter shape -------------------------------------------------------------

    @property
    def state(self) -> str:
        if self._manual_offline or self._outage:
            return SITE_OFFLINE
        if self._site_draining:
            return SITE_DRAINING
        return SITE_ONLINE

    def submit_batch(self, jobs: Iterable[SimJob]) -> list[Ack]:
        """Queue jobs at the current time; each gets an Ack (scheduling happens in ``advance_to``)."""
        acks: list[Ack] = []
        now = self.now
        offline = self._manual_offline or self._outage
        parts, held, ended = self._parts, self._jobs, self._ended
        outbox, on_change = self._outbox, self._on_change
        for spec in jobs:
            job_id = spec.job_id
            part = parts.get(spec.partition)
            n, c, g, m = spec.nodes, spec.cores_per_node, spec.gpus_per_node, spec.memory_mb_per_node
            wall, runtime = spec.walltime_s, spec.runtime_s
            if offline:
                reason = REFUSED_OFFLINE
            elif part is None:
                reason = REFUSED_UNKNOWN_PARTITION
            elif n < 1 or c < 1 or g < 0 or m < 0 or wall <= 0 or (runtime is not None and runtime < 0):
                reason = REFUSED_INVALID
            else:
                p = part.spec
                if n > p.nodes or c > p.cores_per_node or g > p.gpus_per_node or m > p.memory_mb_per_node:
                    reason = REFUSED_TOO_LARGE
                elif wall > p.max_walltime_s:
                    reason = REFUSED_WALLTIME
                elif job_id in held or job_id in ended or job_id in self._ended_before:
                    reason = REFUSED_DUPLICATE
                else:
                    reason = ""
            if reason:
                acks.append(Ack(job_id, False, reason))
                continue
            if runtime is None:
                runtime = max(1, round(wall * self._runtime_rng.uniform(0.1, 1.0)))
            job = SiteJob(job_id, part, n, c, g, m, wall, runtime, spec.exit_code)
            held[job_id] = job
            part.queue.append(job)  # the partition's queue bookkeeping, inline: this loop runs for every job
            part.new_jobs.append(job)
            part.queued += 1
            part.needs[job.level] += 1
            part.pending_cs += n * c * wall
            part.pending_gs += n * g * wall
            if not part.dirty:
                part.dirty = True
                self._dirty.append(part)
            acks.append(Ack(job_id, True, "", str(self._next_site_job)))
            self._next_site_job += 1
            change = StatusChange(job_id, QUEUED, now)
            outbox.append(change)
            if on_change is not None:
                on_change(change)
        return acks

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False if the site does not hold it (unknown or ended)."""
        job = self._jobs.get(job_id)
        if job is None:
            return False
        if job.state is QUEUED:
            self._drop_queued(job, CANCELLED, DETAIL_CANCELLED)
        else:
            self._end(job, CANCELLED, self.now, DETAIL_CANCELLED, None)
        return True

    def advance_to(self, t: float) -> list[StatusChange]:
        """Run the event loop up to virtual time ``t``; return every change since the last call."""
        if t < self.now:
            raise ValueError(f"time runs forward: at {self.now}, asked for {t}")
        if self._dirty:
            self._schedule(self.now)
        times, calendar = self._times, self._calendar
        pop = heapq.heappop
        while times and times[0] <= t:
            ts = pop(times)
            self.now = ts
            events = calendar.pop(ts)
            for event in events if type(events) is list else (events,):
                if type(event) is SiteJob:
                    if event.state is RUNNING:
                        self._reach_end(event, ts)
                    continue
                kind, payload = event
                if kind == _NODE_FAILURE:
                    self._node_failure(ts)
                elif kind == _NODE_REPAIR:
                    self._node_repair(*payload)
                elif kind == _OUTAGE_START:
                    self._outage_start(ts)
                else:
                    self._outage_end(ts)
            if self._dirty:
                self._schedule(ts)
        self.now = t
        out = self._outbox
        self._outbox = []
        return out

    def capacity_snapshot(self) -> CapacitySnapshot:
        parts = []
        for part in self._part_list:
            part.account(self.now)
            pool, spec = part.pool, part.spec
            if not part.draining:
                state = PARTITION_UP
            else:
                state = PARTITION_DRAINING if part.running else PARTITION_DRAINED
            parts.append(
                PartitionSnapshot(
                    name=part.name,
                    state=state,
                    nodes_total=spec.nodes,
                    nodes_up=pool.nodes_up,
                    nodes_idle=pool.nodes_idle,
                    cores_total=spec.nodes * spec.cores_per_node,
                    cores_free=pool.free_cores,
                    gpus_total=spec.nodes * spec.gpus_per_node,
                    gpus_free=pool.free_gpus,
                    memory_mb_total=spec.nodes * spec.memory_mb_per_node,
                    memory_mb_free=pool.free_memory,
                    queued=part.queued,
                    running=part.running,
                    pending_core_seconds=part.pending_cs,
                    pending_gpu_seconds=part.pending_gs,
                    core_seconds_allocated=part.core_seconds,
                    gpu_seconds_allocated=part.gpu_seconds,
                )
            )
        return CapacitySnapshot(self.site_code, self.now, self.state, parts)

    def drain(self, partition: str | None = None) -> None:
        """Maintenance drain: no new starts; running jobs finish; queued jobs wait."""
        for part in self._select(partition):
            part.draining = True
        if partition is None:
            self._site_draining = True

    def resume(self, partition: str | None = None) -> None:
        """End a drain: the partition schedules again from the next ``advance_to``."""
        for part in self._select(partition):
            part.draining = False
            self._touch(part)
        if partition is None:
            self._site_draining = False

    def set_offline(self) -> None:
        """Take the site down now: running and queued jobs fail with ``site_outage``; submits are refused."""
        was_online = not (self._manual_offline or self._outage)
        self._manual_offline = True
        if was_online:
            self._fail_everything(self.now)

    def set_online(self) -> None:
        self._manual_offline = False
        if not self._outage:
            for part in self._part_list:
                self._touch(part)

    # -- queries a real adapter would answer from squeue/sacct --------------------------

    def job_state(self, job_id: str) -> str | None:
        job = self._jobs.get(job_id)
        if job is not None:
            return job.state
        return self._ended.get(job_id) or self._ended_before.get(job_id)

    def job_nodes(self, job_id: str) -> list[str]:
        """Names (``<partition>-<index>``) of the nodes a running job holds; empty otherwise."""
        job = self._jobs.get(job_id)
        if job is None or job.state is not RUNNING:
            return []
        return [f"{job.part.name}-{i:04d}" for i in job.nodes]

    def next_event_time(self) -> float | None:
        """When something will next happen on its own (a job end, failure, outage); None if never."""
        if self._dirty:
            return self.now
        times, calendar = self._times, self._calendar
        while times:
            events = calendar[times[0]]
            events = events if type(events) is list else [events]
            if any(type(e) is not SiteJob or e.state is RUNNING for e in events):
                return times[0]
            del calendar[heapq.heappop(times)]
        return None

    # -- scheduling -------------------------------------------------------------------

    def _select(self, partition: str | None) -> list[PartitionState]:
        if partition is None:
            return self._part_list
        if partition not in self._parts:
            raise KeyError(partition)
        return [self._parts[partition]]

    def _touch(self, part: PartitionState) -> None:
        """Something changed on the partition beyond a job ending (nodes, drain, outage): recheck everything."""
        part.released = True
        part.reservation = None
        if not part.dirty:
            part.dirty = True
            self._dirty.append(part)

    def _schedule(self, now: float) -> None:
        dirty = self._dirty
        self._dirty = []
        offline = self._manual_offline or self._outage
        depth, refresh = self.backfill_depth, self.reservation_refresh_s
        outbox, on_change, calendar, times = self._outbox, self._on_change, self._calendar, self._times
        for part in dirty:
            part.dirty = False
            if offline or part.draining:
                continue
            if not part.queued:  # nothing to start (the usual pass after a job ends): skip the call
                part.released = False
                if part.new_jobs:
                    part.new_jobs = []
                continue
            for job in part.schedule(now, depth, refresh):
                runtime, wall = job.runtime, job.wall
                end = now + runtime if runtime < wall else job.expected_end
                slot = calendar.get(end)
                if slot is None:
                    calendar[end] = job
                    heapq.heappush(times, end)
                elif type(slot) is list:
                    slot.append(job)
                else:
                    calendar[end] = [slot, job]
                change = StatusChange(job.id, RUNNING, now)
                outbox.append(change)
                if on_change is not None:
                    on_change(change)

    # -- endings ----------------------------------------------------------------------

    def _reach_end(self, job: SiteJob, now: float) -> None:
        if job.runtime > job.wall:
            self._end(job, TIMED_OUT, now, DETAIL_WALLTIME, None)
        elif job.exit_code == 0:
            self._end(job, COMPLETED, now, "", 0)
        else:
            self._end(job, FAILED, now, f"exit_code={job.exit_code}", job.exit_code)

    def _end(self, job: SiteJob, state: str, now: float, detail: str, exit_code: int | None) -> None:
        """A running job ends: free its nodes and report it (``_forget``, inline: once per job)."""
        part = job.part
        part.finish(job, now)
        if not part.dirty:
            part.dirty = True
            self._dirty.append(part)
        job.state = state
        del self._jobs[job.id]
        self._ended[job.id] = state
        if len(self._ended) >= self._remember_ended:
            self._ended_before, self._ended = self._ended, {}
        change = StatusChange(job.id, state, now, detail, exit_code)
        self._outbox.append(change)
        if self._on_change is not None:
            self._on_change(change)

    def _drop_queued(self, job: SiteJob, state: str, detail: str) -> None:
        part = job.part
        part.drop_queued(job)
        if not part.dirty:  # if it was the head, the next one may fit now
            part.dirty = True
            self._dirty.append(part)
        self._forget(job, state, self.now, detail, None)

    def _forget(self, job: SiteJob, state: str, now: float, detail: str, exit_code: int | None) -> None:
        job.state = state
        del self._jobs[job.id]
        self._ended[job.id] = state
        if len(self._ended) >= self._remember_ended:
            self._ended_before, self._ended = self._ended, {}
        change = StatusChange(job.id, state, now, detail, exit_code)
        self._outbox.append(change)
        if self._on_change is not None:
            self._on_change(change)

    # -- failures -----------------------------------------------------------------------

    def _push(self, t: float, kind: int, payload: object = None) -> None:
        slot = self._calendar.get(t)
        if slot is None:
            self._calendar[t] = [(kind, payload)]
            heapq.heappush(self._times, t)
        elif type(slot) is list:
            slot.append((kind, payload))
        else:
            self._calendar[t] = [slot, (kind, payload)]

    def _node_failure(self, now: float) -> None:
        rng = self._failure_rng
        self._push(now + rng.expovariate(self.node_failure_rate_per_hour / 3600.0), _NODE_FAILURE)
        index = rng.randrange(self._nodes_total)
        if self._manual_offline or self._outage:
            return
        k = bisect_right(self._node_offsets, index) - 1
        part = self._part_list[k]
        node = index - self._node_offsets[k]
        if not part.pool.up[node]:
            return
        for job in [job for job in part.all_running() if node in job.nodes]:
            self._end(job, FAILED, now, DETAIL_NODE_FAILURE, None)
        part.pool.set_down(node)
        self._touch(part)  # which drops the head's reservation: the reserved nodes may include this one
        self._push(now + self.node_repair_s, _NODE_REPAIR, (part, node))

    def _node_repair(self, part: PartitionState, node: int) -> None:
        part.pool.set_up(node)
        self._touch(part)

    def _outage_start(self, now: float) -> None:
        was_online = not self._manual_offline
        self._outage = True
        if was_online:
            self._fail_everything(now)
        self._push(now + self.outage_duration_s, _OUTAGE_END)

    def _outage_end(self, now: float) -> None:
        self._outage = False
        self._push(now + self._outage_rng.expovariate(self.outage_rate_per_day / 86400.0), _OUTAGE_START)
        if not self._manual_offline:
            for part in self._part_list:
                self._touch(part)

    def _fail_everything(self, now: float) -> None:
        for part in self._part_list:
            for job in part.all_running():
                self._end(job, FAILED, now, DETAIL_SITE_OUTAGE, None)
            for job in part.all_queued():
                self._drop_queued(job, FAILED, DETAIL_SITE_OUTAGE)
            part.clear_queue()
