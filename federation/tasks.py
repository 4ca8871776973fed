"""Celery tasks for jobs: take ids, call services. Idempotent: safe to run twice."""

from celery import shared_task

from federation.models import Site


@shared_task(name="federation.tasks.dispatch_site")
def dispatch_site(site_id: int) -> int:
    """Hand a site's routed jobs to its adapter, chunk by chunk, until none are left."""
    from federation.jobs import dispatch_routed

    site = Site.objects.filter(pk=site_id).first()
    if site is None or not _dispatches_to(site):
        return 0
    total = 0
    while moved := dispatch_routed(site):
        total += moved
    return total


@shared_task(name="federation.tasks.sweep_routed")
def sweep_routed() -> int:
    """The durable half of dispatch: any routed job a lost task left behind is dispatched here."""
    from federation.jobs import dispatch_routed

    total = 0
    for site in Site.objects.filter(jobs__state="routed").distinct():
        if not _dispatches_to(site):
            continue
        while moved := dispatch_routed(site):
            total += moved
    return total


def _dispatches_to(site: Site) -> bool:
    """Workers dispatch to real centres; simulated ones belong to the process that ticks them
    (the embedded server, where tasks run in-process, or ``run_sites``)."""
    from django.conf import settings

    return site.adapter != "simulated" or settings.SUANWANG["SIMULATED_SITES_IN_PROCESS"]
