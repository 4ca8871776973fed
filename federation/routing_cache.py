"""A short-lived, per-process cache of the router's partition snapshot for job submission.

Building the snapshot from the database (every partition with its site, family and applications,
as ``PartitionView``s) and a fresh ``Router`` (index, per-shape plans) cost more than the rest of
a single-job submission. Partitions, prices and site states change rarely; free capacity changes
all the time. So:

* the *static* part — the partition rows and their views at full capacity — is loaded once and
  reused. It is dropped at once when, in this process, a site, partition, application or
  accelerator family is saved or deleted, or the applications a partition offers change (Django
  signals; again after commit, so a reader never keeps rows a rolled-back transaction wrote).
  Another process's changes (an operator drained a site through the other worker): every
  ``TTL_S`` seconds one small query reads the sites' states and price schedules and reloads
  everything if they changed, so a site state change is seen within ``TTL_S`` everywhere (the
  router may pick a site just drained elsewhere for up to that long; the site refuses or the job
  is re-routed, as for any change that races a submission); partitions and applications, which
  only ``build_sites`` and the catalogue change, are reloaded every ``FULL_TTL_S`` seconds. (A
  full load reads ~100 partitions with their thousand application links: tens of milliseconds,
  far more than a submission's other work, too much to repeat every two seconds per process);
* the *live* part — this process's adapters' capacity snapshots (simulated centres ticking in
  the embedded server, or in tests) — is read on every call, as ``partition_views()`` does; the
  views are re-made from the static ones only when a figure changed;
* the ``Router`` is kept per snapshot and per live thread (it is not thread-safe: shape plans carry
  a batch's search state), handed on to a new thread when its thread ended (ASGI runs each request
  in a thread of its own), so its per-shape plans stay warm across submissions.

Decisions are those of ``Router(partition_views()[0])`` on the same views (tested): site states
and prices at most ``TTL_S`` old, partitions at most ``FULL_TTL_S``, capacity current.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from federation.models import AcceleratorFamily, Application, Partition, Site
from federation.routing import PartitionView, Router

TTL_S = 2.0  # sites' states and price schedules re-checked (one small query)
FULL_TTL_S = 60.0  # everything reloaded


@dataclass(slots=True)
class _Static:
    generation: int
    loaded_at: float
    checked_at: float  # when the sites were last found unchanged (the only field that changes)
    sites: tuple  # (id, state, price schedule) of every site, as loaded
    views: tuple[PartitionView, ...]  # full capacity: what partition_views() gives without adapters
    names: tuple[tuple[int, str], ...]  # (site id, partition name) of each view, to find its live figures
    partitions: dict[int, Partition]


_lock = threading.Lock()
_static: _Static | None = None
_generation = 0
_clock = time.monotonic  # tests move it


def invalidate(**_signal_kwargs) -> None:
    """Forget the snapshot (every thread's router goes with it)."""
    global _static, _generation
    with _lock:
        _generation += 1
        _static = None


def _invalidate_now_and_after_commit(**kwargs) -> None:
    invalidate()
    transaction.on_commit(invalidate, robust=True)


for _model in (Site, Partition, Application, AcceleratorFamily):
    post_save.connect(_invalidate_now_and_after_commit, sender=_model, dispatch_uid=f"routing_cache.{_model.__name__}")
    post_delete.connect(_invalidate_now_and_after_commit, sender=_model,
                        dispatch_uid=f"routing_cache.del.{_model.__name__}")
m2m_changed.connect(_invalidate_now_and_after_commit, sender=Application.partitions.through,
                    dispatch_uid="routing_cache.applications")


def _load() -> _Static:
    global _static
    from federation.jobs import partition_views

    with _lock:
        generation = _generation
    sites = _site_rows()
    views, partitions = partition_views(with_live_capacity=False)
    names = tuple((v.site_id, partitions[v.partition_id].name) for v in views)
    now = _clock()
    static = _Static(generation, now, now, sites, tuple(views), names, partitions)
    with _lock:
        if _generation == generation:  # nothing changed while we read
            _static = static
    return static


def _site_rows() -> tuple:
    return tuple(Site.objects.order_by("pk").values_list("pk", "state", "price_schedule"))


def _current_static() -> _Static:
    static = _static
    now = _clock()
    if static is None or now - static.loaded_at > FULL_TTL_S:
        return _load()
    if now - static.checked_at > TTL_S:
        if _site_rows() != static.sites:
            return _load()
        static.checked_at = now
    return static


def _live_figures() -> dict[tuple[int, str], tuple[int, int, int, int, int, int]]:
    from federation.adapters import known_adapters

    live = {}
    for site_id, adapter in known_adapters().items():
        for p in adapter.capacity().partitions:
            live[(site_id, p.name)] = (p.cores_free, p.gpus_free, p.nodes_idle, p.pending_core_seconds,
                                       p.pending_gpu_seconds, p.running)
    return live


def _with_live(static: _Static, live: dict) -> list[PartitionView]:
    if not live:
        return list(static.views)
    views = []
    for view, key in zip(static.views, static.names, strict=True):
        figures = live.get(key)
        if figures is None:
            views.append(view)
            continue
        cores, gpus, nodes, queued_cs, queued_gs, running = figures
        views.append(replace(view, free_cores=cores, free_gpus=gpus, free_nodes=nodes, queued_core_seconds=queued_cs,
                             queued_gpu_seconds=queued_gs, running_jobs=running))
    return views


class _Slot:
    """A router and the thread that owns it (only a live owner uses it)."""

    __slots__ = ("owner", "static", "figures", "router")

    def __init__(self, owner: threading.Thread):
        self.owner = owner
        self.static: _Static | None = None
        self.figures: tuple = ()
        self.router: Router | None = None


_slots: list[_Slot] = []
MAX_SLOTS = 32


def _slot_for(me: threading.Thread, static: _Static, figures: tuple) -> _Slot:
    """This thread's slot; else one whose thread ended (preferably on this snapshot); else a new one."""
    with _lock:
        for slot in _slots:
            if slot.owner is me:
                return slot
        ended = [slot for slot in _slots if not slot.owner.is_alive()]
        if ended:
            slot = next((s for s in ended if s.static is static and s.figures == figures), ended[0])
            slot.owner = me
            if len(_slots) > MAX_SLOTS:
                _slots[:] = [s for s in _slots if s is slot or s.owner.is_alive()]
            return slot
        slot = _Slot(me)
        _slots.append(slot)
        return slot


def current_router() -> tuple[Router, dict[int, Partition]]:
    """A router over the current snapshot for this thread, and the partitions by id (shared, read-only).

    A ``Router`` is not for concurrent use, so each live thread has its own. Under ASGI, Django runs
    each request's synchronous code in a thread of its own that ends with the request: the next
    request's thread adopts the router of an ended one, so shape plans stay warm across requests.
    """
    static = _current_static()
    live = _live_figures()
    figures = tuple(sorted(live.items()))
    slot = _slot_for(threading.current_thread(), static, figures)
    if slot.router is None or slot.static is not static or slot.figures != figures:
        slot.router = Router(_with_live(static, live))
        slot.static, slot.figures = static, figures
    return slot.router, static.partitions
