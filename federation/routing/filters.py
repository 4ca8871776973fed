"""The filters' rules that are not on the hot path: the kind filters (1-3), answered once per kind
of partition when a shape is planned, and the human explanation of filters 4-6."""

from __future__ import annotations

from collections.abc import Container

from federation.routing.model import ROUTABLE_STATES, JobSpec, PartitionView, Stage


def kind_stage(
    job: JobSpec, family: str | None, model: str | None, ecosystem: str, applications: Container
) -> Stage | None:
    """The kind filter (1-3) that excludes partitions of this kind, or None if they pass."""
    if job.gpus_per_node > 0:
        if family is None:
            return Stage.ACCELERATOR
        if job.accepted_family is not None and family != job.accepted_family:
            return Stage.ACCELERATOR
        if job.accepted_models is not None and model not in job.accepted_models:
            return Stage.ACCELERATOR
    elif family is not None:
        return Stage.ACCELERATOR
    if job.ecosystems is not None and ecosystem not in job.ecosystems:
        return Stage.ECOSYSTEM
    if job.application is not None and job.application not in applications:
        return Stage.APPLICATION
    return None


def exclusion_detail(job: JobSpec, p: PartitionView) -> str:
    """Why filters 4-6 exclude ``p``, for people."""
    if job.walltime_s > p.max_walltime_s:
        return f"walltime {job.walltime_s} s exceeds the limit of {p.max_walltime_s} s"
    if job.cores_per_node > p.cores_per_node:
        return f"needs {job.cores_per_node} cores per node, a node has {p.cores_per_node}"
    if job.memory_mb_per_node > p.memory_mb_per_node:
        return f"needs {job.memory_mb_per_node} MB per node, a node has {p.memory_mb_per_node}"
    if job.gpus_per_node > p.gpus_per_node:
        return f"needs {job.gpus_per_node} cards per node, a node has {p.gpus_per_node}"
    if job.nodes > p.nodes:
        return f"needs {job.nodes} nodes, the partition has {p.nodes}"
    if p.site_state not in ROUTABLE_STATES:
        return f"site {p.site_code} is {p.site_state}"
    return ""
