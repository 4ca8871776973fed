"""/healthz: is the database, the channel layer and the Celery broker reachable from here?"""

import asyncio
import time

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

CHECK_TIMEOUT_S = 3.0


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor}


async def _check_channel_layer() -> dict:
    layer = get_channel_layer()
    channel = await layer.new_channel("healthz.")
    marker = {"type": "healthz.ping", "at": time.time()}
    await layer.send(channel, marker)
    received = await layer.receive(channel)
    return {"ok": received.get("at") == marker["at"], "backend": type(layer).__name__}


def _check_broker() -> dict:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"ok": True, "mode": "in-process"}
    from portal.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_S)
    return {"ok": True, "mode": "broker", "transport": app.conf.broker_url.split("://")[0]}


async def _run(name, check) -> tuple[str, dict]:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception as exc:  # a health check reports failures, it does not raise them
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return name, result


async def healthz(request):
    # The database check runs in the request thread's connection context (thread_sensitive).
    db = await _run("database", sync_to_async(_check_database))
    others = await asyncio.gather(
        _run("channel_layer", _check_channel_layer),
        _run("broker", sync_to_async(_check_broker, thread_sensitive=False)),
    )
    checks = dict([db, *others])
    healthy = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
