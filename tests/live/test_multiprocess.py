"""The production shape for real: two uvicorn processes on channels-redis and a Celery worker on
PostgreSQL + Redis. An event produced in the worker reaches websocket clients on both ASGI
processes; a foreign tenant's clients receive nothing."""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[2]
PORTS = (8101, 8102)
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _wait_http(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310  (http://127.0.0.1 only)
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def stack(world, tmp_path):
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL,
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "SUANWANG_VAR_DIR": str(tmp_path), "LOG_LEVEL": "WARNING",
           "DJANGO_SETTINGS_MODULE": "portal.settings", "DB_POOL_MAX": "4"}
    env.pop("SUANWANG_TICK_SITES", None)
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "celery"), "-A", "portal", "purge", "-f"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=60)
    procs, logs = [], []
    try:
        for port in PORTS:
            log = open(tmp_path / f"uvicorn-{port}.log", "w")
            logs.append(log)
            procs.append(subprocess.Popen(
                [str(bin_dir / "uvicorn"), "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                 "--ws", "websockets-sansio", "--no-access-log", "--log-level", "warning"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        worker_log = tmp_path / "worker.log"
        log = open(worker_log, "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [str(bin_dir / "celery"), "-A", "portal", "worker", "-P", "solo", "-c", "1", "-l", "info",
             "--without-mingle", "--without-gossip", "--without-heartbeat", "-n", f"h4-live-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        for port in PORTS:
            _wait_http(f"http://127.0.0.1:{port}/healthz", deadline)
        while "ready." not in worker_log.read_text():
            assert time.monotonic() < deadline and procs[-1].poll() is None, worker_log.read_text()[-3000:]
            time.sleep(0.2)
        yield tmp_path
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


async def _connect(port: int, path: str, token: str):
    import websockets

    ws = await websockets.connect(f"ws://127.0.0.1:{port}{path}", open_timeout=10,
                                  additional_headers={"Authorization": f"Bearer {token}"})
    snapshot = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert snapshot["type"] == "snapshot", snapshot
    return ws, snapshot


async def _until(ws, predicate, timeout=20.0) -> dict:
    """Deltas until one has rows matching predicate(kind, row dict); checks seq continuity."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        assert message["type"] == "delta", message
        assert last is None or message["seq"] == last + 1
        last = message["seq"]
        for event in message["events"]:
            for row in event["rows"]:
                if predicate(event["kind"], dict(zip(event["fields"], row, strict=True))):
                    return message


def test_an_event_from_a_celery_worker_reaches_clients_on_every_asgi_process(world, stack):
    from allocations.models import Allocation
    from allocations.tasks import expire_allocations
    from federation import jobs as job_services
    from federation.models import Job

    allocation_id = world.objects["allocation"]
    today = timezone.localdate()
    # A's allocation ended yesterday: the worker's daily task expires it (and publishes that).
    Allocation.objects.filter(pk=allocation_id).update(start=today - timedelta(days=30), end=today - timedelta(days=1))
    token_a, token_b = world.tokens["token_a_read"], world.tokens["token_b_admin"]
    project = world.objects["project"]

    async def scenario():
        ours = [await _connect(port, "/ws/institution/", token_a) for port in PORTS]
        ours += [await _connect(port, f"/ws/jobs/?project={project}", token_a) for port in PORTS]
        foreign = [await _connect(port, path, token_b) for port in PORTS for path in ("/ws/institution/",
                                                                                     "/ws/jobs/")]
        await asyncio.sleep(0.3)  # every process has subscribed its groups in Redis

        expire_allocations.delay()  # runs in the Celery worker process
        for ws, snapshot in ours:
            delta = await _until(ws, lambda kind, row: kind == "allocation" and row["allocation"] == allocation_id
                                 and row["state"] == "expired")
            group = delta["group"]
            assert delta["seq"] > snapshot["seqs"][group]

        # a job cancelled in this (third) process reaches both too
        job_id = world.objects["job"]
        await asyncio.to_thread(_cancel, job_services, Job, world, job_id)
        for ws, _snapshot in ours:
            await _until(ws, lambda kind, row: kind == "jobs" and row["id"] == job_id and row["state"] == "cancelled")

        for ws, _snapshot in foreign:  # THU's clients heard nothing of PKU
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 1.0)
        for ws, _snapshot in ours + foreign:
            await ws.close()

    asyncio.run(scenario())
    assert Allocation.objects.get(pk=allocation_id).state == "expired"


def _cancel(job_services, job_model, world, job_id):
    from django.db import connections

    from accounts.actors import Actor

    try:
        job_services.job_cancel(actor=Actor(user=world.users["pi_a"]), job=job_model.objects.get(pk=job_id))
    finally:
        connections.close_all()


def test_resume_after_reconnecting_to_the_other_process_replays_from_redis(world, stack):
    """Sequence numbers and replay buffers live in Redis: a client may resume on any process."""
    from allocations.models import Project
    from federation import jobs as job_services

    token = world.tokens["token_a_read"]

    def submit(name):
        from django.db import connections

        from accounts.actors import Actor

        try:
            project = Project.objects.get(pk=world.objects["project"])
            job_services.jobs_submit(actor=Actor(user=world.users["pi_a"]), project=project,
                                     requests=[job_services.JobRequest(name=name, cores_per_node=1, walltime_s=60)],
                                     enqueue_dispatch=False)
        finally:
            connections.close_all()

    async def scenario():
        ws, snapshot = await _connect(PORTS[0], "/ws/institution/", token)
        (group,) = snapshot["seqs"]
        await asyncio.to_thread(submit, "before")
        delta = await _until(ws, lambda kind, row: kind == "jobs" and row["name"] == "before")
        await ws.close()
        await asyncio.to_thread(submit, "while-away")
        await asyncio.sleep(0.5)
        import websockets

        again = await websockets.connect(f"ws://127.0.0.1:{PORTS[1]}/ws/institution/?resume={group}:{delta['seq']}",
                                         additional_headers={"Authorization": f"Bearer {token}"})
        resumed = json.loads(await asyncio.wait_for(again.recv(), 10))
        assert resumed == {"type": "resumed", "stream": "institution", "seqs": {group: delta["seq"]}}
        missed = await _until(again, lambda kind, row: kind == "jobs" and row["name"] == "while-away")
        assert missed["seq"] > delta["seq"]
        await again.close()

    asyncio.run(scenario())
