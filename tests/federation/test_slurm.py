"""The Slurm adapter without a real Slurm: error mapping, state mapping, exit codes, tokens, retries,
redaction, and the adapter's submit/poll/cancel/capacity against an in-process fake slurmrestd."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections import namedtuple

import pytest

from federation import slurm
from federation.slurm import (
    JobScript,
    KeyMinter,
    SlurmAdapter,
    SlurmClient,
    SlurmError,
    SlurmSiteConfig,
    StaticToken,
    TokenFile,
    error_from_response,
    exit_status,
    gres_gpus,
    job_description,
    map_job,
    mint_hs256,
)
from tests.federation.slurm_fake import FakeSlurm

DJ = namedtuple("DJ", "job_id partition nodes cores_per_node memory_mb_per_node gpus_per_node walltime_s")


@pytest.fixture
def fake():
    with FakeSlurm() as server:
        yield server


def scripts_for(command="sleep 1"):
    def scripts(ids):
        return {i: JobScript(slurm.build_script(job_id=i, name=f"j{i}", launch_script="", command=command),
                             {"PATH": slurm.DEFAULT_PATH, "SUANWANG_JOB_ID": str(i)}) for i in ids}
    return scripts


def adapter_on(fake, **kwargs) -> SlurmAdapter:
    config = SlurmSiteConfig(code="local", url=fake.url, user="ci", token_source="token", token=fake.token,
                             partitions={"cpu": "debug", "gpu": "debug"})
    client = SlurmClient(fake.url, "ci", config.tokens(), timeout=2.0, retry_delay=0.01)
    return SlurmAdapter(config, scripts=kwargs.pop("scripts", scripts_for()), client=client, **kwargs)


# --- pure mapping --------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "body", "code"), [
    (500, {"errors": [{"error_code": 2014, "error": "Requested node configuration is not available"}]},
     "slurm_config_unavailable"),
    (500, {"errors": [{"error_number": 2017, "error": "Invalid job id specified"}]}, "slurm_invalid_job"),
    (500, {"errors": [{"error_number": 2127, "error": "environment must be set"},
                      {"error_number": 9001, "error": "Failure during parsing"}]}, "slurm_invalid_request"),
    (500, {"errors": [{"error_number": -1, "error": "Unspecified error"}]}, "slurm_auth_failed"),
    (500, {"errors": [{"error_number": 5005, "error": "Zero Bytes were transmitted"}]}, "slurm_auth_failed"),
    (500, {"errors": [{"error_number": 2002, "error": "Access/permission denied"}]}, "slurm_permission_denied"),
    (500, {"errors": [{"error_code": 2000, "error": "Invalid partition name specified"}]}, "slurm_invalid_partition"),
    (500, {"errors": [{"error_number": 2020, "error": "Job can not be altered now"}]}, "slurm_busy"),
    (500, {"errors": [{"error_number": 4242, "error": "Something new"}]}, "slurm_error"),
    (401, b"Authentication failure", "slurm_auth_failed"),
    (400, b"bad", "slurm_invalid_request"),
    (502, b"<html>", "slurm_error"),
    (200, b"not json", "slurm_error"),
])
def test_slurm_errors_become_our_codes(status, body, code):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    error = error_from_response(status, raw)
    assert error is not None and error.code == code
    assert error.http_status == status


def test_an_answer_without_errors_is_no_error_and_the_message_names_slurms_number():
    assert error_from_response(200, b'{"errors": [], "job_id": 3}') is None
    error = error_from_response(500, json.dumps({"errors": [{"error_code": 2014, "error": "Requested node "
                                                             "configuration is not available"}]}).encode())
    assert error.message == "Slurm error 2014: Requested node configuration is not available"


@pytest.mark.parametrize(("raw", "code"), [(0, 0), (768, 3), (256, 1), (255 << 8, 255), (9, 137), (15, 143),
                                           (None, None), (-1, None)])
def test_exit_code_is_the_high_byte_of_the_raw_wait_status(raw, code):
    assert exit_status(raw) == code


@pytest.mark.parametrize(("record", "expected"), [
    ({"job_state": "PENDING"}, ("queued", "", None)),
    ({"job_state": "CONFIGURING"}, ("queued", "", None)),
    ({"job_state": "RUNNING"}, ("running", "", None)),
    ({"job_state": "COMPLETING"}, ("running", "", None)),
    ({"job_state": "COMPLETED", "exit_code": 0}, ("completed", "", 0)),
    ({"job_state": "FAILED", "exit_code": 768}, ("failed", "exit_code=3", 3)),
    ({"job_state": "CANCELLED", "exit_code": 0}, ("cancelled", "cancelled", None)),
    ({"job_state": "TIMEOUT"}, ("timed_out", "walltime_exceeded", None)),
    ({"job_state": "NODE_FAIL"}, ("failed", "node_failure", None)),
    ({"job_state": "BOOT_FAIL"}, ("failed", "node_failure", None)),
    ({"job_state": "OUT_OF_MEMORY", "exit_code": 0}, ("failed", "out_of_memory", 0)),
    ({"job_state": "PREEMPTED"}, ("failed", "preempted", None)),
    ({"job_state": "DEADLINE"}, ("timed_out", "deadline", None)),
    ({"job_state": "SOMETHING_NEW"}, ("queued", "something_new", None)),
])
def test_slurm_states_map_to_ours(record, expected):
    assert map_job(record) == expected


def test_the_job_description_is_what_v0038_accepts():
    job = job_description(job_id=42, slurm_partition="debug", nodes=2, cores_per_node=8, memory_mb_per_node=4096,
                          gpus_per_node=2, walltime_s=61, environment={"PATH": "/bin"}, workdir="/home/ci")
    assert job["name"] == "suanwang-42" and job["partition"] == "debug"
    assert job["nodes"] == 2 and isinstance(job["nodes"], int)  # not [min, max]: silently ignored by v0.0.38
    assert job["tasks_per_node"] == 1 and job["cpus_per_task"] == 8 and job["memory_per_node"] == 4096
    assert job["gpus_per_node"] == "2"  # a bare count ("gpu:2" would ask for GPU *type* "gpu")
    assert job["time_limit"] == 2  # minutes, rounded up
    assert job["environment"] == {"PATH": "/bin"} and job["current_working_directory"] == "/home/ci"
    cpu = job_description(job_id=1, slurm_partition="p", nodes=1, cores_per_node=1, memory_mb_per_node=1,
                          gpus_per_node=0, walltime_s=60, environment={}, workdir="")
    assert "gpus_per_node" not in cpu and cpu["time_limit"] == 1 and cpu["current_working_directory"] == "/tmp"


def test_gres_strings_count_gpus():
    assert gres_gpus("gpu:8") == 8
    assert gres_gpus("gpu:a100:4(S:0)") == 4
    assert gres_gpus("gpu:(null):2(IDX:0-1)") == 2
    assert gres_gpus("gpu:v100:2(S:0),gpu:t4:1(S:1)") == 3
    assert gres_gpus("") == 0 and gres_gpus(None) == 0 and gres_gpus("mps:100") == 0


def test_minted_tokens_are_hs256_jwts_slurm_can_check():
    key = b"k" * 32
    token = mint_hs256(key, "ci", lifespan_s=600, now=1_000_000)
    header, claims, signature = token.split(".")

    def decode(part):
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(decode(header)) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(decode(claims)) == {"exp": 1_000_600, "iat": 1_000_000, "sun": "ci"}
    assert decode(signature) == hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest()


def test_token_file_is_reread_when_it_changes_and_key_minter_reads_the_key(tmp_path):
    path = tmp_path / "ci.jwt"
    path.write_text("SLURM_JWT=first\n")
    source = TokenFile(str(path))
    assert source.token() == "first"
    path.write_text("second\n")
    source.refresh()
    assert source.token() == "second"
    with pytest.raises(SlurmError) as missing:
        TokenFile(str(tmp_path / "nope")).token()
    assert missing.value.code == "slurm_auth_failed"
    key = tmp_path / "jwt.key"
    key.write_bytes(b"s" * 32)
    minter = KeyMinter(str(key), "ci", lifespan_s=600)
    header, claims, signature = minter.token().split(".")
    assert json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sun"] == "ci"
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == hmac.new(
        b"s" * 32, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert minter.token() == f"{header}.{claims}.{signature}"  # reused while it has more than a minute left


# --- the client against the fake ---------------------------------------------------------------
def test_client_keeps_one_connection_alive(fake):
    client = SlurmClient(fake.url, "ci", StaticToken(fake.token))
    ping = client.ping()
    assert ping["ok"] and ping["version"] == "22.05.8" and ping["api"] == "v0.0.38" and ping["latency_ms"] >= 0
    conn = client._conn
    for _ in range(5):
        client.jobs()
    assert client._conn is conn  # the same keep-alive connection


def test_a_dropped_connection_is_retried_for_reads(fake):
    client = SlurmClient(fake.url, "ci", StaticToken(fake.token), retry_delay=0.01)
    fake.drop_next = 2
    assert client.jobs() == []
    assert len(fake.requests) == 3


def test_a_submit_that_reached_slurm_is_not_sent_twice(fake):
    client = SlurmClient(fake.url, "ci", StaticToken(fake.token), retry_delay=0.01)
    fake.drop_next = 1  # the server read the request, then dropped the connection: it may have been received
    with pytest.raises(SlurmError) as error:
        client.submit("#!/bin/bash\ntrue\n", job_description(
            job_id=1, slurm_partition="debug", nodes=1, cores_per_node=1, memory_mb_per_node=100, gpus_per_node=0,
            walltime_s=60, environment={"PATH": "/bin"}, workdir="/tmp"))
    assert error.value.code == "slurm_unavailable"
    assert [m for m, *_ in fake.requests] == ["POST"]


def test_retries_are_bounded_and_end_in_slurm_unavailable():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = SlurmClient(f"http://127.0.0.1:{port}", "ci", StaticToken("t"), retries=2, retry_delay=0.01)
    started = time.monotonic()
    with pytest.raises(SlurmError) as error:
        client.ping()
    assert error.value.code == "slurm_unavailable" and error.value.status_code == 503
    assert client.calls == 3  # one try and two retries
    assert time.monotonic() - started < 2


def test_a_silent_server_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts connections, never answers
        client = SlurmClient(f"http://127.0.0.1:{listener.getsockname()[1]}", "ci", StaticToken("t"), timeout=0.2,
                             list_timeout=0.2, retries=1, retry_delay=0.01)
        with pytest.raises(SlurmError) as error:
            client.jobs()
    assert error.value.code == "slurm_unavailable" and "timed out" in error.value.message


def test_a_bad_token_is_an_auth_failure_even_as_http_500(fake):
    client = SlurmClient(fake.url, "ci", StaticToken("expired"))
    with pytest.raises(SlurmError) as error:
        client.ping()
    assert error.value.code == "slurm_auth_failed" and error.value.http_status == 500


def test_a_renewed_token_file_is_picked_up_after_an_auth_failure(fake, tmp_path):
    path = tmp_path / "ci.jwt"
    path.write_text("old-token")
    source = TokenFile(str(path))
    client = SlurmClient(fake.url, "ci", source)
    with pytest.raises(SlurmError):
        client.ping()
    path.write_text(fake.token)
    assert client.ping()["ok"]


def test_credentials_never_show_in_errors_reprs_or_logs(fake, caplog):
    secret = "s3cr3t-token-value"
    config = SlurmSiteConfig(code="x", url=fake.url, user="ci", token_source="token", token=secret)
    client = SlurmClient(fake.url, "ci", config.tokens(), retry_delay=0.01)
    adapter = SlurmAdapter(config, scripts=scripts_for(), client=client)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SlurmError) as error:
        client.ping()
    fake.submit_errors = []
    acks = adapter.submit_batch([DJ(1, "cpu", 1, 1, 100, 0, 60)])  # refused by auth: the batch stops
    assert acks == []
    texts = [repr(config), repr(client), repr(adapter), repr(config.tokens()), str(error.value), error.value.message,
             json.dumps(error.value.slurm_errors), caplog.text, repr(config.fingerprint())]
    assert all(secret not in t for t in texts)
    assert secret in fake.tokens_seen()  # it was sent, as the header, and only there


# --- the adapter against the fake ----------------------------------------------------------------
def test_submit_maps_the_job_and_refuses_what_slurm_cannot_run(fake):
    adapter = adapter_on(fake)
    acks = adapter.submit_batch([DJ(7, "gpu", 1, 4, 2048, 2, 600), DJ(8, "gpu", 1, 4, 2048, 99, 600)])
    assert [(a.job_id, a.accepted) for a in acks] == [("7", True), ("8", False)]
    assert acks[1].reason.startswith("slurm_config_unavailable: Slurm error 2014")
    job = fake.by_name("suanwang-7")
    assert job["job"]["partition"] == "debug"  # our "gpu" partition is Slurm's "debug"
    assert job["job"]["gpus_per_node"] == "2" and job["job"]["environment"]["SUANWANG_JOB_ID"] == "7"
    assert job["script"].startswith("#!/bin/bash\n") and "sleep 1" in job["script"]
    again = adapter.submit_batch([DJ(7, "gpu", 1, 4, 2048, 2, 600)])
    assert again[0].reason == "duplicate_job_id" and again[0].site_job_id == str(job["job_id"])


def test_a_job_with_nothing_to_run_is_refused_with_the_reason(fake):
    adapter = adapter_on(fake, scripts=lambda ids: {})
    ack = adapter.submit_batch([DJ(3, "cpu", 1, 1, 100, 0, 60)])[0]
    assert not ack.accepted and ack.reason.startswith("slurm_no_command")
    assert fake.jobs == {}


def test_when_slurm_stops_answering_mid_batch_the_rest_gets_no_answer(fake):
    adapter = adapter_on(fake)
    fake.submit_errors = [(-1, "Unspecified error")]  # e.g. an expired token: not the job's fault
    assert adapter.submit_batch([DJ(1, "cpu", 1, 1, 100, 0, 60), DJ(2, "cpu", 1, 1, 100, 0, 60)]) == []
    assert adapter.last_error.code == "slurm_auth_failed"
    acks = adapter.submit_batch([DJ(1, "cpu", 1, 1, 100, 0, 60), DJ(2, "cpu", 1, 1, 100, 0, 60)])
    assert [a.accepted for a in acks] == [True, True]


def test_poll_reports_changes_once_with_real_times_and_exit_codes(fake):
    adapter = adapter_on(fake)
    adapter.submit_batch([DJ(1, "cpu", 1, 1, 100, 0, 60), DJ(2, "cpu", 1, 1, 100, 0, 60),
                          DJ(3, "cpu", 1, 1, 100, 0, 60)])
    first = adapter.poll()
    assert sorted((c.job_id, c.state) for c in first) == [("1", "queued"), ("2", "queued"), ("3", "queued")]
    assert adapter.poll() == []  # nothing changed: nothing reported
    one, two, three = (fake.by_name(f"suanwang-{i}")["job_id"] for i in (1, 2, 3))
    fake.set_state(one, "RUNNING", start=1000)
    fake.set_state(two, "RUNNING", start=1000)
    assert sorted((c.job_id, c.state, c.time) for c in adapter.poll()) == [("1", "running", 1000.0),
                                                                          ("2", "running", 1000.0)]
    fake.set_state(one, "COMPLETED", exit_code=0, start=1000, end=1042)
    fake.set_state(two, "FAILED", exit_code=768, start=1000, end=1003)
    # Job 3 ran and ended between two polls: its run is reported before its end, so it is charged.
    fake.set_state(three, "TIMEOUT", start=1001, end=1061)
    changes = {(c.job_id, c.state): c for c in adapter.poll()}
    assert (changes["1", "completed"].time, changes["1", "completed"].exit_code) == (1042.0, 0)
    assert (changes["2", "failed"].exit_code, changes["2", "failed"].detail) == (3, "exit_code=3")
    assert changes["3", "running"].time == 1001.0 and changes["3", "timed_out"].detail == "walltime_exceeded"
    assert adapter.poll() == []


def test_poll_follows_only_jobs_the_federation_handed_over(fake):
    adapter = adapter_on(fake, active=lambda ids: {i for i in ids if i == 5})
    other = adapter_on(fake)  # another process submitted these
    other.submit_batch([DJ(5, "cpu", 1, 1, 100, 0, 60), DJ(6, "cpu", 1, 1, 100, 0, 60)])
    fake.jobs[99] = {"job_id": 99, "name": "not-ours", "user_name": "ci", "job_state": "RUNNING"}
    fake.jobs[98] = {"job_id": 98, "name": "suanwang-5", "user_name": "someone-else", "job_state": "RUNNING"}
    fake.touch()
    assert [(c.job_id, c.state) for c in adapter.poll()] == [("5", "queued")]
    assert adapter.tracked() == {5: fake.by_name("suanwang-5")["job_id"]}


def test_a_job_slurm_forgot_is_reported_lost_to_the_site(fake):
    adapter = adapter_on(fake)
    adapter.submit_batch([DJ(1, "cpu", 1, 1, 100, 0, 60)])
    adapter.poll()
    fake.jobs.clear()  # e.g. slurmctld lost its state
    fake.touch()
    [change] = adapter.poll()
    assert (change.job_id, change.state, change.detail) == ("1", "failed", "site_outage")
    assert adapter.poll() == [] and adapter.tracked() == {}


def test_cancel_deletes_the_slurm_job(fake):
    adapter = adapter_on(fake)
    adapter.submit_batch([DJ(4, "cpu", 1, 1, 100, 0, 60)])
    assert adapter.cancel(4) is True
    assert fake.by_name("suanwang-4")["job_state"] == "CANCELLED"
    assert any(m == "DELETE" for m, *_ in fake.requests)
    adapter.submit_batch([DJ(5, "cpu", 1, 1, 100, 0, 60)])
    fresh = adapter_on(fake)  # a process that did not submit it finds the live job by name
    assert fresh.cancel(5) is True and fake.by_name("suanwang-5")["job_state"] == "CANCELLED"
    assert fresh.cancel(4) is False  # already ended: nothing to cancel
    assert fresh.cancel(12345) is False
    [change] = [c for c in adapter.poll() if c.job_id == "4"]
    assert change.state == "cancelled"


def test_capacity_comes_from_nodes_and_partitions_and_is_cached(fake):
    adapter = adapter_on(fake)
    empty = adapter.capacity()
    assert empty.partitions == []  # not read yet: the router uses the published figures
    fake.nodes[0].update(state="mixed", idle_cpus=60, gres_used="gpu:(null):2(IDX:0-1)", alloc_memory=1000)
    fake.nodes[1].update(state="drained")
    snapshot = adapter.refresh_capacity()
    cpu = snapshot.partition("cpu")
    assert (cpu.nodes_total, cpu.nodes_up, cpu.nodes_idle) == (2, 1, 0)
    assert (cpu.cores_total, cpu.cores_free, cpu.gpus_total, cpu.gpus_free) == (128, 60, 16, 6)
    assert cpu.memory_mb_free == 256000
    assert snapshot.partition("gpu").cores_total == 128  # both of ours map to Slurm's "debug"
    calls = len(fake.requests)
    assert adapter.capacity() is snapshot and len(fake.requests) == calls  # no call on the routing path
    assert not adapter.capacity_due()


def test_a_quiet_poll_asks_only_whether_anything_changed(fake):
    adapter = adapter_on(fake)
    adapter.submit_batch([DJ(1, "cpu", 1, 1, 100, 0, 60)])
    adapter.poll()
    before = len(fake.requests)
    fake.last_update = 0  # nothing changed at the centre since
    assert adapter.poll() == []
    method, path, *_ = fake.requests[before]
    assert path.endswith(f"/jobs?update_time={adapter._since}")  # answered 304, no list read
    fake.set_state(fake.by_name("suanwang-1")["job_id"], "RUNNING", start=time.time())
    assert [c.state for c in adapter.poll()] == ["running"]
    adapter._full_at -= adapter.FULL_POLL_S  # now and then the whole list, changed or not
    fake.last_update = 0
    adapter.poll()
    assert fake.requests[-1][1].endswith("/jobs")


def test_the_job_list_gets_a_longer_timeout_than_other_calls():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # accepts connections, never answers
        client = SlurmClient(f"http://127.0.0.1:{listener.getsockname()[1]}", "ci", StaticToken("t"), timeout=0.1,
                             list_timeout=0.6, retries=0)
        started = time.monotonic()
        with pytest.raises(SlurmError):
            client.ping()
        assert time.monotonic() - started < 0.5
        started = time.monotonic()
        with pytest.raises(SlurmError):
            client.jobs()
        assert time.monotonic() - started >= 0.55


def test_a_job_name_cannot_add_lines_to_the_batch_script():
    script = slurm.build_script(job_id=7, name="x\nrm -rf ~\r\tend", launch_script="", command="true")
    assert script.splitlines() == ["#!/bin/bash", "# Suanwang job 7: x rm -rf ~  end", "true"]
