"""The ledger services: holds, settlement, releases, refunds, transfers, adjustments."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from accounts.actors import Actor, system_actor
from accounts.models import AuditEvent
from allocations import ledger, projects, workflow
from allocations.models import Allocation, AllocationBalance, Hold, LedgerEntry
from portal.errors import Conflict, PermissionDenied, ValidationFailed
from tests.allocations.helpers import balances, counts

pytestmark = pytest.mark.django_db

CPU_AWARDED = 5_000 * 3600  # 5,000 core-hours in core-seconds


def explore_allocation(project, *, kind="new", amounts=None, allocation=None, days=(0, 365)) -> Allocation:
    """An allocation made the way production makes one: a PI's explore request, approved on submit."""
    pi = Actor(user=project.pi)
    today = project.start
    request = workflow.request_create(
        actor=pi,
        project=project,
        kind=kind,
        tier="explore",
        title=f"{kind} explore",
        justification="Tests.",
        amounts=amounts or {"cpu": 5_000},
        start=today + timedelta(days=days[0]),
        end=today + timedelta(days=days[1]),
        allocation=allocation,
    )
    workflow.request_submit(actor=pi, request=request)
    return Allocation.objects.get(origin=request)


@pytest.fixture
def svc_project(fed, today):
    return projects.project_create(
        actor=Actor(user=fed.users["pi_a"]),
        institution_id=fed.a.pk,
        title="Climate ensemble",
        abstract="Ensemble runs.",
        discipline="earth_sciences",
        start=today,
        end=today + timedelta(days=1000),
    )


@pytest.fixture
def allocation(svc_project) -> Allocation:
    return explore_allocation(svc_project)


@pytest.fixture
def cpu(catalogue):
    return catalogue["cpu"]


def entries(allocation, *kinds) -> list[tuple[str, int]]:
    rows = LedgerEntry.objects.filter(allocation=allocation).order_by("id")
    if kinds:
        rows = rows.filter(kind__in=kinds)
    return [(e.kind, e.amount) for e in rows]


def available(allocation, code="cpu") -> int:
    awarded, held, charged = balances(allocation)[code]
    return awarded - held - charged


# --- holds ---------------------------------------------------------------------------------
def test_hold_reserves_units_and_reduces_what_is_available(allocation, cpu):
    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=7_200, job_ref="job-1")

    assert (hold.state, hold.amount, hold.job_ref) == ("open", 7_200, "job-1")
    assert balances(allocation)["cpu"] == (CPU_AWARDED, 7_200, 0)
    assert available(allocation) == CPU_AWARDED - 7_200
    last = LedgerEntry.objects.filter(allocation=allocation).latest("id")
    assert (last.kind, last.amount, last.hold_id, last.job_ref, last.actor_label) == (
        "hold",
        7_200,
        hold.pk,
        "job-1",
        "system",
    )


def test_hold_over_the_balance_is_refused_and_writes_nothing(allocation, cpu):
    ledger.place_hold(allocation=allocation, resource_class=cpu, amount=CPU_AWARDED - 100, job_ref="big")
    before = counts()

    with pytest.raises(Conflict) as refused:
        ledger.place_hold(allocation=allocation, resource_class=cpu, amount=101, job_ref="one-too-many")

    assert refused.value.code == "insufficient_balance"
    assert counts() == before
    assert balances(allocation)["cpu"] == (CPU_AWARDED, CPU_AWARDED - 100, 0)
    # Exactly what is left is fine.
    ledger.place_hold(allocation=allocation, resource_class=cpu, amount=100, job_ref="last")
    assert available(allocation) == 0


def test_hold_on_a_class_the_allocation_was_not_awarded_is_refused(allocation, catalogue):
    with pytest.raises(Conflict) as refused:
        ledger.place_hold(allocation=allocation, resource_class=catalogue["gpu:a10"], amount=1, job_ref="gpu")
    assert refused.value.code == "insufficient_balance"


@pytest.mark.parametrize("amount", [0, -3600])
def test_hold_must_be_positive(allocation, cpu, amount):
    with pytest.raises(ValidationFailed) as refused:
        ledger.place_hold(allocation=allocation, resource_class=cpu, amount=amount, job_ref="j")
    assert refused.value.code == "invalid_amount"


@pytest.mark.parametrize("state", ["suspended", "expired"])
def test_hold_on_an_allocation_that_is_not_active_is_refused(fed, allocation, cpu, state):
    workflow.allocation_set_state(
        actor=Actor(user=fed.users["committee"]), allocation=allocation, to_state=state, reason="Test"
    )
    allocation.refresh_from_db()
    before = counts()

    with pytest.raises(Conflict) as refused:
        ledger.place_hold(allocation=allocation, resource_class=cpu, amount=10, job_ref="j")

    assert refused.value.code == "allocation_not_active"
    assert counts() == before


def test_hold_outside_the_allocation_dates_is_refused(svc_project, cpu):
    later = explore_allocation(svc_project, days=(10, 100))
    with pytest.raises(Conflict) as refused:
        ledger.place_hold(allocation=later, resource_class=cpu, amount=10, job_ref="early")
    assert refused.value.code == "allocation_not_active"


# --- settle and release --------------------------------------------------------------------
def test_settle_charges_the_actual_use_and_releases_the_rest(allocation, cpu):
    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=10_000, job_ref="job-2")

    charged = ledger.settle(hold=hold, actual=6_500)

    assert charged == 6_500
    assert balances(allocation)["cpu"] == (CPU_AWARDED, 0, 6_500)
    assert entries(allocation, "hold", "release", "charge") == [
        ("hold", 10_000),
        ("release", -10_000),
        ("charge", 6_500),
    ]
    charge = LedgerEntry.objects.get(allocation=allocation, kind="charge")
    assert (charge.hold_id, charge.job_ref, charge.memo) == (hold.pk, "job-2", "")
    hold.refresh_from_db()
    assert hold.state == "settled" and hold.closed_at is not None


def test_settle_with_no_use_only_releases(allocation, cpu):
    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=10_000, job_ref="job-0")
    assert ledger.settle(hold=hold, actual=0) == 0
    assert balances(allocation)["cpu"] == (CPU_AWARDED, 0, 0)
    assert entries(allocation, "release", "charge") == [("release", -10_000)]


def test_settle_refuses_negative_use(allocation, cpu):
    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=10, job_ref="j")
    with pytest.raises(ValidationFailed):
        ledger.settle(hold=hold, actual=-1)


def test_settle_is_idempotent(allocation, cpu):
    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=10_000, job_ref="job-3")
    ledger.settle(hold=hold, actual=4_000)
    before, balance_before = counts(), balances(allocation)

    assert ledger.settle(hold=hold, actual=4_000) == 0
    assert ledger.settle(hold=hold, actual=9_000) == 0

    assert counts() == before and balances(allocation) == balance_before


def test_release_gives_the_hold_back_and_is_idempotent(allocation, cpu):
    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=10_000, job_ref="job-4")

    ledger.release(hold=hold)
    before = counts()
    ledger.release(hold=hold)
    assert ledger.settle(hold=hold, actual=5_000) == 0  # a released hold cannot be charged later

    assert counts() == before
    assert balances(allocation)["cpu"] == (CPU_AWARDED, 0, 0)
    assert entries(allocation, "hold", "release") == [("hold", 10_000), ("release", -10_000)]
    assert Hold.objects.get(pk=hold.pk).state == "released"


def test_job_that_used_more_than_held_is_charged_only_what_the_balance_allows(allocation, cpu):
    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=10_000, job_ref="runaway")
    ledger.place_hold(allocation=allocation, resource_class=cpu, amount=CPU_AWARDED - 12_000, job_ref="other")
    # 2,000 units are left unreserved: the runaway may take its hold and those, no more.

    charged = ledger.settle(hold=hold, actual=50_000)

    assert charged == 12_000
    assert balances(allocation)["cpu"] == (CPU_AWARDED, CPU_AWARDED - 12_000, 12_000)
    assert available(allocation) == 0
    charge = LedgerEntry.objects.get(allocation=allocation, kind="charge")
    assert charge.amount == 12_000
    assert charge.memo == "used 50000, balance allowed 12000; 38000 written off"


def test_job_that_used_a_little_more_than_held_is_charged_in_full_when_the_balance_allows(allocation, cpu):
    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=10_000, job_ref="over")
    assert ledger.settle(hold=hold, actual=10_500) == 10_500
    assert LedgerEntry.objects.get(allocation=allocation, kind="charge").memo == ""
    assert balances(allocation)["cpu"] == (CPU_AWARDED, 0, 10_500)


# --- refunds -------------------------------------------------------------------------------
def test_refund_gives_back_charged_units_but_never_more_than_was_charged(allocation, cpu):
    hold = ledger.place_hold(allocation=allocation, resource_class=cpu, amount=10_000, job_ref="lost")
    ledger.settle(hold=hold, actual=8_000)

    entry = ledger.refund(allocation=allocation, resource_class=cpu, amount=3_000, job_ref="lost", memo="Node fault")

    assert (entry.kind, entry.amount, entry.memo, entry.job_ref) == ("refund", -3_000, "Node fault", "lost")
    assert balances(allocation)["cpu"] == (CPU_AWARDED, 0, 5_000)
    before = counts()
    for amount in (5_001, 0, -10):
        with pytest.raises(Conflict) as refused:
            ledger.refund(allocation=allocation, resource_class=cpu, amount=amount, job_ref="lost", memo="again")
        assert refused.value.code == "refund_exceeds_charges"
    assert counts() == before
    assert balances(allocation)["cpu"] == (CPU_AWARDED, 0, 5_000)


# --- transfers -----------------------------------------------------------------------------
def test_transfer_moves_unused_units_between_two_allocations_of_one_project(svc_project, allocation, cpu, fed):
    renewal = explore_allocation(svc_project, kind="renewal", amounts={"cpu": 1_000}, allocation=allocation)
    actor = Actor(user=fed.users["committee"])
    with pytest.raises(PermissionDenied):  # the PI cannot move what the committee awarded
        ledger.transfer(actor=Actor(user=fed.users["pi_a"]), source=allocation, target=renewal,
                        resource_class=cpu, amount=36_000, memo="x")

    out, into = ledger.transfer(
        actor=actor, source=allocation, target=renewal, resource_class=cpu, amount=36_000, memo="Move to next year"
    )

    assert balances(allocation)["cpu"] == (CPU_AWARDED - 36_000, 0, 0)
    assert balances(renewal)["cpu"] == (1_000 * 3600 + 36_000, 0, 0)
    assert (out.kind, out.amount, out.memo) == ("transfer", -36_000, f"to #{renewal.pk}: Move to next year")
    assert (into.kind, into.amount, into.memo) == ("transfer", 36_000, f"from #{allocation.pk}: Move to next year")
    assert AuditEvent.objects.filter(action="ledger.transfer", object_id=str(out.pk)).exists()


def test_transfer_is_refused_beyond_the_unused_balance_or_outside_the_project(svc_project, allocation, cpu, fed):
    actor = Actor(user=fed.users["pi_a"])
    renewal = explore_allocation(svc_project, kind="renewal", amounts={"cpu": 1_000}, allocation=allocation)
    ledger.place_hold(allocation=allocation, resource_class=cpu, amount=CPU_AWARDED - 10, job_ref="busy")
    other_project = projects.project_create(
        actor=actor,
        institution_id=fed.a.pk,
        title="Other",
        abstract="x",
        discipline="physics",
        start=svc_project.start,
        end=svc_project.end,
    )
    foreign = explore_allocation(other_project)
    before = counts()

    cases = [
        (dict(source=allocation, target=renewal, amount=11), Conflict, "insufficient_balance"),
        (dict(source=allocation, target=foreign, amount=1), ValidationFailed, "invalid_transfer"),
        (dict(source=allocation, target=allocation, amount=1), ValidationFailed, "invalid_transfer"),
        (dict(source=renewal, target=allocation, amount=0), ValidationFailed, "invalid_amount"),
    ]
    for kwargs, error, code in cases:
        with pytest.raises(error) as refused:
            ledger.transfer(actor=Actor(user=fed.users["committee"]), resource_class=cpu, memo="x", **kwargs)
        assert refused.value.code == code, kwargs
    assert counts() == before


# --- adjustments ---------------------------------------------------------------------------
def test_only_a_federation_admin_adjusts_a_balance(fed, allocation, cpu):
    before = counts()
    for who in ("pi_a", "admin_a", "committee", "operator", "reviewer"):
        with pytest.raises(PermissionDenied) as refused:
            ledger.adjust(
                actor=Actor(user=fed.users[who]), allocation=allocation, resource_class=cpu, amount=3600, memo="Gift"
            )
        assert refused.value.code == "federation_admin_required", who
    assert counts() == before


def test_federation_admin_adjusts_a_balance_with_a_reason_and_an_audit_row(fed, allocation, cpu, catalogue):
    admin = Actor(user=fed.users["fedadmin"])

    entry = ledger.adjust(actor=admin, allocation=allocation, resource_class=cpu, amount=-3600, memo="Typo in award")
    ledger.adjust(actor=admin, allocation=allocation, resource_class=catalogue["storage"], amount=500, memo="Scratch")

    assert (entry.kind, entry.amount, entry.actor_label) == ("adjustment", -3600, "user:fedadmin@scnet.example.cn")
    assert balances(allocation)["cpu"] == (CPU_AWARDED - 3600, 0, 0)
    assert balances(allocation)["storage"] == (500, 0, 0)
    assert AuditEvent.objects.filter(action="ledger.adjust").count() == 2
    for amount, memo, code in ((0, "x", "invalid_adjustment"), (5, "  ", "invalid_adjustment")):
        with pytest.raises(ValidationFailed) as refused:
            ledger.adjust(actor=admin, allocation=allocation, resource_class=cpu, amount=amount, memo=memo)
        assert refused.value.code == code
    with pytest.raises(Conflict) as refused:
        ledger.adjust(actor=system_actor(), allocation=allocation, resource_class=cpu, amount=-CPU_AWARDED, memo="x")
    assert refused.value.code == "insufficient_balance"


# --- the last line of defence --------------------------------------------------------------
def test_database_refuses_a_balance_that_would_go_negative(allocation, cpu):
    balance = AllocationBalance.objects.get(allocation=allocation, resource_class=cpu)
    with pytest.raises(IntegrityError), transaction.atomic():
        AllocationBalance.objects.filter(pk=balance.pk).update(charged=CPU_AWARDED + 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        AllocationBalance.objects.filter(pk=balance.pk).update(held=-1)
