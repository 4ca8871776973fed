"""The websocket streams in one process (in-memory channel layer): auth, close codes, snapshot → deltas,
tenant isolation, coalescing, resume, slow clients, client messages."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from accounts.actors import Actor
from federation import jobs as job_services
from federation import services as site_services
from federation.models import Job, Site
from portal.live import hub
from tests.factories import make_token
from tests.live.conftest import communicator

pytestmark = pytest.mark.django_db(transaction=True)


def run(scenario):
    async_to_sync(scenario)()


async def open_stream(path, **kw):
    comm = await database_sync_to_async(communicator)(path, **kw)
    connected, subprotocol = await comm.connect()
    assert connected
    first = await comm.receive_json_from(timeout=5)
    return comm, first, subprotocol


async def refused(path, **kw) -> tuple[int, str]:
    comm = await database_sync_to_async(communicator)(path, **kw)
    connected, _ = await comm.connect()
    assert connected  # accepted, then closed: every client sees the code
    error = await comm.receive_json_from(timeout=5)
    closed = await comm.receive_output(timeout=5)
    assert error["type"] == "error" and closed["type"] == "websocket.close"
    return closed["code"], error["code"]


def rows(event) -> list[dict]:
    return [dict(zip(event["fields"], row, strict=True)) for row in event["rows"]]


async def next_delta(comm, timeout=5) -> dict:
    message = await comm.receive_json_from(timeout=timeout)
    assert message["type"] == "delta", message
    return message


async def deltas_until(comm, kinds: set[str], timeout=5) -> dict[str, list[dict]]:
    """Deltas (in order, seq by seq) until events of every kind in ``kinds`` arrived: kind → rows."""
    got: dict[str, list[dict]] = {}
    last = None
    while not kinds <= set(got):
        delta = await next_delta(comm, timeout)
        assert last is None or delta["seq"] == last + 1
        last = delta["seq"]
        for event in delta["events"]:
            got.setdefault(event["kind"], []).extend(rows(event))
    return got


def cancel(world, job_id, who="pi_a"):
    job = Job.objects.get(pk=job_id)
    return job_services.job_cancel(actor=Actor(user=world.users[who]), job=job)


def submit(world, n, name="batch", who="pi_a", project_key="project"):
    from allocations.models import Project

    project = Project.objects.get(pk=world.objects[project_key])
    requests = [job_services.JobRequest(name=f"{name}-{i}", cores_per_node=1, walltime_s=60) for i in range(n)]
    return job_services.jobs_submit(actor=Actor(user=world.users[who]), project=project, requests=requests,
                                    enqueue_dispatch=False)


# --- snapshot, then deltas -------------------------------------------------------------------------
def test_a_researcher_gets_a_snapshot_then_each_state_change_of_their_jobs(world):
    job_id = world.objects["job"]

    async def scenario():
        comm, snapshot, _ = await open_stream("/ws/jobs/", user=world.users["researcher_a"])
        assert snapshot["type"] == "snapshot" and snapshot["stream"] == "jobs"
        group = f"project.{world.objects['project']}"
        assert set(snapshot["seqs"]) == {group}
        jobs = rows(snapshot["data"]["jobs"])
        assert [j["id"] for j in jobs] == [job_id]
        assert jobs[0]["state"] == "routed" and jobs[0]["site"] and jobs[0]["resource_class"] == "cpu"
        assert {a["class"] for a in rows(snapshot["data"]["allocations"])} >= {"cpu"}
        assert snapshot["data"]["classes"]["cpu"]["scale"] > 0

        await database_sync_to_async(cancel)(world, job_id)
        delta = await next_delta(comm)
        assert delta["group"] == group and delta["seq"] == snapshot["seqs"][group] + 1 and delta["stream"] == "jobs"
        by_kind = {e["kind"]: rows(e) for e in delta["events"]}
        if not {"jobs", "allocation"} <= set(by_kind):  # the commit's two events may travel apart
            for kind, more in (await deltas_until(comm, {"jobs", "allocation"} - set(by_kind))).items():
                by_kind.setdefault(kind, []).extend(more)
        (row,) = by_kind["jobs"]
        assert row["id"] == job_id and row["state"] == "cancelled" and row["ended_at"]
        assert row["cause"].startswith("cancelled by") and row["at"]
        # the hold was released: the balance row says so
        (cpu,) = [a for a in by_kind["allocation"] if a["class"] == "cpu"]
        assert cpu["held"] == 0 and cpu["available"] == cpu["awarded"] - cpu["charged"]
        await comm.disconnect()

    run(scenario)


def test_an_institution_token_follows_all_its_jobs_and_requests(world):
    async def scenario():
        comm, snapshot, subprotocol = await open_stream("/ws/institution/", token=world.tokens["token_a_read"],
                                                        origin=None)
        assert subprotocol is None
        assert snapshot["stream"] == "institution"
        assert snapshot["data"]["institution"]["code"] == "PKU"
        assert set(snapshot["seqs"]) == {f"institution.{world.a.pk}"}
        assert world.objects["job"] in [j["id"] for j in rows(snapshot["data"]["jobs"])]
        assert world.objects["job_b"] not in [j["id"] for j in rows(snapshot["data"]["jobs"])]
        assert {r["id"] for r in rows(snapshot["data"]["requests"])} >= {world.objects["reviewed"]}

        await database_sync_to_async(submit)(world, 3)
        kinds = await deltas_until(comm, {"jobs", "allocation"})  # the jobs and the hold
        assert [r["state"] for r in kinds["jobs"]] == ["routed"] * 3
        assert all(r["cause"].startswith("routed to ") for r in kinds["jobs"])
        await comm.disconnect()

    run(scenario)


def test_the_token_may_come_as_a_subprotocol_for_clients_that_cannot_set_headers(world):
    async def scenario():
        comm, snapshot, subprotocol = await open_stream("/ws/jobs/", token=world.tokens["token_a_read"],
                                                        subprotocol_token=True, origin="https://evil.example")
        assert subprotocol == "suanwang.v1"
        assert snapshot["type"] == "snapshot"
        await comm.disconnect()

    run(scenario)


# --- refusals --------------------------------------------------------------------------------------
def test_connections_are_refused_with_close_codes(world):
    from accounts import services as account_services
    from accounts.models import ApiToken

    token_obj, submit_only = make_token(world.a, ["jobs:submit"], world.users["admin_a"], name="submit-only")
    revoked_obj, revoked = make_token(world.a, ["read"], world.users["admin_a"], name="old")
    account_services.token_revoke(actor=Actor(user=world.users["admin_a"]), token=revoked_obj)
    assert ApiToken.objects.get(pk=revoked_obj.pk).revoked_at is not None
    project, job = world.objects["project"], world.objects["job"]

    async def scenario():
        assert await refused("/ws/jobs/") == (4401, "not_authenticated")
        assert await refused("/ws/jobs/", token=revoked, origin=None) == (4401, "token_revoked")
        assert await refused("/ws/jobs/", token="sw_nope", origin=None) == (4401, "token_malformed")
        assert await refused("/ws/sites/", token=submit_only, origin=None) == (4403, "insufficient_scope")
        b = world.users["researcher_b"]
        assert await refused(f"/ws/jobs/?project={project}", user=b) == (4403, "permission_denied")
        assert await refused(f"/ws/jobs/?job={job}", user=b) == (4403, "permission_denied")
        assert await refused("/ws/jobs/?job=999999", user=b) == (4403, "permission_denied")
        assert await refused("/ws/institution/?institution=PKU", token=world.tokens["token_b_admin"],
                             origin=None) == (4403, "permission_denied")
        assert await refused("/ws/institution/", user=world.users["researcher_a"]) == (
            4403, "institution_admin_required")
        assert await refused("/ws/institution/", user=world.users["fedadmin"]) == (4403, "institution_required")
        # the committee reads projects, not their jobs
        assert (await refused(f"/ws/jobs/?project={project}", user=world.users["committee"]))[0] == 4403
        a = world.users["researcher_a"]
        for bad in ("?project=abc", "?project=1&job=2", "?color=red", "?resume=nonsense", "?project=1&project=2",
                    "?job=-3"):
            assert await refused(f"/ws/jobs/{bad}", user=a) == (4400, "bad_request"), bad

    run(scenario)


def test_a_browser_session_needs_an_allowed_origin(world):
    async def scenario():
        comm = await database_sync_to_async(communicator)("/ws/jobs/", user=world.users["researcher_a"],
                                                          origin="https://evil.example")
        connected, _ = await comm.connect()
        assert not connected  # the handshake is denied: a foreign page cannot borrow the session

    run(scenario)


# --- tenant isolation ----------------------------------------------------------------------------
def test_a_foreign_tenant_receives_nothing(world):
    job_a = world.objects["job"]

    async def scenario():
        await asyncio.to_thread(hub.publisher.wait_idle, 5)  # the world's own events are out
        foreign = []
        for path, kw in [("/ws/jobs/", {"user": world.users["researcher_b"]}),
                         ("/ws/jobs/", {"user": world.users["admin_b"]}),
                         ("/ws/institution/", {"user": world.users["admin_b"]}),
                         ("/ws/institution/", {"token": world.tokens["token_b_admin"], "origin": None}),
                         ("/ws/jobs/", {"token": world.tokens["token_b_admin"], "origin": None})]:
            comm, snapshot, _ = await open_stream(path, **kw)
            ids = [j["id"] for j in rows(snapshot["data"]["jobs"])]
            assert job_a not in ids and world.objects["job_b"] in ids, (path, kw)
            assert all(g.endswith(f".{world.b.pk}") or g == f"project.{world.objects['project_b']}"
                       for g in snapshot["seqs"]), snapshot["seqs"]
            foreign.append(comm)
        own, _, _ = await open_stream("/ws/institution/", user=world.users["admin_a"])

        await database_sync_to_async(submit)(world, 5)
        await database_sync_to_async(cancel)(world, job_a)
        seen = set()
        while job_a not in seen:  # A's stream got it ...
            seen |= {r["id"] for r in (await deltas_until(own, {"jobs"}))["jobs"]}
        for comm in foreign:  # ... B's never does (B's own earlier changes may still trickle in)
            while not await comm.receive_nothing(timeout=0.5):
                delta = await next_delta(comm)
                assert delta["group"] in (f"institution.{world.b.pk}", f"project.{world.objects['project_b']}")
                ids = {r["id"] for e in delta["events"] if e["kind"] == "jobs" for r in rows(e)}
                assert job_a not in ids and ids <= {world.objects["job_b"]}, ids
        # and B's own change reaches B
        await database_sync_to_async(cancel)(world, world.objects["job_b"], who="pi_b")
        for comm in foreign:
            states = {}
            while states.get(world.objects["job_b"]) != "cancelled":
                got = await deltas_until(comm, {"jobs"})
                assert {r["id"] for r in got["jobs"]} == {world.objects["job_b"]}
                states.update({r["id"]: r["state"] for r in got["jobs"]})
        for comm in [*foreign, own]:
            await comm.disconnect()

    run(scenario)


def test_a_one_job_stream_only_carries_that_job(world):
    job_id = world.objects["job"]

    async def scenario():
        comm, snapshot, _ = await open_stream(f"/ws/jobs/?job={job_id}", user=world.users["researcher_a"])
        assert [j["id"] for j in rows(snapshot["data"]["jobs"])] == [job_id]
        await database_sync_to_async(submit)(world, 2)  # same project, other jobs: nothing for us...
        hold_delta = await next_delta(comm)  # ...except the balance of our job's allocation
        assert {e["kind"] for e in hold_delta["events"]} == {"allocation"}
        await database_sync_to_async(cancel)(world, job_id)
        (row,) = (await deltas_until(comm, {"jobs"}))["jobs"]
        assert row["id"] == job_id and row["state"] == "cancelled"
        await comm.disconnect()

    run(scenario)


# --- coalescing ----------------------------------------------------------------------------------
def test_a_batch_becomes_a_few_batched_deltas_not_one_message_per_job(world, settings):
    settings.SUANWANG = {**settings.SUANWANG, "LIVE_MAX_ROWS": 400}

    async def scenario():
        comm, snapshot, _ = await open_stream("/ws/jobs/", user=world.users["pi_a"])
        (base,) = snapshot["seqs"].values()
        await database_sync_to_async(submit)(world, 1000)
        seen, deltas = set(), 0
        while len(seen) < 1000:
            delta = await next_delta(comm)
            deltas += 1
            assert delta["seq"] == base + deltas
            for event in delta["events"]:
                assert len(event["rows"]) <= 400
                if event["kind"] == "jobs":
                    seen.update(r[0] for r in event["rows"])
        assert deltas <= 4  # 1,000 rows in deltas of ≤ 400 rows (+ the balance row), not 1,000 messages
        await comm.disconnect()

    run(scenario)


def test_changes_within_the_window_are_merged_per_job_last_state_wins():
    from portal.live.hub import build_events, merge_row
    from portal.live.protocol import FIELDS, JOB_STATE_FIELDS

    full = [7, 1, "md", "routed", "gz", "p1", "cpu", "t0", None, None, 4, 100, 0, "", 1, "routed to gz/p1", "t0"]
    merged = merge_row("jobs", (FIELDS["jobs"], full), (JOB_STATE_FIELDS, [7, "dispatched", "accepted by gz", "t1"]))
    assert merged[0] == FIELDS["jobs"]
    values = dict(zip(*merged, strict=True))
    assert values["state"] == "dispatched" and values["site"] == "gz" and values["at"] == "t1"
    partial = merge_row("jobs", (JOB_STATE_FIELDS, [8, "dispatched", "c", "t1"]),
                        (JOB_STATE_FIELDS, [8, "queued", "c2", "t2"]))
    assert partial == (JOB_STATE_FIELDS, [8, "queued", "c2", "t2"])
    deltas = build_events({"jobs": {7: merged, 8: partial}}, max_rows=1000)
    assert len(deltas) == 1 and {tuple(e["fields"]) for e in deltas[0]} == {FIELDS["jobs"], JOB_STATE_FIELDS}


# --- resume --------------------------------------------------------------------------------------
def test_a_client_that_reconnects_with_resume_gets_exactly_what_it_missed(world):
    async def scenario():
        comm, snapshot, _ = await open_stream("/ws/jobs/", user=world.users["pi_a"])
        group = next(iter(snapshot["seqs"]))
        await database_sync_to_async(submit)(world, 1, name="first")
        first = await next_delta(comm)
        await comm.disconnect()

        await database_sync_to_async(submit)(world, 1, name="second")
        await asyncio.to_thread(hub.publisher.wait_idle, 5)
        await database_sync_to_async(cancel)(world, world.objects["job"])
        await asyncio.to_thread(hub.publisher.wait_idle, 5)

        again, resumed, _ = await open_stream(f"/ws/jobs/?resume={group}:{first['seq']}", user=world.users["pi_a"])
        assert resumed == {"type": "resumed", "stream": "jobs", "seqs": {group: first["seq"]}}
        missed = [await next_delta(again), await next_delta(again)]
        assert [d["seq"] for d in missed] == [first["seq"] + 1, first["seq"] + 2]
        names = [r["name"] for d in missed for e in d["events"] if e["kind"] == "jobs" for r in rows(e)]
        assert names[0] == "second-0"
        assert await again.receive_nothing(timeout=0.3)
        await again.disconnect()

        # a gap older than the replay buffer (or a group not named) gets a fresh snapshot
        third, message, _ = await open_stream("/ws/jobs/?resume=project.999999:3", user=world.users["pi_a"])
        assert message["type"] == "snapshot"
        await third.disconnect()

    run(scenario)


def test_resume_beyond_the_replay_buffer_falls_back_to_a_snapshot(world, settings):
    settings.SUANWANG = {**settings.SUANWANG, "LIVE_REPLAY": 2, "LIVE_COALESCE_MS": 0}

    async def scenario():
        comm, snapshot, _ = await open_stream("/ws/jobs/", user=world.users["pi_a"])
        group = next(iter(snapshot["seqs"]))
        await comm.disconnect()
        for i in range(4):
            await database_sync_to_async(submit)(world, 1, name=f"n{i}")
            await asyncio.to_thread(hub.publisher.wait_idle, 5)
        again, message, _ = await open_stream(f"/ws/jobs/?resume={group}:0", user=world.users["pi_a"])
        assert message["type"] == "snapshot" and message["seqs"][group] >= 4
        assert {f"n{i}-0" for i in range(4)} <= {j["name"] for j in rows(message["data"]["jobs"])}
        await again.disconnect()

    run(scenario)


# --- slow clients --------------------------------------------------------------------------------
def test_a_slow_client_gets_a_fresh_snapshot_and_does_not_hold_up_others(world, settings):
    from portal.live.consumers import JobsConsumer

    settings.SUANWANG = {**settings.SUANWANG, "LIVE_QUEUE": 3, "LIVE_COALESCE_MS": 0}
    gate = asyncio.Event()

    class StalledSocket(JobsConsumer):
        """A client that stops reading: the server's sends of deltas block until the gate opens (as
        uvicorn's send waits while the transport's write buffer is full)."""

        async def __call__(self, scope, receive, send):
            async def stalled_send(message):
                if message["type"] == "websocket.send" and '"type":"delta"' in (message.get("text") or ""):
                    await gate.wait()
                await send(message)

            return await super().__call__(scope, receive, stalled_send)

    from channels.auth import AuthMiddlewareStack

    from portal.live.auth import LiveAuthMiddleware

    stalled_app = LiveAuthMiddleware(AuthMiddlewareStack(StalledSocket.as_asgi()))

    async def scenario():
        slow = await database_sync_to_async(communicator)("/ws/jobs/", user=world.users["pi_a"],
                                                          application=stalled_app)
        assert (await slow.connect())[0]
        assert (await slow.receive_json_from(timeout=5))["type"] == "snapshot"
        fast, _, _ = await open_stream("/ws/jobs/", user=world.users["researcher_a"])
        for i in range(8):
            await database_sync_to_async(submit)(world, 1, name=f"s{i}")
            await asyncio.to_thread(hub.publisher.wait_idle, 5)
            delta = await next_delta(fast, timeout=2)  # the fast client keeps up, unblocked
            assert any(r["name"] == f"s{i}-0" for e in delta["events"] if e["kind"] == "jobs" for r in rows(e))
        gate.set()
        messages = []
        while not await slow.receive_nothing(timeout=0.5):
            messages.append(await slow.receive_json_from())
        snapshots = [m for m in messages if m["type"] == "snapshot"]
        assert snapshots and snapshots[-1]["reason"] == "overflow"
        assert {f"s{i}-0" for i in range(8)} <= {j["name"] for j in rows(snapshots[-1]["data"]["jobs"])}
        assert len(messages) <= 1 + 3 + 1  # the delta in flight, at most a queue's worth, one snapshot
        await slow.disconnect()
        await fast.disconnect()

    run(scenario)


# --- client messages -----------------------------------------------------------------------------
def test_ping_pong_and_malformed_messages_keep_the_connection(world):
    async def scenario():
        comm, _, _ = await open_stream("/ws/sites/", user=world.users["researcher_a"])
        await comm.send_to(text_data="{not json")
        assert (await comm.receive_json_from())["code"] == "malformed_message"
        await comm.send_to(text_data="[1, 2]")
        assert (await comm.receive_json_from())["code"] == "malformed_message"
        await comm.send_to(text_data=json.dumps({"type": "dance"}))
        assert (await comm.receive_json_from())["code"] == "unknown_type"
        await comm.send_to(text_data="x" * 10_000)
        assert (await comm.receive_json_from())["code"] == "malformed_message"
        await comm.send_to(bytes_data=b"\x00\x01")
        assert (await comm.receive_json_from())["code"] == "malformed_message"
        await comm.send_json_to({"type": "ping", "id": 7})
        assert await comm.receive_json_from() == {"type": "pong", "id": 7}
        await comm.send_json_to({"type": "resync"})
        message = await comm.receive_json_from()
        assert message["type"] == "snapshot" and message["reason"] == "resync"
        await comm.disconnect()

    run(scenario)


# --- federation status ---------------------------------------------------------------------------
def test_the_status_board_stream_carries_site_states_and_capacity(world):
    from federation.adapters import SimulatedAdapter
    from federation.models import Partition
    from portal.live.capacity import report_capacity

    def go_offline():
        site = Site.objects.get(code="zhengzhou")
        site_services.site_set_state(actor=Actor(user=world.users["operator"]), site=site, state="offline",
                                     reason="maintenance")

    def report():
        site = Site.objects.get(code="tianjin")
        adapter = SimulatedAdapter(site, list(Partition.objects.filter(site=site)), seed=1, clock_start=0.0)
        return report_capacity(site, adapter.capacity())

    async def scenario():
        comm, snapshot, _ = await open_stream("/ws/sites/", token=world.tokens["token_b_admin"], origin=None)
        sites = {s["code"]: s for s in rows(snapshot["data"]["sites"])}
        assert set(sites) == {"zhengzhou", "tianjin"} and sites["zhengzhou"]["state"] == "online"
        capacity = rows(snapshot["data"]["capacity"])
        assert capacity and all(c["cores_total"] > 0 and c["at"] is None for c in capacity)
        assert any(c["family"] == "v100" for c in capacity if c["site"] == "tianjin")

        await database_sync_to_async(go_offline)()
        delta = await next_delta(comm)
        (site,) = rows(delta["events"][0])
        assert delta["events"][0]["kind"] == "site" and site["state"] == "offline" and site["reason"] == "maintenance"

        assert await database_sync_to_async(report)() > 0
        delta = await next_delta(comm)
        reported = rows(delta["events"][0])
        assert delta["events"][0]["kind"] == "capacity" and all(r["site"] == "tianjin" and r["at"] for r in reported)
        assert await database_sync_to_async(report)() == 0  # unchanged capacity is not re-sent
        await comm.disconnect()
        # a later snapshot shows the reported capacity (from the cache any process can read)
        again, snapshot, _ = await open_stream("/ws/sites/", user=world.users["researcher_b"])
        assert all(c["at"] for c in rows(snapshot["data"]["capacity"]) if c["site"] == "tianjin")
        await again.disconnect()

    run(scenario)


def test_nothing_is_published_when_the_transaction_rolls_back(world):
    from django.db import transaction

    def submit_then_fail():
        with pytest.raises(RuntimeError), transaction.atomic():
            submit(world, 2)
            raise RuntimeError("rolled back")

    async def scenario():
        comm, _, _ = await open_stream("/ws/jobs/", user=world.users["pi_a"])
        await database_sync_to_async(submit_then_fail)()
        assert await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()

    run(scenario)


def test_a_token_revoked_while_connected_is_cut_off(world, settings):
    from accounts import services as account_services

    settings.SUANWANG = {**settings.SUANWANG, "LIVE_REAUTH_S": 0.2}
    token_obj, raw = make_token(world.a, ["read"], world.users["admin_a"], name="soon-revoked")

    def revoke():
        account_services.token_revoke(actor=Actor(user=world.users["admin_a"]), token=token_obj)

    async def scenario():
        comm, snapshot, _ = await open_stream("/ws/institution/", token=raw, origin=None)
        assert snapshot["type"] == "snapshot"
        await database_sync_to_async(revoke)()
        error = await comm.receive_json_from(timeout=5)
        assert error == {"type": "error", "code": "token_revoked", "message": "The token has been revoked."}
        closed = await comm.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 4401}

    run(scenario)


def test_a_browser_connection_is_cut_off_when_its_session_ends_or_its_access_goes(world, settings):
    from django.contrib.sessions.models import Session

    from accounts.actors import Actor
    from allocations import projects
    from allocations.models import ProjectMember

    settings.SUANWANG = {**settings.SUANWANG, "LIVE_REAUTH_S": 0.2}
    project = world.objects["project"]

    def remove_researcher():
        member = ProjectMember.objects.get(project_id=project, user=world.users["researcher_a"])
        projects.project_member_remove(actor=Actor(user=world.users["pi_a"]), member=member)

    def log_everyone_out():
        Session.objects.all().delete()

    async def scenario():
        following = f"/ws/jobs/?project={project}"
        member, snapshot, _ = await open_stream(following, user=world.users["researcher_a"])
        assert snapshot["type"] == "snapshot"
        pi, _, _ = await open_stream(following, user=world.users["pi_a"])
        assert await member.receive_nothing(timeout=0.6)  # still allowed: re-checked, kept open
        await database_sync_to_async(remove_researcher)()
        error = await member.receive_json_from(timeout=5)
        assert error["type"] == "error" and error["code"] == "permission_denied"
        assert await member.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
        await database_sync_to_async(log_everyone_out)()
        error = await pi.receive_json_from(timeout=5)
        assert error == {"type": "error", "code": "session_ended", "message": "The session has ended: log in again."}
        assert await pi.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}

    run(scenario)
