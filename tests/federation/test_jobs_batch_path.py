"""The batch path's storage: routing explanations stored as shapes plus per-job numbers, the one-statement
dispatch claim (refusals, concurrent dispatchers), and the garbage collector pause."""

import gc
import json
import threading
from collections import Counter

import pytest
from django.db import connections

from allocations.models import AllocationBalance
from federation import jobs
from federation.adapters import reset_adapters
from federation.models import Job, JobEvent, JobState, Site
from tests.factories import build_job_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(fed):
    yield build_job_world(fed)
    reset_adapters()


def _batch(n: int) -> list[jobs.JobRequest]:
    """Mixed shapes (cores, walltimes, applications, a few V100 jobs), so the batch has several shapes."""
    out = []
    for i in range(n):
        if i % 10 == 9:
            out.append(jobs.JobRequest(name=f"fold-{i}", cores_per_node=8, memory_mb_per_node=64_000,
                                       gpus_per_node=1 + i % 2, walltime_s=1800, accepted_family="v100"))
        else:
            out.append(jobs.JobRequest(name=f"md-{i}\tx\\y", cores_per_node=1 + i % 8, walltime_s=600 * (1 + i % 3),
                                       application="gromacs" if i % 4 == 0 else ""))
    return out


def _explained(decision, partition) -> dict:
    """The explanation as the portal reads it, straight from the decision (the reference)."""
    explained = decision.explain(limit=4)
    return {"site": partition.site.code, "partition": partition.name, "score": explained["score"],
            "estimated_wait_s": explained["estimated_wait_s"], "estimated_cost": explained["estimated_cost"],
            "skipped_by_kind": explained["skipped_by_kind"], "excluded": explained["excluded"],
            "candidates": [{"site": c["site_code"], "partition": c["partition_id"], "status": c["status"],
                            "total": c["total"], "wait": c["wait"], "price": c["price"], "locality": c["locality"],
                            "balance": c["balance"], "preference": c["preference"],
                            "wait_s": c["estimated_wait_s"], "cost": c["estimated_cost"]}
                           for c in explained["candidates"]]}


def test_a_batch_stores_compact_routing_that_explains_every_job_exactly(world, monkeypatch):
    reference = []
    write = jobs.RoutingWriter.write

    def spy(self, decision, partition):
        reference.append(_explained(decision, partition))
        return write(self, decision, partition)

    monkeypatch.setattr(jobs.RoutingWriter, "write", spy)
    n = 150
    result = jobs.jobs_submit(actor=world["pi"], project=world["project"], requests=_batch(n), now=world["now"],
                              enqueue_dispatch=False)
    assert result.refused == [] and len(result.accepted) == n == len(reference)
    stored = list(Job.objects.order_by("pk"))
    assert [job.pk for job in stored] == [a.job_id for a in result.accepted]
    for job, expected in zip(stored, reference, strict=True):
        assert isinstance(json.loads(job.routing_data), list)
        assert job.routing == expected  # what the page and the API read
        assert job.routing["site"] == job.site.code and job.routing["partition"] == job.partition.name
        assert job.routing["candidates"][0]["status"] == "chosen"
        assert job.routing["candidates"][0]["partition"] == job.partition_id
    assert any(len(job.routing["candidates"]) > 1 for job in stored), "runners-up are kept"
    assert len(stored[0].routing_data) < len(json.dumps(stored[0].routing)) / 2
    assert stored[0].name == "md-0\tx\\y"  # COPY's escapes round-trip
    assert set(result.timings) == {"route", "hold", "persist"}


def test_explanations_stored_whole_are_read_as_they_are():
    whole = {"site": "tianjin", "partition": "v100", "score": 0.1, "candidates": []}
    assert Job(routing=whole).routing == whole and json.loads(Job(routing=whole).routing_data) == whole
    assert Job().routing == {}


def test_a_centre_refusing_a_dispatch_fails_those_jobs_with_its_reason_and_releases_their_holds(world):
    result = jobs.jobs_submit(actor=world["pi"], project=world["project"], requests=_batch(20), now=world["now"],
                              enqueue_dispatch=False)
    refusing = Site.objects.get(code="tianjin")
    world["adapters"]["tianjin"].set_offline()  # the centre refuses what it is sent; our view of it lags
    routed_there = set(Job.objects.filter(site=refusing).values_list("pk", flat=True))
    assert routed_there, "the batch must send jobs to the refusing centre"
    for site in Site.objects.all():
        jobs.dispatch_routed(site, now=world["now"])
    for job in Job.objects.all():
        timeline = [(e.from_state, e.to_state) for e in job.events.all()]
        if job.pk in routed_there:
            assert job.state == JobState.FAILED and job.reason.startswith("refused by tianjin")
            assert timeline == [("", "submitted"), ("submitted", "routed"), ("routed", "failed")]
            assert job.charged == 0
        else:
            assert job.state == JobState.DISPATCHED
            assert timeline == [("", "submitted"), ("submitted", "routed"), ("routed", "dispatched")]
    held = sum(AllocationBalance.objects.filter(allocation=world["allocation"]).values_list("held", flat=True))
    assert held == sum(Job.objects.filter(state=JobState.DISPATCHED).values_list("hold_part", flat=True))
    assert len(result.accepted) == Job.objects.count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_hand_every_job_over_exactly_once(fed):
    world = build_job_world(fed)
    try:
        result = jobs.jobs_submit(actor=world["pi"], project=world["project"], requests=_batch(300),
                                  now=world["now"], enqueue_dispatch=False)
        sites = list(Site.objects.all())
        errors, moved = [], Counter()
        barrier = threading.Barrier(4)

        def dispatcher(n: int) -> None:
            try:
                barrier.wait()
                for site in sites[n % len(sites):] + sites[: n % len(sites)]:
                    while count := jobs.dispatch_routed(site, limit=7):
                        moved[n] += count
            except Exception as exc:  # surfaced below
                errors.append(repr(exc))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=dispatcher, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        accepted = len(result.accepted)
        assert sum(moved.values()) == accepted == Job.objects.filter(state=JobState.DISPATCHED).count()
        handed = Counter(job_id for adapter in world["adapters"].values() for job_id in adapter.sim._jobs)
        assert len(handed) == accepted and set(handed.values()) == {1}
        events = Counter(JobEvent.objects.values_list("to_state", flat=True))
        assert events == {"submitted": accepted, "routed": accepted, "dispatched": accepted}
    finally:
        reset_adapters()


def test_the_garbage_collector_pause_nests_and_always_ends():
    assert gc.isenabled()
    with jobs.gc_paused():
        assert not gc.isenabled()
        with pytest.raises(RuntimeError), jobs.gc_paused():
            raise RuntimeError("a failing batch")
        assert not gc.isenabled(), "the outer batch is still running"
    assert gc.isenabled()


def test_holds_placed_together_are_exactly_those_placed_one_after_the_other(world):
    from allocations import ledger
    from allocations.models import Hold, LedgerEntry, ResourceClass
    from portal.errors import Conflict

    allocation = world["allocation"]
    cpu, v100 = ResourceClass.objects.get(code="cpu"), ResourceClass.objects.get(code="gpu:v100")
    balance = AllocationBalance.objects.get(allocation=allocation, resource_class=cpu)
    free = balance.awarded - balance.held - balance.charged
    s1, s2, s3 = (Site.objects.get(code=code).pk for code in ("zhengzhou", "tianjin", "zhengzhou"))
    wanted = [ledger.HoldRequest(cpu, free // 2, "a", s1), ledger.HoldRequest(v100, 100, "b", s2),
              ledger.HoldRequest(cpu, free // 2, "c", s3), ledger.HoldRequest(cpu, free // 2, "d", s1)]
    placed = ledger.place_holds(allocation=allocation, requests=wanted)
    assert [type(p) for p in placed] == [Hold, Hold, Hold, Conflict]
    assert placed[3].code == "insufficient_balance"
    balance.refresh_from_db()
    assert balance.held == 2 * (free // 2) <= balance.awarded - balance.charged
    assert [p.site_ref for p in placed[:3]] == [s1, s2, s3]
    assert set(LedgerEntry.objects.filter(kind="hold").values_list("job_ref", flat=True)) >= {"a", "b", "c"}
    assert not LedgerEntry.objects.filter(job_ref="d").exists()
    together = ledger.place_holds(allocation=allocation, requests=[ledger.HoldRequest(v100, 50, "e", s2)])
    assert isinstance(together[0], Hold) and together[0].remaining == 50
