"""A Slurm centre in the federation, against the in-process fake slurmrestd: registered and configured by a
federation admin (the token write-only), checked ("ping"), followed by the ticker through the same path as
simulated centres (events, charging, re-routing), and marked degraded/offline/online by its reachability."""

from __future__ import annotations

import json
import time
from datetime import date

import pytest
from django.utils import timezone

from accounts.actors import system_actor
from accounts.models import AuditEvent
from allocations.catalogue import ensure_resource_classes
from allocations.models import ResourceClass
from federation import jobs, slurm_services, ticker
from federation import services as fed_services
from federation.adapters import adapter_for, reset_adapters
from federation.models import Job, JobState, Site, SiteState
from federation.services import site_set_state
from tests.factories import build_small_federation, make_explore_project
from tests.federation.slurm_fake import FakeSlurm

pytestmark = pytest.mark.django_db
SECRET = "good-token"


@pytest.fixture
def fake():
    with FakeSlurm(token=SECRET) as server:
        yield server


@pytest.fixture
def world(fed, fake):
    build_small_federation(fed)
    site = register_local(fake.url)
    pi, project = make_explore_project(fed)
    reset_adapters()
    slurm_services.reset_health()
    yield {"pi": pi, "project": project, "site": site, "fed": fed}
    reset_adapters()
    slurm_services.reset_health()


def register_local(url: str, **connection) -> Site:
    """The Slurm centre "local" (V100 cards), committing half its capacity for this half-year (as the simulated
    ones do), before the project's award is brokered across the centres."""
    prices = {rc.code: rc.credits_per_unit for rc in ensure_resource_classes()}
    site = slurm_services.slurm_site_register(
        actor=system_actor(), code="local", name="Local Slurm", city="Beijing", url=url, user="ci",
        **({"token_source": "token", "token": SECRET} | connection), workdir="/tmp", gpu_family="v100",
        accelerator_model="V100", national_prices=prices)
    today = timezone.localdate()
    start = date(today.year, 1 if today.month <= 6 else 7, 1)
    end = date(today.year + (start.month == 7), 7 if start.month == 1 else 1, 1)
    fed_services.capacity_commit(actor=system_actor(), site=site, resource_class=ResourceClass.objects.get(
        code="gpu:v100"), period_start=start, period_end=end, amount_display=16 * (end - start).days * 24 // 2)
    return site


def submit_to_slurm(world, **kwargs) -> Job:
    """Submit while the simulated centres drain, so the router picks the Slurm centre."""
    simulated = list(Site.objects.exclude(code="local"))
    for s in simulated:
        site_set_state(actor=system_actor(), site=s, state=SiteState.DRAINING, reason="test")
    # The centre's one partition has GPUs (V100s): its jobs ask for cards.
    request = jobs.JobRequest(**{"name": "t", "cores_per_node": 4, "walltime_s": 600, "gpus_per_node": 1,
                                 "accepted_family": "v100", **kwargs})
    result = jobs.jobs_submit(actor=world["pi"], project=world["project"], requests=[request],
                              enqueue_dispatch=False)
    for s in simulated:
        site_set_state(actor=system_actor(), site=s, state=SiteState.ONLINE)
    assert result.refused == [], result.refused
    job = Job.objects.get(pk=result.accepted[0].job_id)
    assert job.site.code == "local"
    return job


def tick():
    return ticker.tick()


def test_a_slurm_centre_is_registered_from_what_slurmrestd_reports(world):
    site = world["site"]
    assert site.adapter == "slurm" and site.slurm_url.startswith("http://127.0.0.1:")
    [partition] = site.partitions.all()
    assert (partition.name, partition.remote_name, partition.nodes, partition.cores_per_node,
            partition.gpus_per_node, partition.family.code) == ("debug", "debug", 2, 64, 8, "v100")
    audit = AuditEvent.objects.filter(action="site.create", object_id=str(site.pk)).get()
    assert SECRET not in json.dumps([audit.before, audit.after])


def test_the_connection_api_never_shows_the_token(world):
    fed, site = world["fed"], world["site"]
    admin = fed.client("fedadmin")
    url = "/api/v1/sites/local/connection/"
    shown = admin.get(url)
    assert shown.status_code == 200
    assert shown.json()["slurm_token_set"] is True and SECRET not in shown.content.decode()
    assert shown.json()["partitions"] == {"debug": "debug"}
    changed = admin.put(url, {"token": "a-new-secret-token", "slurm_workdir": "/home/ci",
                              "partitions": {"debug": "batch"}}, format="json")
    assert changed.status_code == 200, changed.content
    assert "a-new-secret-token" not in changed.content.decode()
    assert changed.json()["slurm_workdir"] == "/home/ci" and changed.json()["partitions"] == {"debug": "batch"}
    site.refresh_from_db()
    assert site.slurm_token == "a-new-secret-token"
    audit = AuditEvent.objects.filter(action="site.configure_connection").get()
    recorded = json.dumps([audit.before, audit.after])
    assert "a-new-secret-token" not in recorded and SECRET not in recorded
    assert audit.after["slurm_token"] == "changed" and audit.after["partitions"] == {"debug": "batch"}
    # Validation, and only federation admins.
    bad = admin.put(url, {"adapter": "slurm", "slurm_url": "ftp://x", "partitions": {"nope": "x"}}, format="json")
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"slurm_url", "partitions"}
    assert fed.client("operator").put(url, {"slurm_user": "root"}, format="json").status_code == 403
    assert fed.client("operator").get(url).status_code == 403
    assert admin.put(url, {"token": "x", "unknown": 1}, format="json").status_code == 400


def test_ping_shows_latency_and_version_or_why_it_failed(world, fake):
    admin = world["fed"].client("fedadmin")
    answer = admin.post("/api/v1/sites/local/ping/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True and body["version"] == "22.05.8" and body["api"] == "v0.0.38"
    assert body["latency_ms"] >= 0
    assert Site.objects.get(code="local").heartbeat_at is not None
    fake.stop()
    down = admin.post("/api/v1/sites/local/ping/").json()
    assert (down["ok"], down["code"]) == (False, "slurm_unavailable")
    assert admin.post("/api/v1/sites/zhengzhou/ping/").json()["error"]["code"] == "not_a_real_centre"
    assert world["fed"].client("researcher_a").post("/api/v1/sites/local/ping/").status_code == 403


def test_a_wrong_token_is_reported_by_ping(world):
    slurm_services.site_configure_connection(actor=system_actor(), site=world["site"], token="expired")
    down = world["fed"].client("fedadmin").post("/api/v1/sites/local/ping/").json()
    assert (down["ok"], down["code"]) == (False, "slurm_auth_failed")
    assert "expired" not in json.dumps(down)


def test_a_job_runs_at_the_slurm_centre_and_is_charged_its_real_elapsed_time(world, fake, monkeypatch):
    monkeypatch.setattr("portal.live.capacity._last", {})  # reports only what changed: start from nothing
    job = submit_to_slurm(world, command="echo hello\nexit 0", gpus_per_node=2, cores_per_node=4)
    tick()  # dispatch (and a first poll)
    from portal.live.capacity import reported_rows

    assert reported_rows(["local"])["local"], "the Slurm centre's capacity reaches the status board"
    record = fake.by_name(f"suanwang-{job.pk}")
    assert "echo hello" in record["script"] and record["job"]["cpus_per_task"] == 4
    assert record["job"]["gpus_per_node"] == "2"
    assert record["job"]["environment"]["SUANWANG_JOB_ID"] == str(job.pk)
    tick()
    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED
    started = int(time.time()) - 100
    fake.set_state(record["job_id"], "RUNNING", start=started)
    tick()
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    fake.set_state(record["job_id"], "COMPLETED", start=started, end=started + 42, exit_code=0)
    tick()
    job.refresh_from_db()
    assert (job.state, job.exit_code) == (JobState.COMPLETED, 0)
    assert (job.ended_at - job.started_at).total_seconds() == 42
    assert job.charged == 42 * 2  # card-seconds of real elapsed time (no simulator speed-up)
    assert [e.to_state for e in job.events.all()] == ["submitted", "routed", "dispatched", "queued", "running",
                                                      "completed"]


def test_a_failed_slurm_job_carries_its_exit_code(world, fake):
    job = submit_to_slurm(world, command="exit 3")
    tick()
    record = fake.by_name(f"suanwang-{job.pk}")
    now = int(time.time())
    fake.set_state(record["job_id"], "FAILED", start=now - 5, end=now, exit_code=768)
    tick()
    job.refresh_from_db()
    assert (job.state, job.exit_code) == (JobState.FAILED, 3)
    assert job.charged == 5 * 1 and "exit_code=3" in job.reason


def test_cancelling_a_job_cancels_it_in_slurm(world, fake):
    job = submit_to_slurm(world, command="sleep 600")
    tick()
    cancelled = jobs.job_cancel(actor=world["pi"], job=job)
    assert cancelled.state == JobState.CANCELLED
    assert fake.by_name(f"suanwang-{job.pk}")["job_state"] == "CANCELLED"
    tick()  # Slurm's CANCELLED is a repeat: nothing changes
    assert Job.objects.get(pk=job.pk).events.filter(to_state="cancelled").count() == 1


def test_cancel_while_slurm_is_unreachable_says_so_and_changes_nothing(world, fake):
    job = submit_to_slurm(world, command="sleep 600")
    tick()
    fake.stop()
    reset_adapters()  # a process that has not seen the job yet must look it up
    response = world["fed"].client("pi_a").post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 503 and response.json()["error"]["code"] == "slurm_unavailable"
    message = response.json()["error"]["message"]
    assert "local" in message and "slurmrestd" not in message and "127.0.0.1" not in message  # no internals
    assert Job.objects.get(pk=job.pk).state == JobState.DISPATCHED


def test_more_than_slurm_has_is_refused_with_slurms_reason(world, fake):
    # Our record of the partition says 8 cards per node; this Slurm has 4: Slurm refuses at submission.
    fake.gpus_per_node = 4
    job = submit_to_slurm(world, command="nvidia-smi", gpus_per_node=8)
    tick()
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "slurm_config_unavailable" in job.reason and "Requested node configuration is not available" in job.reason
    assert job.charged == 0


def test_a_job_with_nothing_to_run_is_refused_by_the_slurm_centre(world, fake):
    job = submit_to_slurm(world)
    tick()
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "slurm_no_command" in job.reason
    assert fake.jobs == {}


def test_an_unreachable_slurm_goes_degraded_then_offline_reroutes_and_comes_back(world, fake):
    port = int(fake.url.rsplit(":", 1)[1])
    fake.stop()
    job = submit_to_slurm(world, command="sleep 1")
    tick()
    site = Site.objects.get(code="local")
    assert site.state == SiteState.DEGRADED and site.state_reason.startswith("Slurm unreachable")
    assert "slurm_unavailable" in site.state_reason and "127.0.0.1" not in site.state_reason  # shown to everyone
    assert Job.objects.get(pk=job.pk).state == JobState.ROUTED  # not handed over, still waiting
    for _ in range(slurm_services.OFFLINE_AFTER - 1):
        tick()
    site.refresh_from_db()
    assert site.state == SiteState.OFFLINE
    job.refresh_from_db()
    assert job.state in (JobState.ROUTED, JobState.DISPATCHED, JobState.QUEUED, JobState.RUNNING)
    assert job.site.code != "local" and job.attempts == 2  # re-routed to a simulated centre
    assert "re-routed from local" in job.events.filter(to_state="routed").last().cause
    # While offline the router sends nothing there.
    refused = jobs.jobs_submit(actor=world["pi"], project=world["project"], enqueue_dispatch=False,
                               requests=[jobs.JobRequest(name="x", cores_per_node=4, walltime_s=600, gpus_per_node=1,
                                                         accepted_family="v100", preferred_sites=("local",))])
    assert all(a.site != "local" for a in refused.accepted)
    with FakeSlurm(token=SECRET, port=port):
        tick()
        site.refresh_from_db()
        assert site.state == SiteState.ONLINE and site.heartbeat_at is not None
        again = submit_to_slurm(world, command="true")
        tick()
        assert Job.objects.get(pk=again.pk).state in (JobState.DISPATCHED, JobState.QUEUED)


def test_an_operators_offline_is_not_undone_by_the_poller(world):
    site_set_state(actor=system_actor(), site=world["site"], state=SiteState.OFFLINE, reason="maintenance")
    tick()
    site = Site.objects.get(code="local")
    assert (site.state, site.state_reason) == (SiteState.OFFLINE, "maintenance")


def test_the_adapter_is_rebuilt_when_the_connection_changes(world, fake):
    first = adapter_for(world["site"])
    assert adapter_for(Site.objects.get(code="local")) is first
    slurm_services.site_configure_connection(actor=system_actor(), site=world["site"], slurm_workdir="/home/ci")
    second = adapter_for(Site.objects.get(code="local"))
    assert second is not first and second.config.workdir == "/home/ci"


def test_the_admin_page_never_shows_the_token(world, client):
    from accounts.models import User

    admin = User.objects.create_superuser(email="root@example.cn", password="pw-123456789")
    client.force_login(admin)
    page = client.get(f"/admin/federation/site/{world['site'].pk}/change/")
    assert page.status_code == 200
    assert SECRET not in page.content.decode() and "new_token" in page.content.decode()


def test_the_site_page_checks_the_connection_for_operators(world, fake, client):
    fed = world["fed"]
    client.force_login(fed.users["fedadmin"])
    page = client.get("/centres/local/")
    assert page.status_code == 200 and "/centres/local/ping/" in page.content.decode()
    checked = client.post("/centres/local/ping/", follow=True)
    assert checked.status_code == 200 and "22.05.8" in checked.content.decode()
    fake.stop()
    failed = client.post("/centres/local/ping/", follow=True).content.decode()
    assert "slurmrestd" in failed and "unreachable" in failed
    client.force_login(fed.users["researcher_a"])
    assert "/centres/local/ping/" not in client.get("/centres/local/").content.decode()
    assert client.post("/centres/local/ping/").status_code == 403


def test_jobs_a_failing_slurm_did_not_take_stay_routed_and_go_later(world, fake):
    first = submit_to_slurm(world, command="true")
    second = submit_to_slurm(world, command="true")
    fake.submit_errors = [(-1, "Unspecified error")]  # e.g. its token just expired: the batch stops there
    tick()
    assert {Job.objects.get(pk=j.pk).state for j in (first, second)} == {JobState.ROUTED}
    assert not Job.objects.get(pk=first.pk).events.filter(to_state="dispatched").exists()
    tick()
    assert {Job.objects.get(pk=j.pk).state for j in (first, second)} <= {JobState.DISPATCHED, JobState.QUEUED}
    assert len(fake.jobs) == 2  # each submitted once


def test_a_federation_admin_adds_a_slurm_centre_in_the_admin_with_a_write_only_token(world, client):
    from django.contrib.admin.models import LogEntry

    from accounts.models import User
    from federation.models import default_price_schedule

    admin = User.objects.create_superuser(email="root@example.cn", password="pw-123456789")
    client.force_login(admin)
    form = {"code": "hpc2", "name": "HPC 2", "city": "Hefei", "state": "online", "state_reason": "",
            "exchange_rate": "1", "price_schedule": json.dumps(default_price_schedule()), "adapter": "slurm",
            "slurm_url": "http://10.0.0.2:6820",
            "slurm_user": "svc", "slurm_token_source": "token", "new_token": "admin-typed-secret",
            "slurm_credential_path": "", "slurm_workdir": "/scratch",
            "partitions-TOTAL_FORMS": "0", "partitions-INITIAL_FORMS": "0", "partitions-MIN_NUM_FORMS": "0",
            "partitions-MAX_NUM_FORMS": "1000"}
    missing = client.post("/admin/federation/site/add/", {**form, "new_token": ""})
    assert missing.status_code == 200 and not Site.objects.filter(code="hpc2").exists()  # a token is required
    created = client.post("/admin/federation/site/add/", form)
    assert created.status_code == 302, [(f, e) for f, e in created.context["adminform"].form.errors.items()]
    site = Site.objects.get(code="hpc2")
    assert (site.adapter, site.slurm_user, site.slurm_token) == ("slurm", "svc", "admin-typed-secret")
    change_page = client.get(f"/admin/federation/site/{site.pk}/change/").content.decode()
    assert "admin-typed-secret" not in change_page
    kept = client.post(f"/admin/federation/site/{site.pk}/change/", {**form, "new_token": "", "city": "Wuhu"})
    assert kept.status_code == 302
    site.refresh_from_db()
    assert (site.city, site.slurm_token) == ("Wuhu", "admin-typed-secret")  # an empty field keeps the token
    logged = json.dumps([[a.before, a.after] for a in AuditEvent.objects.all()])
    logged += json.dumps([e.change_message for e in LogEntry.objects.all()])
    assert "admin-typed-secret" not in logged
    assert AuditEvent.objects.filter(action="site.configure_connection", object_id=str(site.pk)).exists()
    # Connection changes made in the admin go through the audited service; the state is the operators' to set.
    moved = client.post(f"/admin/federation/site/{site.pk}/change/",
                        {**form, "new_token": "", "city": "Wuhu", "slurm_url": "http://10.0.0.3:6820",
                         "state": "offline", "state_reason": "typed in the admin"})
    assert moved.status_code == 302
    site.refresh_from_db()
    assert (site.slurm_url, site.state, site.state_reason) == ("http://10.0.0.3:6820", "online", "")
    assert AuditEvent.objects.filter(action="site.configure_connection", object_id=str(site.pk),
                                     after__slurm_url="http://10.0.0.3:6820").exists()
