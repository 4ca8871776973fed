"""Site adapters: how the federation talks to a centre.

Every centre, simulated or real (Slurm over slurmrestd, ``federation.slurm``), is reached through the same
four operations: submit a batch, cancel, poll status changes, report capacity. The simulated
adapter wraps a pure ``SimulatedSite`` built from the site's partitions; it lives in the
process that ticks it (the embedded server, a test, a benchmark, or ``run_sites``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from federation.models import AdapterKind, Application, Job, JobState, Partition, Site, SlurmTokenSource
from federation.simulator import Ack, CapacitySnapshot, PartitionSpec, SimJob, SimulatedSite, StatusChange
from federation.slurm import DEFAULT_PATH, DEFAULT_WORKDIR, JobScript, SlurmAdapter, SlurmSiteConfig, build_script


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
    """This process's adapter for a site, by ``site.adapter``: a simulator built on first use from the
    site's partitions, or a Slurm adapter built from the site's connection settings (rebuilt when a
    federation admin changes them)."""
    adapter = _registry.get(site.pk)
    if site.adapter == AdapterKind.SLURM:
        config = slurm_config(site)
        if adapter is None or isinstance(adapter, SimulatedAdapter) or (
                isinstance(adapter, SlurmAdapter) and adapter.config.fingerprint() != config.fingerprint()):
            with _registry_lock:
                adapter = SlurmAdapter(config, scripts=job_scripts, active=_active_at(site.pk))
                _registry[site.pk] = adapter
        return adapter
    if adapter is None or isinstance(adapter, SlurmAdapter):  # new, or it was a Slurm centre until now
        with _registry_lock:
            adapter = _registry.get(site.pk)
            if adapter is None or isinstance(adapter, SlurmAdapter):
                from federation.ticker import running_clock

                partitions = list(Partition.objects.filter(site=site).order_by("name"))
                adapter = SimulatedAdapter(site, partitions, seed=site.pk, clock_start=running_clock().sim_now())
                _registry[site.pk] = adapter
    return adapter


def slurm_config(site: Site) -> SlurmSiteConfig:
    """A Slurm site's connection settings as the adapter takes them (partition mapping: ours → Slurm's)."""
    partitions = {name: remote or name for name, remote in
                  Partition.objects.filter(site=site).order_by("name").values_list("name", "remote_name")}
    return SlurmSiteConfig(code=site.code, url=site.slurm_url, user=site.slurm_user,
                           token_source=site.slurm_token_source or SlurmTokenSource.TOKEN, token=site.slurm_token,
                           credential_path=site.slurm_credential_path, workdir=site.slurm_workdir or DEFAULT_WORKDIR,
                           partitions=partitions)


def _active_at(site_id: int):
    """Which of these jobs the federation has handed to the site and not seen end (the adapter follows them)."""
    def active(job_ids: list[int]) -> set[int]:
        return set(Job.objects.filter(site_id=site_id, pk__in=job_ids,
                                      state__in=(JobState.DISPATCHED, JobState.QUEUED, JobState.RUNNING))
                   .values_list("pk", flat=True))
    return active


def job_scripts(job_ids: list[int]) -> dict[int, JobScript]:
    """What each job runs at a real centre: its application's launch script, then its own command, with the
    job's environment. A job with neither is left out (the adapter refuses it: there is nothing to run)."""
    rows = list(Job.objects.filter(pk__in=job_ids).values_list("pk", "name", "application", "dataset", "command",
                                                                "project_id"))
    launch = dict(Application.objects.filter(code__in={r[2] for r in rows if r[2]})
                  .values_list("code", "launch_script"))
    scripts = {}
    for job_id, name, application, dataset, command, project_id in rows:
        launch_script = launch.get(application, "") if application else ""
        if not (launch_script.strip() or command.strip()):
            continue
        environment = {"PATH": DEFAULT_PATH, "SUANWANG_JOB_ID": str(job_id), "SUANWANG_JOB_NAME": name,
                       "SUANWANG_PROJECT_ID": str(project_id), "SUANWANG_APPLICATION": application,
                       "SUANWANG_DATASET": dataset}
        scripts[job_id] = JobScript(build_script(job_id=job_id, name=name, launch_script=launch_script,
                                                 command=command), environment)
    return scripts


def install_adapter(site_id: int, adapter: SiteAdapter) -> None:
    """Tests and benchmarks put their own adapter (e.g. a simulator on a virtual clock) in place."""
    with _registry_lock:
        _registry[site_id] = adapter


def reset_adapters() -> None:
    with _registry_lock:
        _registry.clear()


def known_adapters() -> dict[int, SiteAdapter]:
    return dict(_registry)
