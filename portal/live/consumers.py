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

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from portal.live import hub, protocol
from portal.live.selectors import (
    SNAPSHOTS,
    Refused,
    authenticate,
    institution_scope,
    jobs_scope,
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


class LiveConsumer(AsyncWebsocketConsumer):
    stream = ""
    params: tuple[str, ...] = ()
    int_params: tuple[str, ...] = ()

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
        self.groups = [hub.layer_group(g) for g in self.live.groups]  # (discarded at disconnect)
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        if not await self.try_resume(resume):
            await self.send_snapshot(None)
        self.tasks.append(asyncio.create_task(self.write_loop()))
        if self.scope.get("live_token") is not None:
            self.tasks.append(asyncio.create_task(self.reauth_loop()))

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

    # --- deltas from the channel layer ------------------------------------------------------------
    async def live_delta(self, message):
        if self.live is None or self.resync_reason is not None:
            return  # not serving yet, or a snapshot is coming that covers this
        group, seq = message["group"], message["seq"]
        last = self.last.get(group)
        if last is None or seq <= last:
            return
        if seq > last + 1:
            entries = await hub.store().since(group, last)
            if entries is None:
                self.request_snapshot("gap")
                return
            for s, tail in entries:
                if s > self.last[group]:
                    self.deliver(group, s, tail)
            if seq <= self.last[group]:
                return
        self.deliver(group, seq, message["tail"])

    def deliver(self, group: str, seq: int, tail: str) -> None:
        if seq <= self.last.get(group, 0):
            return
        self.last[group] = seq
        if self.live.job_id is not None:
            tail = self.only_this_job(group, seq, tail)
            if tail is None:
                return
        self.enqueue(hub.delta_text(self.stream, tail))

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
        if not control and len(self.out) >= protocol.live_setting("LIVE_QUEUE"):
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
                    await self.send(text_data=self.out.popleft())
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
            refused = await database_sync_to_async(recheck_token)(self.scope["live_token"], client[0])
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
