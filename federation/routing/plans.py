"""What the router remembers between decisions: per-shape plans, their per-hour views, and the
private state of a batch. Internal: built and read by ``Router`` and ``RoutingDecision`` only."""

from __future__ import annotations

from dataclasses import dataclass, field

from federation.routing.model import JobSpec, PartitionView, Stage

# a candidate on the hot path: index, site_id, requested, nodes, capacity, 1/capacity, total nodes, degraded,
# slot, capacity per node. The slot numbers (partition, requested, nodes): shapes that share it share the
# wait and balance.
Hot = tuple[int, int, int, int, int, float, int, bool, int, int]

# wait seconds, weighted wait part, weighted balance part
Row = tuple[float, float, float]

# a candidate ranked by its total: (total, candidate number, version of the partition the row was
# computed at, row). Candidate numbers are unique, so comparisons never reach the version or the row.
Ranked = tuple[float, int, int, Row]

# capacity state, per partition index: free cards/cores, free whole nodes, queued seconds
State = tuple[list[int], list[int], list[float]]


@dataclass(slots=True, eq=False)
class Batch:
    """A batch's private copy of the snapshot; ``versions`` counts the jobs given to each partition.

    ``rows`` holds the latest re-scored row of each slot with the partition version it was computed
    at, shared by the shapes that have that slot; ``plans`` are the shape plans that hold search state
    for this batch (released at its end).
    """

    quota: dict[int, int]
    state: State
    versions: list[int]
    rows: dict[int, tuple[int, Row]] = field(default_factory=dict)
    plans: list[ShapePlan] = field(default_factory=list)


@dataclass(slots=True)
class HourView:
    """A shape's static score parts at one UTC hour, and its candidates ranked on the snapshot."""

    plan: ShapePlan
    costs: tuple[int, ...]
    prices: tuple[float, ...]  # weighted
    statics: tuple[float, ...]  # price + locality + preference, weighted
    snapshot_rows: tuple[Row, ...]
    ranked: tuple[Ranked, ...]  # on the snapshot (version 0), best first
    # candidate -> ``explain()``'s templates for it, as the choice and as a candidate (filled on demand)
    explained: dict[int, tuple[dict, dict]] = field(default_factory=dict)


@dataclass(slots=True)
class ShapePlan:
    """What filters 1-6 say about one job shape, and the shape's search state in the batch under way."""

    job: JobSpec
    router_partitions: tuple[PartitionView, ...]
    indices: tuple[int, ...]  # of the candidates' partitions, ascending
    hot: tuple[Hot, ...]  # one per candidate: the partitions that pass filters 1-6, by partition id
    base_rates: tuple[int, ...]
    localities: tuple[float, ...]  # weighted
    preferences: tuple[float, ...]  # weighted
    priced_only: bool  # no dataset, no preferred sites: every locality and preference part is 0
    snapshot_rows: tuple[Row, ...]  # wait and balance on the Router's snapshot (hour-independent)
    excluded: tuple[tuple[int, Stage], ...]  # partition index, filter (4-6)
    excluded_counts: dict[str, int]  # refusal code -> partitions: ``excluded`` counted, by stage (only copied)
    refusal_stage: Stage | None
    skipped_by_kind: int
    by_hour: dict[int, HourView] = field(default_factory=dict)
    # the batch under way: a heap of the candidates visited, keyed by their latest score (a lower
    # bound, exact where the row's version is the partition's current one), plus ``frontier``, the
    # best one not yet visited (``ranked[cursor - 1]``; the rest of ``ranked`` is not in the heap);
    # and the numbers of the candidates dropped for want of quota
    batch: Batch | None = None
    heap: list[Ranked] = field(default_factory=list)
    frontier: Ranked | None = None
    cursor: int = 0
    short: tuple[int, ...] = ()
