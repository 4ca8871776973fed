"""Concurrent ledger writers on PostgreSQL never overspend an allocation."""

import random
import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.db.models import F
from django.utils import timezone

from accounts.actors import Actor, system_actor
from accounts.models import InstitutionRole
from allocations import ledger, projects, workflow
from allocations.catalogue import ensure_resource_classes
from allocations.models import AllocationBalance, Hold, LedgerEntry, LedgerKind, ResourceClass
from portal.errors import Conflict
from tests.factories import make_institution, make_member

WRITERS = 8
ATTEMPTS = 40


def _allocation(cpu_hours: int):
    ensure_resource_classes()
    institution = make_institution("PKU", "北京大学", ["pku.edu.cn"])
    pi = Actor(user=make_member(institution, InstitutionRole.PI, "pi@pku.edu.cn"))
    today = timezone.localdate()
    project = projects.project_create(actor=pi, institution_id=institution.pk, title="Race", abstract="A",
                                      discipline="physics", start=today, end=today + timedelta(days=300))
    request = workflow.request_create(actor=pi, project=project, kind="new", tier="explore", title="R",
                                      justification="J", amounts={"cpu": cpu_hours}, start=today,
                                      end=today + timedelta(days=100))
    workflow.request_submit(actor=pi, request=request)
    return project.allocations.get()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_settles_and_releases_never_overspend():
    allocation = _allocation(cpu_hours=10)  # 36,000 core-seconds
    cpu = ResourceClass.objects.get(code="cpu")
    awarded = 10 * cpu.scale
    outcomes = {"held": 0, "refused": 0, "errors": []}
    lock = threading.Lock()
    barrier = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            barrier.wait()
            for i in range(ATTEMPTS):
                amount = rng.randint(200, 2500)
                try:
                    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=amount,
                                             job_ref=f"job-{n}-{i}")
                except Conflict as exc:
                    assert exc.code == "insufficient_balance"
                    with lock:
                        outcomes["refused"] += 1
                    continue
                with lock:
                    outcomes["held"] += 1
                roll = rng.random()
                if roll < 0.4:
                    ledger.settle(hold=hold, actual=rng.randint(0, amount + 500), actor=system_actor())
                elif roll < 0.6:
                    ledger.release(hold=hold)
        except Exception as exc:  # surfaced by the assertion below
            outcomes["errors"].append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert outcomes["errors"] == []
    assert outcomes["refused"] > 0, "the test must push the allocation past its balance"
    balance = AllocationBalance.objects.get(allocation=allocation, resource_class=cpu)
    assert balance.awarded == awarded
    assert balance.held >= 0 and balance.charged >= 0
    assert balance.held + balance.charged <= balance.awarded

    # The ledger explains the balance exactly.
    def total(kinds):
        entries = LedgerEntry.objects.filter(allocation=allocation, resource_class=cpu, kind__in=kinds)
        return sum(entries.values_list("amount", flat=True))

    assert total([LedgerKind.AWARD]) == balance.awarded
    assert total([LedgerKind.HOLD, LedgerKind.RELEASE]) == balance.held
    assert total([LedgerKind.CHARGE, LedgerKind.REFUND]) == balance.charged
    open_holds = Hold.objects.filter(allocation=allocation, state=Hold.State.OPEN)
    assert sum(open_holds.values_list("amount", flat=True)) == balance.held
    assert LedgerEntry.objects.filter(kind=LedgerKind.HOLD).count() == outcomes["held"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_an_overspending_update_even_without_the_service():
    from django.db import IntegrityError
    from django.db.models import F

    allocation = _allocation(cpu_hours=1)
    balance = AllocationBalance.objects.get(allocation=allocation)
    with pytest.raises(IntegrityError):
        AllocationBalance.objects.filter(pk=balance.pk).update(charged=F("awarded") + 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_job_batches_never_overspend_a_project():
    from accounts.models import Institution
    from federation import jobs
    from federation.models import Job
    from tests.factories import Fed, build_small_federation

    allocation = _allocation(cpu_hours=40)  # 144,000 core-seconds
    project = allocation.project
    pi = Actor(user=project.pi)
    pku = Institution.objects.get(code="PKU")
    fed = Fed(a=pku, b=pku)
    build_small_federation(fed)
    # Brokered shares ten times the award: the router never refuses on quota, so the ledger must hold the line.
    from federation.models import SiteQuota

    assert SiteQuota.objects.filter(allocation=allocation, amount__gt=0).exists()
    SiteQuota.objects.filter(allocation=allocation).update(amount=F("amount") * 10)
    outcomes = {"accepted": 0, "refused": 0, "errors": []}
    lock = threading.Lock()
    barrier = threading.Barrier(WRITERS)

    def submitter(n: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):  # each batch asks for 16 × 4 cores × 1 h = 64 core-hours
                batch = [jobs.JobRequest(name=f"w{n}", cores_per_node=4, walltime_s=3600) for _ in range(16)]
                result = jobs.jobs_submit(actor=pi, project=project, requests=batch, enqueue_dispatch=False)
                with lock:
                    outcomes["accepted"] += len(result.accepted)
                    outcomes["refused"] += len(result.refused)
                assert {r.code for r in result.refused} <= {"insufficient_balance"}
        except Exception as exc:  # surfaced below
            outcomes["errors"].append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert outcomes["errors"] == []
    assert outcomes["refused"] > 0, "the batches must ask for more than the allocation holds"
    cpu = ResourceClass.objects.get(code="cpu")
    balance = AllocationBalance.objects.get(allocation=allocation, resource_class=cpu)
    assert balance.held <= balance.awarded == 40 * 3600
    assert balance.held == sum(Job.objects.values_list("hold_part", flat=True))
    assert Job.objects.count() == outcomes["accepted"]
