"""The per-process routing snapshot cache: same decisions as a fresh snapshot, invalidated by site and
partition changes in this process, refreshed after its TTL otherwise, live capacity always fresh; and the
query count of a single API submission."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.actors import system_actor
from federation import routing_cache, services
from federation.adapters import DispatchJob, SimulatedAdapter, install_adapter, reset_adapters
from federation.jobs import partition_views
from federation.models import Partition, Site
from federation.routing import JobSpec, Router
from tests.factories import build_allocation_world, build_small_federation, client_for

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 4, 2, 30, tzinfo=UTC)
SPECS = [
    JobSpec(cores_per_node=4, memory_mb_per_node=8192, walltime_s=3600),
    JobSpec(cores_per_node=8, memory_mb_per_node=30000, gpus_per_node=1, walltime_s=3600),
    JobSpec(cores_per_node=8, memory_mb_per_node=30000, gpus_per_node=1, walltime_s=3600,
            accepted_models=frozenset({"V100M32"})),
    JobSpec(cores_per_node=8, gpus_per_node=2, walltime_s=600, accepted_family="ascend"),
    JobSpec(cores_per_node=4, walltime_s=600, application="wrf"),
    JobSpec(nodes=2, cores_per_node=32, walltime_s=7200),
    JobSpec(cores_per_node=4, gpus_per_node=1, walltime_s=600, accepted_models=frozenset({"H100"})),
]


@pytest.fixture
def small(fed):
    build_small_federation(fed)
    yield fed
    reset_adapters()


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(routing_cache, "_clock", lambda: now[0])
    return now


def decisions(router: Router) -> list[tuple]:
    quota = {site.pk: 10**12 for site in Site.objects.all()}
    return [(d.routed, d.chosen_partition_id, d.refusal) for d in (router.route(s, quota, NOW) for s in SPECS)]


def test_cached_router_decides_as_a_fresh_snapshot_and_is_reused(small):
    router, partitions = routing_cache.current_router()
    fresh_views, fresh_partitions = partition_views()
    assert list(router.partitions) == sorted(fresh_views, key=lambda v: v.partition_id)
    assert partitions.keys() == fresh_partitions.keys()
    assert decisions(router) == decisions(Router(fresh_views))
    assert any(d[0] for d in decisions(router)) and not all(d[0] for d in decisions(router))
    again, _ = routing_cache.current_router()
    assert again is router  # nothing changed: the same router with its warm shape plans


def test_a_site_state_change_in_this_process_is_seen_at_once(small):
    router, _ = routing_cache.current_router()
    chosen = decisions(router)[0][1]
    site_id = next(v.site_id for v in router.partitions if v.partition_id == chosen)
    services.site_set_state(actor=system_actor(), site=Site.objects.get(pk=site_id), state="offline")
    after, _ = routing_cache.current_router()
    assert after is not router
    assert {v.site_state for v in after.partitions if v.site_id == site_id} == {"offline"}
    now_chosen = decisions(after)[0][1]
    assert next(v.site_id for v in after.partitions if v.partition_id == now_chosen) != site_id


def test_partition_changes_invalidate_and_other_processes_changes_are_seen_within_the_ttls(small, clock):
    router, _ = routing_cache.current_router()
    partition = Partition.objects.filter(gpus_per_node=0).first()
    partition.max_walltime_s = 60
    partition.save()
    after, _ = routing_cache.current_router()
    assert after is not router
    assert next(v for v in after.partitions if v.partition_id == partition.pk).max_walltime_s == 60

    # Changes without a signal in this process (as if another worker made them). Partitions: seen after
    # FULL_TTL_S; sites' states: after TTL_S (one small query per TTL_S finds them).
    Partition.objects.filter(pk=partition.pk).update(max_walltime_s=120)
    clock[0] += routing_cache.TTL_S + 1
    with CaptureQueriesContext(connection) as captured:
        same, _ = routing_cache.current_router()
    assert same is after and len(captured) == 1  # the sites were checked, unchanged: nothing reloaded
    Site.objects.all().update(state="draining")
    clock[0] += routing_cache.TTL_S / 2
    assert routing_cache.current_router()[0] is after
    clock[0] += routing_cache.TTL_S
    refreshed, _ = routing_cache.current_router()
    assert {v.site_state for v in refreshed.partitions} == {"draining"}
    assert decisions(refreshed)[0][2] == "no_site_online"
    assert next(v for v in refreshed.partitions if v.partition_id == partition.pk).max_walltime_s == 120

    Partition.objects.filter(pk=partition.pk).update(max_walltime_s=180)
    clock[0] += routing_cache.TTL_S + 1
    assert routing_cache.current_router()[0] is refreshed
    clock[0] += routing_cache.FULL_TTL_S
    reloaded, _ = routing_cache.current_router()
    assert next(v for v in reloaded.partitions if v.partition_id == partition.pk).max_walltime_s == 180


def test_live_capacity_is_read_on_every_call(small):
    site = Site.objects.get(code="zhengzhou")
    parts = list(Partition.objects.filter(site=site, gpus_per_node=0).order_by("name"))
    adapter = SimulatedAdapter(site, parts, seed=1)
    install_adapter(site.pk, adapter)
    router, _ = routing_cache.current_router()
    assert routing_cache.current_router()[0] is router
    target = parts[0]
    adapter.submit_batch([DispatchJob(1, target.name, 1, target.cores_per_node, 1024, 0, 3600)])
    adapter.poll(1.0)
    after, _ = routing_cache.current_router()
    assert after is not router
    view = next(v for v in after.partitions if v.partition_id == target.pk)
    fresh = next(v for v in partition_views()[0] if v.partition_id == target.pk)
    assert view == fresh and view.free_cores == target.total_cores - target.cores_per_node


def test_live_threads_have_their_own_router_and_an_ended_threads_router_is_handed_on(small):
    import threading

    mine, _ = routing_cache.current_router()
    got, taken, release = [], threading.Event(), threading.Event()

    def request():
        got.append(routing_cache.current_router()[0])
        taken.set()
        release.wait(5)

    first = threading.Thread(target=request)
    first.start()
    taken.wait(5)
    assert got[0] is not mine  # both threads alive: one router each
    assert decisions(got[0]) == decisions(mine)
    release.set()
    first.join()
    second = threading.Thread(target=request)
    second.start()
    second.join()
    assert got[1] is got[0]  # the ended thread's router, plans warm, on the same snapshot
    assert routing_cache.current_router()[0] is mine


# Pinned (SQLite, with an Idempotency-Key, the token's first use; 21 measured, 20 on PostgreSQL): the token
# (read, last-used UPDATE; later calls: none, it is cached), the project scope, the idempotency lookup,
# allocation, resource classes, the project's quota at each site (a CPU job reads no balances), the hold
# (balance UPDATE, hold, quota counter, ledger entry), the job, its two events (one INSERT), the audit row,
# the idempotency record, and the SAVEPOINT/RELEASE statements. Not read: the job for the answer (built
# from what was written); partitions, sites, families, applications (the routing snapshot is cached).
SINGLE_SUBMIT_MAX_QUERIES = 21


def test_single_api_submit_pins_its_query_count_and_reads_no_partitions_when_warm(fed, clock,
                                                                                django_assert_max_num_queries):
    from tests.factories import make_token

    world = build_allocation_world(fed)  # also submits one job: the snapshot is warm (the clock stands still)
    _, secret = make_token(world.a, ["jobs:submit", "read"], world.users["admin_a"], name="gateway")
    client = client_for(token=secret)
    body = {"project": world.objects["project"], "name": "md", "cores_per_node": 4, "memory_mb_per_node": 8192,
            "walltime_s": 3600, "application": "gromacs"}
    with django_assert_max_num_queries(SINGLE_SUBMIT_MAX_QUERIES):
        with CaptureQueriesContext(connection) as captured:
            response = client.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="run-1")
    assert response.status_code == 201, response.json()
    static_reads = [q["sql"] for q in captured.captured_queries
                    if any(f'FROM "federation_{t}"' in q["sql"] for t in ("partition", "site", "application"))]
    assert static_reads == []
