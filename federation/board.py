"""The federation status board's reads: every centre with its use per accelerator family, cores, queue.

Use comes from what each centre last reported (cards and cores free, jobs queued and running per
partition: ``portal.live.capacity``, the same rows the ``/ws/sites/`` stream sends, so the page and
its live updates agree); a centre that has not reported yet is counted from the jobs the database
knows to be running or waiting there. The figures are federation-wide aggregates: no tenant's job
is named.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, F, Sum

from federation import selectors
from federation.models import Job, JobState, Site, SiteState
from portal.live.capacity import reported_rows
from portal.live.protocol import FIELDS

WAITING_STATES = (JobState.ROUTED, JobState.DISPATCHED, JobState.QUEUED)
ROUTABLE_STATES = (SiteState.ONLINE, SiteState.DEGRADED)


def _pct(used: int, total: int) -> float:
    return round(min(100.0, used * 100.0 / total), 1) if total else 0.0


def site_usage(site_ids: list[int] | None = None) -> dict[int, dict]:
    """Per site: cards in use per family code, cores in use, jobs running and waiting (two queries)."""
    usage: dict[int, dict] = defaultdict(lambda: {"cards": defaultdict(int), "cores": 0, "running": 0,
                                                  "waiting": 0})
    running = Job.objects.filter(state=JobState.RUNNING, site__isnull=False)
    waiting = Job.objects.filter(state__in=WAITING_STATES, site__isnull=False)
    if site_ids is not None:
        running, waiting = running.filter(site_id__in=site_ids), waiting.filter(site_id__in=site_ids)
    rows = (running.values("site_id", "partition__family__code")
            .annotate(jobs=Count("id"), cores=Sum(F("nodes") * F("cores_per_node")),
                      cards=Sum(F("nodes") * F("gpus_per_node")))
            .order_by())
    for row in rows:
        entry = usage[row["site_id"]]
        entry["running"] += row["jobs"]
        entry["cores"] += row["cores"] or 0
        if row["partition__family__code"]:
            entry["cards"][row["partition__family__code"]] += row["cards"] or 0
    for row in waiting.values("site_id").annotate(jobs=Count("id")).order_by():
        usage[row["site_id"]]["waiting"] += row["jobs"]
    return usage


def reported_usage(rows: list[list]) -> dict:
    """A centre's use from its reported capacity rows (fields: portal.live.protocol.FIELDS["capacity"])."""
    usage = {"cards": defaultdict(int), "cores": 0, "running": 0, "waiting": 0, "nodes_down": 0}
    for row in rows:
        c = dict(zip(FIELDS["capacity"], row, strict=False))
        if c["family"]:
            usage["cards"][c["family"]] += max(0, (c["cards_total"] or 0) - (c["cards_free"] or 0))
        usage["cores"] += max(0, (c["cores_total"] or 0) - (c["cores_free"] or 0))
        usage["running"] += c["running"] or 0
        usage["waiting"] += c["queued"] or 0
        usage["nodes_down"] += max(0, (c["nodes_total"] or 0) - (c["nodes_up"] or 0))
    return usage


def site_card(site: Site, usage: dict | None) -> dict:
    """One centre as the board draws it (also the shape the page's script updates)."""
    usage = usage or {"cards": {}, "cores": 0, "running": 0, "waiting": 0}
    totals = selectors.site_totals(site)
    names = {p.family.code: p.family.name for p in site.partitions.all() if p.family_id}
    families = []
    for code, total in totals["cards"].items():
        used = min(usage["cards"].get(code, 0), total)
        families.append({"code": code, "name": names.get(code, code), "used": used, "total": total,
                         "pct": _pct(used, total)})
    cores_used = min(usage["cores"], totals["cores"])
    return {
        "id": site.pk,
        "code": site.code,
        "name": site.name,
        "city": site.city,
        "state": site.state,
        "state_label": str(SiteState(site.state).label) if site.state in SiteState.values else site.state,
        "reason": site.state_reason,
        "routable": site.state in ROUTABLE_STATES,
        "families": families,
        "cores": {"used": cores_used, "total": totals["cores"], "pct": _pct(cores_used, totals["cores"])},
        "running": usage["running"],
        "waiting": usage["waiting"],
        "nodes_down": usage.get("nodes_down", 0),
        "heartbeat_at": site.heartbeat_at,
    }


def board() -> dict:
    """Every centre (by code) with its use, and the federation's totals (at most four queries, one cache read)."""
    sites = list(selectors.sites_with_partitions())
    reported = reported_rows([site.code for site in sites])
    usage = site_usage([site.pk for site in sites if site.code not in reported]) if len(reported) < len(sites) else {}
    cards = [site_card(site, reported_usage(reported[site.code]) if site.code in reported else usage.get(site.pk))
             for site in sites]
    by_state: dict[str, int] = defaultdict(int)
    for card in cards:
        by_state[card["state"]] += 1
    cards_total = sum(f["total"] for c in cards for f in c["families"])
    cards_used = sum(f["used"] for c in cards for f in c["families"])
    cores_total = sum(c["cores"]["total"] for c in cards)
    cores_used = sum(c["cores"]["used"] for c in cards)
    return {
        "sites": cards,
        "totals": {
            "sites": len(cards),
            "routable": by_state[SiteState.ONLINE] + by_state[SiteState.DEGRADED],
            "draining": by_state[SiteState.DRAINING],
            "offline": by_state[SiteState.OFFLINE],
            "cards_used": cards_used,
            "cards_total": cards_total,
            "cards_pct": _pct(cards_used, cards_total),
            "cores_used": cores_used,
            "cores_total": cores_total,
            "cores_pct": _pct(cores_used, cores_total),
            "running": sum(c["running"] for c in cards),
            "waiting": sum(c["waiting"] for c in cards),
        },
    }
