"""Publishing side of live updates: coalesce per group, number, remember for resume, deliver.

``Publisher.submit`` is called (after commit) in whatever thread committed; a daemon thread with
its own event loop does the rest:

- per group, the first event of a quiet group goes out at once; events arriving within the next
  ``LIVE_COALESCE_MS`` are merged (upsert by key, last wins) and sent together when the window
  closes, in deltas of at most ``LIVE_MAX_ROWS`` rows;
- each delta gets the group's next sequence number and is appended to the group's replay buffer
  in one atomic step (``Store.append``): Redis (a Lua script, so every process agrees) when
  ``REDIS_URL`` is set, else process memory;
- then it is sent with ``channel_layer.group_send`` as pre-encoded JSON, so N subscribers cost
  one encoding.

In the embedded mode (in-memory channel layer) the consumers live on the ASGI server's event
loop: they register it (``attach_consumer_loop``), deliveries are handed to that loop, and while no
consumer ever connected in this process nothing is published at all (nobody could receive it).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import time
from collections import deque

from django.conf import settings

from portal.live.protocol import FIELDS, KEY_LEN, live_setting

log = logging.getLogger(__name__)

DELTA_MESSAGE_TYPE = "live.delta"
GATHER_S = 0.003


_namespace: str | None = None


def namespace() -> str:
    """This deployment's tag: Redis pub/sub channels are global to a Redis server (whatever the DB
    number), so two deployments (or two test runs) sharing one must not hear each other's groups."""
    global _namespace
    if _namespace is None:
        import hashlib

        name = str(settings.DATABASES["default"].get("NAME", ""))
        _namespace = "sw" + hashlib.sha1(f"{name}|{settings.REDIS_URL}".encode()).hexdigest()[:10]  # noqa: S324
    return _namespace


def layer_group(group: str) -> str:
    """The channel-layer group behind a protocol group name."""
    return f"{namespace()}.{group}"


def tail_text(group: str, seq: int, events_json: str) -> str:
    """The delta's JSON after ``{"type":"delta","stream":"<stream>",`` (the stream is per consumer)."""
    return f'"group":{json.dumps(group)},"seq":{seq},"events":{events_json}}}'


def delta_text(stream: str, tail: str) -> str:
    return f'{{"type":"delta","stream":"{stream}",{tail}'


# --- stores: sequence numbers and replay buffers -------------------------------------------------
class MemoryStore:
    """Embedded mode: one process, so a lock-protected counter and deque per group."""

    def __init__(self):
        self._lock = threading.Lock()
        self._seq: dict[str, int] = {}
        self._buf: dict[str, deque] = {}

    async def append(self, group: str, events_json: str) -> tuple[int, str]:
        with self._lock:
            seq = self._seq.get(group, 0) + 1
            self._seq[group] = seq
            tail = tail_text(group, seq, events_json)
            buf = self._buf.setdefault(group, deque(maxlen=live_setting("LIVE_REPLAY")))
            buf.append((seq, tail, time.monotonic()))
            return seq, tail

    async def current(self, groups: list[str]) -> dict[str, int]:
        with self._lock:
            return {g: self._seq.get(g, 0) for g in groups}

    async def since(self, group: str, seq: int) -> list[tuple[int, str]] | None:
        """Deltas after ``seq`` up to the newest, or None if some are no longer held."""
        ttl = live_setting("LIVE_REPLAY_TTL_S")
        with self._lock:
            current = self._seq.get(group, 0)
            if seq > current:
                return None
            entries = [(s, t) for s, t, at in self._buf.get(group, ()) if s > seq and time.monotonic() - at < ttl]
        if len(entries) != current - seq:
            return None
        return entries


_APPEND = """
local seq = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], ARGV[1] .. seq .. ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return seq
"""
_SINCE = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local from = tonumber(ARGV[1])
if from > cur then return {cur, 0} end
if from == cur then return {cur, 1} end
local n = redis.call('LLEN', KEYS[2])
local first = cur - n + 1
if from + 1 < first then return {cur, 0} end
local out = redis.call('LRANGE', KEYS[2], from + 1 - first, -1)
table.insert(out, 1, 1)
table.insert(out, 1, cur)
return out
"""


class RedisStore:
    """Production: sequence numbers and replay lists in Redis, shared by every process."""

    def __init__(self, url: str):
        self.url = url
        self._clients: dict[int, object] = {}

    def _client(self):
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        client = self._clients.get(id(loop))
        if client is None or getattr(client, "_suanwang_loop", None) is not loop:
            client = aioredis.from_url(self.url)
            client._suanwang_loop = loop
            self._clients[id(loop)] = client
        return client

    @staticmethod
    def _keys(group: str) -> list[str]:
        return [f"suanwang:live:{namespace()}:seq:{group}", f"suanwang:live:{namespace()}:buf:{group}"]

    async def append(self, group: str, events_json: str) -> tuple[int, str]:
        prefix = f'"group":{json.dumps(group)},"seq":'
        suffix = f',"events":{events_json}}}'
        seq = int(await self._client().eval(_APPEND, 2, *self._keys(group), prefix, suffix,
                                            live_setting("LIVE_REPLAY"), live_setting("LIVE_REPLAY_TTL_S")))
        return seq, prefix + str(seq) + suffix

    async def current(self, groups: list[str]) -> dict[str, int]:
        if not groups:
            return {}
        values = await self._client().mget([self._keys(g)[0] for g in groups])
        return {g: int(v or 0) for g, v in zip(groups, values, strict=True)}

    async def since(self, group: str, seq: int) -> list[tuple[int, str]] | None:
        result = await self._client().eval(_SINCE, 2, *self._keys(group), seq)
        if int(result[1]) == 0:
            return None
        return [(seq + 1 + i, raw.decode() if isinstance(raw, bytes) else raw) for i, raw in enumerate(result[2:])]


_store = None


def store():
    global _store
    if _store is None:
        _store = RedisStore(settings.REDIS_URL) if settings.REDIS_URL else MemoryStore()
    return _store


def reset_store() -> None:
    """Tests: forget the embedded store (and the registered consumer loop)."""
    global _store, _namespace
    _store, _namespace = None, None
    publisher.consumer_loop = None


# --- coalescing ---------------------------------------------------------------------------------
def merge_row(kind: str, old: tuple[tuple, list], new: tuple[tuple, list]) -> tuple[tuple, list]:
    """Upsert ``new`` (fields, row) over ``old``: a full row replaces, a partial row updates columns."""
    old_fields, old_row = old
    new_fields, new_row = new
    if set(new_fields) >= set(old_fields):
        return new
    values = dict(zip(old_fields, old_row, strict=True))
    values.update(zip(new_fields, new_row, strict=True))
    fields = tuple(f for f in FIELDS[kind] if f in values)
    return fields, [values[f] for f in fields]


def build_events(pending: dict[str, dict[tuple, tuple[tuple, list]]], max_rows: int) -> list[list[dict]]:
    """Pending rows of one group → deltas (lists of events) of at most ``max_rows`` rows each."""
    deltas: list[list[dict]] = []
    current: list[dict] = []
    size = 0
    for kind, rows in pending.items():
        by_fields: dict[tuple, list[list]] = {}
        for fields, row in rows.values():
            by_fields.setdefault(fields, []).append(row)
        for fields, items in by_fields.items():
            for start in range(0, len(items), max_rows):
                chunk = items[start:start + max_rows]
                if size and size + len(chunk) > max_rows:
                    deltas.append(current)
                    current, size = [], 0
                current.append({"kind": kind, "fields": list(fields), "rows": chunk})
                size += len(chunk)
    if current:
        deltas.append(current)
    return deltas


class Publisher:
    def __init__(self):
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, dict[tuple, tuple[tuple, list]]]] = {}
        self._scheduled: set[str] = set()
        self._next_at: dict[str, float] = {}
        self._group_locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._inflight = 0
        self.consumer_loop: asyncio.AbstractEventLoop | None = None  # embedded mode only
        self.sent = 0  # deltas sent by this process (benchmarks, tests)

    # -- called from any thread, after commit ----------------------------------------------------
    def submit(self, groups: list[str], kind: str, rows: list[list], fields: tuple[str, ...] | None = None) -> None:
        if not rows or not groups:
            return
        if not settings.REDIS_URL and (self.consumer_loop is None or self.consumer_loop.is_closed()):
            return  # embedded mode and no websocket consumer in this process: nobody to tell
        fields = tuple(fields or FIELDS[kind])
        key_len = KEY_LEN[kind]
        self._ensure_thread()
        to_schedule = []
        with self._lock:
            for group in groups:
                bucket = self._pending.setdefault(group, {}).setdefault(kind, {})
                for row in rows:
                    key = row[0] if key_len == 1 else tuple(row[:key_len])
                    old = bucket.get(key)
                    bucket[key] = (fields, row) if old is None else merge_row(kind, old, (fields, row))
                if group not in self._scheduled:
                    self._scheduled.add(group)
                    to_schedule.append(group)
            self._inflight += len(to_schedule)
        for group in to_schedule:
            self._loop.call_soon_threadsafe(self._schedule, group)

    def _ensure_thread(self) -> None:
        if self._loop is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._loop is not None and self._pid == os.getpid():
                return
            # (Re)start after a fork too: a Celery prefork child inherits no running thread.
            self._pending, self._scheduled, self._next_at, self._group_locks = {}, set(), {}, {}
            self._inflight = 0
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run():
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="live-publisher", daemon=True).start()
            ready.wait(5)
            self._loop, self._pid = loop, os.getpid()

    # -- on the publisher's loop ------------------------------------------------------------------
    def _schedule(self, group: str) -> None:
        # A quiet group goes out almost at once: after a few ms, so that the events one commit
        # publishes (jobs, then balances) usually travel together.
        delay = max(GATHER_S, self._next_at.get(group, 0.0) - self._loop.time())
        self._loop.call_later(delay, lambda: self._loop.create_task(self._flush(group)))

    async def _flush(self, group: str) -> None:
        lock = self._group_locks.setdefault(group, asyncio.Lock())
        async with lock:  # one flush of a group at a time: deltas leave in sequence order
            with self._lock:
                pending = self._pending.pop(group, {})
                self._scheduled.discard(group)
            self._next_at[group] = self._loop.time() + live_setting("LIVE_COALESCE_MS") / 1000
            try:
                for events in build_events(pending, live_setting("LIVE_MAX_ROWS")):
                    await self._send(group, events)
            except Exception:  # delivery is best-effort; the database is the record
                log.exception("live: publishing to %s failed", group)
            finally:
                with self._lock:
                    self._inflight -= 1

    async def _send(self, group: str, events: list[dict]) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        if settings.REDIS_URL:
            seq, tail = await store().append(group, json.dumps(events, ensure_ascii=False, separators=(",", ":")))
            await layer.group_send(layer_group(group),
                                   {"type": DELTA_MESSAGE_TYPE, "group": group, "seq": seq, "tail": tail})
        else:
            target = self.consumer_loop
            if target is None or target.is_closed():
                return
            seq, tail = await store().append(group, json.dumps(events, ensure_ascii=False, separators=(",", ":")))
            message = {"type": DELTA_MESSAGE_TYPE, "group": group, "seq": seq, "tail": tail}
            try:
                sent = asyncio.run_coroutine_threadsafe(layer.group_send(layer_group(group), message), target)
                await asyncio.wrap_future(sent)
            except RuntimeError:  # the consumers' loop closed meanwhile
                return
        self.sent += 1

    # -- waiting (tests, benchmarks, process exit) -------------------------------------------------
    def idle(self) -> bool:
        with self._lock:
            return self._inflight == 0

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.005)
        return self.idle()


publisher = Publisher()


def attach_consumer_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Embedded mode: deliveries go to the loop the websocket consumers run on."""
    publisher.consumer_loop = loop


@atexit.register
def _drain_at_exit() -> None:
    if publisher._loop is not None and publisher._pid == os.getpid():
        publisher.wait_idle(2.0)
