"""Services for Slurm centres: register one, set its connection, check it ("ping"), follow it.

A federation admin configures a centre's connection (slurmrestd URL, Slurm user, token source,
partition mapping). The token is write-only: it is stored, used by the adapter, and never shown,
logged or written to the audit trail (the audit says only that it was set or changed).

``follow`` is what the ticker runs for each Slurm centre: one poll, its status changes through the
same path as simulated centres (``jobs.ingest_status``), and the centre's health: a Slurm that
stops answering is marked degraded at once and offline after ``OFFLINE_AFTER`` failed polls in a
row (its routed jobs are re-routed then); when it answers again it comes back online. Only states
this module set are undone by it: an operator's own "offline" stays.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.actors import Actor
from accounts.audit import audit_record
from federation import services
from federation.adapters import adapter_for
from federation.models import (
    AcceleratorFamily,
    AdapterKind,
    Job,
    JobState,
    Partition,
    Site,
    SiteState,
    SlurmTokenSource,
)
from federation.simulator import DETAIL_SITE_OUTAGE
from federation.slurm import SlurmAdapter, SlurmClient, SlurmError, SlurmSiteConfig
from portal.errors import PermissionDenied, ValidationFailed

log = logging.getLogger(__name__)

AUTO_REASON = "Slurm unreachable"  # state_reason prefix of the states this module sets
OFFLINE_AFTER = 3  # failed polls in a row (the ticker polls every 2 s)
SECRET_FIELDS = ("slurm_token",)
CONNECTION_FIELDS = ("adapter", "slurm_url", "slurm_user", "slurm_token_source", "slurm_credential_path",
                     "slurm_workdir")


def _require_admin(actor: Actor) -> None:
    if not (actor.system or actor.is_federation_admin):
        raise PermissionDenied("Only a federation admin configures a centre's connection.",
                               code="federation_admin_required")


def connection_view(site: Site) -> dict:
    """A site's connection settings as shown back: never the token, only whether one is stored."""
    return {
        "adapter": site.adapter,
        "slurm_url": site.slurm_url,
        "slurm_user": site.slurm_user,
        "slurm_token_source": site.slurm_token_source,
        "slurm_token_set": bool(site.slurm_token),
        "slurm_credential_path": site.slurm_credential_path,
        "slurm_workdir": site.slurm_workdir,
        "partitions": {p.name: p.remote_name or p.name for p in site.partitions.all()},
    }


def _validate(values: dict, partitions: set[str], partition_map: dict[str, str] | None) -> None:
    fields: dict[str, list[str]] = {}
    if values["adapter"] == AdapterKind.SLURM:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", values["slurm_url"] or ""):
            fields["slurm_url"] = ["An http(s):// URL of slurmrestd."]
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,63}", values["slurm_user"] or ""):
            fields["slurm_user"] = ["A Slurm (UNIX) user name."]
        source = values["slurm_token_source"]
        if source not in SlurmTokenSource.values:
            fields["slurm_token_source"] = ["One of: " + ", ".join(SlurmTokenSource.values) + "."]
        elif source == SlurmTokenSource.TOKEN and not values["slurm_token"]:
            fields["token"] = ["Give the token (it is stored and never shown again)."]
        elif source != SlurmTokenSource.TOKEN and not (values["slurm_credential_path"] or "").startswith("/"):
            fields["slurm_credential_path"] = ["An absolute path on the federation's servers."]
        if values["slurm_workdir"] and not values["slurm_workdir"].startswith("/"):
            fields["slurm_workdir"] = ["An absolute path at the centre."]
    for ours, remote in (partition_map or {}).items():
        if ours not in partitions:
            fields.setdefault("partitions", []).append(f"{ours}: no such partition at this centre.")
        elif not isinstance(remote, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{0,64}", remote):
            fields.setdefault("partitions", []).append(f"{ours}: a Slurm partition name.")
    if fields:
        raise ValidationFailed("The connection settings are not valid.", code="invalid_connection", fields=fields)


@transaction.atomic
def site_configure_connection(*, actor: Actor, site: Site, adapter: str | None = None, slurm_url: str | None = None,
                              slurm_user: str | None = None, slurm_token_source: str | None = None,
                              token: str | None = None, slurm_credential_path: str | None = None,
                              slurm_workdir: str | None = None, partitions: dict[str, str] | None = None) -> Site:
    """Set how the federation reaches a centre (None: keep the current value; ``token``: write-only)."""
    _require_admin(actor)
    site = Site.objects.select_for_update().get(pk=site.pk)
    before = {f: getattr(site, f) for f in CONNECTION_FIELDS}
    given = {"adapter": adapter, "slurm_url": slurm_url, "slurm_user": slurm_user,
             "slurm_token_source": slurm_token_source, "slurm_credential_path": slurm_credential_path,
             "slurm_workdir": slurm_workdir}
    values = {f: (v if v is not None else getattr(site, f)) for f, v in given.items()}
    values["slurm_token"] = token if token is not None else site.slurm_token
    if values["adapter"] not in AdapterKind.values:
        raise ValidationFailed("Unknown adapter.", code="invalid_connection", fields={"adapter": ["Unknown."]})
    existing = {p.name: p for p in Partition.objects.filter(site=site)}
    _validate(values, set(existing), partitions)
    had_token = bool(site.slurm_token)
    token_changed = values["slurm_token"] != site.slurm_token
    for f, v in values.items():
        setattr(site, f, v)
    site.save(update_fields=list(values))
    remote_before, remote_after = {}, {}
    for ours, remote in (partitions or {}).items():
        p = existing[ours]
        if (p.remote_name or "") != remote:
            remote_before[ours], remote_after[ours] = p.remote_name, remote
            p.remote_name = remote
            p.save(update_fields=["remote_name"])
    after = {f: getattr(site, f) for f in CONNECTION_FIELDS}
    changes_before = {k: v for k, v in before.items() if after[k] != v}
    changes_after = {k: after[k] for k in changes_before}
    if token_changed:  # redacted: the audit trail records that a secret changed, never its value
        changes_before["slurm_token"] = "set" if had_token else ""
        changes_after["slurm_token"] = "changed" if values["slurm_token"] else "removed"
    if remote_after:
        changes_before["partitions"], changes_after["partitions"] = remote_before, remote_after
    if changes_after:
        audit_record(actor=actor, action="site.configure_connection", obj=site, institution=None,
                     before=changes_before, after=changes_after)
    return site


@dataclass(frozen=True)
class PingResult:
    ok: bool
    latency_ms: float | None = None
    version: str = ""
    api: str = ""
    code: str = ""
    message: str = ""

    def as_dict(self) -> dict:
        return {"ok": self.ok, "latency_ms": self.latency_ms, "version": self.version, "api": self.api,
                "code": self.code, "message": self.message}


def site_ping(*, actor: Actor, site: Site) -> PingResult:
    """Check the connection to a Slurm centre: slurmrestd's /ping with the site's credentials (operators,
    federation admins). A success is a heartbeat; the site's state is the poller's business."""
    if not services.can_operate(actor, site):
        raise PermissionDenied("Only this site's operators or a federation admin can do this.",
                               code="site_operator_required")
    if site.adapter != AdapterKind.SLURM:
        raise ValidationFailed("This centre is simulated: there is no connection to check.", code="not_a_real_centre")
    try:
        adapter = adapter_for(site)
        answer = adapter.ping()
    except SlurmError as exc:
        return PingResult(False, code=exc.code, message=exc.message)
    if answer["ok"]:
        services.heartbeat(site)
    return PingResult(answer["ok"], answer["latency_ms"], answer["version"], answer["api"],
                      "" if answer["ok"] else "slurm_controller_down",
                      "" if answer["ok"] else "slurmrestd answers but the Slurm controller does not report UP.")


# --- following a Slurm centre (the ticker) ------------------------------------------------------
_failures: dict[int, int] = {}
_failures_lock = threading.Lock()


def follow(site: Site) -> dict[str, int]:
    """One pass over a Slurm centre: poll, ingest, keep its health, hand it its routed jobs."""
    from federation.jobs import dispatch_routed, ingest_status

    adapter = adapter_for(site)
    try:
        changes = adapter.poll()
        if isinstance(adapter, SlurmAdapter) and adapter.capacity_due():
            from portal.live.capacity import report_capacity

            report_capacity(site, adapter.refresh_capacity())  # the status board shows the real free cards
    except SlurmError as exc:
        site = record_unreachable(site, exc)
        return {"changed": 0, "dispatched": 0, "reachable": 0}
    changed = ingest_status(site, changes)
    site = record_reachable(site)
    dispatched = 0
    if site.state in (SiteState.ONLINE, SiteState.DEGRADED):
        while moved := dispatch_routed(site):
            dispatched += moved
        last_error = getattr(adapter, "last_error", None)
        if last_error is not None and last_error.code == "slurm_unavailable":
            site = record_unreachable(site, last_error)
    return {"changed": changed, "dispatched": dispatched, "reachable": 1}


def record_reachable(site: Site) -> Site:
    with _failures_lock:
        _failures.pop(site.pk, None)
    services.heartbeat(site)
    if site.state in (SiteState.DEGRADED, SiteState.OFFLINE) and site.state_reason.startswith(AUTO_REASON):
        site = services.site_set_state(actor=Actor(system=True), site=site, state=SiteState.ONLINE,
                                       reason="Slurm answers again")
        log.info("slurm %s: reachable again, online", site.code)
    return site


def record_unreachable(site: Site, error: SlurmError) -> Site:
    """One failed poll: degraded at once, offline after OFFLINE_AFTER in a row (waiting jobs re-routed)."""
    with _failures_lock:
        failures = _failures[site.pk] = _failures.get(site.pk, 0) + 1
    # Shown to every user: the stable code, not the message (which names the centre's internal address).
    reason = f"{AUTO_REASON} ({error.code})"
    log.warning("slurm %s: poll failed (%d in a row): %s", site.code, failures, error.message)
    system = Actor(system=True)
    if site.state == SiteState.ONLINE:
        site = services.site_set_state(actor=system, site=site, state=SiteState.DEGRADED, reason=reason)
    if failures >= OFFLINE_AFTER and site.state == SiteState.DEGRADED and site.state_reason.startswith(AUTO_REASON):
        site = services.site_set_state(actor=system, site=site, state=SiteState.OFFLINE, reason=reason)
    if site.state == SiteState.OFFLINE:
        reroute_waiting(site, reason)
    return site


def reroute_waiting(site: Site, reason: str) -> int:
    """Jobs routed to an offline centre and not handed over yet go elsewhere (the re-routing of jobs lost
    to a site fault: their hold is released uncharged and they are routed again, away from this centre)."""
    from federation.jobs import apply_moves

    now = timezone.now()
    with transaction.atomic():
        ids = list(Job.objects.filter(site=site, state=JobState.ROUTED).values_list("pk", flat=True)[:5000])
        if not ids:
            return 0
        return apply_moves([(job_id, JobState.FAILED, f"{site.code} offline: {reason}", now,
                             {"detail": DETAIL_SITE_OUTAGE}) for job_id in ids])


def reset_health() -> None:
    with _failures_lock:
        _failures.clear()


# --- registering a Slurm centre -----------------------------------------------------------------
def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:48] or "default"


@transaction.atomic
def slurm_site_register(*, actor: Actor, code: str, name: str, city: str, url: str, user: str, token_source: str,
                        token: str = "", credential_path: str = "", workdir: str = "/tmp",  # noqa: S108
                        gpu_family: str = "", accelerator_model: str = "",
                        national_prices: dict[str, Decimal] | None = None) -> Site:
    """Create (or update) a Slurm centre and its partitions from what its slurmrestd reports
    (one partition per Slurm partition; node shape: the smallest node in it)."""
    _require_admin(actor)
    config = SlurmSiteConfig(code=code, url=url, user=user, token_source=token_source, token=token,
                             credential_path=credential_path, workdir=workdir)
    _validate({"adapter": AdapterKind.SLURM, "slurm_url": url, "slurm_user": user, "slurm_token_source": token_source,
               "slurm_token": token, "slurm_credential_path": credential_path, "slurm_workdir": workdir}, set(), None)
    client = SlurmClient(url, user, config.tokens())
    try:
        nodes = {n.get("name"): n for n in client.nodes()}
        slurm_partitions = client.partitions()
    finally:
        client.close()
    from federation.slurm import gres_gpus

    family = AcceleratorFamily.objects.filter(code=gpu_family).first() if gpu_family else None
    if gpu_family and family is None:
        raise ValidationFailed(f"Unknown accelerator family {gpu_family}.", code="unknown_family",
                               fields={"gpu_family": ["Unknown."]})
    prices = national_prices or {}
    site, created = Site.objects.update_or_create(code=code, defaults={
        "name": name, "city": city, "adapter": AdapterKind.SLURM, "slurm_url": url, "slurm_user": user,
        "slurm_token_source": token_source, "slurm_token": token, "slurm_credential_path": credential_path,
        "slurm_workdir": workdir})
    made = []
    for sp in slurm_partitions:
        members = [n for n in nodes.values() if sp.get("name") in (n.get("partitions") or [])]
        if not members:
            continue
        gpus = min(gres_gpus(n.get("gres")) for n in members)
        if gpus and family is None:
            raise ValidationFailed(f"Slurm partition {sp['name']} has GPUs: name their accelerator family.",
                                   code="gpu_family_required", fields={"gpu_family": ["Required."]})
        limit = sp.get("max_time_limit")
        max_walltime = int(limit) * 60 if isinstance(limit, int) and limit > 0 else 7 * 24 * 3600
        card_price = prices.get(f"gpu:{family.code}", Decimal(0)) if gpus and family else Decimal(0)
        partition, _ = Partition.objects.update_or_create(site=site, name=_slug(sp["name"]), defaults={
            "remote_name": sp["name"], "ecosystem": family.ecosystem if gpus else "cpu",
            "family": family if gpus else None, "accelerator_model": accelerator_model if gpus else "",
            "nodes": len(members), "cores_per_node": min(int(n.get("cpus") or 0) for n in members),
            "memory_mb_per_node": min(int(n.get("real_memory") or 0) for n in members), "gpus_per_node": gpus,
            "max_walltime_s": max_walltime, "price_core_hour": prices.get("cpu", Decimal("0.1")),
            "price_card_hour": card_price})
        made.append(partition.name)
    if not made:
        raise ValidationFailed("slurmrestd reports no partition with nodes.", code="slurm_no_partitions")
    audit_record(actor=actor, action="site.create" if created else "site.update", obj=site, institution=None,
                 after={"adapter": "slurm", "slurm_url": url, "partitions": made,
                        "slurm_token": "set" if token else ""})
    return site


def site_connection(*, actor: Actor, site: Site) -> dict:
    """A centre's connection settings for a federation admin (the token only as ``slurm_token_set``)."""
    _require_admin(actor)
    return connection_view(site)
