"""Build a federation's sites and partitions from a node inventory CSV (openb shape).

The CSV has ``sn, cpu_milli, memory_mib, gpu, model`` per node. Nodes of one shape (model,
cores, memory, cards) become a partition; each shape's node count, multiplied by ``scale``,
is spread over the centres that host that accelerator family (by their weights). Pure data in,
``SitePlan`` out: the service in ``federation/services.py`` persists it.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

DEFAULT_INVENTORY = Path(__file__).parent / "data" / "openb_node_list_all_node.csv"

# Card model in the inventory -> accelerator family code (see federation/catalogue.py).
MODEL_FAMILY = {"A10": "a10", "V100M16": "v100", "V100M32": "v100", "P100": "p100", "T4": "t4",
                "G1": "dcu", "G3": "dcu", "G2": "ascend"}
FAMILY_ECOSYSTEM = {"a10": "cuda", "v100": "cuda", "p100": "cuda", "t4": "cuda", "dcu": "rocm-hip",
                    "ascend": "cann"}


@dataclass(frozen=True)
class CentreProfile:
    code: str
    name: str
    city: str
    families: tuple[str, ...]  # accelerator families hosted ("cpu" for CPU partitions)
    weight: int  # relative size
    price_factor: Decimal  # relative to the national price
    exchange_rate: Decimal  # site units per credit


# National centres in the style of SCNet's federation.
NATIONAL_CENTRES = [
    CentreProfile("zhengzhou", "国家超级计算郑州中心", "郑州", ("ascend", "cpu"), 5, Decimal("0.95"), Decimal("1.00")),
    CentreProfile("wuxi", "国家超级计算无锡中心", "无锡", ("cpu", "dcu"), 4, Decimal("0.90"), Decimal("1.00")),
    CentreProfile("tianjin", "国家超级计算天津中心", "天津", ("v100", "p100", "cpu"), 4, Decimal("1.00"),
                  Decimal("1.05")),
    CentreProfile("guangzhou", "国家超级计算广州中心", "广州", ("v100", "t4", "cpu"), 5, Decimal("1.00"),
                  Decimal("1.00")),
    CentreProfile("changsha", "国家超级计算长沙中心", "长沙", ("t4", "p100", "cpu"), 3, Decimal("0.92"),
                  Decimal("0.98")),
    CentreProfile("jinan", "国家超级计算济南中心", "济南", ("ascend", "dcu", "cpu"), 3, Decimal("0.93"),
                  Decimal("1.00")),
    CentreProfile("shenzhen", "国家超级计算深圳中心", "深圳", ("v100", "a10", "t4", "cpu"), 4, Decimal("1.10"),
                  Decimal("1.02")),
    CentreProfile("kunshan", "国家超级计算昆山中心", "昆山", ("dcu", "cpu"), 3, Decimal("0.90"), Decimal("1.00")),
    CentreProfile("chengdu", "国家超级计算成都中心", "成都", ("ascend", "dcu", "t4", "cpu"), 4, Decimal("0.92"),
                  Decimal("0.97")),
    CentreProfile("xian", "西安未来人工智能计算中心", "西安", ("ascend", "cpu"), 2, Decimal("0.95"), Decimal("1.00")),
    CentreProfile("hefei", "合肥先进计算中心", "合肥", ("dcu", "v100", "cpu"), 2, Decimal("0.97"), Decimal("1.00")),
    CentreProfile("wuhan", "武汉人工智能计算中心", "武汉", ("ascend", "cpu"), 2, Decimal("0.95"), Decimal("1.00")),
]


@dataclass(frozen=True)
class NodeShape:
    model: str  # "" for CPU nodes
    cores: int
    memory_mb: int
    gpus: int


@dataclass
class PartitionPlan:
    name: str
    shape: NodeShape
    family: str | None
    ecosystem: str
    nodes: int


@dataclass
class SitePlan:
    profile: CentreProfile
    partitions: list[PartitionPlan] = field(default_factory=list)

    @property
    def cards(self) -> int:
        return sum(p.nodes * p.shape.gpus for p in self.partitions)


class InventoryError(ValueError):
    pass


def read_inventory(path: Path) -> Counter[NodeShape]:
    required = {"cpu_milli", "memory_mib", "gpu", "model"}
    shapes: Counter[NodeShape] = Counter()
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise InventoryError(f"{path}: missing columns {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                cores = int(row["cpu_milli"]) // 1000
                memory = int(row["memory_mib"])
                gpus = int(row["gpu"] or 0)
            except ValueError:
                raise InventoryError(f"{path}:{line}: not a number in {row}") from None
            model = (row["model"] or "").strip()
            if cores <= 0 or memory <= 0 or gpus < 0 or (gpus > 0) != bool(model):
                raise InventoryError(f"{path}:{line}: impossible node {row}")
            if model and model not in MODEL_FAMILY:
                raise InventoryError(f"{path}:{line}: unknown accelerator model {model!r}")
            shapes[NodeShape(model, cores, memory, gpus)] += 1
    if not shapes:
        raise InventoryError(f"{path}: no nodes")
    return shapes


def plan_federation(shapes: Counter[NodeShape], *, scale: int = 6, min_nodes: int = 10,
                    centres: list[CentreProfile] = NATIONAL_CENTRES) -> list[SitePlan]:
    """Spread every node shape (scaled) over the centres hosting its family, by weight.

    Shapes rarer than ``min_nodes`` are folded away, except a model's most common shape,
    so every card model of the inventory stays in the federation.
    """
    dominant: dict[str, NodeShape] = {}
    for shape, _count in shapes.most_common():
        dominant.setdefault(shape.model, shape)
    plans = {c.code: SitePlan(c) for c in centres}
    for shape, count in sorted(shapes.items(), key=lambda kv: (kv[0].model, -kv[1], kv[0].cores)):
        if count < min_nodes and dominant[shape.model] != shape:
            continue
        family = MODEL_FAMILY.get(shape.model) if shape.model else None
        hosts = [c for c in centres if (family or "cpu") in c.families]
        if not hosts:
            continue
        total = count * scale
        weights = sum(c.weight for c in hosts)
        # Largest remainder: per-site node counts add up to exactly `total`.
        raw = [(total * c.weight / weights, c) for c in hosts]
        counts = {c.code: int(r) for r, c in raw}
        for _r, c in sorted(raw, key=lambda rc: rc[0] - int(rc[0]), reverse=True)[: total - sum(counts.values())]:
            counts[c.code] += 1
        for centre in hosts:
            nodes = counts[centre.code]
            if nodes == 0:
                continue
            base = shape.model.lower() if shape.model else "cpu"
            name = f"{base}-{shape.cores}c-{shape.memory_mb // 1024}g" + (f"-{shape.gpus}x" if shape.gpus else "")
            plans[centre.code].partitions.append(PartitionPlan(
                name=name, shape=shape, family=family, ecosystem=FAMILY_ECOSYSTEM.get(family, "cpu"), nodes=nodes))
    return [p for p in plans.values() if p.partitions]
