"""Site quotas: awards brokered within committed capacity, centres answering, outages rebalanced,
PI transfers, ledger and audit rows for every step, the router held to the shares, tenancy."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.actors import Actor, system_actor
from accounts.models import AuditEvent
from allocations import projects, workflow
from allocations.models import AllocationBalance, LedgerEntry, ResourceClass
from federation import jobs, quotas, services
from federation.models import CapacityCommitment, Job, Site, SiteQuota
from portal.errors import Conflict, PermissionDenied, ValidationFailed
from tests.factories import build_small_federation, client_for

pytestmark = pytest.mark.django_db

H = 3600  # smallest units per core-hour / card-hour


@pytest.fixture
def small(fed):
    build_small_federation(fed)
    return fed


def commit(code: str, cls: str, display: int) -> None:
    """Set the current period's commitment of a centre for a class (display units)."""
    site = Site.objects.get(code=code)
    rc = ResourceClass.objects.get(code=cls)
    period = CapacityCommitment.objects.filter(site=site, resource_class=rc).order_by("-period_start").first()
    services.capacity_commit(actor=system_actor(), site=site, resource_class=rc, period_start=period.period_start,
                             period_end=period.period_end, amount_display=display)


def award(fed, amounts: dict, *, preferences=(), title="Pilot", pi="pi_a"):
    """A new project with an explore request approved automatically (brokered at the award)."""
    actor = Actor(user=fed.users[pi])
    today = timezone.localdate()
    project = projects.project_create(actor=actor, institution_id=fed.a.pk, title=title, abstract="A",
                                      discipline="chemistry", start=today, end=today + timedelta(days=300))
    request = workflow.request_create(actor=actor, project=project, kind="new", tier="explore", title=title,
                                      justification="J", amounts=amounts, start=today,
                                      end=today + timedelta(days=100), site_preferences=list(preferences))
    workflow.request_submit(actor=actor, request=request)
    return project.allocations.get()


def shares(allocation, cls: str = "cpu", states=quotas.LIVE) -> dict[str, int]:
    return {q.site.code: q.amount for q in SiteQuota.objects.filter(
        allocation=allocation, resource_class__code=cls, state__in=states).select_related("site")}


def quota_ledger(allocation, cls: str = "cpu") -> dict[str, int]:
    totals: dict[str, int] = {}
    for entry in LedgerEntry.objects.filter(allocation=allocation, kind="quota", resource_class__code=cls):
        totals[entry.site_code] = totals.get(entry.site_code, 0) + entry.amount
    return {code: n for code, n in totals.items() if n}


def row(allocation, code: str, cls: str = "cpu") -> SiteQuota:
    return SiteQuota.objects.get(allocation=allocation, site__code=code, resource_class__code=cls)


# --- brokering at the award -------------------------------------------------------------------------
def test_an_award_is_split_within_committed_capacity_and_what_does_not_fit_stays_unplaced(small):
    commit("zhengzhou", "cpu", 600)
    commit("tianjin", "cpu", 800)
    first = award(small, {"cpu": 1000}, title="First")
    placed = shares(first)
    assert sum(placed.values()) == 1000 * H
    assert placed["zhengzhou"] <= 600 * H and placed["tianjin"] <= 800 * H
    assert set(SiteQuota.objects.filter(allocation=first).values_list("state", flat=True)) == {"proposed"}
    assert quota_ledger(first) == placed  # one quota entry per centre, adding up to its share
    assert AllocationBalance.objects.get(allocation=first).awarded == 1000 * H  # the award did not move
    audit = AuditEvent.objects.get(action="quota.broker", object_id=str(first.pk))
    assert audit.after["shares"]["cpu"] == placed and not audit.after["unplaced"]

    # A second award only gets what the first left: 400 core-hours; 600 stay unplaced.
    second = award(small, {"cpu": 1000}, title="Second")
    assert sum(shares(second).values()) == 400 * H
    for code, committed in (("zhengzhou", 600), ("tianjin", 800)):
        total = sum(SiteQuota.objects.filter(site__code=code).values_list("amount", flat=True))
        assert total == committed * H
    audit = AuditEvent.objects.get(action="quota.broker", object_id=str(second.pk))
    assert audit.after["unplaced"] == {"cpu": 600 * H}
    assert quotas.allocations_with_unplaced() == [second.pk]

    # More capacity committed: the pending remainder is brokered, and only that.
    commit("tianjin", "cpu", 1400)
    assert quotas.broker_pending(actor=system_actor()) == [second.pk]
    assert sum(shares(second).values()) == 1000 * H and sum(shares(first).values()) == 1000 * H
    assert quotas.allocations_with_unplaced() == []


def test_site_preferences_win_between_similar_prices(small):
    # tianjin is 5 % dearer than zhengzhou; with a preference for it, the PI's award goes there.
    plain = award(small, {"cpu": 500}, title="Plain")
    preferring = award(small, {"cpu": 500}, preferences=["tianjin"], title="Prefers Tianjin")
    assert shares(preferring).get("tianjin", 0) > shares(plain).get("tianjin", 0)
    assert shares(preferring) == {"tianjin": 500 * H}


def test_gpu_classes_go_only_to_centres_serving_them(small):
    allocation = award(small, {"cpu": 100, "gpu:v100": 50})
    assert shares(allocation, "gpu:v100") == {"tianjin": 50 * H}  # the only V100 centre
    assert sum(shares(allocation, "cpu").values()) == 100 * H


# --- the centres answer -------------------------------------------------------------------------------
def both_sites(small, zhengzhou=500, tianjin=500):
    commit("zhengzhou", "cpu", zhengzhou)
    commit("tianjin", "cpu", tianjin)
    allocation = award(small, {"cpu": 600})
    assert set(shares(allocation)) == {"zhengzhou", "tianjin"}
    return allocation


def test_accepting_keeps_the_share_and_is_on_the_ledger_and_audit_log(small):
    allocation = both_sites(small)
    before = shares(allocation)
    operator = Actor(user=small.users["operator"])
    quotas.quota_respond(actor=operator, quota=row(allocation, "zhengzhou"), action="accept")
    assert row(allocation, "zhengzhou").state == "accepted"
    assert row(allocation, "zhengzhou").decided_by == "user:operator@scnet.example.cn"
    assert shares(allocation) == before
    accepted = LedgerEntry.objects.get(allocation=allocation, kind="quota", amount=0)
    assert accepted.site_code == "zhengzhou" and "accepted" in accepted.memo
    assert AuditEvent.objects.filter(action="quota.accept").count() == 1
    with pytest.raises(Conflict) as again:
        quotas.quota_respond(actor=operator, quota=row(allocation, "zhengzhou"), action="decline", reason="No")
    assert again.value.code == "quota_not_pending"


def test_a_lowered_share_is_rebrokered_to_the_other_centre(small):
    allocation = both_sites(small, zhengzhou=500, tianjin=1000)
    before = shares(allocation)
    operator = Actor(user=small.users["operator"])
    with pytest.raises(ValidationFailed) as not_lower:
        quotas.quota_respond(actor=operator, quota=row(allocation, "zhengzhou"), action="modify",
                             amount=before["zhengzhou"] // H)
    assert not_lower.value.code == "quota_modify_not_lower"
    quotas.quota_respond(actor=operator, quota=row(allocation, "zhengzhou"), action="modify", amount=100,
                         reason="maintenance window")
    after = shares(allocation)
    assert after["zhengzhou"] == 100 * H and row(allocation, "zhengzhou").state == "accepted"
    assert after["tianjin"] == before["tianjin"] + before["zhengzhou"] - 100 * H
    assert row(allocation, "tianjin").state == "proposed"  # tianjin answers its larger share
    assert sum(after.values()) == 600 * H
    assert quota_ledger(allocation) == after
    audit = AuditEvent.objects.get(action="quota.modify")
    assert audit.before["amount"] == before["zhengzhou"] and audit.after["amount"] == 100 * H


def test_a_declined_share_is_rebrokered_and_the_centre_gets_no_more_of_the_class(small):
    allocation = both_sites(small, zhengzhou=500, tianjin=1000)
    operator = Actor(user=small.users["operator"])
    with pytest.raises(ValidationFailed) as no_reason:
        quotas.quota_respond(actor=operator, quota=row(allocation, "zhengzhou"), action="decline")
    assert no_reason.value.code == "reason_required"
    quotas.quota_respond(actor=operator, quota=row(allocation, "zhengzhou"), action="decline", reason="Full")
    declined = row(allocation, "zhengzhou")
    assert declined.state == "declined" and declined.amount == 0 and declined.reason == "Full"
    assert shares(allocation) == {"tianjin": 600 * H}
    assert quota_ledger(allocation) == {"tianjin": 600 * H}
    # Even with capacity everywhere, brokering again never proposes zhengzhou for this allocation's CPU.
    commit("tianjin", "cpu", 600)
    quotas.quota_respond(actor=Actor(user=small.users["fedadmin"]), quota=row(allocation, "tianjin"),
                         action="modify", amount=550)
    assert shares(allocation) == {"tianjin": 550 * H}  # 50 unplaced: zhengzhou declined, tianjin lowered
    assert quotas.allocations_with_unplaced() == [allocation.pk]
    # A later brokering may propose more to the centre that lowered its share (it answers again), never to
    # the one that declined.
    assert quotas.broker_pending(actor=system_actor()) == [allocation.pk]
    assert shares(allocation) == {"tianjin": 600 * H} and row(allocation, "tianjin").state == "proposed"
    assert row(allocation, "zhengzhou").state == "declined"


def test_a_decline_keeps_what_jobs_already_used_there(small):
    allocation = both_sites(small, zhengzhou=500, tianjin=1000)
    pi = Actor(user=small.users["pi_a"])
    submitted = jobs.jobs_submit(actor=pi, project=allocation.project, enqueue_dispatch=False, requests=[
        jobs.JobRequest(name="there", cores_per_node=8, walltime_s=3600, preferred_sites=("zhengzhou",))])
    job = Job.objects.get(pk=submitted.accepted[0].job_id)
    assert job.site.code == "zhengzhou"
    quotas.quota_respond(actor=Actor(user=small.users["operator"]), quota=row(allocation, "zhengzhou"),
                         action="decline", reason="Full")
    assert row(allocation, "zhengzhou").amount == 8 * H  # the running job's hold stays covered
    assert sum(shares(allocation, states=["proposed", "accepted", "declined"]).values()) == 600 * H


def test_only_the_centres_operators_answer(small):
    allocation = both_sites(small)
    with pytest.raises(PermissionDenied):  # the operator runs zhengzhou, not tianjin
        quotas.quota_respond(actor=Actor(user=small.users["operator"]), quota=row(allocation, "tianjin"),
                             action="accept")
    with pytest.raises(PermissionDenied):
        quotas.quota_respond(actor=Actor(user=small.users["pi_a"]), quota=row(allocation, "zhengzhou"),
                             action="accept")
    assert not AuditEvent.objects.filter(action__startswith="quota.accept").exists()


# --- centres leaving and coming back ---------------------------------------------------------------
@pytest.mark.parametrize("state", ["draining", "offline"])
def test_a_leaving_centre_gives_its_unused_share_to_the_others_and_no_job_is_lost(small, state):
    allocation = both_sites(small, zhengzhou=500, tianjin=1000)
    pi = Actor(user=small.users["pi_a"])
    jobs.jobs_submit(actor=pi, project=allocation.project, enqueue_dispatch=False, requests=[
        jobs.JobRequest(name=f"j{i}", cores_per_node=4, walltime_s=3600, preferred_sites=("zhengzhou",))
        for i in range(3)])
    at_zhengzhou = Job.objects.filter(site__code="zhengzhou").count()
    assert at_zhengzhou == 3
    before = shares(allocation)
    services.site_set_state(actor=Actor(user=small.users["operator"]), site=Site.objects.get(code="zhengzhou"),
                            state=state, reason="cooling fault")
    kept = row(allocation, "zhengzhou")
    assert kept.state == "withdrawn" and "cooling fault" in kept.reason
    # Draining: the jobs still run there and keep their 12 core-hours; offline: they will be re-routed
    # with their holds, so nothing stays.
    stays = 12 * H if state == "draining" else 0
    assert kept.amount == stays
    assert shares(allocation) == {"tianjin": before["tianjin"] + before["zhengzhou"] - stays}
    assert Job.objects.count() == 3  # no job lost
    assert quota_ledger(allocation).get("zhengzhou", 0) == stays
    audit = AuditEvent.objects.get(action="quota.rebalance")
    assert audit.after["site"] == "zhengzhou" and audit.after["state"] == state

    # Back online: nothing is taken back from tianjin.
    services.site_set_state(actor=Actor(user=small.users["operator"]), site=Site.objects.get(code="zhengzhou"),
                            state="online")
    assert shares(allocation)["tianjin"] == before["tianjin"] + before["zhengzhou"] - stays
    assert row(allocation, "zhengzhou").state == "withdrawn"


def test_a_drained_centre_going_offline_gives_up_what_its_running_jobs_held(small):
    allocation = both_sites(small, zhengzhou=500, tianjin=1000)
    jobs.jobs_submit(actor=Actor(user=small.users["pi_a"]), project=allocation.project, enqueue_dispatch=False,
                     requests=[jobs.JobRequest(name="j", cores_per_node=4, walltime_s=3600,
                                               preferred_sites=("zhengzhou",))])
    zhengzhou = Site.objects.get(code="zhengzhou")
    services.site_set_state(actor=system_actor(), site=zhengzhou, state="draining")
    assert row(allocation, "zhengzhou").amount == 4 * H
    services.site_set_state(actor=system_actor(), site=Site.objects.get(code="zhengzhou"), state="offline")
    assert row(allocation, "zhengzhou").amount == 0 and row(allocation, "zhengzhou").state == "withdrawn"
    assert shares(allocation) == {"tianjin": 600 * H}
    assert quota_ledger(allocation) == {"tianjin": 600 * H}
    assert AuditEvent.objects.filter(action="quota.rebalance").count() == 2


def test_an_outage_with_no_room_elsewhere_leaves_the_rest_unplaced_until_capacity_returns(small):
    allocation = both_sites(small, zhengzhou=500, tianjin=400)
    services.site_set_state(actor=system_actor(), site=Site.objects.get(code="zhengzhou"), state="offline")
    assert shares(allocation) == {"tianjin": 400 * H}
    assert quotas.allocations_with_unplaced() == [allocation.pk]
    services.site_set_state(actor=system_actor(), site=Site.objects.get(code="zhengzhou"), state="online")
    assert shares(allocation) == {"tianjin": 400 * H, "zhengzhou": 200 * H}  # the unplaced part only
    assert row(allocation, "zhengzhou").state == "proposed"


# --- PI transfers --------------------------------------------------------------------------------------
def test_a_pi_moves_unused_quota_to_a_centre_with_capacity_left(small):
    allocation = both_sites(small, zhengzhou=500, tianjin=1000)
    before = shares(allocation)
    pi = Actor(user=small.users["pi_a"])
    source, target = quotas.quota_transfer(actor=pi, allocation=allocation, resource_class=ResourceClass.objects.get(
        code="cpu"), from_site=Site.objects.get(code="zhengzhou"), to_site=Site.objects.get(code="tianjin"),
        amount=50, reason="data is in Tianjin")
    assert source.amount == before["zhengzhou"] - 50 * H and target.amount == before["tianjin"] + 50 * H
    assert target.state == "proposed"
    assert quota_ledger(allocation) == shares(allocation)
    moves = LedgerEntry.objects.filter(allocation=allocation, kind="quota", memo__startswith="transfer")
    assert sorted((e.site_code, e.amount) for e in moves) == [("tianjin", 50 * H), ("zhengzhou", -50 * H)]
    assert AuditEvent.objects.get(action="quota.transfer").after["units"] == 50 * H


def test_a_transfer_is_refused_when_the_target_has_no_capacity_left(small):
    allocation = both_sites(small, zhengzhou=500, tianjin=500)
    before = shares(allocation)
    cpu = ResourceClass.objects.get(code="cpu")
    zz, tj = Site.objects.get(code="zhengzhou"), Site.objects.get(code="tianjin")
    pi = Actor(user=small.users["pi_a"])
    left = 500 * H - before["tianjin"]
    with pytest.raises(Conflict) as full:
        quotas.quota_transfer(actor=pi, allocation=allocation, resource_class=cpu, from_site=zz, to_site=tj,
                              amount=left // H + 1)
    assert full.value.code == "site_capacity_exhausted"
    with pytest.raises(Conflict) as unused:
        quotas.quota_transfer(actor=pi, allocation=allocation, resource_class=cpu, from_site=zz, to_site=tj,
                              amount=before["zhengzhou"] // H + 1)
    assert unused.value.code in ("quota_insufficient_unused", "site_capacity_exhausted")
    with pytest.raises(PermissionDenied):
        quotas.quota_transfer(actor=Actor(user=small.users["researcher_a"]), allocation=allocation,
                              resource_class=cpu, from_site=zz, to_site=tj, amount=1)
    services.site_set_state(actor=system_actor(), site=tj, state="draining")
    with pytest.raises(Conflict) as draining:
        quotas.quota_transfer(actor=pi, allocation=allocation, resource_class=cpu,
                              from_site=Site.objects.get(code="zhengzhou"), to_site=Site.objects.get(code="tianjin"),
                              amount=1)
    assert draining.value.code == "site_not_accepting"
    assert not AuditEvent.objects.filter(action="quota.transfer").exists()


# --- the router uses the shares ----------------------------------------------------------------------
def test_the_router_goes_where_the_share_is_left_and_refuses_when_all_are_used(small):
    commit("zhengzhou", "cpu", 10)  # zhengzhou is cheaper, but only 10 core-hours of it are committed
    commit("tianjin", "cpu", 990)
    allocation = award(small, {"cpu": 40})
    assert shares(allocation) == {"zhengzhou": 10 * H, "tianjin": 30 * H}
    pi = Actor(user=small.users["pi_a"])

    def submit(cores: int):
        return jobs.jobs_submit(actor=pi, project=allocation.project, enqueue_dispatch=False, requests=[
            jobs.JobRequest(name="j", cores_per_node=cores, walltime_s=3600)])

    first = submit(8)  # 8 core-hours: fits zhengzhou's 10
    assert [a.site for a in first.accepted] == ["zhengzhou"]
    second = submit(8)  # zhengzhou has 2 core-hours left: tianjin takes it
    assert [a.site for a in second.accepted] == ["tianjin"]
    third = submit(16)  # 22 left at tianjin, 2 at zhengzhou
    assert [a.site for a in third.accepted] == ["tianjin"]
    refused = submit(8)  # 6 left at tianjin, 2 at zhengzhou: no centre has the share (the balance has 8)
    assert [r.code for r in refused.refused] == ["insufficient_quota"]
    balance = AllocationBalance.objects.get(allocation=allocation)
    assert balance.available == 8 * H
    # A finished job frees only what it did not use: its charge still counts against the share.
    assert quotas.remaining_credits_by_site(allocation, jobs.partition_views(with_live_capacity=False)[1].values(),
                                            timezone.now(), {"cpu"}).keys() <= {Site.objects.get(
                                                code="zhengzhou").pk, Site.objects.get(code="tianjin").pk}


def test_remaining_quota_converts_unit_seconds_at_the_price_in_force(small):
    commit("zhengzhou", "cpu", 10)
    commit("tianjin", "cpu", 990)
    allocation = award(small, {"cpu": 40})
    _views, partitions = jobs.partition_views(with_live_capacity=False)
    zz = Site.objects.get(code="zhengzhou")
    price = min(p.price_core_hour for p in partitions.values() if p.site_id == zz.pk and not p.gpus_per_node)
    peak = timezone.now().replace(hour=4, minute=0)  # 12:00 in China: peak (1.2)
    valley = timezone.now().replace(hour=16, minute=0)  # 00:00 in China: valley (0.8)
    at_peak = quotas.remaining_credits_by_site(allocation, partitions.values(), peak)
    at_valley = quotas.remaining_credits_by_site(allocation, partitions.values(), valley)
    assert at_peak[zz.pk] == int(10 * price * 1000 * 1200 / 1000)
    assert at_valley[zz.pk] == int(10 * price * 1000 * 800 / 1000)
    assert quotas.remaining_credits_by_site(allocation, partitions.values(), peak, {"gpu"}) == {}


# --- the API ----------------------------------------------------------------------------------------------
def test_operators_answer_through_the_api_and_foreign_institutions_see_nothing(small):
    allocation = both_sites(small, zhengzhou=500, tianjin=1000)
    share = row(allocation, "zhengzhou")
    operator = client_for(small.users["operator"])
    listed = operator.get("/api/v1/quotas/?state=proposed").json()["results"]
    assert [q["site"] for q in listed] == ["zhengzhou"]  # only its centre's shares
    assert listed[0]["institution"] == "PKU" and listed[0]["amount_units"] == share.amount
    response = operator.post(f"/api/v1/quotas/{share.pk}/respond/", {"action": "modify", "amount": 100},
                             format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "accepted" and response.json()["amount"] == "100.00"
    bad = operator.post(f"/api/v1/quotas/{share.pk}/respond/", {"action": "accept", "extra": 1}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unknown_field"

    pi = client_for(small.users["pi_a"])
    mine = pi.get(f"/api/v1/quotas/?allocation={allocation.pk}").json()["results"]
    assert {q["site"] for q in mine} == {"zhengzhou", "tianjin"}
    refused = pi.post("/api/v1/quotas/transfer/", {"allocation": allocation.pk, "resource_class": "cpu",
                                                   "from_site": "zhengzhou", "to_site": "tianjin",
                                                   "amount": 1000}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "quota_insufficient_unused"

    foreign = client_for(small.users["admin_b"])
    assert foreign.get("/api/v1/quotas/").json()["results"] == []
    assert foreign.post(f"/api/v1/quotas/{share.pk}/respond/", {"action": "accept"},
                        format="json").status_code == 404
    assert foreign.post("/api/v1/quotas/transfer/", {"allocation": allocation.pk, "resource_class": "cpu",
                                                     "from_site": "zhengzhou", "to_site": "tianjin", "amount": 1},
                        format="json").status_code == 404


# --- concurrent awards (PostgreSQL) ---------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_awards_never_broker_more_than_a_centre_committed():
    import threading

    from django.db import connections

    from tests.factories import build_federation

    fed = build_federation()
    build_small_federation(fed)
    commit("zhengzhou", "cpu", 600)
    commit("tianjin", "cpu", 800)
    pi = Actor(user=fed.users["pi_a"])
    today = timezone.localdate()
    requests = []
    for n in range(4):
        project = projects.project_create(actor=pi, institution_id=fed.a.pk, title=f"P{n}", abstract="A",
                                          discipline="physics", start=today, end=today + timedelta(days=300))
        requests.append(workflow.request_create(actor=pi, project=project, kind="new", tier="explore",
                                                title=f"R{n}", justification="J", amounts={"cpu": 500},
                                                start=today, end=today + timedelta(days=100)))
    barrier = threading.Barrier(len(requests))
    errors = []

    def submit(request):
        try:
            barrier.wait()
            workflow.request_submit(actor=pi, request=request)
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    placed = {code: sum(SiteQuota.objects.filter(site__code=code).values_list("amount", flat=True))
              for code in ("zhengzhou", "tianjin")}
    assert placed["zhengzhou"] <= 600 * H and placed["tianjin"] <= 800 * H
    assert sum(placed.values()) == 1400 * H  # 2,000 awarded, 1,400 committed: all of it placed, no more
    for allocation_id in SiteQuota.objects.values_list("allocation_id", flat=True).distinct():
        entries = LedgerEntry.objects.filter(allocation_id=allocation_id, kind="quota")
        assert sum(e.amount for e in entries) == sum(
            SiteQuota.objects.filter(allocation_id=allocation_id).values_list("amount", flat=True))


# --- the shares' use counters follow the ledger --------------------------------------------------------
def assert_counters_match_the_jobs(allocation) -> None:
    from federation.models import TERMINAL_JOB_STATES

    for share in SiteQuota.objects.filter(allocation=allocation):
        mine = Job.objects.filter(allocation=allocation, site=share.site, resource_class=share.resource_class)
        held = sum(j.hold_part for j in mine.exclude(state__in=TERMINAL_JOB_STATES))
        charged = sum(j.charged for j in mine.filter(state__in=TERMINAL_JOB_STATES))
        assert (share.held, share.charged) == (held, charged), share.site.code


def test_share_counters_follow_holds_charges_cancels_and_reroutes(fed):
    from accounts.actors import Actor as A
    from federation import ticker
    from federation.adapters import SimulatedAdapter, install_adapter, reset_adapters
    from federation.models import Partition

    build_small_federation(fed)
    allocation = award(fed, {"cpu": 2000, "gpu:v100": 400})
    pi = A(user=fed.users["pi_a"])
    now = timezone.now()
    reset_adapters()
    adapters = {}
    for site in Site.objects.all():
        adapters[site.code] = SimulatedAdapter(site, list(Partition.objects.filter(site=site)), seed=1,
                                               clock_start=now.timestamp())
        install_adapter(site.pk, adapters[site.code])
    try:
        batch = [jobs.JobRequest(name=f"cpu-{i}", cores_per_node=8, walltime_s=7200,
                                 preferred_sites=("tianjin",)) for i in range(4)]
        batch.append(jobs.JobRequest(name="v100", cores_per_node=8, gpus_per_node=1, accepted_family="v100",
                                     walltime_s=3600))
        result = jobs.jobs_submit(actor=pi, project=allocation.project, requests=batch, now=now,
                                  enqueue_dispatch=False)
        assert result.refused == []
        assert_counters_match_the_jobs(allocation)
        jobs.job_cancel(actor=pi, job=Job.objects.get(name="cpu-0"))
        assert_counters_match_the_jobs(allocation)
        for site in Site.objects.all():
            jobs.dispatch_routed(site, now=now)
        clock = ticker.SimClock(origin=now.timestamp(), scale=1.0)
        for site in Site.objects.all():
            jobs.ingest_status(site, adapters[site.code].poll(now.timestamp() + 60), clock=clock)
        tianjin = Site.objects.get(code="tianjin")
        services.site_set_state(actor=system_actor(), site=tianjin, state="offline", reason="power cut")
        adapters["tianjin"].sync_state("offline")
        for site in Site.objects.all():
            jobs.ingest_status(site, adapters[site.code].poll(now.timestamp() + 120), clock=clock)
        assert_counters_match_the_jobs(allocation)
        for site in Site.objects.all():
            jobs.dispatch_routed(site, now=now)
        for site in Site.objects.all():
            jobs.ingest_status(site, adapters[site.code].poll(now.timestamp() + 4 * 3600), clock=clock)
        assert Job.objects.filter(state="completed").exists()
        assert_counters_match_the_jobs(allocation)
    finally:
        reset_adapters()
