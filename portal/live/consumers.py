"""Websocket consumers of the live streams (/ws/jobs/, /ws/sites/, /ws/institution/).

Protocol: docs/websockets.md. Entry points: they read through ``portal.live.selectors`` (which use
the access helpers) and write nothing.

Per connection: the channel-layer handler never blocks (it only appends to a bounded queue); a
writer task drains the queue to the socket, so a slow client only ever slows itself. Deltas of a
group are delivered in sequence order without gaps: older or repeated ones are dropped, missing
ones are fetched from the group's replay buffer, and if those are gone a fresh snapshot is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper
from django.conf import settings

from portal.live import hub, protocol
from portal.live.selectors import (
    SNAPSHOTS,
    Refused,
    authenticate,
    institution_scope,
    jobs_scope,
    recheck_person,
    recheck_token,
    sites_scope,
)

log = logging.getLogger(__name__)

OVERFLOW_LIMIT = 3  # overflows within OVERFLOW_WINDOW_S close the connection (4429)
OVERFLOW_WINDOW_S = 60.0


def _bad_request(message: str) -> Refused:
    return Refused(protocol.CLOSE_BAD_REQUEST, "bad_request", message)


def parse_resume(value: str) -> dict[str, int]:
    resume = {}
    for item in value.split(","):
        group, sep, seq = item.rpartition(":")
        if not sep or not group or not seq.isdigit() or len(seq) > 18:
            raise _bad_request("resume is <group>:<seq>,<group>:<seq>,...")
        resume[group] = int(seq)
    return resume


def _dumps(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _unwrapped_send(send):
    """The ASGI server's own send under channels' session middleware. That wrapper inspects the
    (lazy) session on every outgoing message in case it must save it or set a cookie; a websocket
    text frame does neither, so deltas skip it (hundreds of connections × every delta)."""
    while isinstance(getattr(send, "__self__", None), InstanceSessionWrapper):
        send = send.__self__.real_send
    return send


class Fanout:
    """One channel-layer subscription per process (per event loop) shared by every live connection:
    a delta is received and decoded once per process and handed to each member connection by a
    plain method call (no per-connection channel-layer queue, decoding or dispatch)."""

    _by_loop: dict[asyncio.AbstractEventLoop, Fanout] = {}

    @classmethod
    def here(cls) -> Fanout:
        loop = asyncio.get_running_loop()
        fanout = cls._by_loop.get(loop)
        if fanout is None:
            for old in [lp for lp in cls._by_loop if lp.is_closed()]:
                del cls._by_loop[old]
            fanout = cls._by_loop[loop] = cls()
        return fanout

    def __init__(self):
        self.members: dict[str, set[LiveConsumer]] = {}
        self.channel: str | None = None
        self.task: asyncio.Task | None = None
        self.lock = asyncio.Lock()
        self.rechecks: dict[tuple[str, str | None], tuple[float, asyncio.Future]] = {}

    async def recheck(self, raw_token: str, ip: str | None) -> Refused | None:
        """Re-check a connected token, shared by the process's connections on that token (an
        institution system may hold hundreds): one query per token and half ``LIVE_REAUTH_S``
        instead of a burst of one per connection, whose thread-pool round trips delay deltas."""
        now = time.monotonic()
        reuse_s = protocol.live_setting("LIVE_REAUTH_S") / 2
        key = (raw_token, ip)
        found = self.rechecks.get(key)
        if found is not None and (not found[1].done() or now - found[0] < reuse_s):
            return await asyncio.shield(found[1])
        for stale in [k for k, (at, fut) in self.rechecks.items() if fut.done() and now - at >= reuse_s]:
            del self.rechecks[stale]
        future = asyncio.ensure_future(database_sync_to_async(recheck_token)(raw_token, ip))
        self.rechecks[key] = (now, future)
        return await asyncio.shield(future)

    async def join(self, consumer: LiveConsumer, groups: list[str]) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        async with self.lock:
            if self.channel is None:
                self.channel = await layer.new_channel("live-fanout.")
                self.task = asyncio.create_task(self.run(layer, self.channel))
            for group in groups:
                if group not in self.members:
                    self.members[group] = set()
                    await layer.group_add(group, self.channel)
                self.members[group].add(consumer)

    async def leave(self, consumer: LiveConsumer, groups: list[str]) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        async with self.lock:
            for group in groups:
                members = self.members.get(group)
                if members is None:
                    continue
                members.discard(consumer)
                if not members:
                    del self.members[group]
                    await layer.group_discard(group, self.channel)

    async def run(self, layer, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken Redis connection: channels-redis reconnects
                log.exception("live: fan-out receive failed")
                await asyncio.sleep(0.5)
                continue
            if message.get("type") != hub.DELTA_MESSAGE_TYPE:
                continue
            message["texts"] = {}  # stream → the delta's text, built once here for every member
            for consumer in list(self.members.get(hub.layer_group(message["group"]), ())):
                try:
                    consumer.on_delta(message)
                except Exception:  # one connection's trouble is its own
                    log.exception("live: delivering to a connection failed")


class LiveConsumer(AsyncWebsocketConsumer):
    stream = ""
    params: tuple[str, ...] = ()
    int_params: tuple[str, ...] = ()

    async def dispatch(self, message):
        """As channels' dispatch, without its per-message ``close_old_connections`` hop to the sync
        thread: these handlers touch the database only through ``database_sync_to_async``, which
        does that itself. (That hop, serialised through one thread, cost more than everything else
        per delta and client.)"""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- connect --------------------------------------------------------------------------------
    async def connect(self):
        self.out: deque[str] = deque()
        self.wake = asyncio.Event()
        self.resync_reason: str | None = None
        self.last: dict[str, int] = {}
        self.overflows: deque[float] = deque()
        self.tasks: list[asyncio.Task] = []
        self.closing = False
        self.job_allocations: set[int] = set()
        self.live = None
        self.queue_limit = protocol.live_setting("LIVE_QUEUE")
        self.held: deque[dict] = deque()  # deltas that arrive while connecting, resyncing or filling a gap
        self.holding = True
        self.filler: asyncio.Task | None = None
        self.joined: list[str] = []
        self.raw_send = _unwrapped_send(self.base_send)
        subprotocol = self.scope.get("live_subprotocol")
        if not settings.REDIS_URL:
            hub.attach_consumer_loop(asyncio.get_running_loop())
        try:
            params, resume = self.parse_query()
            client = self.scope.get("client") or (None, None)
            self.actor = await database_sync_to_async(authenticate)(
                self.scope.get("live_token"), self.scope.get("user"), client[0])
            self.live = await database_sync_to_async(self.resolve)(self.actor, params)
        except Refused as refused:
            await self.accept(subprotocol)
            await self.send(text_data=_dumps({"type": "error", "code": refused.code, "message": refused.message}))
            await self.close(refused.close_code)
            return
        await self.accept(subprotocol)
        self.joined = [hub.layer_group(g) for g in self.live.groups]
        await Fanout.here().join(self, self.joined)
        if not await self.try_resume(resume):
            await self.send_snapshot(None)
        self.holding = False
        self.release_held()
        self.tasks.append(asyncio.create_task(self.write_loop()))
        if self.scope.get("live_token") is not None:
            self.tasks.append(asyncio.create_task(self.reauth_loop()))
        else:
            self.tasks.append(asyncio.create_task(self.session_recheck_loop(params)))

    def parse_query(self) -> tuple[dict, dict[str, int] | None]:
        try:
            query = parse_qs(self.scope.get("query_string", b"").decode("utf-8"), keep_blank_values=True,
                             strict_parsing=False)
        except UnicodeDecodeError:
            raise _bad_request("The query string is not UTF-8.") from None
        unknown = set(query) - set(self.params) - {"resume"}
        if unknown:
            raise _bad_request(f"Unknown parameter(s): {', '.join(sorted(unknown))}.")
        if any(len(v) > 1 for v in query.values()):
            raise _bad_request("Give each parameter once.")
        params = {k: v[0] for k, v in query.items() if k != "resume"}
        for name in self.int_params:
            if name in params:
                if not params[name].isdigit() or len(params[name]) > 18:
                    raise _bad_request(f"{name} must be a positive integer.")
                params[name] = int(params[name])
        resume = parse_resume(query["resume"][0]) if query.get("resume", [""])[0] else None
        return params, resume

    def resolve(self, actor, params):
        raise NotImplementedError

    # --- snapshot and resume ----------------------------------------------------------------------
    async def send_snapshot(self, reason: str | None) -> None:
        seqs = await hub.store().current(self.live.groups)
        data = await database_sync_to_async(SNAPSHOTS[self.stream])(self.actor, self.live)
        if self.live.job_id is not None:
            self.job_allocations = {row[0] for row in data["allocations"]["rows"]}
        message = {"type": "snapshot", "stream": self.stream, "seqs": seqs, "data": data}
        if reason:
            message["reason"] = reason
        self.last = dict(seqs)
        self.resync_reason = None
        await self.send(text_data=_dumps(message))
        self.release_held()

    async def try_resume(self, resume: dict[str, int] | None) -> bool:
        groups = self.live.groups
        if not resume or not set(groups) <= set(resume):
            return False
        if self.live.job_id is not None:
            return False  # a one-job stream needs its allocation ids: a (small) snapshot is simpler
        missed = {}
        for group in groups:
            entries = await hub.store().since(group, resume[group])
            if entries is None:
                return False
            missed[group] = entries
        self.last = {g: resume[g] for g in groups}
        await self.send(text_data=_dumps({"type": "resumed", "stream": self.stream, "seqs": self.last}))
        for group, entries in missed.items():
            for seq, tail in entries:
                self.deliver(group, seq, tail)
        return True

    # --- deltas (from the process's Fanout) --------------------------------------------------------
    def on_delta(self, message: dict) -> None:
        if self.live is None or self.closing:
            return
        if self.holding or self.resync_reason is not None or self.filler is not None:
            self.held.append(message)
            if len(self.held) > self.queue_limit:  # a snapshot or the replay buffer covers the oldest
                self.held.popleft()
            return
        group, seq = message["group"], message["seq"]
        last = self.last.get(group)
        if last is None or seq <= last:
            return
        if seq > last + 1:  # deltas of the group are missing here: fetch them from the replay buffer
            self.held.append(message)
            self.release_held()
            return
        self.deliver(group, seq, message["tail"], message.get("texts"))

    def release_held(self) -> None:
        if self.held and self.filler is None and not self.holding and self.resync_reason is None:
            self.filler = asyncio.create_task(self.fill())
            self.tasks.append(self.filler)

    async def fill(self) -> None:
        """Deliver held deltas in order, fetching any that never arrived from the replay buffer."""
        try:
            while self.held and self.resync_reason is None and not self.closing:
                message = self.held.popleft()
                group, seq = message["group"], message["seq"]
                last = self.last.get(group)
                if last is None or seq <= last:
                    continue
                if seq > last + 1:
                    entries = await hub.store().since(group, last)
                    if entries is None:
                        self.held.clear()
                        self.request_snapshot("gap")
                        return
                    for s, tail in entries:
                        self.deliver(group, s, tail)
                self.deliver(group, seq, message["tail"], message.get("texts"))
        finally:
            self.tasks = [t for t in self.tasks if t is not self.filler]
            self.filler = None
        self.release_held()

    def deliver(self, group: str, seq: int, tail: str, texts: dict[str, str] | None = None) -> None:
        """Queue delta ``seq`` of ``group``; ``texts`` (from the Fanout) shares the built text between
        the process's connections of one stream, so a delta costs one string per stream, not one per
        connection."""
        if seq <= self.last.get(group, 0):
            return
        self.last[group] = seq
        if self.live.job_id is not None:
            tail = self.only_this_job(group, seq, tail)
            if tail is None:
                return
            self.enqueue(hub.delta_text(self.stream, tail))
            return
        if texts is None:
            self.enqueue(hub.delta_text(self.stream, tail))
            return
        text = texts.get(self.stream)
        if text is None:
            text = texts[self.stream] = hub.delta_text(self.stream, tail)
        self.enqueue(text)

    def only_this_job(self, group: str, seq: int, tail: str) -> str | None:
        events = json.loads("{" + tail)["events"]
        kept = []
        for event in events:
            if event["kind"] == "jobs":
                rows = [r for r in event["rows"] if r[0] == self.live.job_id]
            elif event["kind"] == "allocation":
                rows = [r for r in event["rows"] if r[0] in self.job_allocations]
            else:
                rows = []
            if rows:
                kept.append({**event, "rows": rows})
        if not kept:
            return None
        return hub.tail_text(group, seq, _dumps(kept))

    # --- the bounded outgoing queue ---------------------------------------------------------------
    def enqueue(self, text: str, *, control: bool = False) -> None:
        if not control and len(self.out) >= self.queue_limit:
            self.overflow()
            return
        self.out.append(text)
        self.wake.set()

    def overflow(self) -> None:
        now = time.monotonic()
        self.overflows.append(now)
        while self.overflows and now - self.overflows[0] > OVERFLOW_WINDOW_S:
            self.overflows.popleft()
        self.out.clear()
        if len(self.overflows) >= OVERFLOW_LIMIT:
            self.tasks.append(asyncio.create_task(self.refuse(Refused(
                protocol.CLOSE_TOO_SLOW, "too_slow", "The connection fell behind too often; reconnect with resume."))))
            self.resync_reason = "closing"
            return
        self.request_snapshot("overflow")

    def request_snapshot(self, reason: str) -> None:
        self.out.clear()
        self.resync_reason = reason
        self.wake.set()

    async def write_loop(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while not self.closing:
                    if self.resync_reason not in (None, "closing"):
                        await self.send_snapshot(self.resync_reason)
                    if not self.out:
                        break
                    await self.raw_send({"type": "websocket.send", "text": self.out.popleft()})
        except asyncio.CancelledError:
            raise
        except Exception:  # the client went away mid-send; disconnect cleans up
            log.debug("live: writer stopped", exc_info=True)

    async def refuse(self, refused: Refused) -> None:
        if self.closing:
            return
        self.closing = True
        await self.send(text_data=_dumps({"type": "error", "code": refused.code, "message": refused.message}))
        await self.close(refused.close_code)

    async def reauth_loop(self) -> None:
        client = self.scope.get("client") or (None, None)
        while True:
            await asyncio.sleep(protocol.live_setting("LIVE_REAUTH_S"))
            refused = await Fanout.here().recheck(self.scope["live_token"], client[0])
            if refused is not None:
                await self.refuse(refused)
                return

    async def session_recheck_loop(self, params: dict) -> None:
        session = self.scope.get("session")
        client = self.scope.get("client") or (None, None)
        check = database_sync_to_async(recheck_person)
        while True:
            await asyncio.sleep(protocol.live_setting("LIVE_REAUTH_S"))
            refused = await check(self.actor.user.pk, client[0], has_session=session is not None,
                                  session_key=getattr(session, "session_key", None),
                                  resolve=lambda actor: self.resolve(actor, params), groups=self.live.groups)
            if refused is not None:
                await self.refuse(refused)
                return

    # --- client messages ------------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None):
        def error(code: str, message: str) -> None:
            self.enqueue(_dumps({"type": "error", "code": code, "message": message}), control=True)

        if text_data is None or len(text_data) > protocol.live_setting("LIVE_MAX_CLIENT_MESSAGE"):
            error("malformed_message", "Send JSON text messages of at most 4 KB.")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            error("malformed_message", 'Send JSON objects with a "type".')
            return
        if message["type"] == "ping":
            pong = {"type": "pong"}
            if isinstance(message.get("id"), (int, str)):
                pong["id"] = message["id"]
            self.enqueue(_dumps(pong), control=True)
        elif message["type"] == "resync":
            self.request_snapshot("resync")
        else:
            error("unknown_type", "Known message types: ping, resync.")

    async def disconnect(self, code):
        self.closing = True
        for task in self.tasks:
            task.cancel()
        if self.joined:
            await Fanout.here().leave(self, self.joined)
            self.joined = []


class JobsConsumer(LiveConsumer):
    stream = "jobs"
    params = ("project", "job")
    int_params = ("project", "job")

    def resolve(self, actor, params):
        if "project" in params and "job" in params:
            raise _bad_request("Give project or job, not both.")
        return jobs_scope(actor, project=params.get("project"), job=params.get("job"))


class InstitutionConsumer(LiveConsumer):
    stream = "institution"
    params = ("institution",)

    def resolve(self, actor, params):
        code = params.get("institution")
        if code is not None and not code:
            raise _bad_request("institution must be an institution code.")
        return institution_scope(actor, code=code)


class SitesConsumer(LiveConsumer):
    stream = "sites"

    def resolve(self, actor, params):
        return sites_scope(actor)
