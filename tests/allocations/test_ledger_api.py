"""The ledger and allocations over the REST API: filters, CSV export, balances and usage."""

import csv
import io

import pytest

from allocations import ledger
from allocations.models import LedgerEntry
from portal.errors import Conflict
from tests.allocations.helpers import API, allocation_of, create_and_submit, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def allocation(fed, project, catalogue):
    """An approved explore allocation with one settled job and one open hold."""
    allocation = allocation_of(create_and_submit(fed.client("pi_a"), project["id"])["id"])
    hold = ledger.place_hold(allocation=allocation, resource_class=catalogue["cpu"], amount=36_000, job_ref="j-1")
    ledger.settle(hold=hold, actual=18_000)
    ledger.place_hold(allocation=allocation, resource_class=catalogue["gpu:v100"], amount=7_200, job_ref="j-2")
    return allocation


def rows(response) -> list[tuple]:
    assert response.status_code == 200, response.content
    return [(r["kind"], r["resource_class"], r["amount"]) for r in response.json()["results"]]


def test_ledger_lists_entries_newest_first_with_display_amounts(fed, allocation):
    response = fed.client("pi_a").get(f"{API}/allocations/{allocation.pk}/ledger/")

    assert rows(response) == [
        ("hold", "gpu:v100", 7_200),
        ("charge", "cpu", 18_000),
        ("release", "cpu", -36_000),
        ("hold", "cpu", 36_000),
        ("award", "gpu:v100", 360_000),
        ("award", "cpu", 18_000_000),
    ]
    first = response.json()["results"][0]
    assert (first["amount_display"], first["job_ref"], first["actor"]) == ("2.00", "j-2", "system")


def test_ledger_filters_by_kind_class_and_time(fed, allocation):
    pi = fed.client("pi_a")
    for query, expected in (
        ("kind=award", [("award", "gpu:v100", 360_000), ("award", "cpu", 18_000_000)]),
        ("kind=charge", [("charge", "cpu", 18_000)]),
        ("resource_class=gpu:v100", [("hold", "gpu:v100", 7_200), ("award", "gpu:v100", 360_000)]),
        ("kind=hold&resource_class=cpu", [("hold", "cpu", 36_000)]),
        ("kind=refund", []),
        ("since=2100-01-01T00:00:00Z", []),
        ("until=2000-01-01T00:00:00Z", []),
    ):
        assert rows(pi.get(f"{API}/allocations/{allocation.pk}/ledger/?{query}")) == expected, query


def test_ledger_refuses_an_unknown_kind(fed, allocation):
    response = fed.client("pi_a").get(f"{API}/allocations/{allocation.pk}/ledger/?kind=gift")
    assert response.status_code == 400 and response.json()["error"]["fields"].keys() == {"kind"}


def test_ledger_export_is_a_csv_whose_rows_match_the_entries(fed, allocation):
    response = fed.client("pi_a").get(f"{API}/allocations/{allocation.pk}/ledger/export/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="allocation-{allocation.pk}-ledger.csv"'
    body = b"".join(response.streaming_content).decode()
    header, *lines = list(csv.reader(io.StringIO(body)))
    assert header == [
        "id",
        "created_at",
        "kind",
        "resource_class",
        "amount_smallest_units",
        "amount",
        "unit",
        "request",
        "job_ref",
        "actor",
        "memo",
    ]
    entries = LedgerEntry.objects.filter(allocation=allocation).order_by("created_at", "id")
    assert [
        (int(i), kind, rc, int(units), amount, unit, request, job_ref, memo)
        for i, _, kind, rc, units, amount, unit, request, job_ref, _, memo in lines
    ] == [
        (
            e.pk,
            e.kind,
            e.resource_class.code,
            e.amount,
            str(ledger.to_display(e.resource_class, e.amount)),
            e.resource_class.unit,
            str(e.request_id or ""),
            e.job_ref,
            e.memo,
        )
        for e in entries
    ]
    assert [line[2] for line in lines] == ["award", "award", "hold", "release", "charge", "hold"]
    assert lines[0][5:7] == ["5000.00", "core-hour"]


def test_ledger_export_applies_the_same_filters(fed, allocation):
    response = fed.client("pi_a").get(f"{API}/allocations/{allocation.pk}/ledger/export/?kind=award")
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1:]
    assert [(line[2], line[3]) for line in lines] == [("award", "cpu"), ("award", "gpu:v100")]


def test_ledger_is_hidden_from_reviewers_and_other_institutions(fed, allocation):
    for who in ("reviewer", "admin_b", "researcher_b", "token_b_admin"):
        client = fed.client(who)
        assert client.get(f"{API}/allocations/{allocation.pk}/ledger/").status_code == 404, who
        assert client.get(f"{API}/allocations/{allocation.pk}/ledger/export/").status_code == 404, who
    for who in ("admin_a", "token_a_read", "committee", "fedadmin"):
        assert fed.client(who).get(f"{API}/allocations/{allocation.pk}/ledger/").status_code == 200, who


def test_allocation_detail_shows_balances_and_usage(fed, allocation, today):
    response = fed.client("pi_a").get(f"{API}/allocations/{allocation.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["state"], body["origin_request"]) == (allocation.pk, "active", allocation.origin_id)
    assert body["balances"] == [
        {
            "resource_class": "cpu",
            "unit": "core-hour",
            "awarded": "5000.00",
            "held": "0.00",
            "charged": "5.00",
            "available": "4995.00",
            "credits_available": "4995.00",
        },
        {
            "resource_class": "gpu:v100",
            "unit": "card-hour",
            "awarded": "100.00",
            "held": "2.00",
            "charged": "0.00",
            "available": "98.00",
            "credits_available": "1470.00",
        },
    ]
    # Usage is charges per day and class (18,000 core-seconds = 5 core-hours), with the running total.
    assert body["usage"] == [{"day": today.isoformat(), "resource_class": "cpu", "used": 5.0, "cumulative": 5.0}]


def test_allocation_list_shows_balances(fed, allocation):
    response = fed.client("pi_a").get(f"{API}/allocations/")

    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["id"] == allocation.pk
    assert [(b["resource_class"], b["available"]) for b in row["balances"]] == [
        ("cpu", "4995.00"),
        ("gpu:v100", "98.00"),
    ]
    assert fed.client("pi_a").get(f"{API}/allocations/?state=expired").json()["results"] == []


def test_committee_suspends_an_allocation_over_the_api_and_holds_are_refused(fed, allocation, catalogue):
    url = f"/allocations/{allocation.pk}/state/"

    response = post(fed.client("committee"), url, {"state": "suspended", "reason": "Audit"})

    assert response.status_code == 200 and response.json()["state"] == "suspended"
    assert len(response.json()["balances"]) == 2
    allocation.refresh_from_db()
    with pytest.raises(Conflict) as refused:
        ledger.place_hold(allocation=allocation, resource_class=catalogue["cpu"], amount=1, job_ref="j")
    assert refused.value.code == "allocation_not_active"
    assert post(fed.client("pi_a"), url, {"state": "active", "reason": "Mine"}).status_code == 403
    resumed = post(fed.client("committee"), url, {"state": "active", "reason": "Audit passed"})
    assert resumed.json()["state"] == "active"
