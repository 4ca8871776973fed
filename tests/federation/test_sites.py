"""Centres built from the real inventory; operators drain, take offline and commit capacity."""

from collections import Counter
from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.actors import Actor
from accounts.models import AuditEvent
from federation import services
from federation.inventory import (
    DEFAULT_INVENTORY,
    MODEL_FAMILY,
    InventoryError,
    NodeShape,
    plan_federation,
    read_inventory,
)
from federation.models import CapacityCommitment, Partition, Site, SiteState
from portal.errors import Conflict, PermissionDenied, ValidationFailed
from tests.factories import build_small_federation, client_for


def test_inventory_keeps_every_card_model_and_scales_exactly():
    shapes = read_inventory(DEFAULT_INVENTORY)
    assert sum(shapes.values()) == 1523
    plans = plan_federation(shapes, scale=6)
    models = {p.shape.model for plan in plans for p in plan.partitions if p.shape.model}
    assert models == set(MODEL_FAMILY) - {"G1"}  # G1 has no node in the inventory
    planned = Counter()
    for plan in plans:
        for p in plan.partitions:
            planned[p.shape] += p.nodes
    for shape, nodes in planned.items():
        assert nodes == shapes[shape] * 6  # largest-remainder split adds up exactly
    cards = sum(plan.cards for plan in plans)
    assert 30_000 < cards < 40_000  # SCNet-sized: tens of thousands of cards
    for plan in plans:
        for p in plan.partitions:
            assert (p.family or "cpu") in plan.profile.families


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sn,cpu_milli,memory_mib,gpu\nn1,1000,10,0\n", "missing columns model"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn1,abc,10,0,\n", "not a number"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn1,8000,1024,2,\n", "impossible node"),
        ("sn,cpu_milli,memory_mib,gpu,model\nn1,8000,1024,2,H100\n", "unknown accelerator model"),
        ("sn,cpu_milli,memory_mib,gpu,model\n", "no nodes"),
    ],
)
def test_bad_inventories_are_refused_with_the_line(tmp_path, content, message):
    path = tmp_path / "inv.csv"
    path.write_text(content)
    with pytest.raises(InventoryError, match=message):
        read_inventory(path)


@pytest.mark.django_db
def test_build_sites_command_builds_and_is_idempotent(tmp_path):
    out = StringIO()
    call_command("build_sites", "--scale", "1", stdout=out)
    assert "12 sites" in out.getvalue()
    partitions = Partition.objects.count()
    call_command("build_sites", "--scale", "1", stdout=StringIO())
    assert Partition.objects.count() == partitions
    gpu = Partition.objects.filter(gpus_per_node__gt=0).select_related("family").first()
    assert gpu.family is not None and gpu.price_card_hour > 0

    bad = tmp_path / "bad.csv"
    bad.write_text("sn,cpu_milli\n")
    with pytest.raises(CommandError, match="missing columns"):
        call_command("build_sites", str(bad), stdout=StringIO())


@pytest.mark.django_db
def test_operator_drains_and_reopens_their_site_with_audit(fed):
    build_small_federation(fed)
    operator = Actor(user=fed.users["operator"])
    site = Site.objects.get(code="zhengzhou")
    services.site_set_state(actor=operator, site=site, state=SiteState.DRAINING, reason="cooling maintenance")
    services.site_set_state(actor=operator, site=site, state=SiteState.ONLINE)
    events = AuditEvent.objects.filter(action="site.set_state").order_by("id")
    assert [(e.before["state"], e.after["state"]) for e in events] == [("online", "draining"), ("draining", "online")]
    assert events[0].actor_user == fed.users["operator"]


@pytest.mark.django_db
def test_operator_cannot_touch_another_site_and_others_cannot_operate(fed):
    build_small_federation(fed)
    tianjin = Site.objects.get(code="tianjin")
    for who in ("operator", "admin_a", "committee"):
        with pytest.raises(PermissionDenied):
            services.site_set_state(actor=Actor(user=fed.users[who]), site=tianjin, state=SiteState.OFFLINE)
    assert Site.objects.get(code="tianjin").state == SiteState.ONLINE


@pytest.mark.django_db
def test_illegal_site_transition_is_a_conflict(fed):
    build_small_federation(fed)
    admin = Actor(user=fed.users["fedadmin"])
    site = Site.objects.get(code="tianjin")
    services.site_set_state(actor=admin, site=site, state=SiteState.OFFLINE)
    with pytest.raises(Conflict) as exc:
        services.site_set_state(actor=admin, site=site, state=SiteState.DRAINING)
    assert exc.value.code == "illegal_transition"


@pytest.mark.django_db
def test_capacity_commitment_is_set_per_period_and_validated(fed):
    from allocations.models import ResourceClass

    build_small_federation(fed)
    operator = Actor(user=fed.users["operator"])
    site = Site.objects.get(code="zhengzhou")
    ascend = ResourceClass.objects.get(code="gpu:ascend")
    services.capacity_commit(actor=operator, site=site, resource_class=ascend, period_start=date(2027, 1, 1),
                             period_end=date(2027, 7, 1), amount_display=5000)
    services.capacity_commit(actor=operator, site=site, resource_class=ascend, period_start=date(2027, 1, 1),
                             period_end=date(2027, 7, 1), amount_display=6000)
    commitment = CapacityCommitment.objects.get(site=site, resource_class=ascend, period_start=date(2027, 1, 1))
    assert commitment.amount == 6000 * ascend.scale
    latest = AuditEvent.objects.filter(action="site.commit_capacity").order_by("id").last()
    assert latest.before["amount"] == 5000 * ascend.scale

    with pytest.raises(ValidationFailed) as exc:  # Zhengzhou hosts no V100
        services.capacity_commit(actor=operator, site=site, resource_class=ResourceClass.objects.get(code="gpu:v100"),
                                 period_start=date(2027, 1, 1), period_end=date(2027, 7, 1), amount_display=1)
    assert exc.value.code == "class_not_served"
    with pytest.raises(ValidationFailed):
        services.capacity_commit(actor=operator, site=site, resource_class=ascend, period_start=date(2027, 7, 1),
                                 period_end=date(2027, 1, 1), amount_display=1)


@pytest.mark.django_db
def test_sites_api_lists_centres_with_totals_in_few_queries(fed, django_assert_max_num_queries):
    build_small_federation(fed)
    client = client_for(fed.users["researcher_a"])
    with django_assert_max_num_queries(8):
        body = client.get("/api/v1/sites/").json()
    assert {s["code"] for s in body} == {"zhengzhou", "tianjin"}
    zhengzhou = next(s for s in body if s["code"] == "zhengzhou")
    assert zhengzhou["totals"]["cards"]["ascend"] > 0
    detail = client.get("/api/v1/sites/zhengzhou/").json()
    assert sum(p["nodes"] * p["gpus_per_node"] for p in detail["partitions"]) == zhengzhou["totals"]["total_cards"]
    assert client.get("/api/v1/sites/nowhere/").json()["error"]["code"] == "site_not_found"
    apps = client.get("/api/v1/applications/").json()
    alphafold = next(a for a in apps if a["code"] == "alphafold2")
    assert alphafold["sites"] == ["tianjin"]  # CUDA/ROCm only: Zhengzhou is Ascend + CPU


def test_node_shape_is_hashable_for_counting():
    assert Counter([NodeShape("T4", 96, 1, 4), NodeShape("T4", 96, 1, 4)])[NodeShape("T4", 96, 1, 4)] == 2
