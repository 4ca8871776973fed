"""The router: an index of partitions by kind, per-shape plans, and the single and batch searches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from heapq import heappop, heappush, heapreplace

from federation.routing.decision import INSUFFICIENT_QUOTA, RoutingDecision
from federation.routing.filters import kind_stage
from federation.routing.model import (
    DEFAULT_WEIGHTS,
    NO_PARTITIONS,
    PERMILLE,
    REASON_BY_STAGE,
    ROUTABLE_STATES,
    SECONDS_PER_HOUR,
    JobSpec,
    PartitionView,
    ScoringWeights,
    Stage,
)
from federation.routing.plans import Batch, Hot, HourView, Ranked, Row, ShapePlan, State
from federation.routing.pricing import utc_hour, utc_hour_multipliers

# candidates a shape's batch heap starts with, the best on the snapshot (the last is the frontier):
# a few more than one save refilling the frontier one candidate at a time
HEAP_SEED = 8


class Router:
    """Routes jobs over a fixed snapshot of partitions; build one per capacity snapshot.

    ``route`` decides one job without changing the snapshot; ``route_batch`` decides many,
    consuming quota and free capacity on a private copy as it goes. Shape plans are cached
    (up to ``shape_cache_size`` shapes; the cache is cleared when full).

    A single decision visits the candidates best-first by their score on the snapshot and takes the
    first whose site has the quota. During a batch a partition's wait and balance can only grow
    (free capacity only shrinks, queues only lengthen) and a site's quota only shrinks, so a score
    once computed stays a lower bound, exact while no job went to the partition since. Each shape
    keeps, for the batch, a heap of the candidates it has looked at, keyed by their latest score,
    which also holds the best one it has not (the *frontier*: the others are further down the
    snapshot ranking, so no better). A decision looks at the top: re-scores it if a job went to its
    partition since (and looks again), drops it for good if its site is out of quota, and otherwise
    takes it: the full scan's answer (ties to the lowest partition id), at the cost of re-scoring
    only the partitions jobs went to. Shapes asking for the same amount on a partition share its
    rows, on the snapshot and re-scored.

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
        self._plans: dict[JobSpec, ShapePlan] = {}
        self._multipliers = tuple([utc_hour_multipliers(p.peak_schedule, p.utc_offset_s) for p in parts])
        self._capacity = [p.nodes * (p.gpus_per_node or p.cores_per_node) for p in parts]
        self._free = [
            max(0, min(cap, p.free_gpus if p.is_gpu else p.free_cores))
            for p, cap in zip(parts, self._capacity, strict=True)
        ]
        self._free_nodes = [max(0, min(p.nodes, p.free_nodes)) for p in parts]
        self._queued = [float(p.queued_gpu_seconds if p.is_gpu else p.queued_core_seconds) for p in parts]
        # what filters 4-6 and the static score parts read, as columns by partition index (comprehensions
        # over them are several times cheaper than a loop over the partitions' attributes)
        profiles = [
            (
                p.max_walltime_s,
                p.cores_per_node,
                p.memory_mb_per_node,
                p.gpus_per_node,
                p.nodes,
                p.site_state,
                p.site_code,
                p.datasets,
                p.price_core_hour,
                p.price_card_hour,
            )
            for p in parts
        ]
        (
            self._max_walltime,
            self._node_cores,
            self._node_memory,
            self._node_cards,
            self._nodes,
            site_states,
            self._site_codes,
            self._datasets,
            self._price_core,
            self._price_card,
        ) = zip(*profiles, strict=True) if profiles else ((),) * 10
        self._routable = tuple([state in ROUTABLE_STATES for state in site_states])
        self._multipliers_by_hour: dict[int, tuple[int, ...]] = {}
        # (family, model, ecosystem) -> application -> partition indices; None -> all of that kind
        index: dict[tuple[str | None, str | None, str], dict[str | None, list[int]]] = {}
        for i, p in enumerate(parts):
            by_app = index.setdefault((p.accelerator_family, p.accelerator_model, p.ecosystem), {None: []})
            by_app[None].append(i)
            for app in p.applications:
                by_app.setdefault(app, []).append(i)
        self._index = {key: {app: tuple(ids) for app, ids in apps.items()} for key, apps in index.items()}
        # what filters 1-3 let through, per combination of the job fields they read
        self._buckets: dict[tuple, tuple[tuple[int, ...], Stage | None]] = {}
        # slot -> (hot candidate, row on the snapshot); a slot numbers (partition, requested, nodes)
        self._slots: dict[int, tuple[Hot, Row]] = {}
        self._slot_stride = max(self._nodes, default=0) + 1

    # ------------------------------------------------------------------ public

    def route(self, job: JobSpec, quota_by_site: Mapping[int, int], now: datetime) -> RoutingDecision:
        """Decide one job against the snapshot (nothing is consumed)."""
        plan = self._plans.get(job) or self._plan(job)
        return self._decide(plan, utc_hour(now), quota_by_site)

    def route_batch(
        self, jobs: Iterable[JobSpec], quota_by_site: Mapping[int, int], now: datetime
    ) -> list[RoutingDecision]:
        """Decide jobs in order, each seeing the quota and capacity the earlier ones took."""
        hour = utc_hour(now)
        batch = Batch(
            dict(quota_by_site),
            (list(self._free), list(self._free_nodes), list(self._queued)),
            [0] * len(self.partitions),
        )
        plans = self._plans
        decide = self._decide_in_batch
        try:
            return [decide(plans.get(job) or self._plan(job), hour, batch) for job in jobs]
        finally:
            for plan in batch.plans:  # release the batch's search state
                plan.batch = None
                plan.heap = []
                plan.frontier = None
                plan.short = ()

    # ------------------------------------------------------------------ shape plans

    def _bucket(self, job: JobSpec) -> tuple[tuple[int, ...], Stage | None]:
        """Filters 1-3: the indices of the partitions that pass, and the latest filter that excluded any."""
        key = (job.gpus_per_node > 0, job.accepted_family, job.accepted_models, job.ecosystems, job.application)
        known = self._buckets.get(key)
        if known is not None:
            return known
        bucket: set[int] = set()
        kind_stages: list[Stage] = []
        for (family, model, ecosystem), by_app in self._index.items():
            stage = kind_stage(job, family, model, ecosystem, by_app)
            if stage is None:
                bucket.update(by_app[job.application])
            else:
                kind_stages.append(stage)
        known = (tuple(sorted(bucket)), max(kind_stages, default=None))
        self._buckets[key] = known
        return known

    def _slot(self, slot: int, i: int, requested: int, nodes: int) -> tuple[Hot, Row]:
        """The hot candidate and its row on the snapshot for ``requested`` cards/cores on ``nodes`` (the
        slot numbers the three: ``(requested * stride + nodes) * partitions + i``)."""
        known = self._slots.get(slot)
        if known is None:
            p = self.partitions[i]
            capacity = self._capacity[i]
            hot = (
                i,
                p.site_id,
                requested,
                nodes,
                capacity,
                1.0 / capacity,
                p.nodes,
                p.site_state == "degraded",
                slot,
                capacity // p.nodes,
            )
            known = (hot, self._dynamic(hot, (self._free, self._free_nodes, self._queued)))
            self._slots[slot] = known
        return known

    def _plan(self, job: JobSpec) -> ShapePlan:
        w = self.weights
        bucket, kind_refusal = self._bucket(job)
        nodes, cores, memory, cards, walltime = (
            job.nodes,
            job.cores_per_node,
            job.memory_mb_per_node,
            job.gpus_per_node,
            job.walltime_s,
        )
        max_walltime, node_cores, node_memory = self._max_walltime, self._node_cores, self._node_memory
        node_cards, total_nodes, routable = self._node_cards, self._nodes, self._routable
        # (list comprehensions, not generator expressions: no frame resumed per element)
        indices = tuple(
            [
                i
                for i in bucket
                if walltime <= max_walltime[i]
                and cores <= node_cores[i]
                and memory <= node_memory[i]
                and cards <= node_cards[i]
                and nodes <= total_nodes[i]
                and routable[i]
            ]
        )
        excluded: list[tuple[int, Stage]] = []
        if len(indices) < len(bucket):
            passed = set(indices)
            for i in bucket:
                if i in passed:
                    continue
                if walltime > max_walltime[i]:
                    excluded.append((i, Stage.WALLTIME))
                elif (
                    cores > node_cores[i] or memory > node_memory[i] or cards > node_cards[i] or nodes > total_nodes[i]
                ):
                    excluded.append((i, Stage.FIT))
                else:
                    excluded.append((i, Stage.SITE_STATE))
        job_cores, job_cards = nodes * cores, nodes * cards
        # a GPU job only passes the kind filter on GPU partitions, a CPU job on CPU ones
        requested = job_cards if cards else job_cores
        slot_base = (requested * self._slot_stride + nodes) * len(self.partitions)
        slots_get = self._slots.get
        candidates = [slots_get(slot_base + i) or self._slot(slot_base + i, i, requested, nodes) for i in indices]
        hot, rows = zip(*candidates, strict=True) if candidates else ((), ())
        price_core, price_card = self._price_core, self._price_card
        base_rates = tuple([(job_cores * price_core[i] + job_cards * price_card[i]) * walltime for i in indices])
        dataset = job.dataset
        if dataset is None:
            localities = (0.0,) * len(indices)
        else:
            datasets, w_locality = self._datasets, w.locality
            localities = tuple([0.0 if dataset in datasets[i] else w_locality for i in indices])
        if not job.preferred_sites:
            preferences = (0.0,) * len(indices)
        else:
            preferred = {code: rank for rank, code in reversed(list(enumerate(job.preferred_sites)))}
            n_preferred = len(job.preferred_sites)
            w_preference = w.preference
            site_codes = self._site_codes
            preferences = tuple(
                [
                    w_preference * preferred[code] / n_preferred / 2 if code in preferred else w_preference
                    for code in [site_codes[i] for i in indices]
                ]
            )
        if indices:
            refusal_stage = None
        elif excluded:
            refusal_stage = max(stage for _, stage in excluded)
        else:
            refusal_stage = kind_refusal  # None: no partitions at all
        counts: dict[Stage, int] = {}
        for _, stage in excluded:
            counts[stage] = counts.get(stage, 0) + 1
        plan = ShapePlan(
            job=job,
            router_partitions=self.partitions,
            indices=indices,
            hot=hot,
            base_rates=base_rates,
            localities=localities,
            preferences=preferences,
            priced_only=dataset is None and not job.preferred_sites,
            snapshot_rows=rows,
            excluded=tuple(excluded),
            excluded_counts={REASON_BY_STAGE[stage]: counts[stage] for stage in sorted(counts)},
            refusal_stage=refusal_stage,
            skipped_by_kind=len(self.partitions) - len(bucket),
        )
        if len(self._plans) >= self._shape_cache_size:
            self._plans.clear()
            self._slots.clear()  # (the plans still in use keep what they took from it)
        self._plans[job] = plan
        return plan

    def _hour_view(self, plan: ShapePlan, hour: int) -> HourView:
        multipliers = self._multipliers_by_hour.get(hour)
        if multipliers is None:
            multipliers = self._multipliers_by_hour[hour] = tuple(m[hour] for m in self._multipliers)
        divisor = SECONDS_PER_HOUR * PERMILLE
        costs = tuple(
            [-(-rate * multipliers[i] // divisor) for rate, i in zip(plan.base_rates, plan.indices, strict=True)]
        )
        cheapest = min(costs, default=0)
        w_price = self.weights.price
        if cheapest > 0:
            prices = tuple(
                [w_price * (relative if (relative := cost / cheapest - 1.0) < 1.0 else 1.0) for cost in costs]
            )
        else:
            prices = tuple([0.0 if cost == 0 else w_price for cost in costs])
        if plan.priced_only:  # (x + 0.0 + 0.0 is x)
            statics = prices
        else:
            statics = tuple(
                [
                    price + locality + preference
                    for price, locality, preference in zip(prices, plan.localities, plan.preferences, strict=True)
                ]
            )
        rows = plan.snapshot_rows
        ranked = sorted(
            [(static + row[1] + row[2], k, 0, row) for k, (static, row) in enumerate(zip(statics, rows, strict=True))]
        )
        view = HourView(plan, costs, prices, statics, rows, tuple(ranked))
        plan.by_hour[hour] = view
        return view

    # ------------------------------------------------------------------ decisions

    def _dynamic(self, hot: Hot, state: State) -> Row:
        """Estimated wait and the weighted wait and balance parts on the given capacity state."""
        index, _site, requested, nodes, capacity, inverse_capacity, total_nodes, degraded, _slot, _per_node = hot
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

    def _refusal(self, plan: ShapePlan, view: HourView) -> RoutingDecision:
        reason = REASON_BY_STAGE[plan.refusal_stage] if plan.refusal_stage is not None else NO_PARTITIONS
        return RoutingDecision(None, None, None, 0, None, None, reason, plan.skipped_by_kind, view, (), (), -1)

    def _decide(self, plan: ShapePlan, hour: int, quota: Mapping[int, int]) -> RoutingDecision:
        """One job on the snapshot: the first candidate in score order whose site has the quota."""
        view = plan.by_hour.get(hour) or self._hour_view(plan, hour)
        if not plan.hot:
            return self._refusal(plan, view)
        costs = view.costs
        hot = plan.hot
        quota_get = quota.get
        short: list[int] = []
        for entry in view.ranked:
            k = entry[1]
            if quota_get(hot[k][1], 0) < costs[k]:
                short.append(k)
                continue
            chosen = plan.router_partitions[hot[k][0]]
            return RoutingDecision(
                chosen.partition_id,
                chosen.site_id,
                chosen.site_code,
                costs[k],
                round(entry[3][0]),
                entry[0],
                None,
                plan.skipped_by_kind,
                view,
                (entry,),
                tuple(short),
                k,
            )
        return RoutingDecision(
            None, None, None, 0, None, None, INSUFFICIENT_QUOTA, plan.skipped_by_kind, view, (), tuple(short), -1
        )

    def _decide_in_batch(self, plan: ShapePlan, hour: int, batch: Batch) -> RoutingDecision:
        """One job of a batch: the best candidate whose site still has the quota; then take its share.

        The heap's top is the best candidate by its latest score (see the class docstring and
        ``ShapePlan``): a stale top is re-scored and sifted down, an exact one out of quota dropped,
        and the first exact and affordable one wins.
        """
        view = plan.by_hour.get(hour) or self._hour_view(plan, hour)
        hot = plan.hot
        if not hot:
            return self._refusal(plan, view)
        if plan.batch is not batch:
            plan.batch = batch
            seed = view.ranked[:HEAP_SEED]
            plan.heap = list(seed)  # (sorted: a heap)
            plan.frontier = seed[-1]
            plan.cursor = len(seed)
            batch.plans.append(plan)
        heap = plan.heap
        versions = batch.versions
        rescored: list[Ranked] | None = None  # the entries re-scored in this decision
        while heap:
            entry = heap[0]
            total, k, version, row = entry
            candidate = hot[k]
            i = candidate[0]
            current = versions[i]
            if version != current:  # a job went to the partition since: re-score, sift down, look again
                known = batch.rows.get(candidate[8])
                if known is not None and known[0] == current:
                    row = known[1]
                else:
                    row = self._dynamic(candidate, batch.state)
                    batch.rows[candidate[8]] = (current, row)
                total = view.statics[k] + row[1] + row[2]
                fresh = (total, k, current, row)
                heapreplace(heap, fresh)
                if entry is plan.frontier:  # (the same as ``_advance``, inline: this is the common case)
                    cursor = plan.cursor
                    if cursor < len(view.ranked):
                        plan.frontier = following = view.ranked[cursor]
                        plan.cursor = cursor + 1
                        heappush(heap, following)
                    else:
                        plan.frontier = None
                if rescored is None:
                    rescored = [fresh]
                else:
                    rescored.append(fresh)
                entry = heap[0]
                if entry is not fresh:
                    continue
                # still the best, and exact now: on to its quota
            site_id = candidate[1]
            cost = view.costs[k]
            quota = batch.quota
            if quota.get(site_id, 0) < cost:  # quota only shrinks in a batch: dropped for good
                heappop(heap)
                if entry is plan.frontier:
                    self._advance(plan, view)
                plan.short += (k,)
                if rescored is not None and entry in rescored:  # re-scored, then found out of quota
                    rescored.remove(entry)
                continue
            # exact, affordable, and no other candidate's bound is lower: the choice (it stays in the
            # heap, stale once its partition has taken the job). Take its quota and capacity.
            quota[site_id] = quota.get(site_id, 0) - cost
            versions[i] = current + 1
            free, free_nodes, queued = batch.state
            requested, nodes = candidate[2], candidate[3]
            if free[i] < requested or (nodes > 1 and free_nodes[i] < nodes):
                queued[i] += requested * plan.job.walltime_s  # waits in the queue
            else:
                free[i] -= requested
                per_node = candidate[9]
                if nodes > 1 or requested >= per_node:
                    free_nodes[i] = max(0, free_nodes[i] - nodes)
                free_nodes[i] = min(free_nodes[i], free[i] // per_node)
            if rescored is None:
                scored: tuple[Ranked, ...] = (entry,)
            else:
                if not rescored or rescored[-1] is not entry and entry not in rescored:  # (it was exact already)
                    rescored.append(entry)
                scored = tuple(rescored)
            chosen = plan.router_partitions[i]
            return RoutingDecision(
                chosen.partition_id,
                site_id,
                chosen.site_code,
                cost,
                round(row[0]),
                total,
                None,
                plan.skipped_by_kind,
                view,
                scored,
                plan.short,
                k,
            )
        return RoutingDecision(
            None, None, None, 0, None, None, INSUFFICIENT_QUOTA, plan.skipped_by_kind, view, (), plan.short, -1
        )

    @staticmethod
    def _advance(plan: ShapePlan, view: HourView) -> None:
        """The frontier left the heap: the best candidate not yet visited enters it."""
        cursor = plan.cursor
        if cursor < len(view.ranked):
            plan.frontier = view.ranked[cursor]
            plan.cursor = cursor + 1
            heappush(plan.heap, plan.frontier)
        else:
            plan.frontier = None


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
