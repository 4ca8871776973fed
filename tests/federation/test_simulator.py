"""The simulated centre (federation.simulator): pure Python on a virtual clock, no database.

``data/openb_sample.csv`` is every 27th row of the Alibaba openb pod list
(``../shared/data/traces/alibaba-openb/openb_pod_list_default.csv``, 302 pods), so the
suite does not need ``../shared`` to run.
"""

import ast
import random
import sys
from pathlib import Path

import pytest

from federation.sim.openb import pod_to_job, read_pods, replayable
from federation.sim.partition import PartitionState
from federation.sim.pool import INFINITY, NodePool
from federation.simulator import (
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
    TERMINAL_STATES,
    TIMED_OUT,
    PartitionSpec,
    ScaledClock,
    SimJob,
    SimulatedSite,
)

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]


def cpu(nodes=2, cores=4, memory=1000, max_walltime_s=86400, name="cpu"):
    return PartitionSpec(name, nodes, cores, memory, 0, max_walltime_s)


def job(job_id, *, partition="cpu", nodes=1, cores=1, memory=0, gpus=0, wall=100, runtime=None, exit_code=0):
    return SimJob(job_id, partition, nodes, cores, memory, gpus, wall, wall if runtime is None else runtime, exit_code)


def run(site, until):
    """Advance and index the changes: job id -> [(state, time, detail), ...]."""
    by_job = {}
    for change in site.advance_to(until):
        by_job.setdefault(change.job_id, []).append((change.state, change.time, change.detail))
    return by_job


def run_until(site, predicate, *, step=60, limit=10**7):
    """Advance in steps until ``predicate(changes so far)``; return those changes (indexed as ``run``)."""
    changes = {}
    t = site.now
    while not predicate(changes):
        t += step
        assert t < limit, "the awaited event never came"
        for job_id, seen in run(site, t).items():
            changes.setdefault(job_id, []).extend(seen)
    return changes


def failed(changes):
    return [job_id for job_id, seen in changes.items() if seen[-1][0] == FAILED]


def started_at(changes, job_id):
    return next(t for state, t, _ in changes.get(job_id, []) if state == RUNNING)


def final(changes, job_id):
    return changes[job_id][-1]


# -- submission ---------------------------------------------------------------------------


def test_submit_acks_accepted_jobs_with_a_site_job_id_and_refuses_the_rest_with_a_reason():
    site = SimulatedSite("s", [cpu(nodes=2, cores=4, memory=1000, max_walltime_s=3600)], seed=1)
    acks = site.submit_batch(
        [
            job("ok", cores=4),
            job("nopart", partition="gpu"),
            job("wide", nodes=3),
            job("fat", cores=5),
            job("heavy", memory=1001),
            job("cards", gpus=1),
            job("long", wall=3601),
            job("empty", cores=0),
            job("ok"),
        ]
    )
    assert [(a.job_id, a.accepted, a.reason) for a in acks] == [
        ("ok", True, ""),
        ("nopart", False, REFUSED_UNKNOWN_PARTITION),
        ("wide", False, REFUSED_TOO_LARGE),
        ("fat", False, REFUSED_TOO_LARGE),
        ("heavy", False, REFUSED_TOO_LARGE),
        ("cards", False, REFUSED_TOO_LARGE),
        ("long", False, REFUSED_WALLTIME),
        ("empty", False, REFUSED_INVALID),
        ("ok", False, REFUSED_DUPLICATE),
    ]
    assert acks[0].site_job_id
    assert run(site, 0)["ok"] == [(QUEUED, 0, ""), (RUNNING, 0, "")]


def test_an_ended_job_is_still_refused_as_a_duplicate_while_the_site_remembers_it():
    site = SimulatedSite("s", [cpu()], seed=1, remember_ended=2)
    site.submit_batch([job(f"j{k}", wall=10) for k in range(5)])
    site.advance_to(100)
    assert [site.job_state(f"j{k}") for k in range(5)] == [None, None, COMPLETED, COMPLETED, COMPLETED]
    acks = site.submit_batch([job("j0"), job("j4")])
    assert [(a.accepted, a.reason) for a in acks] == [(True, ""), (False, REFUSED_DUPLICATE)]


def test_next_event_time_says_when_the_site_next_needs_advancing():
    site = SimulatedSite("s", [cpu()], seed=1)
    assert site.next_event_time() is None
    site.submit_batch([job("a", wall=100, runtime=40), job("b", wall=100, runtime=70)])
    assert site.next_event_time() == 0  # a pass is due now
    site.advance_to(0)
    assert site.next_event_time() == 40
    site.cancel("a")
    site.advance_to(0)
    assert site.next_event_time() == 70


def test_a_job_without_a_runtime_runs_a_seeded_fraction_of_its_walltime():
    def ends(seed):
        site = SimulatedSite("s", [cpu(nodes=10, cores=1)], seed=seed)
        site.submit_batch([SimJob(f"j{k}", "cpu", 1, 1, 0, 0, 1000, None) for k in range(10)])
        return [final(changes, f"j{k}") for changes in [run(site, 2000)] for k in range(10)]

    first = ends(7)
    assert all(state == COMPLETED and 0 < t <= 1000 for state, t, _ in first)
    assert ends(7) == first
    assert ends(8) != first


# -- scheduling ---------------------------------------------------------------------------


def test_jobs_start_in_fifo_order_when_each_needs_the_whole_partition():
    site = SimulatedSite("s", [cpu(nodes=1, cores=4)], seed=1)
    site.submit_batch([job(name, cores=4, wall=100) for name in "abcd"])
    changes = run(site, 1000)
    assert [started_at(changes, name) for name in "abcd"] == [0, 100, 200, 300]
    assert [final(changes, name)[0] for name in "abcd"] == [COMPLETED] * 4


def test_a_later_job_does_not_overtake_a_blocked_head_it_would_delay():
    # One node: the head (4 cores) waits for the running job; a 1-core job with a long
    # walltime would still hold a core when the head's reservation comes, so it waits too.
    site = SimulatedSite("s", [cpu(nodes=1, cores=4)], seed=1)
    site.submit_batch(
        [job("running", cores=2, wall=100), job("head", cores=4, wall=100), job("long", cores=1, wall=500)]
    )
    changes = run(site, 1000)
    assert started_at(changes, "running") == 0
    assert started_at(changes, "head") == 100
    assert started_at(changes, "long") == 200


def test_easy_backfill_starts_a_job_that_ends_before_the_heads_reservation():
    # Node 0 is full until t=1000, node 1 half used until t=500. The head needs both whole nodes:
    # its reservation is t=1000. "short" fits on node 1 now and ends (by walltime) at 400: it
    # starts now. "long" fits too but would hold node 1 until 2000: it must wait.
    site = SimulatedSite("s", [cpu(nodes=2, cores=4)], seed=1)
    site.submit_batch(
        [
            job("full", cores=4, wall=1000),
            job("half", cores=2, wall=500),
            job("head", nodes=2, cores=4, wall=100),
            job("short", cores=2, wall=400),
            job("long", cores=2, wall=2000),
        ]
    )
    changes = run(site, 5000)
    assert started_at(changes, "short") == 0
    assert started_at(changes, "head") == 1000  # exactly its reservation: not delayed
    assert started_at(changes, "long") == 1100  # after the head, not before it
    assert site.job_state("long") == COMPLETED


def test_easy_backfill_starts_a_long_job_on_nodes_the_head_does_not_need():
    # Three nodes; the head needs two whole nodes, reserved when nodes 0 and 1 free at t=1000.
    # The long job fits on node 2, which the reservation does not need: it starts now.
    site = SimulatedSite("s", [cpu(nodes=3, cores=4)], seed=1)
    site.submit_batch(
        [
            job("a", cores=4, wall=1000),
            job("b", cores=4, wall=1000),
            job("c", cores=2, wall=2000),
            job("head", nodes=2, cores=4, wall=100),
            job("long", cores=2, wall=5000),
            job("longer", cores=2, wall=5000),  # no room left outside the reserved nodes
        ]
    )
    changes = run(site, 20000)
    assert started_at(changes, "long") == 0
    assert started_at(changes, "head") == 1000
    assert started_at(changes, "longer") == 1100


@pytest.mark.parametrize("depth, short_starts_at", [(1, 1100), (2, 0)])
def test_backfill_considers_only_the_first_backfill_depth_queued_jobs(depth, short_starts_at):
    site = SimulatedSite("s", [cpu(nodes=2, cores=4)], seed=1, backfill_depth=depth)
    site.submit_batch(
        [
            job("full", cores=4, wall=1000),
            job("head", nodes=2, cores=4, wall=100),
            job("long", cores=1, wall=5000),  # would delay the head: never backfilled
            job("short", cores=1, wall=10),  # would not, but is it looked at?
        ]
    )
    assert started_at(run(site, 2000), "short") == short_starts_at


def test_the_head_starts_as_soon_as_jobs_end_early_even_with_a_later_reservation():
    site = SimulatedSite("s", [cpu(nodes=1, cores=4)], seed=1)
    site.submit_batch([job("early", cores=4, wall=1000, runtime=10), job("head", cores=4, wall=100)])
    assert started_at(run(site, 100), "head") == 10


def test_packing_respects_cores_gpus_and_memory_per_node():
    gpu = PartitionSpec("gpu", 2, 8, 1000, 2, 86400)
    site = SimulatedSite("s", [gpu], seed=1)
    site.submit_batch(
        [
            job("m1", partition="gpu", cores=1, memory=600, gpus=1),
            job("m2", partition="gpu", cores=1, memory=600, gpus=1),  # memory: not beside m1
            job("g1", partition="gpu", cores=1, memory=100, gpus=1),
            job("g2", partition="gpu", cores=1, memory=100, gpus=1),
            job("g3", partition="gpu", cores=1, memory=100, gpus=1),  # no card left
            job("c", partition="gpu", cores=7, memory=100),  # 7 cores: none left on any node
            job("c6", partition="gpu", cores=6, memory=100),  # 6 cores fit beside two 1-core jobs
        ]
    )
    changes = run(site, 0)
    assert site.job_nodes("m1") != site.job_nodes("m2")
    for name in ("m1", "m2", "g1", "g2", "c6"):
        assert started_at(changes, name) == 0
    assert "g3" not in {j for j, cs in changes.items() if any(s == RUNNING for s, _, _ in cs)}
    assert "c" not in {j for j, cs in changes.items() if any(s == RUNNING for s, _, _ in cs)}
    snap = site.capacity_snapshot().partition("gpu")
    assert (snap.gpus_free, snap.cores_free, snap.memory_mb_free) == (0, 16 - 4 - 6, 2000 - 1500)


def test_a_multi_node_job_gets_distinct_nodes_each_with_its_share():
    site = SimulatedSite("s", [cpu(nodes=4, cores=4, memory=100)], seed=1)
    site.submit_batch([job("small", cores=3), job("mpi", nodes=3, cores=2, memory=100)])
    run(site, 0)
    nodes = site.job_nodes("mpi")
    assert len(nodes) == len(set(nodes)) == 3
    assert site.job_nodes("small")[0] not in nodes  # 1 core left there: the mpi job needs 2
    snap = site.capacity_snapshot().partition("cpu")
    assert snap.cores_free == 16 - 3 - 6
    assert snap.nodes_idle == 0


def test_best_fit_fills_a_used_node_before_an_idle_one():
    site = SimulatedSite("s", [cpu(nodes=2, cores=4)], seed=1)
    site.submit_batch([job("a", cores=2), job("b", cores=2)])
    run(site, 0)
    assert site.job_nodes("a") == site.job_nodes("b")
    assert site.capacity_snapshot().partition("cpu").nodes_idle == 1


def test_one_schedule_pass_per_event_timestamp(monkeypatch):
    site = SimulatedSite("s", [cpu(nodes=8, cores=1)], seed=1)
    site.submit_batch([job(f"j{k}", wall=100) for k in range(8)] + [job("wide", nodes=8, wall=10)])
    passes = []
    original = PartitionState.schedule
    monkeypatch.setattr(
        PartitionState, "schedule", lambda self, now, *args: passes.append(now) or original(self, now, *args)
    )
    changes = run(site, 100)
    assert passes == [0, 100]  # the eight ends at t=100 make one pass, which starts "wide"
    assert started_at(changes, "wide") == 100


# -- endings ------------------------------------------------------------------------------


def test_a_job_that_runs_past_its_walltime_times_out_at_the_walltime():
    site = SimulatedSite("s", [cpu()], seed=1)
    site.submit_batch([job("slow", wall=300, runtime=500), job("bad", wall=300, runtime=20, exit_code=3)])
    changes = run(site, 1000)
    assert final(changes, "slow") == (TIMED_OUT, 300, DETAIL_WALLTIME)
    assert final(changes, "bad") == (FAILED, 20, "exit_code=3")


def test_status_changes_carry_the_exit_code_of_jobs_that_ended_by_themselves():
    site = SimulatedSite("s", [cpu()], seed=1)
    site.submit_batch([job("ok", runtime=5), job("bad", runtime=5, exit_code=2)])
    codes = {c.job_id: c.exit_code for c in site.advance_to(10) if c.state in TERMINAL_STATES}
    assert codes == {"ok": 0, "bad": 2}


def test_cancelling_a_queued_job_drops_it_and_a_running_job_frees_its_node():
    site = SimulatedSite("s", [cpu(nodes=1, cores=4)], seed=1)
    site.submit_batch([job("run", cores=4, wall=1000), job("queued", cores=4), job("next", cores=4, wall=100)])
    changes = run(site, 10)
    assert site.cancel("queued") is True
    assert run(site, 50) == {"queued": [(CANCELLED, 10, DETAIL_CANCELLED)]}
    assert site.cancel("run") is True
    for job_id, seen in run(site, 1000).items():
        changes.setdefault(job_id, []).extend(seen)
    assert final(changes, "run") == (CANCELLED, 50, DETAIL_CANCELLED)
    assert started_at(changes, "next") == 50
    assert site.cancel("run") is False
    assert site.cancel("never-submitted") is False


# -- failures and maintenance ---------------------------------------------------------------


def test_a_node_failure_fails_the_jobs_on_that_node_and_the_node_comes_back_after_repair():
    partition = cpu(nodes=1, cores=4, max_walltime_s=10**7)
    site = SimulatedSite("s", [partition], seed=3, node_failure_rate_per_hour=1.0, node_repair_s=600)
    site.submit_batch([job("a", cores=2, wall=10**7), job("b", cores=2, wall=10**7)])
    changes = run_until(site, failed)
    state, failed_at, detail = final(changes, "a")
    assert (state, detail) == (FAILED, DETAIL_NODE_FAILURE)
    assert final(changes, "b") == (FAILED, failed_at, DETAIL_NODE_FAILURE)
    snap = site.capacity_snapshot().partition("cpu")
    assert (snap.nodes_up, snap.cores_free, snap.running) == (0, 0, 0)
    site.submit_batch([job("c", cores=1, wall=10)])
    assert started_at(run(site, failed_at + 600), "c") == failed_at + 600  # the node is back: c starts at once
    assert site.capacity_snapshot().partition("cpu").nodes_up == 1


def test_a_node_failure_spares_the_jobs_on_other_nodes():
    partition = cpu(nodes=4, cores=1, max_walltime_s=10**7)
    site = SimulatedSite("s", [partition], seed=5, node_failure_rate_per_hour=2.0, node_repair_s=10**6)
    site.submit_batch([job(f"j{k}", wall=10**7) for k in range(4)])
    changes = run_until(site, failed)
    assert len(failed(changes)) == 1
    snap = site.capacity_snapshot().partition("cpu")
    assert (snap.running, snap.nodes_up, snap.cores_free) == (3, 3, 0)


def test_offline_fails_running_and_queued_jobs_refuses_submits_and_online_accepts_again():
    site = SimulatedSite("s", [cpu(nodes=1, cores=4)], seed=1)
    site.submit_batch([job("running", cores=4, wall=1000), job("queued", cores=4)])
    run(site, 100)
    site.set_offline()
    assert site.capacity_snapshot().state == SITE_OFFLINE
    assert site.submit_batch([job("late")])[0].reason == REFUSED_OFFLINE
    changes = run(site, 200)
    assert final(changes, "running") == (FAILED, 100, DETAIL_SITE_OUTAGE)
    assert final(changes, "queued") == (FAILED, 100, DETAIL_SITE_OUTAGE)
    snap = site.capacity_snapshot().partition("cpu")
    assert (snap.running, snap.queued, snap.cores_free) == (0, 0, 4)
    site.set_online()
    assert site.capacity_snapshot().state == SITE_ONLINE
    assert site.submit_batch([job("again")])[0].accepted
    assert final(run(site, 1000), "again") == (COMPLETED, 300, "")


def test_random_outages_take_the_site_offline_for_their_duration():
    partition = cpu(nodes=1, cores=1, max_walltime_s=10**7)
    site = SimulatedSite("s", [partition], seed=2, outage_rate_per_day=2.0, outage_duration_s=3600)
    site.submit_batch([job("victim", wall=10**7)])
    changes = run_until(site, failed)
    _, outage_at, detail = final(changes, "victim")
    assert detail == DETAIL_SITE_OUTAGE
    assert site.capacity_snapshot().state == SITE_OFFLINE
    assert site.submit_batch([job("refused")])[0].reason == REFUSED_OFFLINE
    site.advance_to(outage_at + 3600)
    assert site.capacity_snapshot().state == SITE_ONLINE
    assert site.submit_batch([job("accepted")])[0].accepted


def test_drain_lets_running_jobs_finish_but_starts_nothing_until_resumed():
    site = SimulatedSite("s", [cpu(nodes=1, cores=4), cpu(name="other")], seed=1)
    site.submit_batch([job("running", cores=2, wall=100), job("other", partition="other")])
    run(site, 10)
    site.drain("cpu")
    site.submit_batch([job("waits", cores=2, wall=100)])
    changes = run(site, 50)
    assert "waits" in changes and changes["waits"] == [(QUEUED, 10, "")]
    assert site.capacity_snapshot().partition("cpu").state == PARTITION_DRAINING
    assert site.capacity_snapshot().partition("other").state == PARTITION_UP
    changes = run(site, 500)
    assert final(changes, "running") == (COMPLETED, 100, "")
    assert "waits" not in changes
    assert site.capacity_snapshot().partition("cpu").state == PARTITION_DRAINED
    site.resume("cpu")  # at t=500: the queued job starts then
    assert started_at(run(site, 600), "waits") == 500


def test_a_site_wide_drain_reports_the_site_as_draining():
    site = SimulatedSite("s", [cpu()], seed=1)
    site.drain()
    assert site.capacity_snapshot().state == SITE_DRAINING
    assert site.submit_batch([job("a")])[0].accepted  # queued for after the maintenance
    assert "a" in run(site, 100) and site.job_state("a") == QUEUED
    site.resume()
    assert site.capacity_snapshot().state == SITE_ONLINE
    assert started_at(run(site, 100), "a") == 100


# -- clock, determinism, consistency ---------------------------------------------------------


def test_time_only_runs_forward():
    site = SimulatedSite("s", [cpu()], seed=1, clock_start=1000.0)
    site.advance_to(1000.0)
    with pytest.raises(ValueError):
        site.advance_to(999.0)


def test_the_callback_sees_the_same_changes_that_advance_to_returns():
    seen = []
    site = SimulatedSite("s", [cpu()], seed=1, on_change=seen.append)
    site.submit_batch([job("a"), job("b", runtime=500)])
    returned = site.advance_to(1000)
    assert seen == returned and len(seen) == 6


def test_a_scaled_clock_runs_virtual_time_faster_than_the_wall():
    wall = iter([100.0, 100.0, 102.5])
    clock = ScaledClock(60.0, start=5000.0, wall=lambda: next(wall))
    assert clock.now() == 5000.0
    assert clock.now() == 5150.0


def random_workload(seed, count=300):
    rng = random.Random(seed)
    jobs = []
    for k in range(count):
        gpu = rng.random() < 0.6
        jobs.append(
            (
                rng.uniform(0, 20000),
                SimJob(
                    f"j{k}",
                    "gpu" if gpu else "cpu",
                    rng.choice([1, 1, 1, 2, 4]),
                    rng.randint(1, 8),
                    rng.randint(0, 4000),
                    rng.randint(1, 4) if gpu else 0,
                    rng.choice([600, 1800, 3600, 7200]),
                    rng.choice([None, rng.randint(0, 9000)]),
                    rng.choice([0, 0, 0, 1]),
                ),
            )
        )
    return sorted(jobs, key=lambda pair: pair[0])


def federated_site(seed, **kwargs):
    partitions = [cpu(nodes=6, cores=8, memory=8000), PartitionSpec("gpu", 5, 16, 16000, 4, 86400)]
    return SimulatedSite("s", partitions, seed=seed, **kwargs)


def replay(site, jobs, step=120, until=40000, check=None):
    changes, pending = [], list(jobs)
    t = 0
    while t < until:
        t += step
        changes.extend(site.advance_to(t))
        batch = []
        while pending and pending[0][0] <= t:
            batch.append(pending.pop(0)[1])
        site.submit_batch(batch)
        if check:
            check(site, changes)
    return changes


def test_the_same_seed_gives_the_same_sequence_of_changes():
    kwargs = {"node_failure_rate_per_hour": 0.5, "outage_rate_per_day": 4.0, "outage_duration_s": 1800}
    first = replay(federated_site(11, **kwargs), random_workload(4))
    again = replay(federated_site(11, **kwargs), random_workload(4))
    other = replay(federated_site(12, **kwargs), random_workload(4))
    key = [(c.job_id, c.state, c.time, c.detail, c.exit_code) for c in first]
    assert key == [(c.job_id, c.state, c.time, c.detail, c.exit_code) for c in again]
    assert key != [(c.job_id, c.state, c.time, c.detail, c.exit_code) for c in other]
    assert {c.detail for c in first} >= {DETAIL_NODE_FAILURE, DETAIL_SITE_OUTAGE, DETAIL_WALLTIME}


def test_capacity_snapshot_agrees_with_the_jobs_reported_running_and_queued():
    jobs = {j.job_id: j for _, j in random_workload(9)}
    per_node = {"cpu": (8, 0), "gpu": (16, 4)}
    checked = []

    seen = []  # through the callback: it includes the changes of the latest submit too

    def check(site, _returned):
        state = {c.job_id: c.state for c in seen}
        snap = site.capacity_snapshot()
        for p in snap.partitions:
            mine = [jobs[j] for j in state if jobs[j].partition == p.name]
            running = [j for j in mine if state[j.job_id] == RUNNING]
            queued = [j for j in mine if state[j.job_id] == QUEUED]
            cores, gpus = per_node[p.name]
            assert (p.running, p.queued) == (len(running), len(queued))
            assert p.nodes_up * cores - p.cores_free == sum(j.nodes * j.cores_per_node for j in running)
            assert p.nodes_up * gpus - p.gpus_free == sum(j.nodes * j.gpus_per_node for j in running)
            assert p.pending_core_seconds == sum(j.nodes * j.cores_per_node * j.walltime_s for j in queued)
            assert 0 <= p.nodes_idle <= p.nodes_up <= p.nodes_total
        checked.append(snap.time)

    site = federated_site(3, node_failure_rate_per_hour=0.3, on_change=seen.append)
    replay(site, random_workload(9), step=300, check=check)
    assert len(checked) > 100


def test_the_allocated_core_seconds_add_up_to_the_jobs_that_ran():
    site = SimulatedSite("s", [cpu(nodes=2, cores=4)], seed=1)
    site.submit_batch([job("a", cores=4, wall=100), job("b", nodes=2, cores=2, wall=50, runtime=30)])
    site.advance_to(1000)
    assert site.capacity_snapshot().partition("cpu").core_seconds_allocated == 4 * 100 + 4 * 30


# -- the trace ----------------------------------------------------------------------------


def test_the_openb_sample_replays_on_a_simulated_site():
    pods = read_pods(DATA / "openb_sample.csv")
    assert len(pods) > 250
    ran = replayable(pods)
    assert 0 < len(ran) < len(pods)  # pending pods never started and carry no run time
    partitions = [
        PartitionSpec("cpu", 20, 32, 262144, 0, 3 * 86400),
        PartitionSpec("gpu-g2", 40, 96, 393216, 8, 3 * 86400),
        PartitionSpec("gpu-t4", 30, 104, 524288, 2, 3 * 86400),
    ]
    rng = random.Random(1)
    jobs, too_large = [], 0
    for k, pod in enumerate(ran):
        options = partitions[1:] if pod.num_gpu else partitions
        fits = [
            p
            for p in options
            if p.cores_per_node >= pod.cores
            and p.memory_mb_per_node >= pod.memory_mib
            and p.gpus_per_node >= pod.num_gpu
        ]
        too_large += not fits
        partition = (fits or options)[k % len(fits or options)].name
        arrival = k * 30.0  # compress the two-month trace into a couple of hours
        jobs.append((arrival, pod_to_job(pod, job_id=pod.name, partition=partition, rng=rng)))
    site = SimulatedSite("openb", partitions, seed=1, node_failure_rate_per_hour=0.2)
    changes = replay(site, jobs, step=60, until=4 * 86400)
    last = {c.job_id: c.state for c in changes}
    assert too_large <= 2 and len(last) == len(jobs) - too_large  # every pod that fits a node was accepted
    assert all(state in TERMINAL_STATES for state in last.values())
    assert {COMPLETED, FAILED, TIMED_OUT} <= set(last.values())


# -- the pure core --------------------------------------------------------------------------


def test_a_reservation_is_the_earliest_expected_end_after_which_the_job_fits():
    """Against a brute-force replay of the releases, on many random partitions."""

    class Running:
        def __init__(self, nodes, c, g, m, end, order):
            self.nodes, self.c, self.g, self.m, self.expected_end, self.order = nodes, c, g, m, end, order

    rng = random.Random(1)
    checked = 0
    for _ in range(600):
        size, cores, gpus = rng.randint(1, 6), rng.choice([4, 8]), rng.choice([0, 2, 4])
        pool, running = NodePool(size, cores, 100, gpus), []
        for k in range(rng.randint(0, 16)):
            shape = (rng.randint(1, min(2, size)), rng.randint(1, cores), rng.randint(0, gpus), rng.randint(0, 60))
            nodes = pool.find(*shape)
            if nodes:
                pool.allocate(nodes, *shape[1:])
                running.append(Running(nodes, *shape[1:], rng.randint(1, 30) * 10.0, k))
        need = (rng.randint(1, size), rng.randint(1, cores), rng.randint(0, gpus), rng.randint(0, 100))
        if pool.find(*need):
            continue
        count, c, g, m = need
        buckets = {}
        for r in running:
            buckets.setdefault(int(r.expected_end // 60), []).append(r)
        at, nodes = pool.reservation(count, c, g, m, [buckets[k] for k in sorted(buckets)])

        free = {i: [pool.fc[i], pool.fg[i], pool.fm[i]] for i in range(size)}
        expected = INFINITY
        for r in sorted(running, key=lambda r: (r.expected_end, r.order)):
            for i in r.nodes:
                free[i] = [free[i][0] + r.c, free[i][1] + r.g, free[i][2] + r.m]
            if sum(1 for f in free.values() if f[0] >= c and f[1] >= g and f[2] >= m) >= count:
                expected = r.expected_end
                break
        assert at == expected
        if at != INFINITY:
            assert len(nodes) == count
            for i in nodes:  # each reserved node fits the job once the jobs due by then have ended
                due = [r for r in running if r.expected_end <= at and i in r.nodes]
                assert pool.fc[i] + sum(r.c for r in due) >= c and pool.fg[i] + sum(r.g for r in due) >= g
                assert pool.fm[i] + sum(r.m for r in due) >= m
        checked += 1
    assert checked > 200


def test_the_simulator_imports_only_the_standard_library():
    files = [ROOT / "federation" / "simulator.py", *sorted((ROOT / "federation" / "sim").glob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or name.startswith("federation.sim"), f"{path.name}: {name}"
