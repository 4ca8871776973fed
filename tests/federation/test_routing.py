"""The job router: filters with reasons, the score and its explanation, batches, determinism."""

import dataclasses
import json
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

import federation.routing
import federation.routing.router as routing_router
from federation.routing import (
    BOUNDED,
    CHOSEN,
    EXCLUDED,
    SCORED,
    JobSpec,
    PartitionView,
    Router,
    estimate_cost,
    price_multiplier_permille,
    route,
    route_batch,
)

BEIJING = timezone(timedelta(hours=8))
PEAK_NOW = datetime(2025, 3, 4, 10, 30, tzinfo=BEIJING)  # 10:30 in Beijing
VALLEY_NOW = datetime(2025, 3, 4, 3, 30, tzinfo=BEIJING)  # 03:30 in Beijing
SCHEDULE = ((8, 12, 1250), (14, 21, 1250), (23, 7, 600))  # peak mornings and evenings, valley at night
PLENTY = 10**15


def partition(pid: int = 1, site_id: int | None = None, **overrides) -> PartitionView:
    """A V100 partition, 16 nodes × 4 cards, idle, at site ``site_id`` (default: one per partition)."""
    site_id = pid if site_id is None else site_id
    fields = {
        "partition_id": pid,
        "site_id": site_id,
        "site_code": f"site{site_id}",
        "site_state": "online",
        "ecosystem": "cuda",
        "accelerator_family": "v100",
        "accelerator_model": "V100M32",
        "nodes": 16,
        "cores_per_node": 32,
        "memory_mb_per_node": 262144,
        "gpus_per_node": 4,
        "max_walltime_s": 72 * 3600,
        "applications": frozenset({"pytorch", "gromacs", "alphafold2"}),
        "free_cores": 16 * 32,
        "free_gpus": 64,
        "free_nodes": 16,
        "queued_core_seconds": 0,
        "running_jobs": 0,
        "price_core_hour": 100,
        "price_card_hour": 2000,
    }
    fields.update(overrides)
    return PartitionView(**fields)


def cpu_partition(pid: int, **overrides) -> PartitionView:
    fields = {
        "ecosystem": "cpu",
        "accelerator_family": None,
        "accelerator_model": None,
        "gpus_per_node": 0,
        "free_gpus": 0,
        "cores_per_node": 64,
        "free_cores": 16 * 64,
        "applications": frozenset({"wrf", "gromacs"}),
    }
    fields.update(overrides)
    return partition(pid, **fields)


def gpu_job(**overrides) -> JobSpec:
    fields = {"nodes": 1, "cores_per_node": 8, "memory_mb_per_node": 32768, "gpus_per_node": 1, "walltime_s": 3600}
    fields.update(overrides)
    return JobSpec(**fields)


def quota_for(*partitions: PartitionView, amount: int = PLENTY) -> dict[int, int]:
    return {p.site_id: amount for p in partitions}


def only_reason(job: JobSpec, parts: list[PartitionView], now: datetime = PEAK_NOW) -> str | None:
    decision = route(job, parts, quota_for(*parts), now)
    assert decision.chosen_partition_id is None
    return decision.refusal


# --------------------------------------------------------------------------- filters


def test_a_node_with_too_few_cards_is_excluded_as_not_fitting():
    decision = route(gpu_job(gpus_per_node=8), [partition()], quota_for(partition()), PEAK_NOW)
    assert decision.refusal == "no_partition_fits"
    (entry,) = decision.breakdown()
    assert entry.status == EXCLUDED and entry.excluded_by == "no_partition_fits"
    assert "8 cards per node" in entry.detail


def test_a_node_with_too_little_memory_is_excluded_as_not_fitting():
    decision = route(gpu_job(memory_mb_per_node=300000), [partition()], quota_for(partition()), PEAK_NOW)
    assert decision.refusal == "no_partition_fits"
    assert "MB per node" in decision.breakdown()[0].detail


def test_a_node_with_too_few_cores_is_excluded_as_not_fitting():
    assert only_reason(gpu_job(cores_per_node=33), [partition()]) == "no_partition_fits"


def test_a_multi_node_job_needs_enough_nodes_in_the_partition():
    small = partition(1, nodes=2, free_nodes=2, free_gpus=8, free_cores=64)
    big = partition(2, nodes=16)
    job = gpu_job(nodes=4, gpus_per_node=4)
    assert only_reason(job, [small]) == "no_partition_fits"
    decision = route(job, [small, big], quota_for(small, big), PEAK_NOW)
    assert decision.chosen_partition_id == 2
    excluded = [c for c in decision.breakdown() if c.status == EXCLUDED]
    assert [(c.partition_id, c.excluded_by) for c in excluded] == [(1, "no_partition_fits")]
    assert "needs 4 nodes" in excluded[0].detail


def test_an_incompatible_ecosystem_is_excluded():
    job = gpu_job(ecosystems=frozenset({"rocm-hip"}))
    assert only_reason(job, [partition()]) == "no_compatible_ecosystem"


def test_a_partition_without_the_application_is_excluded():
    assert only_reason(gpu_job(application="wrf"), [partition()]) == "application_unavailable"


@pytest.mark.parametrize("state", ["offline", "draining"])
def test_a_site_that_is_not_online_is_excluded(state):
    assert only_reason(gpu_job(), [partition(site_state=state)]) == "no_site_online"


def test_a_degraded_site_stays_a_candidate_but_waits_longer():
    healthy = partition(1)
    degraded = partition(2, site_state="degraded")
    decision = route(gpu_job(), [degraded, healthy], quota_for(healthy, degraded), PEAK_NOW)
    assert decision.chosen_partition_id == 1
    by_id = {c.partition_id: c for c in decision.breakdown()}
    assert by_id[2].status != EXCLUDED
    assert by_id[2].estimated_wait_s == 600 and by_id[1].estimated_wait_s == 0


def test_a_site_where_the_project_quota_is_too_small_is_excluded():
    part = partition()
    job = gpu_job()
    cost = estimate_cost(job, part, PEAK_NOW)
    decision = route(job, [part], {part.site_id: cost - 1}, PEAK_NOW)
    assert decision.refusal == "insufficient_quota"
    (entry,) = decision.breakdown()
    assert entry.excluded_by == "insufficient_quota" and entry.estimated_cost == cost
    assert route(job, [part], {part.site_id: cost}, PEAK_NOW).chosen_partition_id == part.partition_id
    assert route(job, [part], {}, PEAK_NOW).refusal == "insufficient_quota"


def test_a_walltime_over_the_partition_limit_is_excluded():
    assert only_reason(gpu_job(walltime_s=73 * 3600), [partition()]) == "walltime_over_limit"


def test_accepted_models_and_family_restrict_the_cards():
    v100m32 = partition(1)
    assert only_reason(gpu_job(accepted_models=frozenset({"V100M16"})), [v100m32]) == "unknown_accelerator_model"
    assert only_reason(gpu_job(accepted_family="a10"), [v100m32]) == "unknown_accelerator_model"
    job = gpu_job(accepted_models=frozenset({"V100M16", "V100M32"}), accepted_family="v100")
    assert route(job, [v100m32], quota_for(v100m32), PEAK_NOW).chosen_partition_id == 1


def test_cpu_jobs_go_to_cpu_partitions_and_gpu_jobs_to_gpu_partitions():
    gpu, cpu = partition(1), cpu_partition(2)
    quota = quota_for(gpu, cpu)
    assert route(JobSpec(cores_per_node=16), [gpu, cpu], quota, PEAK_NOW).chosen_partition_id == 2
    assert route(gpu_job(), [gpu, cpu], quota, PEAK_NOW).chosen_partition_id == 1
    assert only_reason(JobSpec(cores_per_node=16), [gpu]) == "unknown_accelerator_model"


def test_the_refusal_names_the_filter_that_eliminated_the_last_candidates():
    rocm = partition(1, ecosystem="rocm-hip", accelerator_family="dcu", accelerator_model="G3")
    offline = partition(2, site_state="offline")
    short = partition(3, max_walltime_s=3600)
    cuda_job = gpu_job(walltime_s=7200, ecosystems=frozenset({"cuda"}))
    assert only_reason(cuda_job, [rocm]) == "no_compatible_ecosystem"
    assert only_reason(cuda_job, [rocm, short]) == "walltime_over_limit"
    assert only_reason(cuda_job, [rocm, short, offline]) == "no_site_online"
    decision = route(cuda_job, [rocm, offline], {1: PLENTY, 2: PLENTY}, PEAK_NOW)
    assert decision.refusal == "no_site_online"
    assert decision.skipped_by_kind == 1  # the DCU partition was never looked at
    assert decision.refusal_message


def test_no_partitions_at_all_is_a_refusal_not_a_hang():
    decision = route(gpu_job(), [], {}, PEAK_NOW)
    assert decision.chosen_partition_id is None and decision.refusal == "no_partitions"
    assert decision.estimated_cost == 0 and decision.refusal_message


# --------------------------------------------------------------------------- the score


def test_a_shorter_wait_wins_and_the_breakdown_says_so():
    busy = partition(1, free_gpus=0, free_nodes=0, queued_gpu_seconds=64 * 4 * 3600, running_jobs=30)
    idle = partition(2)
    decision = route(gpu_job(), [busy, idle], quota_for(busy, idle), PEAK_NOW)
    assert decision.chosen_partition_id == 2 and decision.estimated_wait_s == 0
    chosen, other = decision.breakdown()
    assert chosen.status == CHOSEN and chosen.partition_id == 2
    assert other.estimated_wait_s > 4 * 3600 and other.wait > chosen.wait
    assert other.price == chosen.price and other.locality == chosen.locality


def test_the_cheaper_valley_price_wins():
    flat = partition(1, site_code="flat")
    valley_at_night = partition(2, peak_schedule=SCHEDULE)
    quota = quota_for(flat, valley_at_night)
    night = route(gpu_job(), [flat, valley_at_night], quota, VALLEY_NOW)
    assert night.chosen_partition_id == 2
    by_id = {c.partition_id: c for c in night.breakdown()}
    assert by_id[2].price == 0.0 and by_id[1].price > 0.0
    assert by_id[2].estimated_cost < by_id[1].estimated_cost
    morning = route(gpu_job(), [flat, valley_at_night], quota, PEAK_NOW)
    assert morning.chosen_partition_id == 1  # the same site is the dearer one at peak hours


def test_data_locality_wins_when_the_rest_is_equal():
    far = partition(1)
    near = partition(2, datasets=frozenset({"uniref90"}))
    decision = route(gpu_job(dataset="uniref90"), [far, near], quota_for(far, near), PEAK_NOW)
    assert decision.chosen_partition_id == 2
    by_id = {c.partition_id: c for c in decision.breakdown()}
    assert by_id[2].locality == 0.0 and by_id[1].locality > 0.0


def test_a_preferred_site_wins_when_the_rest_is_equal_and_order_matters():
    parts = [partition(1), partition(2), partition(3)]
    job = gpu_job(preferred_sites=("site3", "site2"))
    decision = route(job, parts, quota_for(*parts), PEAK_NOW)
    assert decision.chosen_site_code == "site3"
    by_id = {c.partition_id: c for c in decision.breakdown()}
    assert by_id[3].preference < by_id[2].preference < by_id[1].preference


def test_breakdown_parts_add_up_to_the_total_and_the_chosen_one_comes_first():
    parts = [
        partition(1, free_gpus=10, free_nodes=1),
        partition(2, peak_schedule=SCHEDULE, datasets=frozenset({"pdb"})),
        partition(3, site_state="offline"),
    ]
    decision = route(gpu_job(dataset="pdb", preferred_sites=("site1",)), parts, quota_for(*parts), PEAK_NOW)
    entries = decision.breakdown()
    assert entries[0].status == CHOSEN and entries[0].partition_id == decision.chosen_partition_id
    assert entries[0].total == decision.score
    for entry in entries:
        if entry.status != EXCLUDED:
            parts_sum = entry.wait + entry.price + entry.locality + entry.balance + entry.preference
            assert entry.total == pytest.approx(parts_sum)
    assert entries[-1].excluded_by == "no_site_online"


def test_a_single_decision_lists_unevaluated_candidates_as_bounded_with_exact_scores():
    parts = [partition(i, price_card_hour=2000 + 100 * i) for i in range(1, 6)]
    decision = route(gpu_job(), parts, quota_for(*parts), PEAK_NOW)
    entries = decision.breakdown()
    assert decision.chosen_partition_id == 1
    assert {e.status for e in entries[1:]} <= {BOUNDED, "scored"}
    assert [e.partition_id for e in entries] == [1, 2, 3, 4, 5]
    assert all(e.total > decision.score for e in entries[1:])


# --------------------------------------------------------------------------- prices


def test_estimate_cost_charges_cores_and_cards_for_the_walltime():
    part = partition(price_core_hour=100, price_card_hour=2000)
    job = gpu_job(nodes=2, cores_per_node=8, gpus_per_node=2, walltime_s=3 * 3600)
    # (16 cores × 100 + 4 cards × 2000) × 3 h
    assert estimate_cost(job, part, PEAK_NOW) == (16 * 100 + 4 * 2000) * 3


def test_peak_and_valley_change_the_estimate():
    part = partition(peak_schedule=SCHEDULE)
    job = gpu_job(walltime_s=3600)
    base = 8 * 100 + 2000
    assert estimate_cost(job, part, PEAK_NOW) == base * 1250 // 1000
    assert estimate_cost(job, part, VALLEY_NOW) == base * 600 // 1000
    assert estimate_cost(job, part, PEAK_NOW.replace(hour=13)) == base
    # the valley wraps past midnight; the clock may be given in any timezone
    assert price_multiplier_permille(part, datetime(2025, 3, 4, 15, 30, tzinfo=UTC)) == 600  # 23:30 Beijing


def test_estimate_cost_rounds_up_to_a_whole_milli_credit():
    part = partition(price_core_hour=1, price_card_hour=0)
    assert estimate_cost(JobSpec(cores_per_node=1, walltime_s=1), part, PEAK_NOW) == 1


def test_a_naive_clock_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        route(gpu_job(), [partition()], {1: PLENTY}, datetime(2025, 3, 4, 10, 30))


# --------------------------------------------------------------------------- batches


def test_a_batch_does_not_exceed_a_sites_quota():
    cheap = partition(1, price_card_hour=1000)
    dear = partition(2, price_card_hour=3000)
    job = gpu_job()
    per_job = estimate_cost(job, cheap, PEAK_NOW)
    decisions = route_batch([job] * 5, [cheap, dear], {1: 2 * per_job + per_job // 2, 2: PLENTY}, PEAK_NOW)
    assert [d.chosen_partition_id for d in decisions] == [1, 1, 2, 2, 2]
    assert sum(d.estimated_cost for d in decisions if d.chosen_site_id == 1) <= 2 * per_job + per_job // 2


def test_a_batch_refuses_once_the_only_sites_quota_is_spent():
    part = partition()
    job = gpu_job()
    per_job = estimate_cost(job, part, PEAK_NOW)
    decisions = route_batch([job] * 3, [part], {1: 2 * per_job}, PEAK_NOW)
    assert [d.refusal for d in decisions] == [None, None, "insufficient_quota"]


def test_a_batch_does_not_exceed_a_partitions_free_capacity():
    one = partition(1, free_gpus=8, free_nodes=2, free_cores=64, running_jobs=14)
    job = gpu_job(gpus_per_node=4)
    decisions = route_batch([job] * 4, [one], quota_for(one), PEAK_NOW)
    waits = [d.estimated_wait_s for d in decisions]
    assert waits[:2] == [0, 0]  # eight free cards start two jobs now ...
    assert 0 < waits[2] < waits[3]  # ... the others queue, each behind the one before


def test_a_batch_moves_on_when_the_cheaper_partition_is_full():
    cheap = partition(1, price_card_hour=1900, free_gpus=8, free_nodes=2, free_cores=64, running_jobs=14)
    dear = partition(2, price_card_hour=2000, free_gpus=8, free_nodes=2, free_cores=64, running_jobs=14)
    job = gpu_job(gpus_per_node=4)
    router = Router([cheap, dear])
    decisions = router.route_batch([job] * 4, quota_for(cheap, dear), PEAK_NOW)
    assert [d.chosen_partition_id for d in decisions] == [1, 1, 2, 2]
    assert all(d.estimated_wait_s == 0 for d in decisions)
    # the third job's explanation shows the cheaper partition as it was then: full, with a wait
    by_id = {c.partition_id: c for c in decisions[2].breakdown()}
    assert by_id[1].status == "scored" and by_id[1].estimated_wait_s > 0
    assert by_id[1].total > by_id[2].total
    # the snapshot itself is untouched: a single decision still sees the free cards
    assert router.route(job, quota_for(cheap, dear), PEAK_NOW).chosen_partition_id == 1


def test_a_batch_of_one_matches_a_single_decision():
    parts = [partition(1, free_gpus=3, free_nodes=0), partition(2, peak_schedule=SCHEDULE), cpu_partition(3)]
    router = Router(parts)
    for job in (gpu_job(), gpu_job(gpus_per_node=4, nodes=2), JobSpec(cores_per_node=4), gpu_job(application="x")):
        single = router.route(job, quota_for(*parts), PEAK_NOW)
        assert router.route_batch([job], quota_for(*parts), PEAK_NOW) == [single]
        assert route(job, parts, quota_for(*parts), PEAK_NOW) == single
        assert [c for c in single.breakdown()] == list(
            route_batch([job], parts, quota_for(*parts), PEAK_NOW)[0].breakdown()
        )


def random_federation(rng: random.Random, n: int) -> list[PartitionView]:
    kinds = [("v100", "V100M32", "cuda", 4), ("a10", "A10", "cuda", 1), ("dcu", "G3", "rocm-hip", 8)]
    parts = []
    for pid in range(1, n + 1):
        family, model, ecosystem, cards = rng.choice(kinds)
        nodes = rng.randint(1, 8)
        free = rng.randint(0, nodes * cards)
        parts.append(
            partition(
                pid,
                site_id=rng.randint(1, 5),
                accelerator_family=family,
                accelerator_model=model,
                ecosystem=ecosystem,
                gpus_per_node=cards,
                nodes=nodes,
                free_gpus=free,
                free_nodes=free // cards,
                queued_gpu_seconds=rng.choice((0, 3600, 36000)),
                running_jobs=rng.randint(1, 9),
                price_card_hour=rng.choice((1500, 2000, 2500)),
                peak_schedule=rng.choice(((), SCHEDULE)),
                site_state=rng.choice(("online", "online", "degraded")),
            )
        )
    return parts


def test_batch_decisions_equal_single_decisions_on_the_capacity_left_by_earlier_jobs():
    """The batch's pruned search matches an exhaustive re-route on an updated snapshot."""
    rng = random.Random(7)
    for _ in range(15):
        parts = random_federation(rng, 12)
        jobs = [gpu_job(gpus_per_node=rng.choice((1, 2, 4)), walltime_s=rng.choice((3600, 7200))) for _ in range(25)]
        quota = {site: rng.randint(5_000, 60_000) for site in range(1, 6)}
        batch = route_batch(jobs, parts, quota, PEAK_NOW)
        state = {p.partition_id: p for p in parts}
        left = dict(quota)
        for job, decision in zip(jobs, batch, strict=True):
            fresh = route(job, list(state.values()), left, PEAK_NOW)
            assert fresh.chosen_partition_id == decision.chosen_partition_id
            assert fresh.score == pytest.approx(decision.score) if decision.score is not None else fresh.score is None
            if decision.chosen_partition_id is None:
                continue
            p = state[decision.chosen_partition_id]
            left[p.site_id] -= decision.estimated_cost
            if p.free_gpus >= job.gpus_per_node:
                free = p.free_gpus - job.gpus_per_node
                free_nodes = p.free_nodes - 1 if job.gpus_per_node >= p.gpus_per_node else p.free_nodes
                free_nodes = max(0, min(free_nodes, free // p.gpus_per_node))
                state[p.partition_id] = dataclasses.replace(p, free_gpus=free, free_nodes=free_nodes)
            else:
                queued = p.queued_gpu_seconds + job.gpus_per_node * job.walltime_s
                state[p.partition_id] = dataclasses.replace(p, queued_gpu_seconds=queued)


def mixed_federation(rng: random.Random, n: int) -> list[PartitionView]:
    """GPU partitions of two kinds and CPU partitions over five sites, loaded, some degraded, with
    datasets and peak prices; identical partitions now and then, so that ties happen."""
    parts = []
    for pid in range(1, n + 1):
        site_id = rng.randint(1, 5)
        common = {
            "site_id": site_id,
            "site_code": f"site{site_id}",
            "site_state": rng.choice(("online", "online", "online", "degraded")),
            "queued_gpu_seconds": rng.choice((0, 3600, 36000)),
            "queued_core_seconds": rng.choice((0, 36000, 360000)),
            "running_jobs": rng.randint(1, 9),
            "peak_schedule": rng.choice(((), SCHEDULE)),
            "datasets": rng.choice((frozenset(), frozenset({"pdb"}))),
        }
        nodes = rng.randint(1, 6)
        if rng.random() < 0.3:
            free = rng.randint(0, nodes * 64)
            parts.append(cpu_partition(pid, nodes=nodes, free_cores=free, free_nodes=free // 64, **common))
        else:
            family, model, cards = rng.choice((("v100", "V100M32", 4), ("a10", "A10", 1)))
            free = rng.randint(0, nodes * cards)
            fields = {"accelerator_family": family, "accelerator_model": model, "gpus_per_node": cards}
            parts.append(partition(pid, nodes=nodes, free_gpus=free, free_nodes=free // cards, **fields, **common))
    return parts


def consumed(p: PartitionView, job: JobSpec) -> PartitionView:
    """``p`` once ``job`` went to it: started on free cards/cores and whole nodes, or queued."""
    gpu = p.gpus_per_node > 0
    per_node = p.gpus_per_node or p.cores_per_node
    requested = job.nodes * (job.gpus_per_node if gpu else job.cores_per_node)
    free = p.free_gpus if gpu else p.free_cores
    if free < requested or (job.nodes > 1 and p.free_nodes < job.nodes):
        queued = requested * job.walltime_s
        if gpu:
            return dataclasses.replace(p, queued_gpu_seconds=p.queued_gpu_seconds + queued)
        return dataclasses.replace(p, queued_core_seconds=p.queued_core_seconds + queued)
    free -= requested
    free_nodes = max(0, p.free_nodes - job.nodes) if job.nodes > 1 or requested >= per_node else p.free_nodes
    free_nodes = min(free_nodes, free // per_node)
    if gpu:
        return dataclasses.replace(p, free_gpus=free, free_nodes=free_nodes)
    return dataclasses.replace(p, free_cores=free, free_nodes=free_nodes)


MIXED_SHAPES = [
    gpu_job(),
    gpu_job(gpus_per_node=4),
    gpu_job(gpus_per_node=4, nodes=2, walltime_s=7200),
    gpu_job(gpus_per_node=2, dataset="pdb"),
    gpu_job(preferred_sites=("site3", "site1")),
    gpu_job(accepted_models=frozenset({"A10"})),
    JobSpec(cores_per_node=8),
    JobSpec(cores_per_node=64, nodes=2, walltime_s=7200),
    JobSpec(cores_per_node=32, dataset="pdb", preferred_sites=("site2",)),
]


@pytest.mark.parametrize("heap_seed", [1, 8])
@pytest.mark.parametrize("seed", range(12))
def test_batch_decisions_of_mixed_shapes_equal_a_full_scan_on_the_capacity_left(seed, heap_seed, monkeypatch):
    """Shapes that share partitions, multi-node jobs, tight quotas: every decision of the batch is the
    one an exhaustive single decision makes on the snapshot updated with the earlier ones (also when
    each shape's search starts from its best candidate alone, so that it keeps visiting new ones)."""
    monkeypatch.setattr(routing_router, "HEAP_SEED", heap_seed)
    rng = random.Random(seed)
    parts = mixed_federation(rng, rng.choice((6, 15, 30)))
    jobs = rng.choices(MIXED_SHAPES, k=60)
    quota = {site: rng.choice((0, 2_000, 20_000, 200_000)) for site in range(1, 6)}
    state = {p.partition_id: p for p in parts}
    left = dict(quota)
    for job, decision in zip(jobs, route_batch(jobs, parts, quota, PEAK_NOW), strict=True):
        fresh = route(job, list(state.values()), left, PEAK_NOW)
        assert (decision.chosen_partition_id, decision.refusal) == (fresh.chosen_partition_id, fresh.refusal)
        assert (decision.estimated_cost, decision.estimated_wait_s) == (fresh.estimated_cost, fresh.estimated_wait_s)
        assert decision.score == (None if fresh.score is None else pytest.approx(fresh.score))
        if decision.routed:
            left[decision.chosen_site_id] -= decision.estimated_cost
            state[decision.chosen_partition_id] = consumed(state[decision.chosen_partition_id], job)


# --------------------------------------------------------------------------- the compact explanation


def rounded(x: float) -> float:
    return round(x * 1e4) / 1e4


def assert_explains_like_the_breakdown(decision, limit: int = 3) -> None:
    """``explain()`` lists the breakdown's evaluated candidates (best first, rounded) and counts its exclusions."""
    explanation = decision.explain(limit)
    assert json.loads(json.dumps(explanation)) == explanation
    entries = decision.breakdown()
    listed = [e for e in entries if e.status in (CHOSEN, SCORED)][:limit]
    assert len(explanation["candidates"]) == len(listed)
    for candidate, entry in zip(explanation["candidates"], listed, strict=True):
        assert candidate == {
            "partition_id": entry.partition_id,
            "site_code": entry.site_code,
            "status": entry.status,
            "total": rounded(entry.total),
            "wait": rounded(entry.wait),
            "price": rounded(entry.price),
            "locality": rounded(entry.locality),
            "balance": rounded(entry.balance),
            "preference": rounded(entry.preference),
            "estimated_wait_s": entry.estimated_wait_s,
            "estimated_cost": entry.estimated_cost,
        }
    assert explanation["excluded"] == dict(Counter(e.excluded_by for e in entries if e.status == EXCLUDED))
    assert explanation["skipped_by_kind"] == decision.skipped_by_kind
    assert (explanation["partition_id"], explanation["site_id"], explanation["site_code"]) == (
        decision.chosen_partition_id,
        decision.chosen_site_id,
        decision.chosen_site_code,
    )
    assert explanation["estimated_cost"] == decision.estimated_cost
    assert explanation["estimated_wait_s"] == decision.estimated_wait_s
    assert explanation["score"] == (None if decision.score is None else rounded(decision.score))
    assert (explanation["refusal"], explanation["message"]) == (decision.refusal, decision.refusal_message)


def test_explain_gives_the_choice_its_score_parts_and_the_exclusions_counted_by_reason():
    parts = [
        partition(1, price_card_hour=1500, site_id=1),
        partition(2, price_card_hour=1000, site_id=2),  # the cheapest, but the project has no quota there
        partition(3, site_state="offline"),
        partition(4, max_walltime_s=1800),
        partition(5, site_state="draining"),
        cpu_partition(6),
    ]
    decision = route(gpu_job(dataset="pdb"), parts, {1: PLENTY, 2: 0, 3: PLENTY, 4: PLENTY, 5: PLENTY}, PEAK_NOW)
    explanation = decision.explain()
    assert explanation["partition_id"] == 1 and explanation["site_code"] == "site1"
    (chosen,) = explanation["candidates"]
    assert chosen["status"] == CHOSEN and chosen["partition_id"] == 1
    assert chosen["total"] == explanation["score"]
    assert chosen["price"] == rounded(0.30 * ((8 * 100 + 1500) / (8 * 100 + 1000) - 1))  # vs the cheapest
    assert chosen["locality"] == 0.15  # no pdb there
    assert explanation["excluded"] == {"walltime_over_limit": 1, "no_site_online": 2, "insufficient_quota": 1}
    assert explanation["skipped_by_kind"] == 1  # the CPU partition
    assert explanation["refusal"] is None and explanation["message"] == ""
    assert_explains_like_the_breakdown(decision)


def test_explain_of_a_refused_job_gives_the_reason_the_message_and_the_exclusions():
    parts = [partition(1, site_state="offline"), partition(2, max_walltime_s=1800), cpu_partition(3)]
    decision = route(gpu_job(), parts, quota_for(*parts), PEAK_NOW)
    explanation = decision.explain()
    assert explanation["refusal"] == "no_site_online"
    assert explanation["message"] == decision.refusal_message != ""
    assert explanation["excluded"] == {"walltime_over_limit": 1, "no_site_online": 1}
    assert explanation["partition_id"] is None and explanation["score"] is None
    assert explanation["estimated_cost"] == 0 and explanation["candidates"] == []
    assert_explains_like_the_breakdown(decision)

    short = route(gpu_job(), [partition(1)], {1: 1}, PEAK_NOW).explain()
    assert short["refusal"] == "insufficient_quota" and short["excluded"] == {"insufficient_quota": 1}
    nothing = route(gpu_job(), [], {}, PEAK_NOW).explain()
    assert nothing["refusal"] == "no_partitions" and nothing["excluded"] == {} and nothing["message"]


def test_explain_lists_at_most_limit_candidates_best_first_with_the_choice_first():
    cheap = partition(1, price_card_hour=1900, free_gpus=8, free_nodes=2, free_cores=64, running_jobs=14)
    dear = partition(2, price_card_hour=2000, free_gpus=8, free_nodes=2, free_cores=64, running_jobs=14)
    third = partition(3, price_card_hour=2100, free_gpus=4, free_nodes=1, free_cores=32, running_jobs=14)
    decisions = route_batch(
        [gpu_job(gpus_per_node=4)] * 6, [cheap, dear, third], quota_for(cheap, dear, third), PEAK_NOW
    )
    busy = decisions[-1]
    statuses = [c["status"] for c in busy.explain(limit=10)["candidates"]]
    assert statuses[0] == CHOSEN and set(statuses[1:]) <= {SCORED} and len(statuses) >= 2
    totals = [c["total"] for c in busy.explain(limit=10)["candidates"]]
    assert totals == sorted(totals)
    assert len(busy.explain(limit=1)["candidates"]) == 1
    assert busy.explain(limit=0)["candidates"] == [] and busy.explain(limit=0)["score"] == rounded(busy.score)
    for decision in decisions:
        assert_explains_like_the_breakdown(decision, limit=10)


def test_explain_returns_a_fresh_dict_every_time():
    decision = route(gpu_job(), [partition(1)], quota_for(partition(1)), PEAK_NOW)
    first = decision.explain()
    first["candidates"][0]["total"] = -1
    first["excluded"]["made_up"] = 1
    first["site_code"] = "elsewhere"
    assert decision.explain() != first
    assert_explains_like_the_breakdown(decision)


def test_a_batch_decision_counts_the_partitions_found_out_of_quota_by_earlier_jobs():
    cheap = partition(1, price_card_hour=1000)
    dear = partition(2, price_card_hour=3000)
    job = gpu_job()
    per_job = estimate_cost(job, cheap, PEAK_NOW)
    decisions = route_batch([job] * 3, [cheap, dear], {1: per_job, 2: PLENTY}, PEAK_NOW)
    assert [d.chosen_partition_id for d in decisions] == [1, 2, 2]
    for decision in decisions[1:]:
        assert decision.explain()["excluded"] == {"insufficient_quota": 1}
        by_id = {c.partition_id: c for c in decision.breakdown()}
        assert by_id[1].excluded_by == "insufficient_quota"
    for decision in decisions:
        assert_explains_like_the_breakdown(decision)


@pytest.mark.parametrize("seed", range(8))
def test_explain_agrees_with_the_breakdown_on_every_decision_of_a_batch(seed):
    rng = random.Random(100 + seed)
    parts = mixed_federation(rng, 25)
    jobs = rng.choices(MIXED_SHAPES, k=80)
    quota = {site: rng.choice((0, 20_000, 200_000, PLENTY)) for site in range(1, 6)}
    router = Router(parts)
    for decision in router.route_batch(jobs, quota, PEAK_NOW):
        assert_explains_like_the_breakdown(decision, limit=rng.choice((1, 3, 50)))
    for job in MIXED_SHAPES:
        assert_explains_like_the_breakdown(router.route(job, quota, PEAK_NOW))


# --------------------------------------------------------------------------- determinism


def test_decisions_do_not_depend_on_the_order_partitions_are_given_in():
    rng = random.Random(11)
    parts = random_federation(rng, 20)
    quota = {site: PLENTY for site in range(1, 6)}
    jobs = [gpu_job(gpus_per_node=g) for g in (1, 2, 4, 8)] * 3
    first = route_batch(jobs, parts, quota, PEAK_NOW)
    shuffled = list(parts)
    rng.shuffle(shuffled)
    again = route_batch(jobs, shuffled, quota, PEAK_NOW)
    assert first == again
    assert [d.breakdown() for d in first] == [d.breakdown() for d in again]


def test_ties_go_to_the_lowest_partition_id():
    parts = [partition(3), partition(1), partition(2)]
    assert route(gpu_job(), parts, quota_for(*parts), PEAK_NOW).chosen_partition_id == 1


def test_identical_shapes_route_identically_until_capacity_changes():
    parts = [partition(1, free_gpus=1, free_nodes=0), partition(2, free_gpus=1, free_nodes=0, price_card_hour=2100)]
    router = Router(parts)
    quota = quota_for(*parts)
    job = gpu_job()
    assert router.route(job, quota, PEAK_NOW) == router.route(gpu_job(), quota, PEAK_NOW)
    first, second = router.route_batch([job, job], quota, PEAK_NOW)
    assert first.chosen_partition_id == 1 and second.chosen_partition_id == 2


def test_the_router_and_the_broker_import_nothing_from_django():
    code = (
        "import sys; import federation.routing, federation.broker; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_package_keeps_the_public_names_of_the_router_module():
    public = {
        "BOUNDED", "CHINA_UTC_OFFSET_S", "CHOSEN", "DEFAULT_WEIGHTS", "ECOSYSTEMS", "EXCLUDED", "NO_PARTITIONS",
        "PERMILLE", "REASON_BY_STAGE", "REFUSAL_MESSAGES", "ROUTABLE_STATES", "SCORED", "SECONDS_PER_HOUR",
        "SITE_STATES", "CandidateScore", "JobSpec", "PartitionView", "Router", "RoutingDecision", "ScoringWeights",
        "Stage", "estimate_cost", "price_multiplier_permille", "route", "route_batch",
    }  # fmt: skip
    assert set(federation.routing.__all__) == public
    assert all(getattr(federation.routing, name) is not None for name in public)
