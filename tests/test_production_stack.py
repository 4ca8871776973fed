"""The production stack for real: PostgreSQL locking, Redis channel layer, a Celery worker process."""

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from accounts import services
from accounts.actors import Actor, system_actor
from accounts.models import Institution, InstitutionRole, Membership
from portal.errors import Conflict
from tests.factories import make_institution, make_member, make_token

ROOT = Path(__file__).resolve().parent.parent


def _in_threads(*targets):
    results: list = [None] * len(targets)
    barrier = threading.Barrier(len(targets))

    def run(i, target):
        try:
            barrier.wait()
            results[i] = target()
        except Exception as exc:  # collected and asserted by the caller
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_demotions_never_leave_an_institution_without_admin():
    institution = make_institution("PKU", "北京大学", ["pku.edu.cn"])
    first = make_member(institution, InstitutionRole.INSTITUTION_ADMIN, "a1@pku.edu.cn")
    second = make_member(institution, InstitutionRole.INSTITUTION_ADMIN, "a2@pku.edu.cn")
    m1 = Membership.objects.get(user=first)
    m2 = Membership.objects.get(user=second)

    # Each admin demotes the other at the same moment: without the lock both would succeed.
    results = _in_threads(
        lambda: services.member_change_role(actor=Actor(user=first), membership=m2, role="researcher"),
        lambda: services.member_change_role(actor=Actor(user=second), membership=m1, role="researcher"),
    )
    admins = Membership.objects.filter(institution=institution, role=InstitutionRole.INSTITUTION_ADMIN).count()
    assert admins >= 1
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) <= 1 and all(isinstance(f, Conflict) or "admin" in str(f).lower() for f in failures), failures


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_one_code_give_one_institution_and_a_conflict():
    results = _in_threads(
        *[
            (
                lambda n=n: services.institution_create(
                    actor=system_actor(), name=f"Race {n}", code="RACE", kind="institute"
                )
            )
            for n in range(4)
        ]
    )
    created = [r for r in results if isinstance(r, Institution)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(created) == 1 and len(conflicts) == 3, results
    assert Institution.objects.filter(code="RACE").count() == 1


@pytest.mark.redis
def test_redis_channel_layer_round_trip():
    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisPubSubChannelLayer"

    async def round_trip():
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "probe", "n": 7})
        return await layer.receive(channel)

    assert async_to_sync(round_trip)()["n"] == 7


@pytest.mark.redis
@pytest.mark.django_db
def test_healthz_on_the_production_stack(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok", body
    assert body["checks"]["broker"]["mode"] == "broker"
    assert body["checks"]["channel_layer"]["backend"] == "RedisPubSubChannelLayer"


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_task_sent_through_redis_runs_in_a_separate_celery_worker():
    institution = make_institution("PKU", "北京大学", ["pku.edu.cn"])
    admin = make_member(institution, InstitutionRole.INSTITUTION_ADMIN, "admin@pku.edu.cn")
    make_token(institution, ["read"], admin, name="expiring-soon-token", expires_at=timezone.now() + timedelta(days=2))

    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    queue = f"test-{os.getpid()}-{int(time.time())}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-P",
            "solo",
            "-Q",
            queue,
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        from accounts.tasks import warn_expiring_tokens

        warn_expiring_tokens.apply_async(queue=queue)
        output = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = worker.stdout.readline()
            if not line:
                break
            output.append(line)
            if "expiring-soon-token" in line:
                break
        assert any("expiring-soon-token" in line for line in output), "".join(output)[-3000:]
    finally:
        worker.terminate()
        worker.wait(20)
