"""The router's vocabulary: its inputs (partition snapshots, job shapes, weights), its refusal codes
and the entries of a decision's explanation. Plain frozen dataclasses, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

SECONDS_PER_HOUR: Final = 3600
PERMILLE: Final = 1000
CHINA_UTC_OFFSET_S: Final = 8 * SECONDS_PER_HOUR
ROUTABLE_STATES: Final = frozenset({"online", "degraded"})
SITE_STATES: Final = frozenset({"online", "degraded", "draining", "offline"})
ECOSYSTEMS: Final = frozenset({"cuda", "rocm-hip", "cann", "cpu"})


class Stage(IntEnum):
    """The filters in the order they are applied; a later stage is a more specific refusal."""

    ACCELERATOR = 1
    ECOSYSTEM = 2
    APPLICATION = 3
    WALLTIME = 4
    FIT = 5
    SITE_STATE = 6
    QUOTA = 7


REASON_BY_STAGE: Final[dict[Stage, str]] = {
    Stage.ACCELERATOR: "unknown_accelerator_model",
    Stage.ECOSYSTEM: "no_compatible_ecosystem",
    Stage.APPLICATION: "application_unavailable",
    Stage.WALLTIME: "walltime_over_limit",
    Stage.FIT: "no_partition_fits",
    Stage.SITE_STATE: "no_site_online",
    Stage.QUOTA: "insufficient_quota",
}
NO_PARTITIONS: Final = "no_partitions"

REFUSAL_MESSAGES: Final[dict[str, str]] = {
    "unknown_accelerator_model": "No partition has an accelerator the job accepts.",
    "no_compatible_ecosystem": "No partition with suitable accelerators speaks the job's software ecosystem.",
    "application_unavailable": "No compatible partition offers the requested application.",
    "walltime_over_limit": "The requested walltime exceeds the limit of every compatible partition.",
    "no_partition_fits": "No compatible partition has nodes large enough or enough nodes for the job.",
    "no_site_online": "Every site that could run the job is draining or offline.",
    "insufficient_quota": "The project's remaining quota at every suitable site is below the job's estimated cost.",
    NO_PARTITIONS: "The federation publishes no partitions.",
}


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class PartitionView:
    """A snapshot of one partition and the load and prices at its site.

    Prices are credit milli-units per core-hour and per card-hour. ``peak_schedule`` holds
    ``(start_hour, end_hour, multiplier_permille)`` in the site's local time (``utc_offset_s``,
    whole hours); ``end < start`` wraps past midnight, the first matching entry wins, other hours
    cost 1000 ‰. ``queued_core_seconds`` / ``queued_gpu_seconds`` are the pending work in the
    partition's queue; the one of the dominant resource (cards on GPU partitions) drives the wait.
    """

    partition_id: int
    site_id: int
    site_code: str
    site_state: str
    ecosystem: str
    accelerator_family: str | None
    accelerator_model: str | None
    nodes: int
    cores_per_node: int
    memory_mb_per_node: int
    gpus_per_node: int
    max_walltime_s: int
    applications: frozenset[str]
    free_cores: int
    free_gpus: int
    free_nodes: int
    queued_core_seconds: int
    running_jobs: int
    price_core_hour: int
    price_card_hour: int
    peak_schedule: tuple[tuple[int, int, int], ...] = ()
    datasets: frozenset[str] = frozenset()
    queued_gpu_seconds: int = 0
    utc_offset_s: int = CHINA_UTC_OFFSET_S

    def __post_init__(self) -> None:
        if self.site_state not in SITE_STATES:
            raise ValueError(f"unknown site state {self.site_state!r}")
        if self.ecosystem not in ECOSYSTEMS:
            raise ValueError(f"unknown ecosystem {self.ecosystem!r}")
        if self.nodes < 1 or self.cores_per_node < 1 or self.gpus_per_node < 0:
            raise ValueError("a partition has at least one node with at least one core")
        if (self.gpus_per_node > 0) != (self.accelerator_family is not None):
            raise ValueError("GPU partitions name their accelerator family, CPU partitions do not")
        if self.utc_offset_s % SECONDS_PER_HOUR:
            raise ValueError("utc_offset_s must be a whole number of hours")
        if self.price_core_hour < 0 or self.price_card_hour < 0:
            raise ValueError("prices are not negative")
        for start, end, multiplier in self.peak_schedule:
            if not (0 <= start <= 24 and 0 <= end <= 24 and multiplier >= 0):
                raise ValueError(f"bad peak schedule entry {(start, end, multiplier)!r}")

    @property
    def is_gpu(self) -> bool:
        return self.gpus_per_node > 0


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job needs. Identical specs are the same *shape* and route identically.

    A job with ``gpus_per_node == 0`` runs on CPU partitions only; a GPU job on GPU partitions
    whose model is in ``accepted_models`` and family equals ``accepted_family`` (when given).
    ``preferred_sites`` are site codes, most preferred first.
    """

    nodes: int = 1
    cores_per_node: int = 1
    memory_mb_per_node: int = 0
    gpus_per_node: int = 0
    walltime_s: int = SECONDS_PER_HOUR
    accepted_models: frozenset[str] | None = None
    accepted_family: str | None = None
    ecosystems: frozenset[str] | None = None
    application: str | None = None
    dataset: str | None = None
    preferred_sites: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.cores_per_node < 1 or self.walltime_s < 1:
            raise ValueError("a job needs at least one node, one core and one second")
        if self.gpus_per_node < 0 or self.memory_mb_per_node < 0:
            raise ValueError("cards and memory are not negative")


@dataclass(frozen=True, slots=True)
class ScoringWeights:
    """Weights of the score parts, and the two constants of the wait estimate."""

    wait: float = 0.40
    price: float = 0.30
    locality: float = 0.15
    balance: float = 0.05
    preference: float = 0.10
    wait_half_s: float = 3600.0
    mean_remaining_s: float = 7200.0


DEFAULT_WEIGHTS: Final = ScoringWeights()


# --------------------------------------------------------------------------- explanation entries

SCORED: Final = "scored"
CHOSEN: Final = "chosen"
BOUNDED: Final = "bounded"
EXCLUDED: Final = "excluded"


@dataclass(frozen=True, slots=True)
class CandidateScore:
    """One partition in a decision's explanation.

    ``status``: ``chosen`` or ``scored`` (evaluated at decision time: exact parts, quota checked);
    ``bounded`` (not evaluated because even its score on the capacity snapshot — exact for a single
    decision, a lower bound once earlier jobs of the same batch loaded it — cannot beat the chosen
    one; quota not checked); ``excluded`` (``excluded_by`` is the refusal code, ``detail`` says why).
    ``wait`` … ``preference`` are the *weighted* parts; they add up to ``total``.
    """

    partition_id: int
    site_id: int
    site_code: str
    status: str
    excluded_by: str | None = None
    detail: str = ""
    total: float | None = None
    wait: float = 0.0
    price: float = 0.0
    locality: float = 0.0
    balance: float = 0.0
    preference: float = 0.0
    estimated_wait_s: int | None = None
    estimated_cost: int | None = None
