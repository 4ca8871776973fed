"""Benchmark ``api_submit``: single-job submission over HTTP (``POST /api/v1/jobs/`` with a Bearer token),
requests per second and p99 latency, next to the bare DRF endpoint ``/api/v1/ping/`` on the same server
with the same token and body; under the ASGI server the way ``scripts/stack.sh`` runs it (uvicorn,
``--workers``) and under a WSGI server (gunicorn, ``--wsgi-class`` workers) for comparison.

    make bench NAME=api_submit                       # both servers, 3 runs each, medians
    python -m bench api_submit --servers asgi --runs 1 --duration 5

Production-like: PostgreSQL (a fresh ``suanwang_bench`` database, or ``DATABASE_URL``) with its
connection pool, Redis (``REDIS_URL``, default ``redis://127.0.0.1:6379/14``, a database of its own
that the bench empties before and after: the cache behind the token throttles and the Celery broker
the dispatch tasks go to; no worker consumes them), ``DEBUG=0``. The world is the dispatch
benchmark's (the demo federation, 12 centres, 119 partitions; one project with an ample brokered
budget); the token's throttle is raised (``API_TOKEN_RATE``) so that the server, not the throttle,
is measured. Each request submits one small CPU job (4 cores, 1 h, GROMACS) without an
Idempotency-Key; every one must answer 201 (the bench fails otherwise).

The load generator is wrk (``apt-get install wrk``; a Lua script sets the method, body and headers),
one thread and ``--connections`` keep-alive connections (a closed loop: latency includes queueing for a
worker; a request over 10 s counts as failed), on the same 2-core machine as the server,
PostgreSQL and Redis: it takes CPU from them, like every other process on a shared machine. Per run:
``--warmup`` seconds discarded, then ``--duration`` seconds measured; the servers run side by side and the
runs alternate between them; figures are medians of ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import _django

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
JOB = {"name": "bench", "cores_per_node": 4, "memory_mb_per_node": 8192, "walltime_s": 3600,
       "application": "gromacs"}
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local bodies = {{{bodies}}}
local next_body = 0
function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {{}}; first_error = "" end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 300 and first_error == "" then first_error = status .. " " .. (body or "") end
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do io.write("status ", status, " ", n, "\\n") end
    local err = thread:get("first_error")
    if err ~= "" then io.write("first error: ", string.sub(err, 1, 300), "\\n") end
  end
end
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench api_submit", description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="asgi,wsgi", help="asgi, wsgi or both (default asgi,wsgi)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")),
                        help="server processes (default WEB_WORKERS or 2, as scripts/stack.sh)")
    parser.add_argument("--wsgi-class", default="gthread", choices=("gthread", "sync"),
                        help="gunicorn worker class (default gthread)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads per worker (4)")
    parser.add_argument("--connections", type=int, default=8, help="wrk keep-alive connections (8)")
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per run (15)")
    parser.add_argument("--warmup", type=int, default=3, help="discarded seconds before each measurement (3)")
    parser.add_argument("--runs", type=int, default=3, help="runs per server and endpoint; medians (3)")
    parser.add_argument("--port", type=int, default=0, help="first server port, the next for the second "
                                                           "(default: free ones)")
    parser.add_argument("--projects", type=int, default=1,
                        help="projects the requests go to in turn (default 1: one gateway submitting to one "
                             "project, whose balance row every submission locks)")
    return parser.parse_args(argv)


# -- the world ------------------------------------------------------------------------------


def build_world(n_projects: int = 1) -> tuple[list[int], str]:
    """The dispatch benchmark's world (federation, project, budget), ``n_projects - 1`` more projects of the
    same institution with budgets of their own (brokered the same way), and a jobs:submit token."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.actors import system_actor
    from accounts.models import InstitutionRole
    from allocations import ledger, projects, workflow
    from allocations.models import ResourceClass
    from bench.dispatch import build_world as dispatch_world
    from federation import quotas
    from tests.factories import make_member, make_token

    pi, project = dispatch_world()
    ids = [project.pk]
    today = timezone.localdate()
    for k in range(1, n_projects):
        extra = projects.project_create(actor=pi, institution_id=project.institution_id, title=f"Bench {k}",
                                        abstract="A", discipline="physics", start=today,
                                        end=today + timedelta(days=300))
        request = workflow.request_create(actor=pi, project=extra, kind="new", tier="explore", title="R",
                                          justification="J", amounts={"cpu": 1}, start=today,
                                          end=today + timedelta(days=100))
        workflow.request_submit(actor=pi, request=request)
        allocation = extra.allocations.get()
        for rc in ResourceClass.objects.all():
            ledger.adjust(actor=system_actor(), allocation=allocation, resource_class=rc, amount=10**13,
                          memo="benchmark budget")
        quotas.broker_allocation(actor=system_actor(), allocation=allocation, reason="benchmark budget")
        ids.append(extra.pk)
    admin = make_member(project.institution, InstitutionRole.INSTITUTION_ADMIN, "admin@bench.edu.cn")
    _, secret = make_token(project.institution, ["jobs:submit", "read"], admin, name="api-submit-bench")
    return ids, secret


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


# -- servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(kind: str, args: argparse.Namespace, port: int) -> list[str]:
    if kind == "asgi":  # as scripts/stack.sh runs it
        return [str(VENV_BIN / "uvicorn"), "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(args.workers), "--ws", "websockets-sansio", "--no-access-log"]
    command = [str(VENV_BIN / "gunicorn"), "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
               "--workers", str(args.workers), "--worker-class", args.wsgi_class, "--log-level", "warning"]
    if args.wsgi_class == "gthread":
        command += ["--threads", str(args.threads)]
    return command


def server_config(kind: str, args: argparse.Namespace) -> str:
    if kind == "asgi":
        return f"uvicorn, {args.workers} workers"
    if args.wsgi_class == "gthread":
        return f"gunicorn gthread, {args.workers} workers x {args.threads} threads"
    return f"gunicorn sync, {args.workers} workers"


def start_server(kind: str, args: argparse.Namespace, port: int, env: dict, token: str,
                 log: Path) -> subprocess.Popen:
    with open(log, "ab") as handle:
        process = subprocess.Popen(server_command(kind, args, port), cwd=ROOT, env=env, start_new_session=True,
                                   stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/ping/",
                                     headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: the {kind} server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310  (http://127.0.0.1 only)
                if response.status == 200:
                    return process
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    stop_server(process)
    raise SystemExit(f"bench: the {kind} server did not answer within 60 s")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# -- load -----------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
                          "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    statuses = {int(code): int(n) for code, n in re.findall(r"^status (\d+) (\d+)$", out, re.M)}
    first_error = re.search(r"^first error: (.*)$", out, re.M)
    return {
        "statuses": statuses,
        "first_error": first_error.group(1) if first_error else "",
        "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
        "requests": requests,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sum(map(int, socket_errors.groups())) if socket_errors else 0,
    }


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants (Linux /proc)."""
    parents, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        cpu[pid] = int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(cpu.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def measure(url: str, script: Path, args: argparse.Namespace, server: subprocess.Popen) -> dict:
    """One run: warm-up, then measurement, with the server's own CPU time per answered request, a figure
    the other load on a shared machine moves much less than the rate (PostgreSQL's and Redis's CPU are
    not in it)."""
    wrk(url, script, args.warmup, args.connections)
    before = tree_cpu_s(server.pid)
    run = wrk(url, script, args.duration, args.connections)
    run["server_cpu_ms"] = (tree_cpu_s(server.pid) - before) * 1000 / max(1, run["requests"])
    return run


def median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 1)


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str]) -> dict:
    args = parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers or set(servers) - {"asgi", "wsgi"}:
        raise SystemExit("bench: --servers takes asgi, wsgi or asgi,wsgi")
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (apt-get install wrk)")
    if "wsgi" in servers and not (VENV_BIN / "gunicorn").exists():
        raise SystemExit("bench: gunicorn is not installed (pip install -r requirements.txt)")
    redis_url = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS)
    os.environ["API_TOKEN_RATE"] = "100000000/min"  # measure the server, not the throttle
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")  # the world's invitations
    vendor = _django.setup()
    if vendor != "postgresql":
        raise SystemExit("bench: api_submit needs PostgreSQL (DATABASE_URL)")
    flush_redis(redis_url)
    project_ids, token = build_world(args.projects)
    from django.db import connections

    from federation.models import Job

    jobs_before = Job.objects.count()
    connections.close_all()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "DEBUG": "0", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT)}
    env.pop("SECRET_KEY", None)  # a set SECRET_KEY turns on the HTTPS redirect: the bench speaks plain HTTP
    bodies = ", ".join(f"[[{json.dumps({'project': pid, **JOB})}]]" for pid in project_ids)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA.format(bodies=bodies, token=token))
        # Both servers run side by side and the runs alternate between them, so that the other load on a
        # shared machine falls on both alike (an idle server costs nothing).
        running: dict[str, tuple[subprocess.Popen, int, Path]] = {}
        try:
            for n, kind in enumerate(servers):
                port = args.port + n if args.port else free_port()
                log = Path(tmp) / f"{kind}.log"
                running[kind] = (start_server(kind, args, port, env, token, log), port, log)
            results = {kind: {"submit": [], "bare": []} for kind in servers}
            for _ in range(args.runs):
                for kind, (server, port, _log) in running.items():
                    for endpoint, path in (("submit", "jobs/"), ("bare", "ping/")):
                        results[kind][endpoint].append(
                            measure(f"http://127.0.0.1:{port}/api/v1/{path}", script, args, server))
        finally:
            for server, _port, _log in running.values():
                stop_server(server)
        for kind, (_server, _port, log) in running.items():
            errors = [line for line in log.read_text().splitlines() if "Traceback" in line or "ERROR" in line]
            if errors:
                print(f"{kind} server log ({len(errors)} error lines):\n" + log.read_text()[-3000:])
    created = Job.objects.count() - jobs_before
    flush_redis(redis_url)

    print(f"{'server':<42} {'endpoint':<14} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10} "
          f"{'runs (req/s)':<20}")
    print("-" * 112)
    for kind in servers:
        for endpoint, label in (("submit", "POST /jobs/"), ("bare", "POST /ping/")):
            runs = results[kind][endpoint]
            per_run = ", ".join(f"{r['req_per_s']:.0f}" for r in runs)
            print(f"{server_config(kind, args):<42} {label:<14} {median(runs, 'req_per_s'):>7} "
                  f"{median(runs, 'p50_ms'):>7} {median(runs, 'p99_ms'):>7} {median(runs, 'server_cpu_ms'):>10} "
                  f"{per_run:<20}")
    failures = sum(r["non_2xx"] + r["socket_errors"] for k in results.values() for e in k.values() for r in e)
    statuses: dict[str, int] = {}
    for kind, endpoints in results.items():
        for endpoint, runs in endpoints.items():
            for r in runs:
                for code, n in r["statuses"].items():
                    statuses[f"{kind} {endpoint} {code}"] = statuses.get(f"{kind} {endpoint} {code}", 0) + n
                if r["first_error"]:
                    print(f"{kind} {endpoint}: first error answer: {r['first_error']}")
    submitted = sum(r["requests"] for k in results.values() for r in k["submit"])
    print(f"{args.projects} project(s), {args.connections} connections (wrk, 1 thread), {args.warmup} s warm-up + "
          f"{args.duration} s per run, "
          f"medians of {args.runs}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)")
    print(f"jobs created: {created} (requests answered in the measured windows: {submitted}); "
          f"non-2xx or socket errors: {failures}; answers: {statuses}")
    if failures:
        raise SystemExit("bench: some requests failed; the figures would not be a submission rate")

    figures: dict = {}
    if "asgi" in results:
        figures.update(req_per_s=median(results["asgi"]["submit"], "req_per_s"),
                       p99_ms=median(results["asgi"]["submit"], "p99_ms"),
                       bare_req_per_s=median(results["asgi"]["bare"], "req_per_s"),
                       bare_p99_ms=median(results["asgi"]["bare"], "p99_ms"),
                       server_cpu_ms_per_req=median(results["asgi"]["submit"], "server_cpu_ms"),
                       bare_server_cpu_ms_per_req=median(results["asgi"]["bare"], "server_cpu_ms"),
                       asgi_server=server_config("asgi", args))
    if "wsgi" in results:
        figures.update(wsgi_req_per_s=median(results["wsgi"]["submit"], "req_per_s"),
                       wsgi_p99_ms=median(results["wsgi"]["submit"], "p99_ms"),
                       wsgi_bare_req_per_s=median(results["wsgi"]["bare"], "req_per_s"),
                       wsgi_server_cpu_ms_per_req=median(results["wsgi"]["submit"], "server_cpu_ms"),
                       wsgi_bare_server_cpu_ms_per_req=median(results["wsgi"]["bare"], "server_cpu_ms"),
                       wsgi_server=server_config("wsgi", args))
    if len(results) == 2:
        figures["faster"] = "asgi" if figures["req_per_s"] >= figures["wsgi_req_per_s"] else "wsgi"
    figures.update(workers=args.workers, projects=args.projects, connections=args.connections,
                   duration_s=args.duration, runs=args.runs,
                   req_per_s_runs={k: [r["req_per_s"] for r in v["submit"]] for k, v in results.items()},
                   load_average=round(os.getloadavg()[0], 2))
    return figures
