"""Benchmark ``dispatch``: jobs accepted → routed → persisted (job + event rows) → held on the
ledger → handed to the site adapter, in batches of 10,000, over a 100,000-job run on the full
demo federation (12 centres, 119 partitions built from the openb inventory) and PostgreSQL.

    make bench NAME=dispatch            # 100,000 jobs, 3 runs, median
    python -m bench dispatch --jobs 20000 --runs 1
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import queue
import random
import statistics
import threading
import time
from datetime import timedelta
from pathlib import Path

from bench import _django

WALLTIME_BUCKETS = [h * 3600 for h in (1, 2, 4, 8, 12, 24, 48, 72)]
POD_SAMPLE = Path(__file__).resolve().parent.parent / "federation" / "data" / "openb_pod_sample.csv"


def job_shapes(n: int, seed: int):
    """Job shapes sampled from the openb trace (cores, memory, cards; walltime from the run time)."""
    from federation.jobs import JobRequest

    pods = []
    with open(POD_SAMPLE, newline="") as handle:
        for row in csv.DictReader(handle):
            if not row["scheduled_time"] or not row["deletion_time"]:
                continue
            runtime = max(60, int(row["deletion_time"]) - int(row["scheduled_time"]))
            cores = max(1, int(row["cpu_milli"]) // 1000)
            gpus = int(row["num_gpu"] or 0)
            # People ask for round walltimes (Slurm users type 2:00:00, not 1:47:13): the
            # smallest standard bucket above twice the real run time.
            walltime = next((b for b in WALLTIME_BUCKETS if b >= runtime * 2), WALLTIME_BUCKETS[-1])
            pods.append((cores, int(row["memory_mib"]) // 1024 * 1024 or 1024, gpus, walltime))
    rng = random.Random(seed)
    apps = ["", "", "gromacs", "pytorch", "lammps", "llm-finetune"]
    jobs = []
    for i in range(n):
        cores, memory, gpus, walltime = rng.choice(pods)
        app = rng.choice(apps) if gpus else rng.choice(["", "gromacs", "lammps", "wrf"])
        jobs.append(JobRequest(name=f"bench-{i}", cores_per_node=min(cores, 64), memory_mb_per_node=memory,
                               gpus_per_node=min(gpus, 8), walltime_s=walltime, application=app))
    return jobs


def build_world():
    """One institution, a project with a huge allocation of every class, the demo federation."""
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.actors import Actor, system_actor
    from allocations import ledger, projects, workflow
    from allocations.models import ResourceClass
    from federation import quotas, services
    from federation.adapters import SimulatedAdapter, install_adapter, reset_adapters
    from federation.applications import APPLICATIONS
    from federation.models import Partition, Site
    from federation.services import applications_publish
    from portal.errors import ValidationFailed
    from tests.factories import make_institution, make_member

    call_command("build_sites", "--scale", "6", stdout=io.StringIO())
    applications_publish(actor=system_actor(), catalogue=APPLICATIONS)
    institution = make_institution("BENCH", "Benchmark University", ["bench.edu.cn"])
    pi = Actor(user=make_member(institution, "pi", "pi@bench.edu.cn"))
    today = timezone.localdate()
    project = projects.project_create(actor=pi, institution_id=institution.pk, title="Bench", abstract="A",
                                      discipline="physics", start=today, end=today + timedelta(days=300))
    request = workflow.request_create(actor=pi, project=project, kind="new", tier="explore", title="R",
                                      justification="J", amounts={"cpu": 1}, start=today,
                                      end=today + timedelta(days=100))
    workflow.request_submit(actor=pi, request=request)
    allocation = project.allocations.get()
    for rc in ResourceClass.objects.all():
        ledger.adjust(actor=system_actor(), allocation=allocation, resource_class=rc, amount=10**15,
                      memo="benchmark budget")
    # Every centre commits ample capacity for every class it serves, and the broker places the budget
    # at the centres: the router's per-site quotas are the brokered shares, as in production.
    for site in Site.objects.all():
        for rc in ResourceClass.objects.exclude(kind="storage"):
            try:
                services.capacity_commit(actor=system_actor(), site=site, resource_class=rc,
                                         period_start=today - timedelta(days=1),
                                         period_end=today + timedelta(days=365), amount_display=10**15 // rc.scale)
            except ValidationFailed:  # the centre has no partition of that class
                continue
    quotas.broker_allocation(actor=system_actor(), allocation=allocation, reason="benchmark budget")
    reset_adapters()
    now = timezone.now()
    for site in Site.objects.all():
        install_adapter(site.pk, SimulatedAdapter(site, list(Partition.objects.filter(site=site)), seed=site.pk,
                                                  clock_start=now.timestamp()))
    return pi, project


def _backend_cpu() -> float:
    """CPU seconds the PostgreSQL backend of this thread's connection has used so far (0 when the server
    is not a process on this machine): the machine is shared, so CPU time says more than wall time."""
    from django.db import connection

    try:
        connection.ensure_connection()
        pid = connection.connection.info.backend_pid
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, IndexError, ValueError):
        return 0.0


def one_run(n_jobs: int, batch: int, seed: int, *, pipelined: bool = True) -> dict:
    """Submit ``n_jobs`` in batches and hand every accepted job to its centre; the clock runs from the first
    submission until the last job is acknowledged by its centre.

    ``pipelined`` (the default) runs the dispatcher beside the submitter, as the deployed system does (API
    workers submit, Celery workers dispatch): a thread with its own database connection, woken after each
    batch commits, sweeps every centre until nothing is left routed. Otherwise each batch is dispatched
    before the next one is submitted."""
    from django.db import connection, connections
    from django.db.models import Count
    from django.utils import timezone

    from federation import jobs, routing_cache
    from federation.models import Job, JobEvent, Site

    pi, project = build_world()
    requests = job_shapes(n_jobs, seed)
    sites = list(Site.objects.all())
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE") if connection.vendor == "postgresql" else None
    submit_s = snapshot_s = 0.0
    stages = {"route": 0.0, "hold": 0.0, "persist": 0.0, "dispatch": 0.0}
    accepted = refused = dispatched = 0
    committed: queue.Queue = queue.Queue()
    failure: list[BaseException] = []

    pg_cpu = {"dispatcher": 0.0}

    def sweep() -> None:
        nonlocal dispatched
        t = time.perf_counter()
        for site in sites:
            while moved := jobs.dispatch_routed(site, limit=batch):
                dispatched += moved
        stages["dispatch"] += time.perf_counter() - t
        if threading.current_thread() is not threading.main_thread():
            pg_cpu["dispatcher"] = _backend_cpu() - pg_cpu.get("dispatcher_start", 0.0)

    def dispatcher() -> None:
        try:
            pg_cpu["dispatcher_start"] = _backend_cpu()
            while True:
                last = committed.get() is None
                while not committed.empty():  # batches committed meanwhile: one sweep takes them all
                    last = committed.get() is None or last
                sweep()
                if last:
                    return
        except BaseException as exc:  # re-raised by the submitter
            failure.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=dispatcher, name="dispatcher") if pipelined else None
    started, cpu_started, pg_started = time.perf_counter(), time.process_time(), _backend_cpu()
    if thread:
        thread.start()
    for offset in range(0, n_jobs, batch):
        chunk = requests[offset: offset + batch]
        t0 = time.perf_counter()
        # the API's snapshot: the static part cached for a few seconds, the centres' live capacity fresh
        router, partitions = routing_cache.current_router()
        t1 = time.perf_counter()
        result = jobs.jobs_submit(actor=pi, project=project, requests=chunk, now=timezone.now(), router=router,
                                  partitions=partitions, enqueue_dispatch=False)
        t2 = time.perf_counter()
        if thread:
            committed.put(offset)
        else:
            sweep()
        snapshot_s += t1 - t0
        submit_s += t2 - t1
        for stage, seconds in result.timings.items():
            stages[stage] += seconds
        accepted += len(result.accepted)
        refused += len(result.refused)
        if failure:
            break
    if thread:
        committed.put(None)
        thread.join()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started  # this process's threads, not PostgreSQL's
    pg = _backend_cpu() - pg_started + pg_cpu["dispatcher"]  # the submitter's and the dispatcher's backends
    if failure:
        raise failure[0]
    states = dict(Job.objects.values_list("state").annotate(n=Count("id")))
    assert states == {"dispatched": accepted} and dispatched == accepted, (states, dispatched, accepted)
    assert JobEvent.objects.count() == 3 * accepted
    return {"wall_s": wall, "jobs": n_jobs, "accepted": accepted, "refused": refused, "dispatched": dispatched,
            "snapshot_s": snapshot_s, "submit_s": submit_s, "cpu_s": cpu, "pg_cpu_s": pg,
            **{f"{stage}_s": seconds for stage, seconds in stages.items()}, "jobs_per_s": accepted / wall}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench dispatch")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serial", action="store_true", help="dispatch each batch before submitting the next")
    args = parser.parse_args(argv)
    mode = "serial" if args.serial else "pipelined"
    runs = []
    for run in range(args.runs):
        vendor = _django.setup(fresh=True) if run == 0 else _reset()
        runs.append(one_run(args.jobs, args.batch, seed=run, pipelined=not args.serial))
    print(f"\ndispatch benchmark on {vendor}, {mode}: {args.jobs} jobs in batches of {args.batch}, {args.runs} run(s)")
    print("(seconds per stage, summed over the batches: snapshot = capacity snapshot and router set-up; route = "
          "routing in memory; hold = ledger holds; persist = COPY of jobs and events, with the commit; dispatch = "
          "claim, hand-off to the site adapters, events, with the commit"
          + (", in the dispatcher thread beside the submitter" if not args.serial else "") + ")")
    print(f"{'run':>4} {'wall s':>8} {'jobs/s':>9} {'accepted':>9} {'refused':>8} {'snapshot':>9} {'route':>7} "
          f"{'hold':>7} {'persist':>8} {'dispatch':>9} {'py cpu s':>9} {'pg cpu s':>9}")
    for i, r in enumerate(runs, 1):
        print(f"{i:>4} {r['wall_s']:>8.2f} {r['jobs_per_s']:>9.0f} {r['accepted']:>9} {r['refused']:>8} "
              f"{r['snapshot_s']:>9.2f} {r['route_s']:>7.2f} {r['hold_s']:>7.2f} {r['persist_s']:>8.2f} "
              f"{r['dispatch_s']:>9.2f} {r['cpu_s']:>9.2f} {r['pg_cpu_s']:>9.2f}")
    median = statistics.median(r["jobs_per_s"] for r in runs)
    best = sorted(runs, key=lambda r: r["jobs_per_s"])[len(runs) // 2]
    return {"jobs_per_s": round(median), "jobs": args.jobs, "batch": args.batch, "runs": args.runs,
            "mode": mode, "database": vendor, "accepted": best["accepted"], "refused": best["refused"],
            "jobs_per_s_runs": [round(r["jobs_per_s"]) for r in runs],
            "snapshot_s": round(best["snapshot_s"], 2), "route_s": round(best["route_s"], 2),
            "hold_s": round(best["hold_s"], 2), "persist_s": round(best["persist_s"], 2),
            "submit_s": round(best["submit_s"], 2), "dispatch_s": round(best["dispatch_s"], 2),
            "py_cpu_s": round(best["cpu_s"], 2), "pg_cpu_s": round(best["pg_cpu_s"], 2)}


def _reset() -> str:
    """Empty the benchmark database between runs (same schema)."""
    from django.core.management import call_command
    from django.db import connection

    call_command("flush", "--noinput", verbosity=0)
    return connection.vendor
