"""Benchmark ``push_latency``: commit of a job state change → receipt by websocket clients, with the
production shape: channels-redis, 2 uvicorn processes (``--ws websockets-sansio``), 1,000 clients
spread over both (half on ``/ws/institution/``, half on ``/ws/jobs/?project=``, all authenticated
with a read token), in 2 client processes (one per server; ``MiniClient``, a minimal websocket client,
since the clients share the cores with the servers). Then a 10,000-job batch flows through: how long until
every client holds every row, how many deltas that took, and the push latency of state changes
made while it flows.

    make bench NAME=push_latency
    python -m bench push_latency --clients 200 --probes 50        # smaller

Needs PostgreSQL and Redis (``make services``): DATABASE_URL (default: a fresh
``suanwang_push_latency`` database) and REDIS_URL (default redis://127.0.0.1:6379/5).
Latency = receipt time in the client process − the time the committing process's transaction
committed (the first on-commit callback), both on this machine's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/suanwang_push_latency"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"


# --- client processes (no Django) ------------------------------------------------------------------
class MiniClient(asyncio.Protocol):
    """A minimal websocket client (RFC 6455) for the load generator, which shares the 2 cores with the
    servers: handshake, unfragmented server frames, pings answered, nothing else. A general client
    library costs several times more CPU per message, which here is CPU taken from the servers."""

    def __init__(self, request: bytes, on_message, deflate: bool = False):
        import zlib

        self.request = request
        self.inflater = zlib.decompressobj(-15) if deflate else None  # permessage-deflate, context kept
        self.on_message = on_message
        self.buf = bytearray()
        self.upgraded = False
        self.first: asyncio.Future = asyncio.get_running_loop().create_future()  # the snapshot
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        if not self.first.done():
            self.first.set_exception(ConnectionError(f"closed before the snapshot ({exc})"))

    def data_received(self, data: bytes):
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            del buf[:end + 4]
            if b" 101 " not in status + b" ":
                self.first.set_exception(ConnectionError(f"handshake refused: {status!r}"))
                self.transport.close()
                return
            self.upgraded = True
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, length = buf[pos], buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if n - pos < head + length:
                break
            payload = bytes(buf[pos + head:pos + head + length])
            pos += head + length
            opcode = b0 & 0x0F
            if opcode == 0x9:  # ping → pong
                self.send_frame(0xA, payload)
            elif opcode == 0x8:
                self.transport.close()
            elif opcode in (0x1, 0x2):
                if not b0 & 0x80:
                    raise RuntimeError("fragmented message: the bench client does not reassemble")
                if b0 & 0x40:  # RSV1: compressed (permessage-deflate)
                    payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
                self.on_message(self, payload)
        del buf[:pos]

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)  # client frames are masked
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send_frame(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()


async def _client_main(config: dict) -> dict:
    import base64
    from urllib.parse import urlsplit

    loop = asyncio.get_running_loop()
    probe_seen: dict[int, list[float]] = {}
    batch: list[list[tuple[float, int]]] = []
    opened: list[MiniClient] = []
    analysed: dict[bytes, tuple[int, list[int]]] = {}  # delta header → (batch rows, probe job ids)

    def analyse(raw: bytes) -> tuple[int, list[int]]:
        probes = []
        if b'"probe' in raw:
            for event in json.loads(raw).get("events", ()):
                if event["kind"] != "jobs" or "name" not in event["fields"]:
                    continue
                i_id, i_state, i_name = (event["fields"].index(f) for f in ("id", "state", "name"))
                probes.extend(row[i_id] for row in event["rows"]
                              if row[i_state] == "dispatched" and row[i_name].startswith("probe-"))
        return raw.count(b'"batch'), probes

    # A delta's content is analysed once per client process: every connection of a group receives the
    # same text for a (group, seq), so each connection looks its delta up by that header and still
    # counts, for itself, the batch rows and probe rows it received.
    def on_message(client: MiniClient, raw: bytes) -> None:
        now = time.time()
        if not client.first.done():
            if raw.startswith(b'{"type":"snapshot"'):
                client.first.set_result(None)
            else:
                client.first.set_exception(RuntimeError(f"expected a snapshot: {raw[:200]!r}"))
            return
        start = raw.find(b'"group":', 0, 200)
        end = raw.find(b',"events":', start, start + 200) if start >= 0 else -1
        key = raw[start:end] if end > 0 else None
        found = analysed.get(key) if key is not None else None
        if found is None:
            found = analyse(raw)
            if key is not None:
                analysed[key] = found
        count, probes = found
        for job_id in probes:
            probe_seen.setdefault(job_id, []).append(now)
        if count:
            client.rows.append((now, count))

    semaphore = asyncio.Semaphore(50)  # handshakes + snapshots in flight at once

    async def one(url: str):
        parts = urlsplit(url)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
                   f"Host: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   + ("Sec-WebSocket-Extensions: permessage-deflate\r\n" if config["deflate"] else "")
                   + f"Authorization: Bearer {config['token']}\r\n\r\n").encode()
        async with semaphore:
            client = MiniClient(request, on_message, deflate=config["deflate"])
            client.rows = []
            await loop.create_connection(lambda: client, parts.hostname, parts.port)
            await asyncio.wait_for(client.first, 120)
        batch.append(client.rows)
        opened.append(client)

    tasks = [asyncio.create_task(one(url)) for url in config["urls"]]
    while len(opened) < len(config["urls"]):
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
        await asyncio.sleep(0.05)
    print("READY", flush=True)
    expected = int(await loop.run_in_executor(None, sys.stdin.readline))  # the batch's size
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and any(sum(c for _t, c in mine) < expected for mine in batch):
        await asyncio.sleep(0.1)
    print("BATCHDONE", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the driver says stop
    for client in opened:
        client.close()
    await asyncio.sleep(0.2)
    return {"probes": {str(k): v for k, v in probe_seen.items()}, "batch": batch}


def client_main(config_json: str) -> None:
    result = asyncio.run(_client_main(json.loads(config_json)))
    print("RESULT " + json.dumps(result), flush=True)


# --- the driver ------------------------------------------------------------------------------------
def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _wait_http(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310  (http://127.0.0.1 only)
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not come up")


def _commit_stamped(fn) -> tuple[float, object]:
    """Run fn in a transaction; the commit time is taken by the first on-commit callback."""
    from django.db import transaction

    stamp = []
    with transaction.atomic():
        transaction.on_commit(lambda: stamp.append(time.time()))
        result = fn()
    return stamp[0], result


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="push_latency")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--probes", type=int, default=100, help="isolated state changes timed")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between probes")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--ports", default="8110,8111")
    parser.add_argument("--profile-server", metavar="FILE", help="run the first ASGI process under cProfile")
    parser.add_argument("--deflate", action="store_true",
                        help="let uvicorn compress each message per connection (permessage-deflate; off by default)")
    args = parser.parse_args(argv)

    os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS)
    from bench import _django

    _django.setup()
    from django.conf import settings
    from django.db import connections

    from federation import jobs as job_services
    from portal.live import hub
    from tests.factories import make_member, make_token

    if not settings.REDIS_URL or connections["default"].vendor != "postgresql":
        raise SystemExit("bench push_latency needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)")
    from bench.dispatch import build_world

    t0 = time.perf_counter()
    pi, project = build_world()
    admin = make_member(project.institution, "institution_admin", "admin@bench.edu.cn")
    _token, raw_token = make_token(project.institution, ["read"], admin, name="push-latency")
    connections.close_all()
    print(f"world built in {time.perf_counter() - t0:.1f} s", flush=True)

    ports = [int(p) for p in args.ports.split(",")]
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "WARNING", "DB_POOL_MAX": "8",
           "PYTHONPATH": str(ROOT)}
    env.pop("SUANWANG_TICK_SITES", None)
    bin_dir = Path(sys.executable).parent
    profile = ([sys.executable, "-m", "cProfile", "-o", args.profile_server] if args.profile_server else [])
    servers = [subprocess.Popen([*(profile if i == 0 else []), str(bin_dir / "uvicorn"), "portal.asgi:application",
                                 "--host", "127.0.0.1",
                                 "--port", str(port), "--ws", "websockets-sansio", "--no-access-log",
                                 "--log-level", "warning", "--ws-per-message-deflate", str(args.deflate).lower(),
                                 "--timeout-graceful-shutdown", "3"],
                                cwd=ROOT, env=env)
               for i, port in enumerate(ports)]
    clients: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 60
        for port in ports:
            _wait_http(f"http://127.0.0.1:{port}/healthz", deadline)
        paths = ["/ws/institution/", f"/ws/jobs/?project={project.pk}"]
        urls = [f"ws://127.0.0.1:{ports[i % len(ports)]}{paths[(i // len(ports)) % 2]}" for i in range(args.clients)]
        per_proc = [urls[i::args.client_procs] for i in range(args.client_procs)]
        t0 = time.perf_counter()
        for chunk in per_proc:
            config = json.dumps({"urls": chunk, "token": raw_token, "deflate": args.deflate})
            clients.append(subprocess.Popen(
                [sys.executable, "-c", "import sys; from bench.push_latency import client_main; "
                                       "client_main(sys.argv[1])", config],
                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for proc in clients:
            line = proc.stdout.readline()
            if line.strip() != "READY":
                raise SystemExit(f"bench: a client process failed to connect ({line!r})")
        connect_s = time.perf_counter() - t0
        print(f"{args.clients} clients connected over {len(ports)} ASGI processes in {connect_s:.1f} s", flush=True)
        time.sleep(1.0)

        def submit(prefix: str, n: int):
            requests = [job_services.JobRequest(name=f"{prefix}-{i}", cores_per_node=1, walltime_s=600)
                        for i in range(n)]
            return job_services.jobs_submit(actor=pi, project=project, requests=requests, enqueue_dispatch=False)

        probe_ids = [a.job_id for a in submit("probe", 2 * args.probes).accepted]
        if len(probe_ids) < 2 * args.probes:
            raise SystemExit("bench: probe jobs were refused")
        hub.publisher.wait_idle(10)
        time.sleep(1.0)

        def move(job_id):
            from django.utils import timezone

            return job_services.apply_moves([(job_id, "dispatched", "bench probe", timezone.now(), None)])

        commits: dict[int, float] = {}
        # Phase 1: isolated state changes (one every --interval seconds).
        for job_id in probe_ids[: args.probes]:
            commits[job_id], _ = _commit_stamped(lambda j=job_id: move(j))
            time.sleep(args.interval)
        hub.publisher.wait_idle(10)
        time.sleep(1.0)

        # Phase 2: a 10,000-job batch; state changes keep coming while it flows.
        batch_commit, result = _commit_stamped(lambda: submit("batch", args.batch))
        accepted = len(result.accepted)
        under_load: dict[int, float] = {}
        stop = threading.Event()

        def probes_under_load():
            for job_id in probe_ids[args.probes:]:
                if stop.is_set():
                    break
                under_load[job_id], _ = _commit_stamped(lambda j=job_id: move(j))
                time.sleep(args.interval / 3)
            connections.close_all()

        prober = threading.Thread(target=probes_under_load)
        prober.start()
        for proc in clients:
            proc.stdin.write(f"{accepted}\n")
            proc.stdin.flush()
        for proc in clients:  # every connection holds every row of the batch (or 3 minutes passed)
            line = proc.stdout.readline()
            if line.strip() != "BATCHDONE":
                raise SystemExit(f"bench: a client process failed ({line!r})")
        stop.set()
        prober.join()
        hub.publisher.wait_idle(30)
        time.sleep(2.0)

        results = []
        for proc in clients:
            proc.stdin.write("stop\n")
            proc.stdin.flush()
        for proc in clients:
            for line in proc.stdout:
                if line.startswith("RESULT "):
                    results.append(json.loads(line[7:]))
                    break
            proc.wait(60)
    finally:
        for proc in clients + servers:
            if proc.poll() is None:
                # SIGINT lets a profiled server write its profile (uvicorn re-raises SIGTERM and dies by it)
                proc.send_signal(signal.SIGINT if args.profile_server and proc is servers[0] else signal.SIGTERM)
        for proc in clients + servers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def latencies(commit_times: dict[int, float]) -> tuple[list[float], int]:
        values, missing = [], 0
        for job_id, committed in commit_times.items():
            got = [t for r in results for t in r["probes"].get(str(job_id), [])]
            missing += args.clients - len(got)
            values.extend((t - committed) * 1000 for t in got)
        return values, missing

    idle, idle_missing = latencies(commits)
    loaded, loaded_missing = latencies(under_load)
    done_at, deltas = [], []
    for r in results:
        for conn in r["batch"]:
            total, finished = 0, None
            for t, count in conn:
                total += count
                if total >= accepted and finished is None:
                    finished = t
            deltas.append(len(conn))
            done_at.append(finished)
    complete = [t for t in done_at if t is not None]
    batch_s = (max(complete) - batch_commit) if complete else float("nan")
    figures = {
        "p50_ms": round(_percentile(idle, 0.5), 1), "p99_ms": round(_percentile(idle, 0.99), 1),
        "max_ms": round(max(idle), 1) if idle else None,
        "clients": args.clients, "asgi_processes": len(ports), "probes": len(commits),
        "receipts": len(idle), "missing_receipts": idle_missing,
        "batch_jobs": accepted, "batch_clients_complete": len(complete),
        "batch_first_client_s": round(min(complete) - batch_commit, 2) if complete else None,
        "batch_all_clients_s": round(batch_s, 2),
        "batch_rows_per_s": round(accepted * len(complete) / batch_s) if complete else None,
        "batch_deltas_per_client_median": statistics.median(deltas) if deltas else None,
        "p50_ms_during_batch": round(_percentile(loaded, 0.5), 1),
        "p99_ms_during_batch": round(_percentile(loaded, 0.99), 1),
        "probes_during_batch": len(under_load), "missing_receipts_during_batch": loaded_missing,
        "connect_s": round(connect_s, 1),
    }
    print()
    print(f"push latency, commit → receipt, {args.clients} websocket clients on {len(ports)} ASGI processes "
          f"(channels-redis), shared 2-core machine")
    print(f"{'':34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'receipts':>9} {'missing':>8}")
    print(f"{'isolated state changes':34} {figures['p50_ms']:>8} {figures['p99_ms']:>8} {figures['max_ms']:>8} "
          f"{len(idle):>9} {idle_missing:>8}")
    print(f"{'state changes during the batch':34} {figures['p50_ms_during_batch']:>8} "
          f"{figures['p99_ms_during_batch']:>8} {round(max(loaded), 1) if loaded else '-':>8} {len(loaded):>9} "
          f"{loaded_missing:>8}")
    print(f"batch of {accepted:,} jobs: first client complete after {figures['batch_first_client_s']} s, all "
          f"{len(complete)} after {figures['batch_all_clients_s']} s ({figures['batch_rows_per_s']} rows/s "
          f"delivered), {figures['batch_deltas_per_client_median']} deltas per client (median)")
    return figures


if __name__ == "__main__":
    print(json.dumps({"bench": "push_latency", **main(sys.argv[1:])}))
