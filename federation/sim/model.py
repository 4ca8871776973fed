"""Inputs and outputs of the simulated site: plain dataclasses, no behaviour.

The same shapes are what a real site adapter (Slurm over slurmrestd) will speak, so the
federation code above never needs to know which kind of centre it talks to. Outputs are
``slots`` dataclasses and should be treated as read-only; they are not ``frozen`` because
a frozen dataclass costs four times as much to build and a simulated day builds millions.
"""

from __future__ import annotations

from dataclasses import dataclass

# Job states reported through StatusChange.state.
QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"
JOB_STATES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT)
TERMINAL_STATES = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})

# Site states reported in CapacitySnapshot.state.
SITE_ONLINE = "online"
SITE_DRAINING = "draining"
SITE_OFFLINE = "offline"

# Partition states reported in PartitionSnapshot.state.
PARTITION_UP = "up"
PARTITION_DRAINING = "draining"  # no new starts, jobs still running
PARTITION_DRAINED = "drained"  # no new starts, nothing running: safe for maintenance

# Why a submission was refused (Ack.reason).
REFUSED_UNKNOWN_PARTITION = "unknown_partition"
REFUSED_TOO_LARGE = "too_large_for_partition"
REFUSED_WALLTIME = "walltime_over_limit"
REFUSED_OFFLINE = "site_offline"
REFUSED_DUPLICATE = "duplicate_job_id"
REFUSED_INVALID = "invalid_request"

# Why a job ended other than by completing (StatusChange.detail).
DETAIL_NODE_FAILURE = "node_failure"
DETAIL_SITE_OUTAGE = "site_outage"
DETAIL_WALLTIME = "walltime_exceeded"
DETAIL_CANCELLED = "cancelled_by_request"


@dataclass(slots=True)
class PartitionSpec:
    """A pool of identical nodes at a site."""

    name: str
    nodes: int
    cores_per_node: int
    memory_mb_per_node: int
    gpus_per_node: int = 0
    max_walltime_s: int = 7 * 24 * 3600


@dataclass(slots=True)
class SimJob:
    """What the federation asks a site to run.

    ``runtime_s`` is how long the job really runs (from a trace); ``None`` lets the site draw
    it from the walltime (a seeded uniform 10-100 % of it). A job that would run longer than
    ``walltime_s`` ends ``timed_out`` at its walltime. ``exit_code`` is what the job exits with
    if it runs to its end (a trace replays its failed jobs with a non-zero code).
    """

    job_id: str
    partition: str
    nodes: int
    cores_per_node: int
    memory_mb_per_node: int
    gpus_per_node: int
    walltime_s: int
    runtime_s: int | None = None
    exit_code: int = 0


@dataclass(slots=True)
class Ack:
    """The site's answer to one submission: accepted with a site job id, or refused with a reason."""

    job_id: str
    accepted: bool
    reason: str = ""
    site_job_id: str = ""


@dataclass(slots=True)
class StatusChange:
    """One job changing state at a site, as a real site's status feed would report it.

    ``detail`` says why for the states that need it: ``node_failure``, ``site_outage``,
    ``walltime_exceeded``, ``cancelled_by_request``, ``exit_code=N``; for ``running`` it names
    the nodes. ``exit_code`` is set when the job itself ended (completed or failed by its code).
    """

    job_id: str
    state: str
    time: float
    detail: str = ""
    exit_code: int | None = None


@dataclass(slots=True)
class PartitionSnapshot:
    name: str
    state: str
    nodes_total: int
    nodes_up: int
    nodes_idle: int
    cores_total: int
    cores_free: int
    gpus_total: int
    gpus_free: int
    memory_mb_total: int
    memory_mb_free: int
    queued: int
    running: int
    pending_core_seconds: int  # queued jobs' nodes x cores x requested walltime
    pending_gpu_seconds: int
    core_seconds_allocated: float  # integral of allocated cores over time since the site started
    gpu_seconds_allocated: float


@dataclass(slots=True)
class CapacitySnapshot:
    site_code: str
    time: float
    state: str
    partitions: list[PartitionSnapshot]

    def partition(self, name: str) -> PartitionSnapshot:
        for p in self.partitions:
            if p.name == name:
                return p
        raise KeyError(name)
