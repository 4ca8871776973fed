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

The jobs are tiny and finish within seconds; slurmctld keeps their records for MinJobAge (1 h). The
machine is shared with other work: its load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench slurm_submit")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partition", default="debug", help="Slurm partition")
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
    rates, raw_rates, refused = [], [], 0
    for run in range(args.runs):
        batch = [_Job(base + 2 * run * args.jobs + i, "bench", 1, 1, 100, 0, 60) for i in range(args.jobs)]
        started = time.perf_counter()
        acks = adapter.submit_batch(batch)
        elapsed = time.perf_counter() - started
        accepted = sum(1 for a in acks if a.accepted)
        refused += len(batch) - accepted
        rates.append(accepted / elapsed)
        raw_rates.append(_raw_keepalive(url, config.user, config.tokens().token(), args.partition, args.jobs,
                                        base + (2 * run + 1) * args.jobs))
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
            ("raw http.client keep-alive jobs/s (median)", f"{statistics.median(raw_rates):.0f}"),
            (f"poll ms (GET /jobs: {in_memory} records, {changes} changes)", f"{poll_ms}"),
            ("load average (1 min)", f"{load:.2f}")]
    width = max(len(k) for k, _ in rows)
    print(f"Slurm adapter into {url} (REST v0.0.38, keep-alive)")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return {"jobs_per_s": round(statistics.median(rates)), "runs": [round(r) for r in rates], "jobs": args.jobs,
            "raw_jobs_per_s": round(statistics.median(raw_rates)),
            "refused": refused, "ping_ms": round(statistics.median(pings), 2), "poll_ms": poll_ms,
            "jobs_in_slurm": in_memory, "load": round(load, 2)}
