"""Parsing job entries from API bodies: fast (10,000 entries per batch), strict, per-entry errors."""

from __future__ import annotations

from federation.jobs import JobRequest

LIMITS = {"nodes": (1, 4096), "cores_per_node": (1, 1024), "memory_mb_per_node": (1, 8 * 1024 * 1024),
          "gpus_per_node": (0, 64), "walltime_s": (60, 90 * 24 * 3600)}
TEXT = {"name": 200, "accepted_family": 32, "application": 48, "dataset": 500}
COMMAND_MAX = 16_000  # shell lines for a real centre (Slurm); kept verbatim, not stripped
LISTS = {"accepted_models": 32, "preferred_sites": 32}
ALLOWED = set(LIMITS) | set(TEXT) | set(LISTS) | {"command"}


class EntryError(ValueError):
    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("invalid job")
        self.fields = fields


def parse_job(entry) -> JobRequest:
    """One job entry → JobRequest, or EntryError with field messages."""
    if not isinstance(entry, dict):
        raise EntryError({"non_field_errors": ["A job is an object."]})
    errors: dict[str, list[str]] = {}
    for key in entry.keys() - ALLOWED:
        errors[key] = ["Unknown field."]
    values: dict = {}
    for key, (low, high) in LIMITS.items():
        if key not in entry:
            if key in ("cores_per_node", "walltime_s"):
                errors[key] = ["Required."]
            continue
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[key] = [f"A whole number from {low} to {high}."]
        else:
            values[key] = value
    for key, limit in TEXT.items():
        value = entry.get(key, "")
        if not isinstance(value, str) or len(value) > limit:
            errors[key] = [f"Text of at most {limit} characters."]
        else:
            values[key] = value.strip()
    command = entry.get("command", "")
    if not isinstance(command, str) or len(command) > COMMAND_MAX or "\x00" in command:
        errors["command"] = [f"Text of at most {COMMAND_MAX} characters."]
    elif command:
        values["command"] = command
    for key, limit in LISTS.items():
        value = entry.get(key, [])
        if not isinstance(value, list) or len(value) > 20 or not all(isinstance(v, str) and v for v in value):
            errors[key] = [f"A list of at most 20 names of at most {limit} characters."]
        else:
            values[key] = tuple(v.strip()[:limit] for v in value)
    if errors:
        raise EntryError(errors)
    values.setdefault("name", "")
    return JobRequest(**values)
