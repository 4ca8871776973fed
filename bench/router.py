"""Router decision time: 30 sites, 200 partitions, 100,000 jobs (``python -m bench router``).

Sites and partitions take their node shapes (cores, memory, cards per node, card model) from the
real Alibaba "openb" inventory when ``../shared/data/traces/alibaba-openb`` is present, and job
shapes (cores, memory, cards, accepted card models) from its pod trace; otherwise from a built-in
table of the same shapes. Everything is drawn from one seeded generator.

Figures (each the median of ``--runs`` runs):

* ``decision_us_median`` / ``decision_us_p99`` — THE HEADLINE: individual ``Router.route`` calls,
  each timed alone with ``time.perf_counter_ns``, over the whole job stream on one Router (index
  built once per capacity snapshot, shape cache filling as the stream goes, so the first job of
  every shape pays for its plan and is included);
* ``decision_cold_us_median`` — only the calls that met a shape for the first time;
  ``decision_warm_us_p99`` — only the others;
* ``batch_us_per_job`` — ``Router.route_batch`` over batches of ``--batch`` jobs (each batch a
  project with its own quota), wall time divided by jobs, on a fresh Router (so it includes planning
  every shape once, as the single decisions do); includes consuming quota and capacity and
  re-scoring the partitions earlier jobs of the batch loaded; ``batch_warm_us_per_job`` — the same
  again on that Router, every shape already planned;
* ``route_fn_us_median`` — the stateless ``route(job, partitions, ...)`` function, which builds
  the index on every call (a sample of jobs), for comparison;
* ``explain_us_median`` — ``RoutingDecision.explain()`` (the compact explanation the job service
  persists with every job), each call timed alone, over the decisions of one more pass of batches
  on the warm Router; ``breakdown_us_median`` — ``breakdown()`` (every compatible partition as an
  object) on a sample of the same decisions, for comparison.

The garbage collector stays on (a collection before each timed section); the machine's load is
printed with the table, since on a shared machine it moves the figures more than the code does.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from federation.routing import JobSpec, PartitionView, Router, route

TRACE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "alibaba-openb"

SITE_CODES = (
    "wuxi tianjin jinan changsha shenzhen guangzhou zhengzhou kunshan chengdu xian hefei wuhan nanjing "
    "shanghai beijing harbin lanzhou kunming urumqi hohhot taiyuan guiyang nanning fuzhou hangzhou shenyang "
    "changchun shijiazhuang nanchang qingdao"
).split()
# model -> (family, ecosystem, card-hour price in credit milli-units)
MODELS = {
    "A10": ("a10", "cuda", 1200),
    "V100M16": ("v100", "cuda", 2200),
    "V100M32": ("v100", "cuda", 2600),
    "P100": ("p100", "cuda", 1000),
    "T4": ("t4", "cuda", 800),
    "G1": ("dcu", "rocm-hip", 1400),
    "G3": ("dcu", "rocm-hip", 1600),
    "G2": ("ascend", "cann", 2000),
}
# partition kinds and how common they are across the federation
KIND_WEIGHTS = {
    "": 30,
    "T4": 14,
    "V100M16": 8,
    "V100M32": 7,
    "P100": 8,
    "A10": 7,
    "G1": 5,
    "G3": 8,
    "G2": 13,
}
# node shapes (cores, memory MiB, cards) per model from the openb inventory, used without the trace
FALLBACK_NODES = {
    "": [(32, 262144, 0), (96, 524288, 0), (64, 524288, 0), (104, 524288, 0)],
    "A10": [(128, 1048576, 1)],
    "G2": [(96, 393216, 8)],
    "G3": [(128, 786432, 8)],
    "P100": [(16, 122880, 2), (64, 262144, 2)],
    "T4": [(104, 524288, 2), (96, 393216, 4)],
    "V100M16": [(32, 131072, 4), (64, 262144, 8)],
    "V100M32": [(48, 376832, 4), (96, 786432, 8)],
}
FALLBACK_PODS = [
    (0, 12, 57344, ""),
    (0, 32, 49152, ""),
    (0, 8, 30517, ""),
    (1, 4, 5600, ""),
    (1, 11, 49152, ""),
    (1, 12, 47104, "T4"),
    (1, 8, 30517, "G2"),
    (1, 8, 30517, "V100M16|V100M32"),
    (1, 4, 22888, "P100|V100M16|V100M32"),
    (2, 16, 65536, ""),
    (4, 32, 131072, "V100M16|V100M32"),
    (8, 64, 262144, "G2"),
    (8, 96, 393216, ""),
]
CUDA_APPS = ("alphafold2", "llm-finetune", "pytorch", "gromacs", "lammps", "vasp")
APPS_BY_ECOSYSTEM = {
    "cuda": CUDA_APPS,
    "rocm-hip": ("pytorch", "gromacs", "lammps", "alphafold2"),
    "cann": ("llm-finetune", "pytorch", "alphafold2"),
    "cpu": ("gromacs", "lammps", "openfoam", "wrf", "vasp"),
}
APP_ECOSYSTEMS = {
    "alphafold2": frozenset({"cuda", "rocm-hip", "cann"}),
    "llm-finetune": frozenset({"cuda", "cann"}),
    "pytorch": frozenset({"cuda", "rocm-hip", "cann"}),
    "gromacs": frozenset({"cuda", "rocm-hip", "cpu"}),
    "lammps": frozenset({"cuda", "rocm-hip", "cpu"}),
    "vasp": frozenset({"cuda", "cpu"}),
    "openfoam": frozenset({"cpu"}),
    "wrf": frozenset({"cpu"}),
}
GPU_APPS = ("alphafold2", "llm-finetune", "pytorch", "gromacs", "lammps", "vasp")
CPU_APPS = ("gromacs", "lammps", "openfoam", "wrf", "vasp")
DATASETS = ("pdb", "uniref90", "bfd", "era5", "cmip6", "c4-corpus", "materials-project", "openfoam-cases")
WALLTIMES = (1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 100 * 3600)
PEAK_SCHEDULES = (
    ((8, 12, 1250), (14, 21, 1250), (23, 7, 600)),
    ((9, 18, 1200), (0, 8, 700)),
    (),
)
NOW = datetime(2025, 3, 4, 2, 30, tzinfo=UTC)  # 10:30 in Beijing: peak hours at most sites


def load_node_shapes() -> dict[str, list[tuple[int, int, int]]]:
    path = TRACE_DIR / "openb_node_list_all_node.csv"
    if not path.exists():
        return FALLBACK_NODES
    shapes: dict[str, set[tuple[int, int, int]]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            shape = (int(row["cpu_milli"]) // 1000, int(row["memory_mib"]), int(row["gpu"]))
            shapes.setdefault(row["model"], set()).add(shape)
    shapes.setdefault("G1", shapes.get("G3", set()))  # G1 is not in the node list; build it like G3
    return {model: sorted(s) for model, s in shapes.items()}


def load_pods() -> list[tuple[int, int, int, str]]:
    path = TRACE_DIR / "openb_pod_list_gpuspec33.csv"
    if not path.exists():
        return FALLBACK_PODS
    with path.open() as f:
        return [
            (int(r["num_gpu"]), max(1, int(r["cpu_milli"]) // 1000), int(r["memory_mib"]), r["gpu_spec"])
            for r in csv.DictReader(f)
        ]


def build_federation(rng: random.Random, n_sites: int = 30, n_partitions: int = 200) -> list[PartitionView]:
    node_shapes = load_node_shapes()
    states = ["online"] * (n_sites - 5) + ["degraded", "degraded", "draining", "draining", "offline"]
    rng.shuffle(states)
    sites = []
    for site_id, code in enumerate(SITE_CODES[:n_sites], start=1):
        sites.append(
            (
                site_id,
                code,
                states[site_id - 1],
                rng.choice(PEAK_SCHEDULES),
                frozenset(rng.sample(DATASETS, rng.randint(0, 3))),
                rng.uniform(0.8, 1.25),
            )
        )
    kinds = list(KIND_WEIGHTS)
    weights = list(KIND_WEIGHTS.values())
    partitions = []
    for pid in range(1, n_partitions + 1):
        # every site gets at least six partitions; the rest go to the big centres
        site_id, code, state, schedule, datasets, price_factor = sites[
            (pid - 1) % n_sites if pid <= 6 * n_sites else rng.randrange(n_sites // 3)
        ]
        model = rng.choices(kinds, weights)[0]
        cores, memory, cards = rng.choice(node_shapes[model])
        family, ecosystem, card_price = MODELS.get(model, (None, "cpu", 0))
        nodes = rng.randint(32, 1024) if not cards else rng.randint(4, 256)
        capacity = nodes * (cards or cores)
        free = int(capacity * rng.choice((0.0, 0.05, 0.2, 0.5)))
        apps = frozenset(a for a in APPS_BY_ECOSYSTEM[ecosystem] if rng.random() < 0.6) or frozenset(
            {APPS_BY_ECOSYSTEM[ecosystem][0]}
        )
        queued = int(capacity * 3600 * rng.choice((0, 0.5, 2, 8)))
        partitions.append(
            PartitionView(
                partition_id=pid,
                site_id=site_id,
                site_code=code,
                site_state=state,
                ecosystem=ecosystem,
                accelerator_family=family,
                accelerator_model=model or None,
                nodes=nodes,
                cores_per_node=cores,
                memory_mb_per_node=memory,
                gpus_per_node=cards,
                max_walltime_s=rng.choice((24, 72, 168)) * 3600,
                applications=apps,
                free_cores=free if not cards else free // cards * cores,
                free_gpus=free if cards else 0,
                free_nodes=free // (cards or cores),
                queued_core_seconds=queued if not cards else 0,
                queued_gpu_seconds=queued if cards else 0,
                running_jobs=rng.randint(0, 500),
                price_core_hour=round(90 * price_factor),
                price_card_hour=round(card_price * price_factor),
                peak_schedule=schedule,
                datasets=datasets,
            )
        )
    return partitions


def build_shapes(rng: random.Random, n_shapes: int) -> list[JobSpec]:
    pods = load_pods()
    shapes = []
    for _ in range(n_shapes):
        cards, cores, memory, spec = rng.choice(pods)
        nodes = 1
        if cards == 0:
            app = rng.choice(CPU_APPS) if rng.random() < 0.7 else None
            if app in {"wrf", "openfoam", "vasp", "lammps"} and rng.random() < 0.5:
                nodes, cores, memory = rng.choice((2, 4, 8, 16)), rng.choice((32, 64)), 65536
            ecosystems = None
            models = None
        else:
            app = rng.choice(GPU_APPS) if rng.random() < 0.7 else None
            ecosystems = APP_ECOSYSTEMS[app] - {"cpu"} if app else None
            models = frozenset(spec.split("|")) if spec else None
            if cards == 8 and rng.random() < 0.3:
                nodes = rng.choice((2, 4))
        shapes.append(
            JobSpec(
                nodes=nodes,
                cores_per_node=cores,
                memory_mb_per_node=memory,
                gpus_per_node=cards,
                walltime_s=rng.choice(WALLTIMES),
                accepted_models=models,
                ecosystems=ecosystems,
                application=app,
                dataset=rng.choice(DATASETS) if rng.random() < 0.3 else None,
                preferred_sites=tuple(rng.sample(SITE_CODES, rng.randint(1, 3))) if rng.random() < 0.2 else (),
            )
        )
    return shapes


def build_quota(rng: random.Random, n_sites: int) -> dict[int, int]:
    return {s: (0 if rng.random() < 0.1 else rng.randint(50_000, 20_000_000) * 1000) for s in range(1, n_sites + 1)}


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_run(partitions: list[PartitionView], jobs: list[JobSpec], quotas: list[dict[int, int]], batch: int) -> dict:
    clock = time.perf_counter_ns
    gc.collect()
    router = Router(partitions)
    quota = quotas[0]
    samples = []
    cold = []
    warm = []
    seen: set[JobSpec] = set()
    routed = 0
    for job in jobs:
        t0 = clock()
        decision = router.route(job, quota, NOW)
        elapsed = clock() - t0
        samples.append(elapsed)
        routed += decision.chosen_partition_id is not None
        if job not in seen:
            seen.add(job)
            cold.append(elapsed)
        else:
            warm.append(elapsed)

    gc.collect()
    router = Router(partitions)
    batch_ns = []
    for _pass in range(2):  # a fresh Router, then the same one again with every shape planned
        t0 = clock()
        batch_routed = 0
        for n, start in enumerate(range(0, len(jobs), batch)):
            decisions = router.route_batch(jobs[start : start + batch], quotas[n % len(quotas)], NOW)
            batch_routed += sum(d.chosen_partition_id is not None for d in decisions)
        batch_ns.append(clock() - t0)

    explained = [
        d
        for start in range(0, len(jobs), batch)
        for d in router.route_batch(jobs[start : start + batch], quotas[(start // batch) % len(quotas)], NOW)
    ]
    gc.collect()
    explain_samples = []
    for decision in explained:
        t0 = clock()
        decision.explain()
        explain_samples.append(clock() - t0)
    breakdown_samples = []
    for decision in explained[:: max(1, len(explained) // 2000)]:
        t0 = clock()
        decision.breakdown()
        breakdown_samples.append(clock() - t0)
    del explained

    fn_samples = []
    for job in jobs[:2000]:
        t0 = clock()
        route(job, partitions, quota, NOW)
        fn_samples.append(clock() - t0)

    return {
        "decision_us_median": statistics.median(samples) / 1000,
        "decision_us_p99": percentile(samples, 0.99) / 1000,
        "decision_cold_us_median": statistics.median(cold) / 1000,
        "decision_warm_us_p99": percentile(warm, 0.99) / 1000,
        "batch_us_per_job": batch_ns[0] / len(jobs) / 1000,
        "batch_warm_us_per_job": batch_ns[1] / len(jobs) / 1000,
        "route_fn_us_median": statistics.median(fn_samples) / 1000,
        "explain_us_median": statistics.median(explain_samples) / 1000,
        "breakdown_us_median": statistics.median(breakdown_samples) / 1000,
        "routed_share": routed / len(jobs),
        "batch_routed_share": batch_routed / len(jobs),
        "shapes": len(seen),
    }


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench router")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--shapes", type=int, default=3000, help="size of the pool job shapes are drawn from")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20250304)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    partitions = build_federation(rng)
    pool = build_shapes(rng, args.shapes)
    # a few shapes are very common (job arrays, sweeps), most are rare
    popularity = [1 / (rank + 1) ** 0.9 for rank in range(len(pool))]
    jobs = rng.choices(pool, popularity, k=args.jobs)
    quotas = [build_quota(rng, len(SITE_CODES)) for _ in range(20)]

    runs = [one_run(partitions, jobs, quotas, args.batch) for _ in range(args.runs)]
    figures = {key: statistics.median(run[key] for run in runs) for key in runs[0]}

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"router: {len({p.site_id for p in partitions})} sites, {len(partitions)} partitions, "
        f"{len(jobs)} jobs ({int(figures['shapes'])} distinct shapes), median of {args.runs} runs, "
        f"load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    rows = [
        ("Router.route, single decisions: median (headline)", figures["decision_us_median"]),
        ("Router.route, single decisions: p99", figures["decision_us_p99"]),
        ("Router.route, first job of a shape: median", figures["decision_cold_us_median"]),
        ("Router.route, shape seen before: p99", figures["decision_warm_us_p99"]),
        (f"Router.route_batch, per job (batches of {args.batch}), fresh Router", figures["batch_us_per_job"]),
        ("Router.route_batch, per job, Router that has planned every shape", figures["batch_warm_us_per_job"]),
        ("route() function, rebuilds index each call: median", figures["route_fn_us_median"]),
        ("RoutingDecision.explain() of a batch decision: median", figures["explain_us_median"]),
        ("RoutingDecision.breakdown() of a batch decision: median", figures["breakdown_us_median"]),
    ]
    for label, value in rows:
        print(f"  {label:<68} {value:9.2f} µs")
    print(f"  routed: {figures['routed_share']:.1%} single, {figures['batch_routed_share']:.1%} in batches")
    return {
        "decision_us_median": round(figures["decision_us_median"], 2),
        "decision_us_p99": round(figures["decision_us_p99"], 2),
        "decision_cold_us_median": round(figures["decision_cold_us_median"], 2),
        "decision_warm_us_p99": round(figures["decision_warm_us_p99"], 2),
        "batch_us_per_job": round(figures["batch_us_per_job"], 2),
        "batch_warm_us_per_job": round(figures["batch_warm_us_per_job"], 2),
        "route_fn_us_median": round(figures["route_fn_us_median"], 2),
        "explain_us_median": round(figures["explain_us_median"], 2),
        "breakdown_us_median": round(figures["breakdown_us_median"], 2),
        "headline": "decision_us_median: median of individual Router.route calls timed with perf_counter_ns",
        "partitions": len(partitions),
        "sites": len({p.site_id for p in partitions}),
        "jobs": len(jobs),
        "shapes": int(figures["shapes"]),
        "routed_share": round(figures["routed_share"], 4),
        "runs": args.runs,
        "load_average": round(load, 2),
    }
