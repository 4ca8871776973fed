"""A job end to end: routed, held, persisted, dispatched to a simulated centre, run, charged its use."""

import pytest
from django.db.models import F

from accounts.actors import Actor
from allocations.models import AllocationBalance, Hold, LedgerEntry
from federation import jobs
from federation.adapters import SimulatedAdapter, install_adapter, reset_adapters
from federation.models import Job, JobEvent, JobState, Partition, Site, SiteQuota
from portal.errors import PermissionDenied
from tests.factories import build_job_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(fed):
    yield build_job_world(fed)
    reset_adapters()


def run_sites(setup, seconds: int) -> None:
    until = setup["now"].timestamp() + seconds
    for site in Site.objects.all():
        jobs.ingest_status(site, setup["adapters"][site.code].poll(until))


def test_jobs_go_end_to_end_and_are_charged_exactly_their_use(setup):
    cpu_job = jobs.JobRequest(name="md-1", cores_per_node=16, memory_mb_per_node=32_000, walltime_s=7200,
                              application="gromacs")
    gpu_job = jobs.JobRequest(name="fold-1", cores_per_node=8, memory_mb_per_node=64_000, gpus_per_node=2,
                              walltime_s=3600, accepted_family="v100")
    result = jobs.jobs_submit(actor=setup["pi"], project=setup["project"], requests=[cpu_job, gpu_job],
                              now=setup["now"])
    assert result.refused == []
    assert [a.site for a in result.accepted][1] == "tianjin"  # the only V100 centre
    gpu = Job.objects.get(pk=result.accepted[1].job_id)
    assert gpu.state == JobState.ROUTED and gpu.routing["site"] == "tianjin"
    assert gpu.routing["candidates"][0]["total"] == gpu.routing["score"]

    for site in Site.objects.all():
        jobs.dispatch_routed(site, now=setup["now"])
    assert set(Job.objects.values_list("state", flat=True)) == {JobState.DISPATCHED}

    run_sites(setup, 3 * 3600)
    for job in Job.objects.all():
        assert job.state in (JobState.COMPLETED, JobState.TIMED_OUT), (job.state, job.reason)
        used = int((job.ended_at - job.started_at).total_seconds())
        assert job.charged == job.nodes * (job.gpus_per_node or job.cores_per_node) * used
        assert 0 < job.charged <= job.hold_part
        states = list(JobEvent.objects.filter(job=job).values_list("to_state", flat=True))
        assert states[:3] == [JobState.SUBMITTED, JobState.ROUTED, JobState.DISPATCHED]
        assert states[-1] == job.state

    # The ledger balances: nothing held, charged equals the jobs' charges, per class.
    for balance in AllocationBalance.objects.filter(allocation=setup["allocation"]).select_related("resource_class"):
        code = balance.resource_class.code
        charged = sum(j.charged for j in Job.objects.filter(resource_class=balance.resource_class))
        assert balance.held == 0, code
        assert balance.charged == charged, code
    assert set(Hold.objects.values_list("state", flat=True)) == {Hold.State.SETTLED}
    assert LedgerEntry.objects.filter(kind="charge").count() == 2


def test_impossible_jobs_are_refused_with_a_reason_and_nothing_is_written(setup):
    huge = jobs.JobRequest(name="too-big", cores_per_node=100_000, walltime_s=60)
    unknown = jobs.JobRequest(name="h100", cores_per_node=4, gpus_per_node=1, walltime_s=60,
                              accepted_models=("H100",))
    long = jobs.JobRequest(name="forever", cores_per_node=4, walltime_s=400 * 24 * 3600)
    result = jobs.jobs_submit(actor=setup["pi"], project=setup["project"], requests=[huge, unknown, long],
                              now=setup["now"])
    assert result.accepted == []
    assert [r.code for r in result.refused] == ["no_partition_fits", "unknown_accelerator_model",
                                                "walltime_over_limit"]
    assert Job.objects.count() == 0 and Hold.objects.count() == 0


def test_a_batch_beyond_the_balance_is_refused_not_overspent(setup):
    # 2,000 core-hours awarded; 300 jobs of 16 cores × 1 h ask for 4,800. The award is brokered into
    # site quotas adding up to it, so the router refuses the rest before the ledger has to.
    batch = [jobs.JobRequest(name=f"j{i}", cores_per_node=16, walltime_s=3600) for i in range(300)]
    result = jobs.jobs_submit(actor=setup["pi"], project=setup["project"], requests=batch, now=setup["now"])
    assert result.refused and {r.code for r in result.refused} == {"insufficient_quota"}
    cpu = AllocationBalance.objects.get(allocation=setup["allocation"], resource_class__code="cpu")
    assert cpu.held == sum(a.estimated_units for a in result.accepted) <= cpu.awarded


def test_a_batch_within_the_quota_but_beyond_the_balance_is_refused_by_the_ledger(setup):
    # Shares larger than the award (e.g. the award was lowered after brokering): the ledger holds the line.
    SiteQuota.objects.filter(allocation=setup["allocation"]).update(amount=F("amount") * 10)
    batch = [jobs.JobRequest(name=f"j{i}", cores_per_node=16, walltime_s=3600) for i in range(300)]
    result = jobs.jobs_submit(actor=setup["pi"], project=setup["project"], requests=batch, now=setup["now"])
    assert result.accepted and result.refused
    assert {r.code for r in result.refused} == {"insufficient_balance"}
    cpu = AllocationBalance.objects.get(allocation=setup["allocation"], resource_class__code="cpu")
    assert cpu.held == sum(a.estimated_units for a in result.accepted) <= cpu.awarded
    assert Job.objects.count() == len(result.accepted)


def test_only_project_members_submit(setup, fed):
    outsider = Actor(user=fed.users["admin_b"])
    with pytest.raises(PermissionDenied):
        jobs.jobs_submit(actor=outsider, project=setup["project"],
                         requests=[jobs.JobRequest(name="x", cores_per_node=1, walltime_s=60)])


def test_cancel_reaches_the_site_and_releases_the_hold(setup):
    result = jobs.jobs_submit(actor=setup["pi"], project=setup["project"], now=setup["now"],
                              requests=[jobs.JobRequest(name="c", cores_per_node=8, walltime_s=7200)])
    site = Site.objects.get(code=result.accepted[0].site)
    jobs.dispatch_routed(site, now=setup["now"])
    run_sites(setup, 60)
    job = Job.objects.get(pk=result.accepted[0].job_id)
    assert job.state == JobState.RUNNING
    job = jobs.job_cancel(actor=setup["pi"], job=job)
    assert job.state == JobState.CANCELLED
    assert setup["adapters"][site.code].sim.job_state(str(job.pk)) == "cancelled"
    cpu = AllocationBalance.objects.get(allocation=setup["allocation"], resource_class__code="cpu")
    assert cpu.held == 0


def test_the_ticker_runs_centres_in_scaled_time_and_charges_virtual_run_time(setup):
    """At scale 60 a one-hour walltime job finishes within a wall minute and is charged its virtual time."""
    from federation import ticker

    start = setup["now"].timestamp()
    clock = ticker.SimClock(origin=start, scale=60.0)
    for site in Site.objects.all():
        install_adapter(site.pk, SimulatedAdapter(site, list(Partition.objects.filter(site=site)), seed=3,
                                                  clock_start=clock.sim_now(start)))
    result = jobs.jobs_submit(actor=setup["pi"], project=setup["project"], now=setup["now"],
                              requests=[jobs.JobRequest(name="t", cores_per_node=4, walltime_s=3600)],
                              enqueue_dispatch=False)
    job_id = result.accepted[0].job_id
    ticker.tick(ticker.SimClock(origin=start, scale=60.0))  # dispatches
    ticker.tick(ticker.SimClock(origin=start - 61.0, scale=60.0))  # as if 61 wall seconds had passed
    job = Job.objects.get(pk=job_id)
    assert job.state in (JobState.COMPLETED, JobState.TIMED_OUT), job.state
    wall = (job.ended_at - job.started_at).total_seconds()
    assert wall < 61
    assert job.charged == int(wall * 60) * 4


def test_draining_a_site_stops_dispatch_to_its_simulator(setup):
    from federation import ticker
    from federation.services import site_set_state

    site = Site.objects.get(code="tianjin")
    site_set_state(actor=Actor(system=True), site=site, state="offline", reason="cooling failure")
    result = jobs.jobs_submit(actor=setup["pi"], project=setup["project"], now=setup["now"],
                              requests=[jobs.JobRequest(name="t", cores_per_node=4, walltime_s=600,
                                                        accepted_family="v100", gpus_per_node=1)],
                              enqueue_dispatch=False)
    assert [r.code for r in result.refused] == ["no_site_online"]  # the only V100 centre is offline
    ticker.tick(ticker.SimClock(origin=setup["now"].timestamp(), scale=60.0))
    assert setup["adapters"]["tianjin"].sim.state == "offline"


def test_a_centre_going_offline_mid_run_reroutes_its_jobs_and_keeps_the_ledger_balanced(setup):
    from federation import ticker
    from federation.services import site_set_state

    clock = ticker.SimClock(origin=setup["now"].timestamp(), scale=1.0)
    batch = [jobs.JobRequest(name=f"cpu-{i}", cores_per_node=8, walltime_s=7200) for i in range(4)]
    batch.append(jobs.JobRequest(name="v100", cores_per_node=8, gpus_per_node=1, accepted_family="v100",
                                 walltime_s=7200))
    # Zhengzhou drains for maintenance while the batch is routed, so everything lands on Tianjin;
    # it is back online when Tianjin fails.
    zhengzhou = Site.objects.get(code="zhengzhou")
    site_set_state(actor=Actor(system=True), site=zhengzhou, state="draining", reason="maintenance")
    result = jobs.jobs_submit(actor=setup["pi"], project=setup["project"], requests=batch, now=setup["now"],
                              enqueue_dispatch=False)
    assert result.refused == []
    site_set_state(actor=Actor(system=True), site=zhengzhou, state="online")
    for site in Site.objects.all():
        jobs.dispatch_routed(site, now=setup["now"])
    run_sites(setup, 60)
    # Take down the centre that runs the GPU job (the only V100 centre) and whatever CPU jobs it has.
    gpu_site = Site.objects.get(code="tianjin")
    on_gpu_site = set(Job.objects.filter(site=gpu_site).values_list("pk", flat=True))
    assert len(on_gpu_site) == 5, "the scenario needs every job on the failing centre"
    site_set_state(actor=Actor(system=True), site=gpu_site, state="offline", reason="power cut")
    setup["adapters"]["tianjin"].sync_state("offline")
    until = setup["now"].timestamp() + 120
    for site in Site.objects.all():
        jobs.ingest_status(site, setup["adapters"][site.code].poll(until), clock=clock)

    v100 = Job.objects.get(name="v100")
    assert v100.state == JobState.FAILED and "re-routing failed" in v100.reason  # nowhere else to go
    for job in Job.objects.filter(pk__in=on_gpu_site).exclude(pk=v100.pk):
        assert job.state == JobState.ROUTED and job.site.code == "zhengzhou" and job.attempts == 2
        assert "re-routed from tianjin" in job.events.last().cause
    assert Job.objects.count() == 5  # no job lost

    # The ledger: held exactly the open parts of jobs still alive; nothing charged for the outage.
    for balance in AllocationBalance.objects.filter(allocation=setup["allocation"]):
        alive = Job.objects.filter(resource_class=balance.resource_class).exclude(state__in=["failed"])
        assert balance.held == sum(j.hold_part for j in alive)
        assert balance.charged == 0


def test_gpu_jobs_go_only_to_cards_the_allocation_pays_for(setup):
    """The allocation holds V100 card-hours: a GPU job naming no family must not land on P100s."""
    result = jobs.jobs_submit(actor=setup["pi"], project=setup["project"], now=setup["now"], enqueue_dispatch=False,
                              requests=[jobs.JobRequest(name="any-gpu", cores_per_node=4, gpus_per_node=1,
                                                        walltime_s=600),
                                        jobs.JobRequest(name="p100", cores_per_node=4, gpus_per_node=1,
                                                        walltime_s=600, accepted_models=("P100",))])
    assert len(result.accepted) == 1
    job = Job.objects.get(pk=result.accepted[0].job_id)
    assert job.partition.family.code == "v100"
    assert [(r.index, r.code) for r in result.refused] == [(1, "insufficient_balance")]
