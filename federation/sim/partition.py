"""One partition of a simulated site: its queue, its running jobs, and the scheduling pass.

The pass (``PartitionState.schedule``) runs once per event timestamp on a partition that
something happened to:

1. FIFO: start jobs from the head of the queue while they fit.
2. EASY backfill: the blocked head gets a reservation at the earliest expected end (start +
   walltime) of running jobs after which enough nodes fit it; a later job may start now if it
   fits and either ends (by its walltime) before the reservation or uses none of the reserved
   nodes. At most ``backfill_depth`` queued jobs are considered (default 100, like Slurm's
   ``default_queue_depth`` for the scheduling it does on events; its periodic backfill looks
   at ``bf_max_job_test`` = 500 jobs, but only every ``bf_interval`` = 30 s, while this pass runs
   at every event time).

A pass does no more work than the change since the last one needs. If nothing was released
and the head is the same, the head is not tried again and only newly queued jobs are; if no
queued job needs as little of the scarce dimension as the freest node has, there is no
backfill at all; a job shape that did not fit is not tried again in the same pass. The
head's reservation is computed when the job becomes head and refreshed at most every
``reservation_refresh_s`` (like Slurm's ``bf_interval``) as jobs end early, and at once when
a node fails or comes back or the partition resumes. Between refreshes the reservation kept
can only be later than a fresh one (jobs ending early only bring it forward) and backfill
never holds the reserved nodes past it, so the head still starts no later than its
reservation.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from itertools import islice
from operator import attrgetter

from federation.sim.model import QUEUED, RUNNING, PartitionSpec
from federation.sim.pool import NodePool

# Running jobs are filed by expected end (start + walltime) in buckets this wide, so starting and
# ending a job costs O(1) and a reservation walks them in order of expected end.
END_BUCKET_S = 60
_NO_NODES: tuple[int, ...] = ()
_START_ORDER = attrgetter("expected_end", "order")


class SiteJob:
    """A job the site holds (queued or running); the site forgets it once it ends."""

    __slots__ = (
        "id",
        "part",
        "n",
        "c",
        "g",
        "m",
        "wall",
        "runtime",
        "exit_code",
        "level",
        "shape",
        "state",
        "nodes",
        "expected_end",
        "order",
        "bucket",
    )

    def __init__(
        self,
        job_id: str,
        part: PartitionState,
        n: int,
        c: int,
        g: int,
        m: int,
        wall: int,
        runtime: float,
        exit_code: int,
    ) -> None:
        self.id = job_id
        self.part = part
        self.n = n
        self.c = c
        self.g = g
        self.m = m
        self.wall = wall
        self.runtime = runtime
        self.exit_code = exit_code
        self.level = g if part.by_gpu else c  # its need of the pool's scarce dimension
        # One int rather than a tuple, because the garbage collector does not track ints and a
        # simulated day holds hundreds of thousands of jobs (exact while g < 2**20, m < 2**44).
        self.shape = (n << 96) | (c << 64) | (g << 44) | m
        self.state = QUEUED
        self.nodes = _NO_NODES
        self.expected_end = 0.0
        self.order = 0  # start sequence, to order jobs with the same expected end
        self.bucket = 0


class PartitionState:
    __slots__ = (
        "spec",
        "name",
        "index",
        "pool",
        "by_gpu",
        "queue",
        "queued",
        "dead",
        "new_jobs",
        "needs",
        "running",
        "ends",
        "end_keys",
        "released",
        "dirty",
        "reservation",
        "blocked_head",
        "draining",
        "pending_cs",
        "pending_gs",
        "alloc_cores",
        "alloc_gpus",
        "core_seconds",
        "gpu_seconds",
        "last_t",
        "starts",
    )

    def __init__(self, spec: PartitionSpec, index: int, now: float) -> None:
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.pool = NodePool(spec.nodes, spec.cores_per_node, spec.memory_mb_per_node, spec.gpus_per_node)
        self.by_gpu = self.pool.by_gpu
        self.queue: deque[SiteJob] = deque()  # FIFO; started or dropped jobs stay as dead entries until compacted
        self.queued = 0
        self.dead = 0
        self.new_jobs: list[SiteJob] = []  # queued since the last pass
        self.needs = [0] * len(self.pool.buckets)  # queued jobs by need of the scarce dimension
        self.running = 0
        self.ends: dict[int, dict[SiteJob, None]] = {}  # expected-end bucket -> running jobs
        self.end_keys: list[int] = []  # the buckets in use, sorted
        self.released = False  # resources were freed since the last pass
        self.dirty = False  # a pass is due
        self.reservation: tuple[SiteJob, float, frozenset[int], float] | None = None  # head, at, nodes, made
        self.blocked_head: SiteJob | None = None  # the head that did not fit when last tried
        self.draining = False
        self.pending_cs = 0
        self.pending_gs = 0
        self.alloc_cores = 0
        self.alloc_gpus = 0
        self.core_seconds = 0.0
        self.gpu_seconds = 0.0
        self.last_t = now
        self.starts = 0  # jobs started so far: their order, to break ties between equal expected ends

    # -- bookkeeping --------------------------------------------------------------------

    def drop_queued(self, job: SiteJob) -> None:
        """A queued job leaves without running (cancelled, or failed by an outage)."""
        self.queued -= 1
        self.dead += 1
        self.needs[job.level] -= 1
        self.pending_cs -= job.n * job.c * job.wall
        self.pending_gs -= job.n * job.g * job.wall
        if self.reservation is not None and self.reservation[0] is job:
            self.reservation = None

    def account(self, now: float) -> None:
        dt = now - self.last_t
        if dt:
            self.core_seconds += self.alloc_cores * dt
            self.gpu_seconds += self.alloc_gpus * dt
            self.last_t = now

    def start(self, job: SiteJob, nodes: tuple[int, ...], now: float) -> None:
        n, c, g, wall = job.n, job.c, job.g, job.wall
        self.pool.allocate(nodes, c, g, job.m)
        job.state = RUNNING
        job.nodes = nodes
        self.starts += 1
        job.order = self.starts
        self.queued -= 1
        self.running += 1
        self.needs[job.level] -= 1
        self.pending_cs -= n * c * wall
        self.pending_gs -= n * g * wall
        dt = now - self.last_t
        if dt:
            self.core_seconds += self.alloc_cores * dt
            self.gpu_seconds += self.alloc_gpus * dt
            self.last_t = now
        self.alloc_cores += n * c
        self.alloc_gpus += n * g
        expected_end = job.expected_end = now + wall
        key = job.bucket = int(expected_end // END_BUCKET_S)
        bucket = self.ends.get(key)
        if bucket is None:
            self.ends[key] = {job: None}
            insort(self.end_keys, key)
        else:
            bucket[job] = None

    def finish(self, job: SiteJob, now: float) -> None:
        """A running job leaves: its resources are free from ``now``."""
        n = job.n
        self.pool.release(job.nodes, job.c, job.g, job.m)
        key = job.bucket
        bucket = self.ends[key]
        del bucket[job]
        if not bucket:
            del self.ends[key]
            keys = self.end_keys
            del keys[bisect_left(keys, key)]
        self.running -= 1
        dt = now - self.last_t
        if dt:
            self.core_seconds += self.alloc_cores * dt
            self.gpu_seconds += self.alloc_gpus * dt
            self.last_t = now
        self.alloc_cores -= n * job.c
        self.alloc_gpus -= n * job.g
        self.released = True

    def by_expected_end(self, now: float) -> Iterator[dict[SiteJob, None]]:
        """Running jobs in buckets of expected end, the buckets in order."""
        ends, keys = self.ends, self.end_keys
        return (ends[key] for key in islice(keys, bisect_left(keys, int(now // END_BUCKET_S)), None))

    def all_running(self) -> list[SiteJob]:
        """Running jobs in order of expected end (a stable order for failing them together)."""
        return [job for key in self.end_keys for job in sorted(self.ends[key], key=_START_ORDER)]

    def all_queued(self) -> list[SiteJob]:
        return [job for job in self.queue if job.state is QUEUED]

    def clear_queue(self) -> None:
        self.queue.clear()
        self.dead = 0
        self.new_jobs = []
        self.reservation = None
        self.blocked_head = None

    # -- the pass -----------------------------------------------------------------------

    def schedule(self, now: float, depth: int, refresh_s: float) -> list[SiteJob]:
        """Start what FIFO and EASY backfill allow at ``now``; return the jobs started (in order)."""
        started: list[SiteJob] = []
        queue, pool = self.queue, self.pool
        released = self.released
        self.released = False
        new_jobs = self.new_jobs
        self.new_jobs = []

        # 1. FIFO from the head.
        while self.queued:
            head = queue[0]
            if head.state is not QUEUED:
                queue.popleft()
                self.dead -= 1
                continue
            if head is self.blocked_head and not released:
                break  # it did not fit last time and nothing has been released since
            nodes = pool.find(head.n, head.c, head.g, head.m)
            if nodes is None:
                self.blocked_head = head
                break
            queue.popleft()
            started.append(head)
            self.start(head, nodes, now)
        if not self.queued:
            self.reservation = None
            if self.dead:
                queue.clear()
                self.dead = 0
            return started

        # Nothing queued needs as little of the scarce dimension as the freest node has: no backfill.
        needs = self.needs
        most_free = pool.mask.bit_length() - 1
        least_needed = 0
        while least_needed <= most_free and not needs[least_needed]:
            least_needed += 1
        if least_needed > most_free:
            return started

        # 2. The head's reservation.
        head = queue[0]
        reservation = self.reservation
        if reservation is None or reservation[0] is not head or (released and now - reservation[3] >= refresh_s):
            shadow, reserved = pool.reservation(head.n, head.c, head.g, head.m, self.by_expected_end(now))
            self.reservation = (head, shadow, reserved, now)
            released = True
        else:
            _, shadow, reserved, _ = reservation
        if released:
            candidates = queue
            budget = depth + 1  # the head comes first and is skipped below
        else:
            # Nothing was released, so the jobs tried before still do not fit: try only the
            # newcomers within the backfill depth.
            candidates = new_jobs
            budget = depth - (self.queued - len(new_jobs))
            if budget <= 0 or not new_jobs:
                return started

        # 3. Backfill.
        failed_anywhere: set[int] = set()  # shapes that did not fit
        failed_outside: set[int] = set()  # shapes that did not fit outside the reserved nodes
        slack = shadow - now  # a job with a longer walltime must keep off the reserved nodes
        visited = backfilled = skipped = 0
        for visited, job in enumerate(candidates, 1):  # noqa: B007 (visited is used after the loop)
            if job.state is not QUEUED:
                skipped += 1
                continue
            budget -= 1
            if budget < 0:
                break
            if job is head:
                continue
            shape = job.shape
            if job.wall > slack:
                if shape in failed_outside or shape in failed_anywhere:
                    continue
                nodes = pool.find(job.n, job.c, job.g, job.m, reserved)
                if nodes is None:
                    failed_outside.add(shape)
                    if not pool.mask >> least_needed:
                        break
                    continue
            else:
                if shape in failed_anywhere:
                    continue
                nodes = pool.find(job.n, job.c, job.g, job.m)
                if nodes is None:
                    failed_anywhere.add(shape)
                    if not pool.mask >> least_needed:
                        break
                    continue
            started.append(job)
            self.start(job, nodes, now)
            backfilled += 1
        self.dead += backfilled
        if candidates is queue and skipped + backfilled > 32:
            self._compact_front(visited)
        return started

    def _compact_front(self, count: int) -> None:
        """Drop the dead entries among the first ``count`` of the queue, where backfill scans."""
        queue = self.queue
        front = [queue.popleft() for _ in range(min(count, len(queue)))]
        live = [job for job in front if job.state is QUEUED]
        queue.extendleft(reversed(live))
        self.dead -= len(front) - len(live)
        if self.dead > 64 and self.dead > self.queued:  # dead entries further back (cancelled jobs)
            self.queue = deque(job for job in queue if job.state is QUEUED)
            self.dead = 0
