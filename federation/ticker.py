"""Simulated centres in scaled real time, and the pollers of real (Slurm) centres.

The simulators count *virtual* epoch seconds that run ``scale`` times faster than the wall clock
from ``origin``: a one-hour job finishes in a minute at scale 60. Job times stored in the database
are wall times (so the portal shows when things happened); charges use the virtual durations
(the job ran its hour and is charged its hour).

Who ticks them: in the embedded mode a daemon thread inside the server process (``make run``);
with the production stack one ``manage.py run_sites`` process, which then also owns dispatching
to simulated centres (Celery workers dispatch to real centres only). Slurm centres are polled in the
same pass, on the wall clock (``federation.slurm_services.follow``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimClock:
    origin: float  # wall epoch seconds when virtual time started
    scale: float

    def sim_now(self, wall: float | None = None) -> float:
        wall = time.time() if wall is None else wall
        return self.origin + (wall - self.origin) * self.scale

    def to_wall(self, sim: float) -> float:
        return self.origin + (sim - self.origin) / self.scale


IDENTITY = SimClock(origin=0.0, scale=1.0)
_clock: SimClock | None = None


def running_clock() -> SimClock:
    """This process's clock for simulated centres (created on first use)."""
    global _clock
    if _clock is None:
        _clock = SimClock(origin=time.time(), scale=float(settings.SUANWANG["SIM_TIME_SCALE"]))
    return _clock


def tick(clock: SimClock | None = None, *, slurm: bool = True) -> dict[str, int]:
    """One pass over the centres. Simulated ones: mirror their state, advance them, record what changed,
    hand them the jobs routed to them. Slurm ones (``slurm``): poll them on the wall clock, record what
    changed, keep their health (unreachable → degraded → offline → back online), hand them their jobs."""
    from federation.adapters import adapter_for
    from federation.jobs import dispatch_routed, ingest_status
    from federation.models import AdapterKind, Site
    from portal.live.capacity import report_capacity

    clock = clock or running_clock()
    changed = dispatched = 0
    for site in Site.objects.filter(adapter=AdapterKind.SIMULATED).order_by("pk"):
        adapter = adapter_for(site)
        adapter.sync_state(site.state)
        changed += ingest_status(site, adapter.poll(clock.sim_now()), clock=clock)
        if site.state in ("online", "degraded"):
            while moved := dispatch_routed(site):
                dispatched += moved
        report_capacity(site, adapter.capacity())  # the federation status stream (changed partitions only)
    if slurm:
        from federation.slurm_services import follow

        for site in Site.objects.filter(adapter=AdapterKind.SLURM).order_by("pk"):
            try:
                result = follow(site)
            except Exception:  # one centre's failure must not stop the others
                log.exception("slurm centre %s: follow failed", site.code)
                continue
            changed += result["changed"]
            dispatched += result["dispatched"]
    return {"changed": changed, "dispatched": dispatched}


def run_forever(interval: float = 2.0, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    stop.wait(interval)  # let the server finish starting before the first tick
    while not stop.is_set():
        started = time.monotonic()
        try:
            close_old_connections()
            tick()
        except Exception:  # a bad tick must not stop the centres; the next one retries
            log.exception("simulated centres: tick failed")
        finally:
            close_old_connections()
        stop.wait(max(0.1, interval - (time.monotonic() - started)))


_thread: threading.Thread | None = None


def start_in_process(interval: float = 2.0) -> None:
    """Embedded mode: tick the centres from a daemon thread of this (server) process."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=run_forever, args=(interval,), name="simulated-centres", daemon=True)
        _thread.start()
        log.info("simulated centres tick in this process (scale %s)", running_clock().scale)
