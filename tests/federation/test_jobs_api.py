"""The jobs API: single and batch submission, per-entry errors, Idempotency-Key, scoping, cancel."""

import pytest

from federation.models import Job, JobEvent
from tests.factories import build_allocation_world, client_for

pytestmark = pytest.mark.django_db

JOB = {"name": "md", "cores_per_node": 4, "memory_mb_per_node": 8192, "walltime_s": 3600, "application": "gromacs"}


@pytest.fixture
def world(fed):
    build_allocation_world(fed)
    return fed


def test_single_submit_returns_the_routed_job_and_explains_the_choice(world):
    pi = client_for(world.users["pi_a"])
    response = pi.post("/api/v1/jobs/", {"project": world.objects["project"], **JOB}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "routed" and body["site"] in ("zhengzhou", "tianjin")
    detail = pi.get(f"/api/v1/jobs/{body['id']}/").json()
    assert detail["routing"]["site"] == body["site"]
    assert detail["routing"]["candidates"], "the portal must be able to say why"
    assert [e["to"] for e in detail["events"]] == ["submitted", "routed"]


def test_single_submit_answers_what_a_read_of_the_job_returns(world):
    """The answer is built from what was written, not read back: it must equal the stored job."""
    pi = client_for(world.users["pi_a"])
    body = pi.post("/api/v1/jobs/", {"project": world.objects["project"], **JOB, "name": "x" * 200,
                                     "nodes": 2, "command": "srun md"}, format="json").json()
    detail = pi.get(f"/api/v1/jobs/{body['id']}/").json()
    assert body == {key: detail[key] for key in body}
    assert body["name"] == "x" * 200 and body["nodes"] == 2 and body["charged"] == 0
    assert set(body) >= {"submitted_at", "started_at", "ended_at", "exit_code", "partition", "project"}


@pytest.mark.parametrize(
    ("job", "status", "code"),
    [
        ({"cores_per_node": 100_000, "walltime_s": 600}, 400, "invalid"),
        ({"cores_per_node": 4, "walltime_s": 600, "gpus_per_node": 64}, 400, "no_partition_fits"),
        ({"cores_per_node": 4, "walltime_s": 600, "gpus_per_node": 1, "accepted_models": ["H100"]}, 400,
         "unknown_accelerator_model"),
        ({"cores_per_node": 4, "walltime_s": 600, "colour": "blue"}, 400, "invalid"),
        ({"cores_per_node": 4}, 400, "invalid"),
    ],
)
def test_impossible_single_jobs_are_refused_with_a_code_and_nothing_written(world, job, status, code):
    before = Job.objects.count(), JobEvent.objects.count()
    response = client_for(world.users["pi_a"]).post("/api/v1/jobs/", {"project": world.objects["project"], **job},
                                                    format="json")
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    assert (Job.objects.count(), JobEvent.objects.count()) == before


def test_batch_accepts_the_valid_entries_and_reports_the_others(world):
    jobs = [JOB, {"cores_per_node": "four"}, {**JOB, "gpus_per_node": 64}, {**JOB, "name": "md-2"}]
    response = client_for(world.users["pi_a"]).post(
        "/api/v1/jobs/batch/", {"project": world.objects["project"], "jobs": jobs}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [a["index"] for a in body["accepted"]] == [0, 3]
    assert [(r["index"], r["code"]) for r in body["refused"]] == [(1, "invalid"), (2, "no_partition_fits")]
    assert "cores_per_node" in body["refused"][0]["fields"]
    assert Job.objects.filter(batch_id=body["batch"]).count() == 2


def test_batch_size_is_bounded(world):
    response = client_for(world.users["pi_a"]).post(
        "/api/v1/jobs/batch/", {"project": world.objects["project"], "jobs": [JOB] * 10_001}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batch_too_large"


def test_idempotency_key_replays_the_first_answer_and_creates_nothing_new(world):
    pi = client_for(world.users["pi_a"])
    body = {"project": world.objects["project"], "jobs": [JOB, JOB]}
    first = pi.post("/api/v1/jobs/batch/", body, format="json", HTTP_IDEMPOTENCY_KEY="campus-42")
    count = Job.objects.count()
    again = pi.post("/api/v1/jobs/batch/", body, format="json", HTTP_IDEMPOTENCY_KEY="campus-42")
    assert again.status_code == first.status_code == 200
    assert again.json() == first.json()
    assert Job.objects.count() == count

    other = pi.post("/api/v1/jobs/batch/", {**body, "jobs": [JOB]}, format="json", HTTP_IDEMPOTENCY_KEY="campus-42")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_idempotency_keys_are_per_caller(world):
    body = {"project": world.objects["project"], **JOB}
    a = client_for(world.users["pi_a"]).post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    b = client_for(world.users["researcher_a"]).post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_a_token_with_jobs_submit_can_submit_and_a_foreign_token_cannot_see(world):
    from tests.factories import make_token

    _, secret = make_token(world.a, ["jobs:submit", "read"], world.users["admin_a"], name="hpc-gateway")
    campus = client_for(token=secret)
    created = campus.post("/api/v1/jobs/", {"project": world.objects["project"], **JOB}, format="json")
    assert created.status_code == 201, created.json()
    foreign = world.client("token_b_admin")
    assert foreign.get(f"/api/v1/jobs/{created.json()['id']}/").status_code == 404
    assert created.json()["id"] not in [j["id"] for j in foreign.get("/api/v1/jobs/").json()["results"]]


def test_cancel_before_dispatch_releases_and_refuses_twice(world):
    pi = client_for(world.users["pi_a"])
    job_id = world.objects["job"]
    response = pi.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    again = pi.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"


def test_job_list_pins_its_query_count(world, django_assert_max_num_queries):
    pi = client_for(world.users["pi_a"])
    pi.post("/api/v1/jobs/batch/", {"project": world.objects["project"], "jobs": [JOB] * 30}, format="json")
    with django_assert_max_num_queries(9):
        body = pi.get("/api/v1/jobs/?page_size=50").json()
    assert body["count"] >= 31
