"""Trace replay: the federation to replay on, from the database or from an inventory CSV.

Reads only. The replay itself (``federation.trace_replay``, a pure core) runs on the router's
``PartitionView``s at full capacity, each partition's simulated centre built from the same rows;
nothing it does is written anywhere (a replay is an experiment, not a change to the federation).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from federation.applications import APPLICATIONS
from federation.inventory import InventoryError, plan_federation, read_inventory
from federation.routing import PartitionView
from federation.trace_replay import ReplayReport, TraceError, read_trace, replay

__all__ = ["InventoryError", "ReplayReport", "TraceError", "federation_from_database", "federation_from_inventory",
           "read_trace", "replay"]


def federation_from_database() -> tuple[list[PartitionView], dict[int, str]]:
    """The federation as the router sees it now (site states, prices), at full capacity."""
    from federation.jobs import partition_views

    views, partitions = partition_views(with_live_capacity=False)
    return views, {pk: p.name for pk, p in partitions.items()}


def federation_from_inventory(path: Path, *, scale: int = 1, min_nodes: int = 10,
                              max_walltime_s: int = 7 * 24 * 3600) -> tuple[list[PartitionView], dict[int, str]]:
    """An in-memory federation built from an inventory CSV the way ``build_sites`` builds the database's
    (the national centres, all online, national prices × each centre's price factor, the demo peak/valley
    schedule, the catalogue's applications by ecosystem). Ids are positional."""
    from allocations.catalogue import GPU_CREDITS_PER_CARD_HOUR
    from federation.models import default_price_schedule

    schedule = tuple((e["start_hour"] % 24, e["end_hour"] % 24, e["multiplier_permille"])
                     for e in default_price_schedule())
    apps_by_ecosystem: dict[str, set[str]] = {}
    for app in APPLICATIONS:
        for ecosystem in app["ecosystems"]:
            apps_by_ecosystem.setdefault(ecosystem, set()).add(app["code"])
    views, names = [], {}
    plans = plan_federation(read_inventory(path), scale=scale, min_nodes=min_nodes)
    for site_id, plan in enumerate(plans, start=1):
        factor = plan.profile.price_factor
        for p in plan.partitions:
            pid = len(views) + 1
            card_price = Decimal(GPU_CREDITS_PER_CARD_HOUR.get(p.family, "10")) if p.family else Decimal(0)
            views.append(PartitionView(
                partition_id=pid, site_id=site_id, site_code=plan.profile.code, site_state="online",
                ecosystem=p.ecosystem, accelerator_family=p.family, accelerator_model=p.shape.model or None,
                nodes=p.nodes, cores_per_node=p.shape.cores, memory_mb_per_node=p.shape.memory_mb,
                gpus_per_node=p.shape.gpus, max_walltime_s=max_walltime_s,
                applications=frozenset(apps_by_ecosystem.get(p.ecosystem, ())),
                free_cores=p.nodes * p.shape.cores, free_gpus=p.nodes * p.shape.gpus, free_nodes=p.nodes,
                queued_core_seconds=0, running_jobs=0, price_core_hour=int(factor * 1000),
                price_card_hour=int(card_price * factor * 1000), peak_schedule=schedule))
            names[pid] = p.name
    return views, names
