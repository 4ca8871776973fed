"""manage.py replay_trace: a trace through the router and simulated centres, deterministic, read-only."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from federation.inventory import DEFAULT_INVENTORY
from federation.models import Job, Site
from federation.trace_replay import TraceError, percentile, read_trace
from tests.factories import build_small_federation

SAMPLE = Path(__file__).resolve().parents[2] / "federation" / "data" / "openb_pod_sample.csv"
HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time"


def run(*args) -> dict:
    out = StringIO()
    call_command("replay_trace", *map(str, args), "--json", stdout=out)
    return json.loads(out.getvalue())


def write(tmp_path, lines, name="trace.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_small_replay_gives_plausible_deterministic_figures():
    first = run(SAMPLE, "--sites", DEFAULT_INVENTORY, "--limit", 300, "--compress", 600, "--seed", 7)
    again = run(SAMPLE, "--sites", DEFAULT_INVENTORY, "--limit", 300, "--compress", 600, "--seed", 7)
    assert first == again
    assert first["jobs"] == 300
    replayed = first["jobs"] - first["skipped_never_started"]
    assert first["accepted"] + first["rejected"] == replayed
    assert first["completed"] + first["failed"] + first["timed_out"] + first["unfinished"] == first["accepted"]
    assert first["completed"] > first["failed"] > 0  # the trace's failed pods fail (exit code 1)
    assert first["unfinished"] == 0
    for site in first["sites"]:
        assert 0 <= site["card_utilisation"] <= 1 and 0 <= site["core_utilisation"] <= 1
        if site["started"]:
            assert 0 <= site["wait_p50_s"] <= site["wait_p90_s"] <= site["wait_p99_s"]
    assert any(s["card_utilisation"] > 0 for s in first["sites"])
    other_seed = run(SAMPLE, "--sites", DEFAULT_INVENTORY, "--limit", 300, "--compress", 600, "--seed", 8)
    assert other_seed["accepted"] == first["accepted"]  # routing does not depend on the seed; walltimes do


def test_heavier_compression_means_longer_waits_on_a_small_federation(tmp_path):
    # 40 one-card jobs of one hour arriving within a minute on a site with 8 cards: most must queue.
    inventory = write(tmp_path, ["sn,cpu_milli,memory_mib,gpu,model"]
                      + [f"n{i},96000,393216,8,G2" for i in range(1)] + ["c0,32000,262144,0,"], "nodes.csv")
    jobs = [f"p{i},4000,8192,1,1000,,LS,Succeeded,{i},{i + 3600},{i}" for i in range(40)]
    trace = write(tmp_path, [HEADER, *jobs])
    report = run(trace, "--sites", inventory, "--compress", 1, "--tick", 1)
    (site,) = [s for s in report["sites"] if s["accepted"]]
    assert site["accepted"] == 40 and site["completed"] + site["timed_out"] == 40
    assert site["wait_p50_s"] >= 3600 and site["wait_p99_s"] >= 3 * 3600
    assert site["card_utilisation"] > 0.6  # 8 cards kept busy until the queue drained
    assert site["card_utilisation_arrivals"] > 0.8  # all 8 cards busy within seconds of the first arrivals


def test_rejected_jobs_are_counted_with_their_reasons(tmp_path):
    jobs = [
        "ok,4000,8192,1,1000,,LS,Succeeded,0,600,0",
        "h100,4000,8192,1,1000,H100,LS,Succeeded,10,610,10",  # a card model no site has
        "huge,4000,8192,64,1000,,LS,Succeeded,20,620,20",  # more cards than any node
        "pending,4000,8192,1,1000,,LS,Pending,30,,",  # never started: skipped, not rejected
    ]
    report = run(write(tmp_path, [HEADER, *jobs]), "--sites", DEFAULT_INVENTORY)
    assert report["skipped_never_started"] == 1
    assert report["accepted"] == 1
    assert report["rejected_by"] == {"no_partition_fits": 1, "unknown_accelerator_model": 1}
    out = StringIO()
    call_command("replay_trace", str(write(tmp_path, [HEADER, *jobs])), "--sites", str(DEFAULT_INVENTORY),
                 stdout=out)
    assert "rejected: 2 (no_partition_fits 1, unknown_accelerator_model 1)" in out.getvalue()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["name,cpu_milli,num_gpu", "a,1000,0"], "missing columns memory_mib, creation_time"),
        ([HEADER, "a,lots,1024,0,0,,LS,Succeeded,0,10,0"], "trace.csv:2: cpu_milli is not a whole number"),
        ([HEADER, "a,1000,1024,0,0,,LS,Succeeded,,10,0"], "trace.csv:2: empty creation_time"),
        ([HEADER, "a,-1000,1024,0,0,,LS,Succeeded,0,10,0"], "trace.csv:2: negative resources"),
        ([HEADER], "no jobs"),
    ],
)
def test_bad_traces_are_clear_command_errors(tmp_path, lines, message):
    with pytest.raises(CommandError, match=message):
        run(write(tmp_path, lines), "--sites", DEFAULT_INVENTORY)


def test_bad_arguments_and_missing_files(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        run(tmp_path / "absent.csv", "--sites", DEFAULT_INVENTORY)
    with pytest.raises(CommandError, match="--compress must be positive"):
        run(SAMPLE, "--compress", 0, "--sites", DEFAULT_INVENTORY)
    with pytest.raises(CommandError, match="missing columns"):
        run(SAMPLE, "--sites", SAMPLE)  # a pod list is not an inventory


@pytest.mark.django_db
def test_replay_on_the_database_federation_writes_nothing(fed):
    with pytest.raises(CommandError, match="no partitions"):
        run(SAMPLE, "--limit", 10)
    build_small_federation(fed)
    Site.objects.filter(code="tianjin").update(state="offline")
    with CaptureQueriesContext(connection) as captured:
        report = run(SAMPLE, "--limit", 200, "--compress", 600)
    writes = [q["sql"] for q in captured.captured_queries
              if q["sql"].lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "COPY")]
    assert writes == []
    assert Job.objects.count() == 0
    sites = {s["site"]: s for s in report["sites"]}
    assert set(sites) == {"zhengzhou", "tianjin"}
    assert sites["tianjin"]["accepted"] == 0  # offline in the database: the router sends nothing there
    assert sites["zhengzhou"]["accepted"] > 0
    assert report["accepted"] + report["rejected"] == 200 - report["skipped_never_started"]


def test_read_trace_orders_by_arrival_and_percentiles_are_nearest_rank(tmp_path):
    path = write(tmp_path, [HEADER, "b,1000,1,0,0,,LS,Succeeded,50,60,50", "a,1500,1,2,500,T4|P100,LS,Failed,5,9,5"])
    a, b = read_trace(path)
    assert (a.name, a.cores, a.gpus, a.accepted_models, a.runtime_s, a.exit_code) == (
        "a", 2, 2, frozenset({"T4", "P100"}), 4, 1)
    assert (b.name, b.accepted_models, b.exit_code) == ("b", None, 0)
    assert percentile([], 0.5) is None
    assert percentile([1, 2, 3, 4], 0.5) == 2 and percentile(list(range(1, 101)), 0.99) == 99
    with pytest.raises(TraceError):
        read_trace(tmp_path / "nope.csv")
