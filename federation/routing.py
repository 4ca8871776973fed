"""The job router: choose a site and partition for a job, and record why.

A pure core: plain Python over dataclasses, no Django. The caller (a service) builds
``PartitionView`` snapshots and the project's remaining brokered quota per site, injects the
clock (``now``, a timezone-aware datetime), and persists the ``RoutingDecision`` it gets back
(the chosen partition, the hold amount ``estimated_cost`` and the ``breakdown()``).

Filters, in order. A partition is excluded by the first one it fails; when no candidate is left
the job is refused with the reason of the *latest* filter that eliminated a partition, since that
one is the closest the job came to running ("the site that could run it is offline" says more
than "most partitions have the wrong cards"):

1. ``unknown_accelerator_model`` – a GPU job on a CPU partition, a CPU job on a GPU partition,
   or a card model/family the job does not accept;
2. ``no_compatible_ecosystem`` – the partition's software ecosystem is not one the job speaks;
3. ``application_unavailable`` – the partition does not offer the job's application;
4. ``walltime_over_limit`` – the job asks for more time than the partition allows;
5. ``no_partition_fits`` – a node is too small (cores, memory or cards per node) or the
   partition has fewer nodes than the job needs;
6. ``no_site_online`` – the site is draining or offline (``degraded`` sites stay candidates,
   with a wait penalty);
7. ``insufficient_quota`` – the project's remaining quota at the site is below the estimated cost.

Filters 1-3 are answered by an index keyed by (family, model, ecosystem) and application, so a
decision never scans the partitions of other kinds; filters 1-6 depend only on the job's shape
(identical ``JobSpec``s) and are cached per shape, with each candidate's score on the capacity
snapshot, per hour of the day. A decision then walks the candidates best-first and stops at the
first one whose site has the quota (single decisions) or whose lower bound cannot win (batches).

Score (lower is better). Every part is in [0, 1] before weighting; ``CandidateScore`` holds the
*weighted* parts, which add up to ``total``::

    total = w_wait·W + w_price·P + w_locality·L + w_balance·B + w_preference·R

    W = t / (t + wait_half_s)          t = estimated wait in seconds (below)
    P = min(1, cost / cheapest - 1)    cost at the current peak/valley price, cheapest among the
                                       job's candidates that pass filters 1-6 (0 = cheapest,
                                       1 = twice the cheapest or more)
    L = 0 if the job has no dataset or the site hosts it, else 1
    B = min(1, (used + requested) / capacity)  of the partition's dominant resource (cards on a
                                       GPU partition, cores on a CPU one): spreads load
    R = 0 without preferences; rank / len(preferred) / 2 for the rank-th preferred site
        (so in [0, 0.5)); 1 for a site not preferred

Estimated wait ``t`` (dominant resource; ``cap`` = nodes × per-node amount, ``free`` and
``used = cap - free`` from the snapshot, ``req`` = the job's total cards or cores)::

    t = queued_seconds / cap                                         # drain the pending backlog
      + max((req - free) / used, (nodes - free_nodes) / busy_nodes)  # shortfall, as the fraction
        × mean_remaining_s                                           #  of running work to finish
    degraded site: t = 2·t + 600

Ties are broken by partition id, so a decision is a function of its inputs.

``route_batch`` routes jobs in order and, as it assigns each one, takes the estimated cost off the
site's quota and the job's cards/cores off the partition's free capacity (or adds its work to the
partition's queue when it does not fit now), so a batch never over-commits a site's quota and
later jobs see the load earlier ones created. The caller persists the holds aggregated per
project and site.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from functools import lru_cache
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


# --------------------------------------------------------------------------- outputs

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


_Row = tuple[float, float, float]  # wait seconds, weighted wait part, weighted balance part


@dataclass(slots=True)
class RoutingDecision:
    """Where a job goes (or why it goes nowhere), its hold amount and the evidence.

    ``estimated_cost`` is the hold in credit milli-units (0 when refused). ``skipped_by_kind``
    counts partitions of another accelerator, ecosystem or application: the index never looked at
    them and ``breakdown()`` does not list them. Treat as read-only: it is not ``frozen`` because it
    is built on the hot path, where a frozen dataclass's field-by-field ``object.__setattr__``
    costs more than the rest of the decision.
    """

    chosen_partition_id: int | None
    chosen_site_id: int | None
    chosen_site_code: str | None
    estimated_cost: int
    estimated_wait_s: int | None
    score: float | None
    refusal: str | None
    skipped_by_kind: int
    _view: _HourView = field(repr=False, compare=False)
    # candidates evaluated, flat: k, row (None: out of quota), k, row, ... (fewer objects for the GC)
    _evaluated: tuple[int | _Row | None, ...] = field(repr=False, compare=False)
    _chosen: int = field(repr=False, compare=False)

    @property
    def routed(self) -> bool:
        return self.chosen_partition_id is not None

    @property
    def refusal_message(self) -> str:
        return REFUSAL_MESSAGES[self.refusal] if self.refusal else ""

    def breakdown(self) -> tuple[CandidateScore, ...]:
        """Every partition of a compatible kind: evaluated ones best first, then bounded, then excluded."""
        view = self._view
        plan = view.plan
        flat = self._evaluated
        evaluated: dict = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        scored: list[CandidateScore] = []
        bounded: list[CandidateScore] = []
        short: list[CandidateScore] = []
        for k, hot in enumerate(plan.hot):
            part = plan.router_partitions[hot[0]]
            cost = view.costs[k]
            if k in evaluated and evaluated[k] is None:
                short.append(
                    CandidateScore(
                        part.partition_id,
                        part.site_id,
                        part.site_code,
                        EXCLUDED,
                        excluded_by=REASON_BY_STAGE[Stage.QUOTA],
                        detail=f"estimated cost {cost} exceeds the project's remaining quota at {part.site_code}",
                        estimated_cost=cost,
                    )
                )
                continue
            row = evaluated.get(k) or view.snapshot_rows[k]
            status = (CHOSEN if k == self._chosen else SCORED) if k in evaluated else BOUNDED
            wait_s, wait_part, balance_part = row
            entry = CandidateScore(
                part.partition_id,
                part.site_id,
                part.site_code,
                status,
                total=view.statics[k] + wait_part + balance_part,
                wait=wait_part,
                price=view.prices[k],
                locality=plan.localities[k],
                balance=balance_part,
                preference=plan.preferences[k],
                estimated_wait_s=round(wait_s),
                estimated_cost=cost,
            )
            (scored if k in evaluated else bounded).append(entry)
        scored.sort(key=lambda c: (c.total, c.partition_id))
        bounded.sort(key=lambda c: (c.total, c.partition_id))
        excluded = []
        for index, stage in plan.excluded:
            part = plan.router_partitions[index]
            excluded.append(
                CandidateScore(
                    part.partition_id,
                    part.site_id,
                    part.site_code,
                    EXCLUDED,
                    excluded_by=REASON_BY_STAGE[stage],
                    detail=_exclusion_detail(plan.job, part),
                )
            )
        return (*scored, *bounded, *short, *excluded)


# --------------------------------------------------------------------------- pricing


@lru_cache(maxsize=256)
def _hour_multipliers(schedule: tuple[tuple[int, int, int], ...]) -> tuple[int, ...]:
    table = [PERMILLE] * 24
    for start, end, multiplier in reversed(schedule):  # reversed: the first entry wins
        if start == end:
            hours: Iterable[int] = range(24)
        elif start < end:
            hours = range(start, end)
        else:
            hours = [*range(start, 24), *range(0, end)]
        for hour in hours:
            table[hour] = multiplier
    return tuple(table)


@lru_cache(maxsize=256)
def _utc_hour_multipliers(schedule: tuple[tuple[int, int, int], ...], utc_offset_s: int) -> tuple[int, ...]:
    local = _hour_multipliers(schedule)
    offset = utc_offset_s // SECONDS_PER_HOUR
    return tuple(local[(hour + offset) % 24] for hour in range(24))


def _utc_hour(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp()) // SECONDS_PER_HOUR % 24


def price_multiplier_permille(partition: PartitionView, now: datetime) -> int:
    """The peak/valley multiplier (‰) in force at ``partition``'s site at ``now``."""
    return _utc_hour_multipliers(partition.peak_schedule, partition.utc_offset_s)[_utc_hour(now)]


def _base_rate(job: JobSpec, partition: PartitionView) -> int:
    """Milli-credits × seconds per hour, before the peak/valley multiplier."""
    cores = job.nodes * job.cores_per_node
    cards = job.nodes * job.gpus_per_node
    return (cores * partition.price_core_hour + cards * partition.price_card_hour) * job.walltime_s


def _cost(base_rate: int, multiplier_permille: int) -> int:
    return -(-base_rate * multiplier_permille // (SECONDS_PER_HOUR * PERMILLE))  # ceiling, exact


def estimate_cost(job: JobSpec, partition: PartitionView, now: datetime) -> int:
    """Credit milli-units for the job's full walltime at the price in force now (rounded up).

    ``(cores × price_core_hour + cards × price_card_hour) × walltime hours × multiplier‰``.
    """
    return _cost(_base_rate(job, partition), price_multiplier_permille(partition, now))


# --------------------------------------------------------------------------- filters


def _kind_stage(
    job: JobSpec, family: str | None, model: str | None, ecosystem: str, applications: Iterable
) -> Stage | None:
    """The kind filter (1-3) that excludes partitions of this kind, or None if they pass."""
    if job.gpus_per_node > 0:
        if family is None:
            return Stage.ACCELERATOR
        if job.accepted_family is not None and family != job.accepted_family:
            return Stage.ACCELERATOR
        if job.accepted_models is not None and model not in job.accepted_models:
            return Stage.ACCELERATOR
    elif family is not None:
        return Stage.ACCELERATOR
    if job.ecosystems is not None and ecosystem not in job.ecosystems:
        return Stage.ECOSYSTEM
    if job.application is not None and job.application not in applications:
        return Stage.APPLICATION
    return None


def _static_stage(job: JobSpec, p: PartitionView) -> Stage | None:
    """Filters 4-6: the first one ``p`` fails, or None."""
    if job.walltime_s > p.max_walltime_s:
        return Stage.WALLTIME
    if (
        job.cores_per_node > p.cores_per_node
        or job.memory_mb_per_node > p.memory_mb_per_node
        or job.gpus_per_node > p.gpus_per_node
        or job.nodes > p.nodes
    ):
        return Stage.FIT
    if p.site_state not in ROUTABLE_STATES:
        return Stage.SITE_STATE
    return None


def _exclusion_detail(job: JobSpec, p: PartitionView) -> str:
    """Why filters 4-6 exclude ``p``, for people."""
    if job.walltime_s > p.max_walltime_s:
        return f"walltime {job.walltime_s} s exceeds the limit of {p.max_walltime_s} s"
    if job.cores_per_node > p.cores_per_node:
        return f"needs {job.cores_per_node} cores per node, a node has {p.cores_per_node}"
    if job.memory_mb_per_node > p.memory_mb_per_node:
        return f"needs {job.memory_mb_per_node} MB per node, a node has {p.memory_mb_per_node}"
    if job.gpus_per_node > p.gpus_per_node:
        return f"needs {job.gpus_per_node} cards per node, a node has {p.gpus_per_node}"
    if job.nodes > p.nodes:
        return f"needs {job.nodes} nodes, the partition has {p.nodes}"
    if p.site_state not in ROUTABLE_STATES:
        return f"site {p.site_code} is {p.site_state}"
    return ""


# --------------------------------------------------------------------------- per-shape plans


# hot-loop view of a candidate: index, site_id, requested, nodes, capacity, 1/capacity, total nodes, degraded
_Hot = tuple[int, int, int, int, int, float, int, bool]


# capacity state, per partition index: free cards/cores, free whole nodes, queued seconds
_State = tuple[list[int], list[int], list[float]]


@dataclass(slots=True, eq=False)
class _Batch:
    """A batch's private copy of the snapshot; ``versions`` counts the jobs given to each partition."""

    quota: dict[int, int]
    state: _State
    versions: list[int]


@dataclass(slots=True)
class _HourView:
    """A shape's static score parts at one UTC hour, and its candidates ranked on the snapshot."""

    plan: _ShapePlan
    costs: tuple[int, ...]
    prices: tuple[float, ...]
    statics: tuple[float, ...]
    snapshot_rows: tuple[_Row, ...]
    order: tuple[tuple[float, int], ...]  # (total on the snapshot, candidate number), best first


@dataclass(slots=True)
class _ShapePlan:
    """What filters 1-6 say about one job shape."""

    job: JobSpec
    router_partitions: tuple[PartitionView, ...]
    hot: tuple[_Hot, ...]  # one per candidate: the partitions that pass filters 1-6
    base_rates: tuple[int, ...]
    localities: tuple[float, ...]  # weighted
    preferences: tuple[float, ...]  # weighted
    snapshot_rows: tuple[_Row, ...]  # wait and balance on the Router's snapshot (hour-independent)
    excluded: tuple[tuple[int, Stage], ...]
    refusal_stage: Stage | None
    skipped_by_kind: int
    by_hour: dict[int, _HourView] = field(default_factory=dict)
    # rows re-scored in the batch under way: candidate -> (partition version, row)
    batch: _Batch | None = None
    memo: dict[int, tuple[int, _Row]] = field(default_factory=dict)


class Router:
    """Routes jobs over a fixed snapshot of partitions; build one per capacity snapshot.

    ``route`` decides one job without changing the snapshot; ``route_batch`` decides many,
    consuming quota and free capacity on a private copy as it goes. Shape plans are cached
    (up to ``shape_cache_size`` shapes; the cache is cleared when full).

    Candidates are visited best-first by their score on the snapshot. During a batch a partition's
    wait and balance can only grow (free capacity only shrinks, queues only lengthen), so that score
    is a lower bound, and the visit stops at the first candidate whose bound cannot beat the best
    exact score found: the result equals a full scan's, at the cost of a few candidates.

    Build it from fresh ``PartitionView``s whenever capacity, queues or site states change (the
    index and plans are rebuilt with it). Not for concurrent use from several threads: shape plans
    carry the search state of the batch under way.
    """

    def __init__(
        self,
        partitions: Sequence[PartitionView],
        weights: ScoringWeights = DEFAULT_WEIGHTS,
        *,
        shape_cache_size: int = 8192,
    ) -> None:
        parts = tuple(sorted(partitions, key=lambda p: p.partition_id))
        if len({p.partition_id for p in parts}) != len(parts):
            raise ValueError("partition ids must be unique")
        self.partitions = parts
        self.weights = weights
        self._w_wait = weights.wait
        self._w_balance = weights.balance
        self._wait_half_s = weights.wait_half_s
        self._mean_remaining_s = weights.mean_remaining_s
        self._shape_cache_size = shape_cache_size
        self._plans: dict[JobSpec, _ShapePlan] = {}
        self._multipliers = tuple(_utc_hour_multipliers(p.peak_schedule, p.utc_offset_s) for p in parts)
        self._capacity = [p.nodes * (p.gpus_per_node or p.cores_per_node) for p in parts]
        self._free = [
            max(0, min(cap, p.free_gpus if p.is_gpu else p.free_cores))
            for p, cap in zip(parts, self._capacity, strict=True)
        ]
        self._free_nodes = [max(0, min(p.nodes, p.free_nodes)) for p in parts]
        self._queued = [float(p.queued_gpu_seconds if p.is_gpu else p.queued_core_seconds) for p in parts]
        # (family, model, ecosystem) -> application -> partition indices; None -> all of that kind
        index: dict[tuple[str | None, str | None, str], dict[str | None, list[int]]] = {}
        for i, p in enumerate(parts):
            by_app = index.setdefault((p.accelerator_family, p.accelerator_model, p.ecosystem), {None: []})
            by_app[None].append(i)
            for app in p.applications:
                by_app.setdefault(app, []).append(i)
        self._index = {key: {app: tuple(ids) for app, ids in apps.items()} for key, apps in index.items()}

    # ------------------------------------------------------------------ public

    def route(self, job: JobSpec, quota_by_site: Mapping[int, int], now: datetime) -> RoutingDecision:
        """Decide one job against the snapshot (nothing is consumed)."""
        plan = self._plans.get(job) or self._plan(job)
        return self._decide(plan, _utc_hour(now), quota_by_site)

    def route_batch(
        self, jobs: Iterable[JobSpec], quota_by_site: Mapping[int, int], now: datetime
    ) -> list[RoutingDecision]:
        """Decide jobs in order, each seeing the quota and capacity the earlier ones took."""
        hour = _utc_hour(now)
        quota = dict(quota_by_site)
        batch = _Batch(
            quota, (list(self._free), list(self._free_nodes), list(self._queued)), [0] * len(self.partitions)
        )
        plans = self._plans
        decisions = []
        for job in jobs:
            plan = plans.get(job) or self._plan(job)
            decision = self._decide_in_batch(plan, hour, batch)
            decisions.append(decision)
            if decision._chosen >= 0:
                self._consume(plan, decision, batch)
        return decisions

    # ------------------------------------------------------------------ shape plans

    def _plan(self, job: JobSpec) -> _ShapePlan:
        w = self.weights
        bucket: set[int] = set()
        kind_stages: list[Stage] = []
        for (family, model, ecosystem), by_app in self._index.items():
            kind_stage = _kind_stage(job, family, model, ecosystem, by_app)
            if kind_stage is None:
                bucket.update(by_app[job.application])
            else:
                kind_stages.append(kind_stage)
        hot: list[_Hot] = []
        base_rates: list[int] = []
        localities: list[float] = []
        preferences: list[float] = []
        excluded: list[tuple[int, Stage]] = []
        preferred = {code: rank for rank, code in reversed(list(enumerate(job.preferred_sites)))}
        n_preferred = len(job.preferred_sites)
        nodes, cores, memory, cards, walltime = (
            job.nodes,
            job.cores_per_node,
            job.memory_mb_per_node,
            job.gpus_per_node,
            job.walltime_s,
        )
        job_cores, job_cards, dataset = nodes * cores, nodes * cards, job.dataset
        w_locality, w_preference = w.locality, w.preference
        for i in sorted(bucket):
            p = self.partitions[i]
            if walltime > p.max_walltime_s:
                excluded.append((i, Stage.WALLTIME))
                continue
            if cores > p.cores_per_node or memory > p.memory_mb_per_node or cards > p.gpus_per_node or nodes > p.nodes:
                excluded.append((i, Stage.FIT))
                continue
            if p.site_state not in ROUTABLE_STATES:
                excluded.append((i, Stage.SITE_STATE))
                continue
            if not preferred:
                preference = 0.0
            elif p.site_code in preferred:
                preference = w_preference * preferred[p.site_code] / n_preferred / 2
            else:
                preference = w_preference
            locality = 0.0 if dataset is None or dataset in p.datasets else w_locality
            requested = job_cards if p.gpus_per_node else job_cores
            capacity = self._capacity[i]
            base_rates.append((job_cores * p.price_core_hour + job_cards * p.price_card_hour) * walltime)
            localities.append(locality)
            preferences.append(preference)
            hot.append((i, p.site_id, requested, nodes, capacity, 1.0 / capacity, p.nodes, p.site_state == "degraded"))
        if hot:
            refusal_stage = None
        elif excluded:
            refusal_stage = max(stage for _, stage in excluded)
        elif kind_stages:
            refusal_stage = max(kind_stages)
        else:
            refusal_stage = None  # no partitions at all
        snapshot: _State = (self._free, self._free_nodes, self._queued)
        plan = _ShapePlan(
            job=job,
            router_partitions=self.partitions,
            hot=tuple(hot),
            base_rates=tuple(base_rates),
            localities=tuple(localities),
            preferences=tuple(preferences),
            snapshot_rows=tuple(self._dynamic(h, snapshot) for h in hot),
            excluded=tuple(excluded),
            refusal_stage=refusal_stage,
            skipped_by_kind=len(self.partitions) - len(bucket),
        )
        if len(self._plans) >= self._shape_cache_size:
            self._plans.clear()
        self._plans[job] = plan
        return plan

    def _hour_view(self, plan: _ShapePlan, hour: int) -> _HourView:
        multipliers = self._multipliers
        divisor = SECONDS_PER_HOUR * PERMILLE
        costs = tuple(
            -(-rate * multipliers[h[0]][hour] // divisor) for rate, h in zip(plan.base_rates, plan.hot, strict=True)
        )
        cheapest = min(costs, default=0)
        w_price = self.weights.price
        prices = []
        statics = []
        order = []
        for k, (cost, row) in enumerate(zip(costs, plan.snapshot_rows, strict=True)):
            if cheapest > 0:
                relative = cost / cheapest - 1.0
                price = w_price * (relative if relative < 1.0 else 1.0)
            else:
                price = 0.0 if cost == 0 else w_price
            static = price + plan.localities[k] + plan.preferences[k]
            prices.append(price)
            statics.append(static)
            order.append((static + row[1] + row[2], k))
        order.sort()
        view = _HourView(plan, costs, tuple(prices), tuple(statics), plan.snapshot_rows, tuple(order))
        plan.by_hour[hour] = view
        return view

    # ------------------------------------------------------------------ decisions

    def _dynamic(self, hot: _Hot, state: _State) -> _Row:
        """Estimated wait and the weighted wait and balance parts on the given capacity state."""
        index, _site, requested, nodes, capacity, inverse_capacity, total_nodes, degraded = hot
        free = state[0][index]
        shortfall = (requested - free) / (capacity - free) if requested > free else 0.0
        if nodes > 1:
            free_nodes = state[1][index]
            if free_nodes < nodes:
                node_shortfall = (nodes - free_nodes) / (total_nodes - free_nodes)
                if node_shortfall > shortfall:
                    shortfall = node_shortfall
        wait = state[2][index] * inverse_capacity + shortfall * self._mean_remaining_s
        if degraded:
            wait = 2.0 * wait + 600.0
        balance = (capacity - free + requested) * inverse_capacity
        return (
            wait,
            self._w_wait * wait / (wait + self._wait_half_s),
            self._w_balance * (balance if balance < 1.0 else 1.0),
        )

    def _refusal(self, plan: _ShapePlan, view: _HourView) -> RoutingDecision:
        reason = REASON_BY_STAGE[plan.refusal_stage] if plan.refusal_stage is not None else NO_PARTITIONS
        return RoutingDecision(None, None, None, 0, None, None, reason, plan.skipped_by_kind, view, (), -1)

    def _decision(
        self, plan: _ShapePlan, view: _HourView, best: int, total: float, row: _Row, evaluated: list
    ) -> RoutingDecision:
        chosen = plan.router_partitions[plan.hot[best][0]]
        return RoutingDecision(
            chosen.partition_id,
            chosen.site_id,
            chosen.site_code,
            view.costs[best],
            round(row[0]),
            total,
            None,
            plan.skipped_by_kind,
            view,
            tuple(evaluated),
            best,
        )

    def _decide(self, plan: _ShapePlan, hour: int, quota: Mapping[int, int]) -> RoutingDecision:
        """One job on the snapshot: the first candidate in score order whose site has the quota."""
        view = plan.by_hour.get(hour) or self._hour_view(plan, hour)
        if not plan.hot:
            return self._refusal(plan, view)
        costs = view.costs
        hot = plan.hot
        quota_get = quota.get
        evaluated: list[int | _Row | None] = []
        for total, k in view.order:
            if quota_get(hot[k][1], 0) < costs[k]:
                evaluated += (k, None)
                continue
            row = view.snapshot_rows[k]
            evaluated += (k, row)
            return self._decision(plan, view, k, total, row, evaluated)
        return RoutingDecision(
            None, None, None, 0, None, None, "insufficient_quota", plan.skipped_by_kind, view, tuple(evaluated), -1
        )

    def _decide_in_batch(self, plan: _ShapePlan, hour: int, batch: _Batch) -> RoutingDecision:
        """One job of a batch: the best candidate whose site still has the quota.

        Candidates are visited in order of their score on the snapshot, which is a lower bound of
        their score now (a batch only ever takes capacity away); the visit stops at the first bound
        that cannot beat the best score found. A partition no job of the batch went to still scores
        as on the snapshot; one that took jobs is re-scored, at most once per shape and change.
        """
        view = plan.by_hour.get(hour) or self._hour_view(plan, hour)
        if not plan.hot:
            return self._refusal(plan, view)
        if plan.batch is not batch:
            plan.batch = batch
            plan.memo = {}
        memo = plan.memo
        costs = view.costs
        statics = view.statics
        snapshot_rows = view.snapshot_rows
        hot = plan.hot
        versions = batch.versions
        quota_get = batch.quota.get
        evaluated: list[int | _Row | None] = []
        best = -1
        best_total = float("inf")
        best_row: _Row | None = None
        for bound, k in view.order:
            if bound > best_total:  # (an equal bound may still win a tie on partition order)
                break
            candidate = hot[k]
            if quota_get(candidate[1], 0) < costs[k]:
                evaluated += (k, None)
                continue
            version = versions[candidate[0]]
            if version == 0:
                row = snapshot_rows[k]
            else:
                known = memo.get(k)
                if known is not None and known[0] == version:
                    row = known[1]
                else:
                    row = self._dynamic(candidate, batch.state)
                    memo[k] = (version, row)
            evaluated += (k, row)
            total = statics[k] + row[1] + row[2]
            if total < best_total or (total == best_total and k < best):
                best_total = total
                best = k
                best_row = row
        if best_row is None:
            return RoutingDecision(
                None, None, None, 0, None, None, "insufficient_quota", plan.skipped_by_kind, view, tuple(evaluated), -1
            )
        return self._decision(plan, view, best, best_total, best_row, evaluated)

    @staticmethod
    def _consume(plan: _ShapePlan, decision: RoutingDecision, batch: _Batch) -> None:
        free, free_nodes, queued = batch.state
        i, site_id, requested, nodes, capacity, _inverse, total_nodes, _degraded = plan.hot[decision._chosen]
        batch.quota[site_id] = batch.quota.get(site_id, 0) - decision.estimated_cost
        batch.versions[i] += 1
        if free[i] < requested or (nodes > 1 and free_nodes[i] < nodes):
            queued[i] += requested * plan.job.walltime_s  # waits in the queue
            return
        free[i] -= requested
        per_node = capacity // total_nodes
        if nodes > 1 or requested >= per_node:
            free_nodes[i] = max(0, free_nodes[i] - nodes)
        free_nodes[i] = min(free_nodes[i], free[i] // per_node)


def route(
    job: JobSpec,
    partitions: Sequence[PartitionView],
    quota_by_site: Mapping[int, int],
    now: datetime,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
) -> RoutingDecision:
    """Route one job (builds the index on every call; services keep a ``Router`` per snapshot)."""
    return Router(partitions, weights).route(job, quota_by_site, now)


def route_batch(
    jobs: Iterable[JobSpec],
    partitions: Sequence[PartitionView],
    quota_by_site: Mapping[int, int],
    now: datetime,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
) -> list[RoutingDecision]:
    """Route jobs in order, consuming quota and free capacity as they are assigned."""
    return Router(partitions, weights).route_batch(jobs, quota_by_site, now)
