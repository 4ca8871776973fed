"""One simulated day of a federation of simulated centres: ``python -m bench simulator``.

Target (from the issue): a 1,000,000-job day on a 30-site federation in under 60 s of wall
time. The harness

1. builds 30 sites from the Alibaba openb node inventory (one partition per GPU model plus a
   CPU partition, node counts scaled per site so the offered load is ``--load`` of the
   federation's capacity; a built-in inventory of the same shape stands in if the trace is
   absent),
2. samples the workload (seeded) from the openb pod trace: shapes (cores, memory, cards) and
   run times (``deletion_time - scheduled_time``, capped at two days), over 24 h with a
   day/night arrival curve; a small share of CPU jobs become multi-node MPI jobs,
3. routes each job to a partition that fits it, at random weighted by capacity (the real
   router is elsewhere; this is only a feed),
4. steps every site through the day in ``--tick`` second ticks: advance the site to the end
   of the tick, then submit the jobs that arrived during it; it consumes every StatusChange
   (counts, waits) as a portal would. Node failures (``--node-failures-per-hour`` per site)
   and outages (``--outages-per-day``) are on; the jobs they fail are counted, not re-routed.

``sim_day_wall_s`` times step 4 only, the median of ``--repeat`` runs; building the workload
is reported apart (``workload_build_s``). ``events_per_s`` is status changes reported per
wall second. The garbage collector runs with CPython's defaults; ``--gc-freeze`` moves the
pre-built workload (a million SimJob objects a real federation would never hold at once) out
of its sight first, which made little difference once the simulator kept few objects per job.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import math
import os
import platform
import random
import statistics
import time
from collections import Counter
from pathlib import Path

from federation.sim.openb import (
    GPU_MODELS,
    TracePod,
    inventory_shapes,
    partition_name,
    read_nodes,
    read_pods,
    replayable,
    requested_walltime,
)
from federation.simulator import (
    COMPLETED,
    FAILED,
    QUEUED,
    RUNNING,
    TIMED_OUT,
    PartitionSpec,
    SimJob,
    SimulatedSite,
)

DAY = 86400
TRACE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "alibaba-openb"
MAX_WALLTIME_S = 3 * DAY
RUNTIME_CAP_S = 2 * DAY

# The openb inventory's dominant node shape per model and node count, for when the trace is absent:
# model -> (cores, memory_mb, gpus, nodes).
BUILTIN_INVENTORY = {
    "": (32, 262144, 0, 310),
    "A10": (128, 1048576, 1, 2),
    "G2": (96, 393216, 8, 549),
    "G3": (128, 786432, 8, 39),
    "P100": (16, 122880, 2, 134),
    "T4": (104, 524288, 2, 404),
    "V100M16": (32, 131072, 4, 55),
    "V100M32": (96, 786432, 8, 30),
}
# How likely a site is to host each model (every site has CPU nodes).
MODEL_PRESENCE = {"A10": 0.3, "G2": 0.7, "G3": 0.3, "P100": 0.4, "T4": 0.6, "V100M16": 0.4, "V100M32": 0.4}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench simulator", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--repeat", type=int, default=3, help="runs to take the median of")
    parser.add_argument("--tick", type=int, default=30, help="seconds of virtual time between dispatches")
    parser.add_argument("--load", type=float, default=0.85, help="offered load as a share of capacity")
    parser.add_argument("--mpi-share", type=float, default=0.02, help="share of CPU jobs that are multi-node")
    parser.add_argument("--node-failures-per-hour", type=float, default=0.1, help="per site")
    parser.add_argument("--outages-per-day", type=float, default=0.02, help="per site")
    parser.add_argument("--outage-hours", type=float, default=2.0)
    parser.add_argument("--backfill-depth", type=int, default=100, help="queued jobs a pass considers")
    parser.add_argument("--trace-dir", type=Path, default=TRACE_DIR)
    parser.add_argument("--quiet", action="store_true", help="no per-site table")
    parser.add_argument("--gc-freeze", action="store_true", help="hide the pre-built workload from the collector")
    return parser.parse_args(argv)


# -- inputs -------------------------------------------------------------------------------


def load_inventory(trace_dir: Path) -> tuple[dict[str, tuple[int, int, int, int]], str]:
    path = trace_dir / "openb_node_list_all_node.csv"
    if path.exists():
        return inventory_shapes(read_nodes(path)), str(path)
    return dict(BUILTIN_INVENTORY), "built-in inventory (trace not found)"


def synthetic_pods(rng: random.Random, count: int = 8000) -> list[TracePod]:
    """Pods shaped like openb's when the trace is absent: mostly 1-card jobs, log-normal run times."""
    pods = []
    for k in range(count):
        gpus = rng.choices([0, 1, 2, 4, 8], weights=[13, 85.7, 0.2, 0.2, 0.6])[0]
        cpu = rng.choice([1000, 2000, 4000, 6000, 8000, 12000, 16000, 32000])
        memory = cpu * rng.choice([2, 4, 8])
        runtime = min(int(rng.lognormvariate(math.log(616), 2.0)), 30 * DAY)
        phase = "Failed" if rng.random() < 0.25 else "Succeeded"
        pods.append(TracePod(f"synthetic-{k}", cpu, memory, gpus, 1000 * min(gpus, 1), phase, 0, 0, runtime))
    return pods


def load_pods(trace_dir: Path, rng: random.Random) -> tuple[list[TracePod], str]:
    path = trace_dir / "openb_pod_list_default.csv"
    if path.exists():
        return replayable(read_pods(path)), str(path)
    return synthetic_pods(rng), "synthetic pods (trace not found)"


class Workload:
    """Sites, and per tick the jobs each site receives."""

    def __init__(self, sites: list[tuple[str, list[PartitionSpec]]], ticks: list[dict[int, list[SimJob]]]):
        self.sites = sites
        self.ticks = ticks
        self.jobs = sum(len(batch) for tick in ticks for batch in tick.values())


def sample_shapes(pods: list[TracePod], n: int, rng: random.Random, mpi_share: float, max_cpu: tuple[int, int]):
    """n jobs as (nodes, cores, memory, gpus, runtime, exit_code) sampled from the pods."""
    cpu_cores, cpu_memory = max_cpu
    shapes = []
    for pod in rng.choices(pods, k=n):
        runtime = min(pod.runtime_s or 0, RUNTIME_CAP_S)
        exit_code = 1 if pod.phase == "Failed" else 0
        if pod.num_gpu == 0 and rng.random() < mpi_share:
            shapes.append((rng.choice((2, 4, 8, 16)), cpu_cores, cpu_memory, 0, runtime, exit_code))
        else:
            shapes.append((1, pod.cores, pod.memory_mib, pod.num_gpu, runtime, exit_code))
    return shapes


def build_sites(
    inventory: dict[str, tuple[int, int, int, int]], n_sites: int, demand: dict[str, float], load: float, rng
) -> list[tuple[str, list[PartitionSpec]]]:
    """Sites of varied size hosting varied models; total capacity = demand / load.

    ``demand`` is the average busy cards (``"gpu"``) and busy CPU-partition cores (``"cpu"``).
    """
    weights = [rng.lognormvariate(0.0, 0.6) for _ in range(n_sites)]
    hosts = []
    for _ in range(n_sites):
        models = [m for m in GPU_MODELS if m in inventory and rng.random() < MODEL_PRESENCE.get(m, 0.4)]
        hosts.append(models or ["G2" if "G2" in inventory else next(m for m in inventory if m)])
    # Each model's share of the cards follows the openb inventory; the sites hosting it split it by weight.
    gpu_total = sum(cores_mem_gpus_nodes[2] * cores_mem_gpus_nodes[3] for cores_mem_gpus_nodes in inventory.values())
    sites = []
    for i in range(n_sites):
        specs = []
        cores, memory, _, _ = inventory[""]
        cpu_weight = weights[i] / sum(weights)
        cpu_nodes = max(2, round(demand["cpu"] / load * cpu_weight / cores))
        specs.append(PartitionSpec("cpu", cpu_nodes, cores, memory, 0, MAX_WALLTIME_S))
        for model in hosts[i]:
            cores, memory, gpus, nodes = inventory[model]
            model_share = gpus * nodes / gpu_total
            site_weight = weights[i] / sum(weights[j] for j in range(n_sites) if model in hosts[j])
            cards = demand["gpu"] / load * model_share * site_weight
            specs.append(
                PartitionSpec(partition_name(model), max(1, round(cards / gpus)), cores, memory, gpus, MAX_WALLTIME_S)
            )
        sites.append((f"site{i + 1:02d}", specs))
    return sites


def build_workload(args: argparse.Namespace) -> tuple[Workload, dict]:
    rng = random.Random(args.seed)
    inventory, inventory_source = load_inventory(args.trace_dir)
    pods, pod_source = load_pods(args.trace_dir, rng)
    cpu_shape = inventory[""][:2]
    shapes = sample_shapes(pods, args.jobs, rng, args.mpi_share, cpu_shape)

    # Offered load by Little's law: average busy cards and CPU cores over the day.
    busy_cards = sum(g * n * min(rt, DAY) for n, _c, _m, g, rt, _e in shapes) / DAY
    busy_cores = sum(n * c * min(rt, DAY) for n, c, _m, g, rt, _e in shapes if not g) / DAY
    sites = build_sites(inventory, args.sites, {"gpu": busy_cards, "cpu": busy_cores}, args.load, rng)

    # Where each shape may go: partitions it fits, weighted by capacity (CPU jobs prefer CPU partitions).
    targets = [(si, spec) for si, (_, specs) in enumerate(sites) for spec in specs]
    routes: dict[tuple[int, int, int, int], tuple[list[float], list[tuple[int, str]], tuple]] = {}

    def route(n: int, c: int, m: int, g: int):
        key = (n, c, m, g)
        found = routes.get(key)
        if found is None:
            fits = [
                (si, spec)
                for si, spec in targets
                if spec.nodes >= n
                and spec.cores_per_node >= c
                and spec.memory_mb_per_node >= m
                and spec.gpus_per_node >= g
                and (g > 0) == (spec.gpus_per_node > 0)
            ]
            if not fits and g == 0:
                fits = [
                    (si, spec)
                    for si, spec in targets
                    if spec.nodes >= n and spec.cores_per_node >= c and spec.memory_mb_per_node >= m
                ]
            shape = key
            if not fits:  # larger than any node: shrink it to the biggest partition that has the cards
                spec_pool = [(si, s) for si, s in targets if (s.gpus_per_node > 0) == (g > 0)]
                si, spec = max(spec_pool, key=lambda t: (t[1].cores_per_node, t[1].memory_mb_per_node, t[1].nodes))
                shape = (
                    min(n, spec.nodes),
                    min(c, spec.cores_per_node),
                    min(m, spec.memory_mb_per_node),
                    min(g, spec.gpus_per_node),
                )
                fits = [(si, spec)]
            cumulative, total = [], 0.0
            for _, spec in fits:
                total += spec.nodes * (spec.gpus_per_node if g else spec.cores_per_node)
                cumulative.append(total)
            found = routes[key] = (cumulative, [(si, spec.name) for si, spec in fits], shape)
        return found

    # Arrivals: a day/night curve peaking at 14:00, drawn per minute, uniform within the minute.
    minute_weights = [1.0 + 0.5 * math.cos(2 * math.pi * (m * 60 - 14 * 3600) / DAY) for m in range(1440)]
    minutes = rng.choices(range(1440), weights=minute_weights, k=args.jobs)
    n_ticks = DAY // args.tick
    ticks: list[dict[int, list[SimJob]]] = [{} for _ in range(n_ticks)]
    order = sorted(range(args.jobs), key=lambda k: (minutes[k], k))
    for k in order:
        arrival = minutes[k] * 60 + rng.random() * 60
        n, c, m, g, runtime, exit_code = shapes[k]
        cumulative, choices, (n, c, m, g) = route(n, c, m, g)
        si, partition = choices[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]
        walltime = requested_walltime(runtime, rng, max_walltime_s=MAX_WALLTIME_S)
        job = SimJob(f"j{k:07d}", partition, n, c, m, g, walltime, runtime, exit_code)
        ticks[min(int(arrival // args.tick), n_ticks - 1)].setdefault(si, []).append(job)
    sources = {"inventory": inventory_source, "pods": pod_source, "pod_count": len(pods)}
    return Workload(sites, ticks), sources


# -- the run ------------------------------------------------------------------------------


class SiteStats:
    __slots__ = (
        "submitted",
        "refused",
        "completed",
        "failed",
        "why",
        "timed_out",
        "cancelled",
        "waits",
        "changes",
        "end",
    )

    def __init__(self) -> None:
        self.submitted = self.completed = self.failed = self.timed_out = self.cancelled = 0
        self.refused: Counter[str] = Counter()
        self.why: Counter[str] = Counter()  # why jobs failed: exit_code, node_failure, site_outage
        self.changes = 0
        self.waits: list[float] = []
        self.end = None  # the site's capacity snapshot at the end of the day


def run_day(workload: Workload, args: argparse.Namespace) -> tuple[float, float, list[SiteStats]]:
    """One simulated day; returns wall seconds, CPU seconds and per-site figures."""
    sites = [
        SimulatedSite(
            code,
            specs,
            seed=args.seed * 1000 + i,
            node_failure_rate_per_hour=args.node_failures_per_hour,
            outage_rate_per_day=args.outages_per_day,
            outage_duration_s=args.outage_hours * 3600,
            backfill_depth=args.backfill_depth,
        )
        for i, (code, specs) in enumerate(workload.sites)
    ]
    stats = [SiteStats() for _ in sites]
    queued_at: dict[str, float] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    for k, tick in enumerate(workload.ticks):
        t = (k + 1) * args.tick
        for site, st in zip(sites, stats, strict=True):
            changes = site.advance_to(t)
            st.changes += len(changes)
            waits = st.waits
            for change in changes:
                state = change.state
                if state is QUEUED:
                    queued_at[change.job_id] = change.time
                elif state is RUNNING:
                    waits.append(change.time - queued_at.pop(change.job_id))
                elif state is COMPLETED:
                    st.completed += 1
                elif state is FAILED:
                    st.failed += 1
                    st.why[change.detail.partition("=")[0]] += 1
                    queued_at.pop(change.job_id, None)
                elif state is TIMED_OUT:
                    st.timed_out += 1
                else:
                    st.cancelled += 1
                    queued_at.pop(change.job_id, None)
        for si, jobs in tick.items():
            st = stats[si]
            st.submitted += len(jobs)
            for ack in sites[si].submit_batch(jobs):
                if not ack.accepted:
                    st.refused[ack.reason] += 1
    for site, st in zip(sites, stats, strict=True):  # the changes of the last dispatch
        st.changes += len(site.advance_to(DAY))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    for site, st in zip(sites, stats, strict=True):
        st.end = site.capacity_snapshot()
    return wall, cpu, stats


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def utilisation(snap) -> tuple[float, float]:
    """Allocated share of cards and of cores over the day."""
    gpus = sum(p.gpus_total for p in snap.partitions)
    cores = sum(p.cores_total for p in snap.partitions)
    gpu_util = sum(p.gpu_seconds_allocated for p in snap.partitions) / (gpus * DAY) if gpus else 0.0
    core_util = sum(p.core_seconds_allocated for p in snap.partitions) / (cores * DAY) if cores else 0.0
    return gpu_util, core_util


def print_table(workload: Workload, stats: list[SiteStats]) -> None:
    header = (
        f"{'site':<7} {'partitions':>10} {'nodes':>6} {'cards':>6} {'jobs':>7} {'completed':>9} {'failed':>7} "
        f"{'timeout':>7} {'queued':>7} {'running':>7} {'p50 wait':>9} {'p95 wait':>9} {'card util':>9} {'core util':>9}"
    )
    print(header)
    print("-" * len(header))
    for (code, specs), st in zip(workload.sites, stats, strict=True):
        gpu_util, core_util = utilisation(st.end)
        print(
            f"{code:<7} {len(specs):>10} {sum(s.nodes for s in specs):>6} "
            f"{sum(s.nodes * s.gpus_per_node for s in specs):>6} {st.submitted:>7} {st.completed:>9} {st.failed:>7} "
            f"{st.timed_out:>7} {sum(p.queued for p in st.end.partitions):>7} "
            f"{sum(p.running for p in st.end.partitions):>7} {percentile(st.waits, 0.5):>8.0f}s "
            f"{percentile(st.waits, 0.95):>8.0f}s {gpu_util:>9.1%} {core_util:>9.1%}"
        )


def main(argv: list[str]) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    workload, sources = build_workload(args)
    build_s = time.perf_counter() - t0
    print(
        f"workload: {workload.jobs:,} jobs on {len(workload.sites)} sites, built in {build_s:.1f}s "
        f"from {sources['pods']} ({sources['pod_count']:,} pods) and {sources['inventory']}"
    )
    gc.collect()
    if args.gc_freeze:
        gc.freeze()
    runs = []
    load_before = os.getloadavg()[0]
    for r in range(args.repeat):
        wall, cpu, stats = run_day(workload, args)
        runs.append((wall, cpu, stats))
        changes = sum(st.changes for st in stats)
        print(
            f"run {r + 1}: simulated day in {wall:.1f}s wall ({cpu:.1f}s CPU), {changes:,} status changes "
            f"({changes / wall:,.0f}/s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        gc.collect()  # the finished run's sites, outside the timing
    if args.gc_freeze:
        gc.unfreeze()
    median_wall = statistics.median(w for w, _, _ in runs)
    wall, _, stats = min(runs, key=lambda run: abs(run[0] - median_wall))
    if not args.quiet:
        print_table(workload, stats)
    waits = [w for st in stats for w in st.waits]
    changes = sum(st.changes for st in stats)
    card_seconds = card_capacity = core_seconds = core_capacity = 0.0
    for st in stats:
        for p in st.end.partitions:
            card_seconds += p.gpu_seconds_allocated
            card_capacity += p.gpus_total * DAY
            core_seconds += p.core_seconds_allocated
            core_capacity += p.cores_total * DAY
    figures = {
        "sim_day_wall_s": round(median_wall, 2),
        "sim_day_wall_s_runs": [round(w, 2) for w, _, _ in runs],
        "sim_day_cpu_s": round(statistics.median(c for _, c, _ in runs), 2),
        "load_average_before": round(load_before, 2),
        "target_s": 60,
        "jobs": workload.jobs,
        "sites": len(workload.sites),
        "partitions": sum(len(specs) for _, specs in workload.sites),
        "nodes": sum(s.nodes for _, specs in workload.sites for s in specs),
        "jobs_completed": sum(st.completed for st in stats),
        "jobs_failed": sum(st.failed for st in stats),
        "jobs_failed_by": dict(sum((st.why for st in stats), Counter())),
        "jobs_timed_out": sum(st.timed_out for st in stats),
        "jobs_refused": dict(sum((st.refused for st in stats), Counter())),
        "jobs_started": len(waits),
        "status_changes": changes,
        "events_per_s": round(changes / wall),
        "wait_p50_s": round(percentile(waits, 0.5), 1),
        "wait_p95_s": round(percentile(waits, 0.95), 1),
        "card_utilisation": round(card_seconds / card_capacity, 3) if card_capacity else 0.0,
        "core_utilisation": round(core_seconds / core_capacity, 3) if core_capacity else 0.0,
        "workload_build_s": round(build_s, 2),
        "tick_s": args.tick,
        "gc_freeze": args.gc_freeze,
        "backfill_depth": args.backfill_depth,
        "python": platform.python_version(),
    }
    verdict = ""
    if workload.jobs >= 1_000_000 and len(workload.sites) >= 30:
        verdict = f" ({'within' if median_wall < 60 else 'OVER'} the 60 s target)"
    print(f"median of {len(runs)}: {median_wall:.1f}s for one simulated day{verdict}")
    return figures
