"""Jobs per second the Slurm adapter sustains into a real Slurm (``make bench NAME=slurm_submit``).

Needs a running Slurm with slurmrestd (``sudo scripts/local-slurm.sh start``): SUANWANG_SLURM_URL
(default http://127.0.0.1:6820) and the token file of user ``ci`` (SUANWANG_SLURM_TOKEN_FILE, default
/var/lib/slurm-local/ci.jwt).

What is timed: ``SlurmAdapter.submit_batch`` over ``--jobs`` one-core jobs (``true``), i.e. what the
federation's dispatcher does per job: the v0.0.38 job description built from our job, one
``POST /job/submit`` on the adapter's keep-alive connection, the answer parsed, the job tracked. Each
of ``--runs`` runs uses fresh job ids; the figure is the median. Next to it, in each run, the baseline:
the same number of prebuilt submissions over a bare ``http.client`` keep-alive connection
(``raw_jobs_per_s``; the notes measured ~600/s on an idle machine). Also: ``GET /ping`` latency (median
of 50) and one ``poll`` (``GET /jobs`` with everything slurmctld still remembers, diffed).

Run as root (as ``make bench`` is in this project's CI box), the partition is set DOWN while measuring:
the jobs only queue, so the figure is submission, not a thousand processes starting on a 2-core box;
afterwards they are cancelled (``DELETE``, timed: ``cancel_per_s``) and the partition is UP again.
``--run-jobs`` lets them run instead (tiny ``true`` jobs). slurmctld keeps their records for MinJobAge
(1 h), which makes later ``GET /jobs`` larger. Do not run it while something else uses that partition.
The machine is shared with other work: its load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass

from federation.slurm import (
    DEFAULT_PATH,
    JobScript,
    SlurmAdapter,
    SlurmClient,
    SlurmError,
    SlurmSiteConfig,
    build_script,
    our_job_id,
)


@dataclass(frozen=True, slots=True)
class _Job:  # the fields of federation.adapters.DispatchJob (that module needs Django)
    job_id: int
    partition: str
    nodes: int
    cores_per_node: int
    memory_mb_per_node: int
    gpus_per_node: int
    walltime_s: int


def _raw_keepalive(url: str, user: str, token: str, partition: str, jobs: int, first_id: int) -> float:
    """The baseline: the same submissions as prebuilt JSON over one bare http.client connection."""
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    headers = {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token, "Content-Type": "application/json"}
    bodies = [json.dumps({"script": "#!/bin/bash\ntrue\n", "job": {
        "name": f"suanwang-{first_id + i}", "partition": partition, "tasks": 1, "cpus_per_task": 1,
        "memory_per_node": 100, "time_limit": 1, "current_working_directory": "/tmp",  # noqa: S108
        "environment": {"PATH": DEFAULT_PATH}}}) for i in range(jobs)]
    started = time.perf_counter()
    for body in bodies:
        conn.request("POST", "/slurm/v0.0.38/job/submit", body=body, headers=headers)
        conn.getresponse().read()
    elapsed = time.perf_counter() - started
    conn.close()
    return jobs / elapsed


def _runs(args, adapter, config, url, base, rates, raw_rates, submitted: list[int]) -> None:
    """The timed runs: the adapter, then the bare baseline, ``args.runs`` times (accepted job ids → submitted)."""
    for run in range(args.runs):
        batch = [_Job(base + 2 * run * args.jobs + i, "bench", 1, 1, 100, 0, 60) for i in range(args.jobs)]
        started = time.perf_counter()
        acks = adapter.submit_batch(batch)
        elapsed = time.perf_counter() - started
        accepted = [int(a.job_id) for a in acks if a.accepted]
        submitted += accepted
        rates.append(len(accepted) / elapsed)
        raw_rates.append(_raw_keepalive(url, config.user, config.tokens().token(), args.partition, args.jobs,
                                        base + (2 * run + 1) * args.jobs))


def _partition_state(partition: str, state: str) -> bool:
    """Set a Slurm partition UP or DOWN (jobs submitted to a DOWN partition queue and do not start); needs root."""
    if os.geteuid() != 0 or not shutil.which("scontrol"):
        return False
    done = subprocess.run(["scontrol", "update", f"partitionname={partition}", f"state={state}"],
                          capture_output=True, check=False)
    return done.returncode == 0


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench slurm_submit")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partition", default="debug", help="Slurm partition")
    parser.add_argument("--run-jobs", dest="queue_only", action="store_false",
                        help="let the jobs run (default, as root: the partition is DOWN while measuring, so the "
                             "jobs only queue, and they are cancelled afterwards)")
    args = parser.parse_args(argv)
    url = os.environ.get("SUANWANG_SLURM_URL", "http://127.0.0.1:6820")
    token_file = os.environ.get("SUANWANG_SLURM_TOKEN_FILE", "/var/lib/slurm-local/ci.jwt")
    config = SlurmSiteConfig(code="bench", url=url, user=os.environ.get("SUANWANG_SLURM_USER", "ci"),
                             token_source="token_file", credential_path=token_file,
                             partitions={"bench": args.partition})

    def scripts(ids):
        return {i: JobScript(build_script(job_id=i, name="bench", launch_script="", command="true"),
                             {"PATH": DEFAULT_PATH, "SUANWANG_JOB_ID": str(i)}) for i in ids}

    client = SlurmClient(url, config.user, config.tokens(), timeout=10.0)
    adapter = SlurmAdapter(config, scripts=scripts, client=client)
    try:
        pings = []
        for _ in range(50):
            started = time.perf_counter()
            client.request("GET", "/ping")
            pings.append((time.perf_counter() - started) * 1000)
    except SlurmError as exc:
        print(f"no Slurm to submit to at {url}: {exc.code} ({exc.message}); run: sudo scripts/local-slurm.sh start")
        return {"jobs_per_s": None, "error": exc.code}

    base = int(time.time() * 1000) % 1_000_000_000 * 1000  # fresh job ids per invocation
    rates, raw_rates, submitted = [], [], []
    held = _partition_state(args.partition, "DOWN") if args.queue_only else False
    try:
        _runs(args, adapter, config, url, base, rates, raw_rates, submitted)
    finally:
        cancel_rate = None
        if held:  # the jobs only queued: cancel them (timed), then let the partition run jobs again
            started = time.perf_counter()
            for job_id in submitted:
                adapter.cancel(job_id)
            cancel_rate = len(submitted) / max(time.perf_counter() - started, 1e-9)
            raw_ids = [int(r["job_id"]) for r in client.jobs() or []
                       if r.get("job_state") == "PENDING" and (our_job_id(r) or 0) >= base]
            for slurm_id in raw_ids:
                client.cancel(slurm_id)
            _partition_state(args.partition, "UP")
    refused = args.jobs * args.runs - len(submitted)
    poll_ms = in_memory = changes = None
    try:
        started = time.perf_counter()
        changes = len(adapter.poll())
        poll_ms = round((time.perf_counter() - started) * 1000, 1)
        in_memory = len(client.jobs())
    except SlurmError as exc:  # a long GET /jobs on a loaded machine may time out: say so, keep the figures
        print(f"poll failed: {exc.code} ({exc.message})")
    client.close()

    load = os.getloadavg()[0]
    rows = [("jobs per run", f"{args.jobs}"), ("runs", f"{args.runs}"),
            ("submit jobs/s (median)", f"{statistics.median(rates):.0f}"),
            ("submit jobs/s (runs)", " ".join(f"{r:.0f}" for r in rates)),
            ("refused", f"{refused}"), ("ping ms (median of 50)", f"{statistics.median(pings):.2f}"),
            ("jobs only queued (partition DOWN while measuring)", "yes" if held else "no, they ran"),
            ("cancel jobs/s (DELETE, adapter)", f"{cancel_rate:.0f}" if cancel_rate else "-"),
            ("raw http.client keep-alive jobs/s (median)", f"{statistics.median(raw_rates):.0f}"),
            (f"poll ms (GET /jobs: {in_memory} records, {changes} changes)", f"{poll_ms}"),
            ("load average (1 min)", f"{load:.2f}")]
    width = max(len(k) for k, _ in rows)
    print(f"Slurm adapter into {url} (REST v0.0.38, keep-alive)")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return {"jobs_per_s": round(statistics.median(rates)), "runs": [round(r) for r in rates], "jobs": args.jobs,
            "raw_jobs_per_s": round(statistics.median(raw_rates)),
            "queued_only": held, "cancel_per_s": round(cancel_rate) if cancel_rate else None,
            "refused": refused, "ping_ms": round(statistics.median(pings), 2), "poll_ms": poll_ms,
            "jobs_in_slurm": in_memory, "load": round(load, 2)}
