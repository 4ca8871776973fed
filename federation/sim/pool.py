"""The nodes of one partition: what is free on each, where a job fits, and when it will.

Packing is **best-fit on the partition's scarce dimension** (free GPUs on GPU partitions,
free cores on CPU partitions), first-fit among nodes that tie. Best-fit fills partly used
nodes before touching idle ones, which keeps whole nodes (and whole sets of cards) free for
the multi-node and 8-card jobs that fragmentation would otherwise starve (the point of the
openb trace's paper). It is also cheap: nodes sit in one bucket per free amount of the scarce
dimension and a bit mask marks the non-empty buckets, so a search visits only nodes that
have enough of it and checks the other two dimensions there.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import Protocol

INFINITY = float("inf")
_LATEST_FIRST = attrgetter("expected_end", "order")


class Job(Protocol):
    """What a reservation walk needs of a running job."""

    nodes: tuple[int, ...]
    c: int
    g: int
    m: int
    expected_end: float
    order: int


class NodePool:
    """Free cores, GPUs and memory per node of one partition (identical nodes), for packing jobs."""

    __slots__ = (
        "size",
        "cores",
        "gpus",
        "memory",
        "by_gpu",
        "fc",
        "fg",
        "fm",
        "up",
        "buckets",
        "mask",
        "free_cores",
        "free_gpus",
        "free_memory",
        "nodes_up",
        "nodes_idle",
    )

    def __init__(self, nodes: int, cores: int, memory: int, gpus: int) -> None:
        self.size = nodes
        self.cores = cores
        self.gpus = gpus
        self.memory = memory
        self.by_gpu = gpus > 0
        self.fc = [cores] * nodes
        self.fg = [gpus] * nodes
        self.fm = [memory] * nodes
        self.up = [True] * nodes
        top = gpus if self.by_gpu else cores
        self.buckets: list[dict[int, None]] = [{} for _ in range(top + 1)]
        self.buckets[top] = dict.fromkeys(range(nodes))
        self.mask = 1 << top if nodes else 0
        self.free_cores = cores * nodes
        self.free_gpus = gpus * nodes
        self.free_memory = memory * nodes
        self.nodes_up = nodes
        self.nodes_idle = nodes

    # -- searching -----------------------------------------------------------------------

    def find(self, count: int, c: int, g: int, m: int, exclude: frozenset[int] | None = None) -> tuple[int, ...] | None:
        """``count`` distinct up nodes each with ``c`` cores, ``g`` GPUs and ``m`` MB free, or None.

        A tuple, not a list: the collector stops tracking a tuple of ints, and every running job
        keeps one.
        """
        need = g if self.by_gpu else c
        mask = self.mask >> need
        if not mask:
            return None
        fc, fm, buckets = self.fc, self.fm, self.buckets
        chosen: list[int] = []
        level = need
        while mask:
            skip = (mask & -mask).bit_length() - 1
            level += skip
            mask >>= skip
            for i in buckets[level]:
                if fm[i] >= m and fc[i] >= c and (exclude is None or i not in exclude):
                    if count == 1:
                        return (i,)
                    chosen.append(i)
                    if len(chosen) == count:
                        return tuple(chosen)
            mask >>= 1
            level += 1
        return None

    def fitting(self, c: int, g: int, m: int) -> list[int]:
        """Every up node that could take one node's share of a job now."""
        need = g if self.by_gpu else c
        fc, fm = self.fc, self.fm
        return [i for level in range(need, len(self.buckets)) for i in self.buckets[level] if fm[i] >= m and fc[i] >= c]

    def reservation(
        self, count: int, c: int, g: int, m: int, buckets: Iterable[Iterable[Job]]
    ) -> tuple[float, frozenset[int]]:
        """When and where a job that does not fit now will fit, if running jobs end as planned.

        ``buckets`` yields the running jobs in groups, the groups in order of ``expected_end``
        (within a group, any order). Returns the earliest expected end after which ``count``
        nodes fit the job, and the nodes it will take; ``(inf, {})`` if they never will (too many
        nodes down). Groups are released whole, and only the group that completes the fit is
        sorted and replayed backwards to find the exact time: sorting every group costs more.
        """
        fitting_now = self.fitting(c, g, m) if count > 1 else []
        if len(fitting_now) >= count:
            return 0.0, frozenset(fitting_now[:count])
        skip = set(fitting_now)
        order = list(fitting_now)
        fc, fg, fm, up = self.fc, self.fg, self.fm, self.up
        virtual: dict[int, list[int]] = {}
        for bucket in buckets:
            for job in bucket:
                jc, jg, jm = job.c, job.g, job.m
                for i in job.nodes:
                    if not up[i] or i in skip:
                        continue
                    v = virtual.get(i)
                    if v is None:
                        v = virtual[i] = [fc[i], fg[i], fm[i], 0]  # the last: 1 once it fits
                    v[0] += jc
                    v[1] += jg
                    v[2] += jm
                    if not v[3] and v[0] >= c and v[1] >= g and v[2] >= m:
                        v[3] = 1
                        order.append(i)
            if len(order) < count:
                continue
            # Take back this group's jobs, latest first, until the fit breaks: that job is the time.
            for job in sorted(bucket, key=_LATEST_FIRST, reverse=True):
                self._shift(job, virtual, skip, order, -1, c, g, m)
                if len(order) < count:
                    self._shift(job, virtual, skip, order, 1, c, g, m)
                    return job.expected_end, frozenset(order[:count])
            raise AssertionError("the fit was reached before this group")  # pragma: no cover
        return INFINITY, frozenset()

    def _shift(self, job: Job, virtual: dict, skip: set, order: list, sign: int, c: int, g: int, m: int) -> None:
        """Apply (sign 1) or take back (sign -1) one job's release in a reservation walk."""
        jc, jg, jm = sign * job.c, sign * job.g, sign * job.m
        for i in job.nodes:
            v = virtual.get(i)
            if v is None or i in skip:
                continue
            v[0] += jc
            v[1] += jg
            v[2] += jm
            fits = v[0] >= c and v[1] >= g and v[2] >= m
            if fits and not v[3]:
                v[3] = 1
                order.append(i)
            elif v[3] and not fits:
                v[3] = 0
                order.remove(i)

    # -- changing ------------------------------------------------------------------------

    def allocate(self, nodes: tuple[int, ...], c: int, g: int, m: int) -> None:
        self._change(nodes, -c, -g, -m)

    def release(self, nodes: tuple[int, ...], c: int, g: int, m: int) -> None:
        self._change(nodes, c, g, m)

    def _change(self, nodes: tuple[int, ...], c: int, g: int, m: int) -> None:
        """Add ``c`` cores, ``g`` GPUs, ``m`` MB to each node's free amounts (negative: allocate)."""
        fc, fg, fm, buckets = self.fc, self.fg, self.fm, self.buckets
        cores, gpus, memory = self.cores, self.gpus, self.memory
        step = g if self.by_gpu else c
        levels = fg if self.by_gpu else fc
        for i in nodes:
            if fc[i] == cores and fm[i] == memory and fg[i] == gpus:
                self.nodes_idle -= 1
            if step:  # move the node to the bucket of its new free amount of the scarce dimension
                old = levels[i]
                bucket = buckets[old]
                del bucket[i]
                if not bucket:
                    self.mask &= ~(1 << old)
                bucket = buckets[old + step]
                if not bucket:
                    self.mask |= 1 << (old + step)
                bucket[i] = None
            fc[i] += c
            fg[i] += g
            fm[i] += m
            if fc[i] == cores and fm[i] == memory and fg[i] == gpus:
                self.nodes_idle += 1
        k = len(nodes)
        self.free_cores += c * k
        self.free_gpus += g * k
        self.free_memory += m * k

    def set_down(self, i: int) -> None:
        """Take an idle node out of service (its jobs must have been released first)."""
        if not self.up[i]:
            return
        self.up[i] = False
        level = self.fg[i] if self.by_gpu else self.fc[i]
        bucket = self.buckets[level]
        del bucket[i]
        if not bucket:
            self.mask &= ~(1 << level)
        self.free_cores -= self.fc[i]
        self.free_gpus -= self.fg[i]
        self.free_memory -= self.fm[i]
        self.nodes_up -= 1
        if self.fc[i] == self.cores and self.fm[i] == self.memory and self.fg[i] == self.gpus:
            self.nodes_idle -= 1

    def set_up(self, i: int) -> None:
        if self.up[i]:
            return
        self.up[i] = True
        self.fc[i], self.fg[i], self.fm[i] = self.cores, self.gpus, self.memory
        level = self.gpus if self.by_gpu else self.cores
        bucket = self.buckets[level]
        if not bucket:
            self.mask |= 1 << level
        bucket[i] = None
        self.free_cores += self.cores
        self.free_gpus += self.gpus
        self.free_memory += self.memory
        self.nodes_up += 1
        self.nodes_idle += 1
