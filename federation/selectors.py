"""Reads of the federation's public data: sites, partitions, applications, commitments."""

from collections import defaultdict

from django.db.models import Prefetch, QuerySet

from federation.models import Application, CapacityCommitment, Partition, Site
from portal.errors import NotFound


def sites_with_partitions() -> QuerySet[Site]:
    partitions = Partition.objects.select_related("family").order_by("name")
    return Site.objects.prefetch_related(Prefetch("partitions", queryset=partitions)).order_by("code")


def get_site(code: str) -> Site:
    try:
        return sites_with_partitions().get(code=code)
    except Site.DoesNotExist:
        raise NotFound("Site not found.", code="site_not_found") from None


def site_totals(site: Site) -> dict:
    """Cards per family and cores, from prefetched partitions (no query)."""
    cards: dict[str, int] = defaultdict(int)
    cores = nodes = 0
    for p in site.partitions.all():
        nodes += p.nodes
        cores += p.total_cores
        if p.family_id:
            cards[p.family.code] += p.total_cards
    return {"nodes": nodes, "cores": cores, "cards": dict(sorted(cards.items())), "total_cards": sum(cards.values())}


def applications() -> QuerySet[Application]:
    return Application.objects.prefetch_related(
        Prefetch("partitions", queryset=Partition.objects.select_related("site").only("id", "name", "site__code"))
    ).order_by("code")


def commitments_for_site(site: Site) -> QuerySet[CapacityCommitment]:
    return CapacityCommitment.objects.filter(site=site).select_related("resource_class").order_by(
        "-period_start", "resource_class__code")
