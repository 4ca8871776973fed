"""Site adapters: how the federation talks to a centre.

Every centre, simulated or real (Slurm over slurmrestd, later), is reached through the same
four operations: submit a batch, cancel, poll status changes, report capacity. The simulated
adapter wraps a pure ``SimulatedSite`` built from the site's partitions; it lives in the
process that ticks it (the embedded server, a test, a benchmark, or ``run_sites``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from federation.models import Partition, Site
from federation.simulator import Ack, CapacitySnapshot, PartitionSpec, SimJob, SimulatedSite, StatusChange


@dataclass(frozen=True, slots=True)
class DispatchJob:
    """What a centre needs to run one job (our job id travels as the site's job name)."""

    job_id: int
    partition: str
    nodes: int
    cores_per_node: int
    memory_mb_per_node: int
    gpus_per_node: int
    walltime_s: int


class SiteAdapter(Protocol):
    def submit_batch(self, jobs: list[DispatchJob]) -> list[Ack]: ...

    def cancel(self, job_id: int) -> bool: ...

    def poll(self, until: float) -> list[StatusChange]: ...

    def capacity(self) -> CapacitySnapshot: ...


class SimulatedAdapter:
    """A simulated centre. ``poll(until)`` advances its virtual clock to ``until``."""

    def __init__(self, site: Site, partitions: list[Partition], *, seed: int = 0, clock_start: float = 0.0,
                 node_failure_rate_per_hour: float = 0.0, outage_rate_per_day: float = 0.0):
        specs = [PartitionSpec(name=p.name, nodes=p.nodes, cores_per_node=p.cores_per_node,
                               memory_mb_per_node=p.memory_mb_per_node, gpus_per_node=p.gpus_per_node,
                               max_walltime_s=p.max_walltime_s) for p in partitions]
        self.site_code = site.code
        self.sim = SimulatedSite(site.code, specs, seed=seed, clock_start=clock_start,
                                 node_failure_rate_per_hour=node_failure_rate_per_hour,
                                 outage_rate_per_day=outage_rate_per_day)
        self._lock = threading.Lock()

    def submit_batch(self, jobs: list[DispatchJob]) -> list[Ack]:
        sim_jobs = [SimJob(job_id=str(j.job_id), partition=j.partition, nodes=j.nodes,
                           cores_per_node=j.cores_per_node, memory_mb_per_node=j.memory_mb_per_node,
                           gpus_per_node=j.gpus_per_node, walltime_s=j.walltime_s) for j in jobs]
        with self._lock:
            return self.sim.submit_batch(sim_jobs)

    def cancel(self, job_id: int) -> bool:
        with self._lock:
            return self.sim.cancel(str(job_id))

    def poll(self, until: float) -> list[StatusChange]:
        with self._lock:
            return self.sim.advance_to(until)

    def capacity(self) -> CapacitySnapshot:
        with self._lock:
            return self.sim.capacity_snapshot()

    def sync_state(self, state: str) -> None:
        """Mirror the federation's view of the site (an operator drained it or took it offline)."""
        with self._lock:
            current = self.sim.state
            if state == "offline" and current != "offline":
                self.sim.set_offline()
            elif state in ("online", "degraded") and current != "online":
                if current == "offline":
                    self.sim.set_online()
                self.sim.resume()
            elif state == "draining" and current == "online":
                self.sim.drain()

    def set_offline(self) -> None:
        with self._lock:
            self.sim.set_offline()

    def set_online(self) -> None:
        with self._lock:
            self.sim.set_online()


_registry: dict[int, SiteAdapter] = {}
_registry_lock = threading.Lock()


def adapter_for(site: Site) -> SiteAdapter:
    """This process's adapter for a site (built on first use from the site's partitions)."""
    adapter = _registry.get(site.pk)
    if adapter is None:
        with _registry_lock:
            adapter = _registry.get(site.pk)
            if adapter is None:
                from federation.ticker import running_clock

                partitions = list(Partition.objects.filter(site=site).order_by("name"))
                adapter = SimulatedAdapter(site, partitions, seed=site.pk, clock_start=running_clock().sim_now())
                _registry[site.pk] = adapter
    return adapter


def install_adapter(site_id: int, adapter: SiteAdapter) -> None:
    """Tests and benchmarks put their own adapter (e.g. a simulator on a virtual clock) in place."""
    with _registry_lock:
        _registry[site_id] = adapter


def reset_adapters() -> None:
    with _registry_lock:
        _registry.clear()


def known_adapters() -> dict[int, SiteAdapter]:
    return dict(_registry)
