"""Prices: the peak/valley multiplier in force at a site, and a job's estimated cost (the hold)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from federation.routing.model import PERMILLE, SECONDS_PER_HOUR, JobSpec, PartitionView


@lru_cache(maxsize=256)
def hour_multipliers(schedule: tuple[tuple[int, int, int], ...]) -> tuple[int, ...]:
    """The multiplier (‰) of each local hour of the day."""
    table = [PERMILLE] * 24
    for start, end, multiplier in reversed(schedule):  # reversed: the first entry wins
        if start == end:
            hours: Iterable[int] = range(24)
        elif start < end:
            hours = range(start, end)
        else:
            hours = [*range(start, 24), *range(0, end)]
        for hour in hours:
            table[hour] = multiplier
    return tuple(table)


@lru_cache(maxsize=256)
def utc_hour_multipliers(schedule: tuple[tuple[int, int, int], ...], utc_offset_s: int) -> tuple[int, ...]:
    """The multiplier (‰) of each UTC hour of the day at a site ``utc_offset_s`` east of UTC."""
    local = hour_multipliers(schedule)
    offset = utc_offset_s // SECONDS_PER_HOUR
    return tuple(local[(hour + offset) % 24] for hour in range(24))


def utc_hour(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp()) // SECONDS_PER_HOUR % 24


def price_multiplier_permille(partition: PartitionView, now: datetime) -> int:
    """The peak/valley multiplier (‰) in force at ``partition``'s site at ``now``."""
    return utc_hour_multipliers(partition.peak_schedule, partition.utc_offset_s)[utc_hour(now)]


def base_rate(job: JobSpec, partition: PartitionView) -> int:
    """Milli-credits × seconds per hour, before the peak/valley multiplier."""
    cores = job.nodes * job.cores_per_node
    cards = job.nodes * job.gpus_per_node
    return (cores * partition.price_core_hour + cards * partition.price_card_hour) * job.walltime_s


def cost_at(rate: int, multiplier_permille: int) -> int:
    """A ``base_rate`` at a multiplier, in credit milli-units, rounded up (exact integer ceiling)."""
    return -(-rate * multiplier_permille // (SECONDS_PER_HOUR * PERMILLE))


def estimate_cost(job: JobSpec, partition: PartitionView, now: datetime) -> int:
    """Credit milli-units for the job's full walltime at the price in force now (rounded up).

    ``(cores × price_core_hour + cards × price_card_hour) × walltime hours × multiplier‰``.
    """
    return cost_at(base_rate(job, partition), price_multiplier_permille(partition, now))
