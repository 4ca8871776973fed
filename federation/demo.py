"""Demo data for the federation (called by ``manage.py seed_demo``): idempotent."""

from collections import defaultdict
from datetime import date

from django.utils import timezone

from accounts.models import User
from allocations.catalogue import ensure_resource_classes
from federation import quotas, services
from federation.applications import APPLICATIONS
from federation.inventory import DEFAULT_INVENTORY, plan_federation, read_inventory
from federation.models import CapacityCommitment, Partition, Site


def seed(*, actor, institutions, stdout=None) -> None:
    classes = {rc.code: rc for rc in ensure_resource_classes()}
    if not Site.objects.exists():
        plans = plan_federation(read_inventory(DEFAULT_INVENTORY))
        services.sites_build(actor=actor, plans=plans,
                             national_prices={code: rc.credits_per_unit for code, rc in classes.items()})
        services.applications_publish(actor=actor, catalogue=APPLICATIONS)
    operator = User.objects.filter(email="operator@scnet.example.cn").first()
    if operator is not None:
        for code in ("zhengzhou", "tianjin"):
            services.site_operator_bind(actor=actor, user=operator, site=Site.objects.get(code=code))
    commit_half_capacity(actor=actor, classes=classes)
    # The demo allocations were awarded before the centres committed capacity: broker them now.
    brokered = quotas.broker_pending(actor=actor)
    if stdout:
        stdout.write(f"  {Site.objects.count()} centres, {Partition.objects.count()} partitions; "
                     f"{len(brokered)} allocation(s) brokered into site quotas")


def commit_half_capacity(*, actor, classes: dict | None = None) -> None:
    """Each site commits half of its capacity of each class it serves for the current half-year
    (idempotent: skipped when that half-year has commitments)."""
    classes = classes or {rc.code: rc for rc in ensure_resource_classes()}
    today = timezone.localdate()
    start = date(today.year, 1 if today.month <= 6 else 7, 1)
    end = date(today.year + (start.month == 7), 7 if start.month == 1 else 1, 1)
    hours = (end - start).days * 24
    if not CapacityCommitment.objects.filter(period_start=start).exists():
        totals: dict[tuple[int, str], int] = defaultdict(int)
        for partition in Partition.objects.select_related("family"):
            code = f"gpu:{partition.family.code}" if partition.family else "cpu"
            totals[(partition.site_id, code)] += partition.total_cards if partition.family else partition.total_cores
        sites = {s.pk: s for s in Site.objects.all()}
        for (site_id, code), units in sorted(totals.items()):
            services.capacity_commit(actor=actor, site=sites[site_id], resource_class=classes[code],
                                     period_start=start, period_end=end, amount_display=units * hours // 2)
