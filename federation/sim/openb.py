"""Reading the Alibaba "openb" GPU cluster trace into simulator inputs.

The trace (``../shared/data/traces/alibaba-openb``, see its README; Weng et al., USENIX ATC
'23) lists a real heterogeneous cluster's nodes and the pods it ran. Here a pod becomes a
single-node SimJob: whole cores (``ceil(cpu_milli / 1000)``), ``memory_mib`` as MB, whole
cards (``num_gpu``; fractional GPU sharing is not modelled), and run time ``deletion_time -
scheduled_time``. Pods that never started carry no run time and are skipped by ``replayable``.
Pods in phase ``Failed`` exit with code 1.
"""

from __future__ import annotations

import csv
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from federation.sim.model import SimJob

GPU_MODELS = ("A10", "G2", "G3", "P100", "T4", "V100M16", "V100M32")


@dataclass(slots=True)
class TraceNode:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str  # "" for CPU nodes


@dataclass(slots=True)
class TracePod:
    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    phase: str
    creation_time: int
    scheduled_time: int | None
    deletion_time: int | None

    @property
    def runtime_s(self) -> int | None:
        if self.scheduled_time is None or self.deletion_time is None:
            return None
        return max(0, self.deletion_time - self.scheduled_time)

    @property
    def cores(self) -> int:
        return max(1, math.ceil(self.cpu_milli / 1000))


def _int_or_none(text: str) -> int | None:
    return int(text) if text.strip() else None


def read_nodes(path: str | Path) -> list[TraceNode]:
    with open(path, newline="") as f:
        return [
            TraceNode(row["sn"], int(row["cpu_milli"]), int(row["memory_mib"]), int(row["gpu"]), row["model"].strip())
            for row in csv.DictReader(f)
        ]


def read_pods(path: str | Path) -> list[TracePod]:
    with open(path, newline="") as f:
        return [
            TracePod(
                name=row["name"],
                cpu_milli=int(row["cpu_milli"]),
                memory_mib=int(row["memory_mib"]),
                num_gpu=int(row["num_gpu"]),
                gpu_milli=int(row["gpu_milli"] or 0),
                phase=row["pod_phase"],
                creation_time=int(row["creation_time"]),
                scheduled_time=_int_or_none(row["scheduled_time"]),
                deletion_time=_int_or_none(row["deletion_time"]),
            )
            for row in csv.DictReader(f)
        ]


def replayable(pods: list[TracePod]) -> list[TracePod]:
    """Pods that ran (have a run time)."""
    return [p for p in pods if p.runtime_s is not None]


def partition_name(model: str) -> str:
    return f"gpu-{model.lower()}" if model else "cpu"


def inventory_shapes(nodes: list[TraceNode]) -> dict[str, tuple[int, int, int, int]]:
    """Per GPU model (``""`` for CPU nodes): the most common node shape and how many nodes it has in all.

    A partition is a pool of identical nodes, so each model becomes one partition of its
    dominant shape ``(cores, memory_mb, gpus, node_count)``.
    """
    by_model: dict[str, Counter] = {}
    for node in nodes:
        by_model.setdefault(node.model, Counter())[(node.cpu_milli // 1000, node.memory_mib, node.gpus)] += 1
    shapes = {}
    for model, counter in sorted(by_model.items()):
        (cores, memory, gpus), _ = max(counter.items(), key=lambda kv: (kv[1], kv[0]))
        shapes[model] = (cores, memory, gpus, sum(counter.values()))
    return shapes


def requested_walltime(runtime_s: int, rng: random.Random, *, max_walltime_s: int, underestimate: float = 0.03) -> int:
    """What a user would ask for: an over-estimate rounded up to 10 minutes; a few ask too little."""
    if rng.random() < underestimate:
        wall = max(60, int(runtime_s * rng.uniform(0.5, 0.95)))
    else:
        wall = max(600, math.ceil(runtime_s * rng.uniform(1.2, 3.0) / 600) * 600)
    return min(wall, max_walltime_s)


def pod_to_job(
    pod: TracePod,
    *,
    job_id: str,
    partition: str,
    rng: random.Random,
    max_walltime_s: int = 3 * 86400,
    runtime_cap_s: int = 2 * 86400,
) -> SimJob:
    runtime = min(pod.runtime_s or 0, runtime_cap_s)
    return SimJob(
        job_id=job_id,
        partition=partition,
        nodes=1,
        cores_per_node=pod.cores,
        memory_mb_per_node=pod.memory_mib,
        gpus_per_node=pod.num_gpu,
        walltime_s=requested_walltime(runtime, rng, max_walltime_s=max_walltime_s),
        runtime_s=runtime,
        exit_code=1 if pod.phase == "Failed" else 0,
    )
