"""Fixtures for the websocket streams: two tenants with projects, allocations and jobs, and a
connect() helper around channels' WebsocketCommunicator (session cookie or bearer token)."""

from datetime import timedelta

import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone

from portal.live import capacity, hub, protocol
from tests.factories import Fed, build_allocation_world, make_member


def _forget_redis_state() -> None:
    """Sequence numbers and replay buffers of this deployment's namespace (tests start from 0)."""
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter(f"suanwang:live:{hub.namespace()}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(autouse=True)
def _fresh_live_state():
    hub.reset_store()
    _forget_redis_state()
    protocol.codes.clear()
    capacity._meta.clear()
    capacity._last.clear()
    yield
    hub.publisher.wait_idle(2)
    hub.reset_store()


@pytest.fixture
def world(fed) -> Fed:
    """Institution A's allocation world (tests/factories.py) plus institution B's own project,
    allocation and job (the foreign tenant)."""
    from accounts.actors import Actor
    from allocations import projects, workflow
    from federation.jobs import JobRequest, jobs_submit

    build_allocation_world(fed)
    pi_b = make_member(fed.b, "pi", "pi@tsinghua.edu.cn")
    fed.users["pi_b"] = pi_b
    today = timezone.localdate()
    project_b = projects.project_create(actor=Actor(user=pi_b), institution_id=fed.b.pk, title="THU physics",
                                        abstract="A", discipline="physics", start=today,
                                        end=today + timedelta(days=300))
    projects.project_member_add(actor=Actor(user=pi_b), project=project_b, email=fed.users["researcher_b"].email)
    request = workflow.request_create(actor=Actor(user=pi_b), project=project_b, kind="new", tier="explore",
                                      title="Pilot", justification="J", amounts={"cpu": 1000}, start=today,
                                      end=today + timedelta(days=100))
    workflow.request_submit(actor=Actor(user=pi_b), request=request)
    job_b = jobs_submit(actor=Actor(user=pi_b), project=project_b,
                        requests=[JobRequest(name="thu-1", cores_per_node=2, walltime_s=600)],
                        enqueue_dispatch=False)
    fed.objects["project_b"] = project_b.pk
    fed.objects["job_b"] = job_b.accepted[0].job_id
    return fed


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def communicator(path: str, *, user=None, token: str | None = None, subprotocol_token: bool = False,
                 origin: str | None = "http://testserver", application=None) -> WebsocketCommunicator:
    from portal.asgi import application as default_app

    headers = [(b"host", b"testserver")]
    if origin:
        headers.append((b"origin", origin.encode()))
    if user is not None:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_cookie(user)}".encode()))
    subprotocols = None
    if token is not None and subprotocol_token:
        subprotocols = [protocol.SUBPROTOCOL, f"bearer.{token}"]
    elif token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return WebsocketCommunicator(application or default_app, path, headers=headers, subprotocols=subprotocols)
