"""Build (or update) the federation's sites and partitions from a node inventory CSV."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.actors import system_actor
from allocations.catalogue import ensure_resource_classes
from federation import services
from federation.inventory import DEFAULT_INVENTORY, InventoryError, plan_federation, read_inventory


class Command(BaseCommand):
    help = "Build sites and partitions from an inventory CSV (sn,cpu_milli,memory_mib,gpu,model)."

    def add_arguments(self, parser):
        parser.add_argument("csv", nargs="?", default=str(DEFAULT_INVENTORY), help="inventory CSV")
        parser.add_argument("--scale", type=int, default=6, help="multiply node counts (default 6: ~37k cards)")
        parser.add_argument("--min-nodes", type=int, default=10, help="fold away rarer node shapes")

    def handle(self, *args, csv, scale, min_nodes, **options):
        if scale < 1:
            raise CommandError("--scale must be at least 1")
        try:
            plans = plan_federation(read_inventory(Path(csv)), scale=scale, min_nodes=min_nodes)
        except (InventoryError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        prices = {rc.code: rc.credits_per_unit for rc in ensure_resource_classes()}
        sites = services.sites_build(actor=system_actor(), plans=plans, national_prices=prices)
        for plan in plans:
            self.stdout.write(f"  {plan.profile.code:<10} {plan.profile.city:<4} {len(plan.partitions):>3} partitions"
                              f" {sum(p.nodes for p in plan.partitions):>6} nodes {plan.cards:>6} cards")
        self.stdout.write(self.style.SUCCESS(
            f"{len(sites)} sites, {sum(len(p.partitions) for p in plans)} partitions, "
            f"{sum(p.cards for p in plans)} cards"))
