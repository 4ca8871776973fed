"""Against a real Slurm (scripts/local-slurm.sh start; CI does it): jobs submitted through our API are routed
to the Slurm centre, run there for real, and come back with their exit codes and real elapsed time; a
cancel reaches Slurm; what Slurm cannot run is refused with its reason; a stopped slurmrestd takes the
centre offline and its waiting jobs go to a simulated centre, and it comes back online when restarted.

Needs SUANWANG_SLURM_URL (e.g. http://127.0.0.1:6820) and the token file of user ``ci``
(SUANWANG_SLURM_TOKEN_FILE, default /var/lib/slurm-local/ci.jwt); stopping slurmrestd needs root.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from federation import ticker
from federation.adapters import adapter_for
from federation.models import Job, JobState, Partition, Site, SiteState
from federation.slurm import SlurmClient, TokenFile
from tests.federation import test_slurm_site as common

pytestmark = [pytest.mark.django_db, pytest.mark.slurm]

URL = os.environ.get("SUANWANG_SLURM_URL", "")
TOKEN_FILE = os.environ.get("SUANWANG_SLURM_TOKEN_FILE", "/var/lib/slurm-local/ci.jwt")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-slurm.sh"


@pytest.fixture
def world(fed):


    from federation import slurm_services
    from federation.adapters import reset_adapters
    from tests.factories import build_small_federation, make_explore_project

    build_small_federation(fed)
    site = common.register_local(URL, token_source="token_file", credential_path=TOKEN_FILE)
    pi, project = make_explore_project(fed)
    reset_adapters()
    slurm_services.reset_health()
    yield {"pi": pi, "project": project, "site": site, "fed": fed}
    reset_adapters()
    slurm_services.reset_health()


def slurm_client() -> SlurmClient:
    return SlurmClient(URL, "ci", TokenFile(TOKEN_FILE))


def api_submit(world, **job) -> int:
    """POST /api/v1/jobs/ as the PI while the simulated centres drain (so the Slurm centre is the one)."""
    from accounts.actors import system_actor
    from federation.services import site_set_state

    others = list(Site.objects.exclude(code="local"))
    for site in others:
        site_set_state(actor=system_actor(), site=site, state=SiteState.DRAINING, reason="integration test")
    body = {"project": world["project"].pk, "name": "real", "cores_per_node": 2, "memory_mb_per_node": 1024,
            "gpus_per_node": 1, "accepted_family": "v100", "walltime_s": 300, **job}
    response = world["fed"].client("pi_a").post("/api/v1/jobs/", body, format="json")
    for site in others:
        site_set_state(actor=system_actor(), site=site, state=SiteState.ONLINE)
    assert response.status_code == 201, response.content
    assert response.json()["site"] == "local"
    return response.json()["id"]


def tick_until(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        ticker.tick()
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def state_of(job_id: int) -> str:
    return Job.objects.get(pk=job_id).state


def test_a_job_runs_for_real_and_is_charged_its_real_elapsed_time(world):
    ok = api_submit(world, command="echo \"on $SLURMD_NODENAME gpus=$CUDA_VISIBLE_DEVICES\"\nsleep 2\nexit 0",
                    gpus_per_node=2)
    failing = api_submit(world, command="sleep 1\nexit 3")
    assert tick_until(lambda: state_of(ok) in ("completed", "failed") and state_of(failing) in ("completed",
                                                                                              "failed"))
    job = Job.objects.get(pk=ok)
    assert (job.state, job.exit_code) == (JobState.COMPLETED, 0), job.reason
    elapsed = (job.ended_at - job.started_at).total_seconds()
    assert 2 <= elapsed <= 30  # Slurm's own start and end times (whole seconds)
    assert job.charged == int(elapsed) * 2  # two cards × real seconds
    assert [e.to_state for e in job.events.all()][-1] == "completed"
    slurm_id = adapter_for(world["site"]).tracked()[ok]
    output = Path(f"/tmp/suanwang-{slurm_id}.out")
    if output.exists():  # slurmd wrote it as user ci on this host
        assert "gpus=0,1" in output.read_text()
    bad = Job.objects.get(pk=failing)
    assert (bad.state, bad.exit_code) == (JobState.FAILED, 3)
    assert bad.charged > 0 and "exit_code=3" in bad.reason


def test_a_cancelled_job_is_cancelled_in_slurm(world):
    job_id = api_submit(world, command="sleep 300")
    assert tick_until(lambda: state_of(job_id) == "running")
    response = world["fed"].client("pi_a").post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    client = slurm_client()

    def slurm_state():
        # The newest Slurm job of that name (earlier test runs, with their own databases, reused our job ids).
        return max((r for r in client.jobs() if r.get("name") == f"suanwang-{job_id}"),
                   key=lambda r: r["job_id"])["job_state"]

    deadline = time.monotonic() + 15  # slurmctld records the kill at once when idle (<0.2 s); allow a loaded box
    while slurm_state() != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slurm_state() == "CANCELLED"
    ticker.tick()
    assert Job.objects.get(pk=job_id).events.filter(to_state="cancelled").count() == 1


def test_a_job_asking_more_than_the_partition_has_is_refused_clearly(world):
    too_big = world["fed"].client("pi_a").post("/api/v1/jobs/", {
        "project": world["project"].pk, "cores_per_node": 2, "gpus_per_node": 9, "accepted_family": "v100",
        "walltime_s": 300, "command": "true"}, format="json")
    assert too_big.status_code == 400 and too_big.json()["error"]["code"] == "no_partition_fits"
    # Our record of the partition claims more cards than Slurm has: Slurm itself refuses, with its reason.
    Partition.objects.filter(site__code="local").update(gpus_per_node=16)
    job_id = api_submit(world, command="true", gpus_per_node=12)
    assert tick_until(lambda: state_of(job_id) == "failed", timeout=20)
    job = Job.objects.get(pk=job_id)
    assert "slurm_config_unavailable" in job.reason and "Requested node configuration is not available" in job.reason
    assert job.charged == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="stopping slurmrestd needs root")
def test_stopping_slurmrestd_takes_the_centre_offline_and_reroutes_waiting_jobs(world):
    from federation import slurm_services

    subprocess.run(["bash", str(SCRIPT), "stop-rest"], check=True, capture_output=True)
    try:
        job_id = api_submit(world, command="true")
        for _ in range(slurm_services.OFFLINE_AFTER):
            ticker.tick()
        site = Site.objects.get(code="local")
        assert site.state == SiteState.OFFLINE and site.state_reason.startswith("Slurm unreachable")
        job = Job.objects.get(pk=job_id)
        assert job.site.code != "local" and job.site.adapter == "simulated" and job.attempts == 2
        assert "re-routed from local" in job.events.filter(to_state="routed").last().cause
    finally:
        subprocess.run(["bash", str(SCRIPT), "start"], check=True, capture_output=True)
    assert tick_until(lambda: Site.objects.get(code="local").state == SiteState.ONLINE, timeout=20)
    again = api_submit(world, command="true")
    assert tick_until(lambda: state_of(again) == "completed", timeout=60)


def test_a_two_node_job_runs_on_two_fake_nodes(world):
    nodes = sum(1 for n in slurm_client().nodes() if n.get("state") in ("idle", "mixed", "allocated"))
    if nodes < 2:
        pytest.skip("needs SLURM_NODES >= 2 (the default of scripts/local-slurm.sh)")
    job_id = api_submit(world, nodes=2, gpus_per_node=1, command="srun -l bash -c 'echo $SLURMD_NODENAME'\nsleep 1")
    assert tick_until(lambda: state_of(job_id) in ("completed", "failed"))
    job = Job.objects.get(pk=job_id)
    assert (job.state, job.exit_code) == (JobState.COMPLETED, 0), job.reason
    assert "running (node[" in job.events.get(to_state="running").cause  # Slurm's node list, e.g. node[1-2]
    elapsed = int((job.ended_at - job.started_at).total_seconds())
    assert job.charged == 2 * 1 * elapsed  # two nodes × one card × real seconds


def test_tokens_minted_from_slurms_key_are_accepted(world):
    from accounts.actors import system_actor
    from federation import slurm_services

    key = os.environ.get("SUANWANG_SLURM_JWT_KEY", "/var/spool/slurmctld/jwt_hs256.key")
    if not os.access(key, os.R_OK):
        pytest.skip(f"Slurm's JWT key {key} is not readable here (root only)")
    slurm_services.site_configure_connection(actor=system_actor(), site=world["site"], slurm_token_source="jwt_key",
                                             slurm_credential_path=key)
    answer = world["fed"].client("fedadmin").post("/api/v1/sites/local/ping/").json()
    assert answer["ok"] is True and answer["version"].startswith("22.")
