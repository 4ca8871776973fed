"""The simulated supercomputing centre (pure Python: no Django, standard library only).

``SimulatedSite`` is a discrete-event scheduler per site behind the site-adapter shape the
federation uses for every centre (a real Slurm site implements the same shape over
slurmrestd): ``submit_batch``, ``cancel``, ``advance_to`` (returns ``StatusChange``s),
``capacity_snapshot``, ``drain``/``resume``, ``set_offline``/``set_online``.

The implementation lives in ``federation.sim``: ``model`` (dataclasses), ``pool`` (packing),
``site`` (event loop and scheduling), ``clock`` (scaled real time), ``openb`` (trace reading).
"""

from federation.sim.clock import ScaledClock
from federation.sim.model import (
    CANCELLED,
    COMPLETED,
    DETAIL_CANCELLED,
    DETAIL_NODE_FAILURE,
    DETAIL_SITE_OUTAGE,
    DETAIL_WALLTIME,
    FAILED,
    JOB_STATES,
    PARTITION_DRAINED,
    PARTITION_DRAINING,
    PARTITION_UP,
    QUEUED,
    REFUSED_DUPLICATE,
    REFUSED_INVALID,
    REFUSED_OFFLINE,
    REFUSED_TOO_LARGE,
    REFUSED_UNKNOWN_PARTITION,
    REFUSED_WALLTIME,
    RUNNING,
    SITE_DRAINING,
    SITE_OFFLINE,
    SITE_ONLINE,
    TERMINAL_STATES,
    TIMED_OUT,
    Ack,
    CapacitySnapshot,
    PartitionSnapshot,
    PartitionSpec,
    SimJob,
    StatusChange,
)
from federation.sim.site import SimulatedSite

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "DETAIL_CANCELLED",
    "DETAIL_NODE_FAILURE",
    "DETAIL_SITE_OUTAGE",
    "DETAIL_WALLTIME",
    "FAILED",
    "JOB_STATES",
    "PARTITION_DRAINED",
    "PARTITION_DRAINING",
    "PARTITION_UP",
    "QUEUED",
    "REFUSED_DUPLICATE",
    "REFUSED_INVALID",
    "REFUSED_OFFLINE",
    "REFUSED_TOO_LARGE",
    "REFUSED_UNKNOWN_PARTITION",
    "REFUSED_WALLTIME",
    "RUNNING",
    "SITE_DRAINING",
    "SITE_OFFLINE",
    "SITE_ONLINE",
    "TERMINAL_STATES",
    "TIMED_OUT",
    "Ack",
    "CapacitySnapshot",
    "PartitionSnapshot",
    "PartitionSpec",
    "ScaledClock",
    "SimJob",
    "SimulatedSite",
    "StatusChange",
]
