"""The allocation page: balance per class with bars, the usage-over-time chart (inline SVG), the
ledger with its kind filter, pages and the CSV export link; the institution admin's overview."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from allocations import ledger
from allocations.models import Allocation, AllocationBalance, ResourceClass
from allocations.templatetags.allocations_tags import num

pytestmark = pytest.mark.django_db


def charge(allocation: Allocation, code: str, core_hours: int, job: str) -> None:
    rc = ResourceClass.objects.get(code=code)
    hold = ledger.place_hold(allocation=allocation, resource_class=rc, amount=core_hours * rc.scale, job_ref=job)
    ledger.settle(hold=hold, actual=core_hours * rc.scale)


def test_the_allocation_page_shows_the_balance_with_bars(world, browser):
    allocation = Allocation.objects.get(pk=world.objects["allocation"])
    rc = ResourceClass.objects.get(code="cpu")
    before = AllocationBalance.objects.get(allocation=allocation, resource_class=rc)  # the world may run jobs
    charge(allocation, "cpu", 250, "job-1")
    ledger.place_hold(allocation=allocation, resource_class=rc, amount=100 * rc.scale, job_ref="job-2")
    held = Decimal(before.held) / rc.scale + 100
    charged = Decimal(before.charged) / rc.scale + 250
    available = 1000 - held - charged

    page = (
        browser(world.users["researcher_a"])
        .get(reverse("allocations:allocation_detail", args=[allocation.pk]))
        .content.decode()
    )

    row = page.split('<table class="table al-balances">')[1].split("</table>")[0]
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r'<td class="num">(.*?)</td>', row)]
    assert cells == [num(1000), num(held), num(charged), num(available), num(available)]  # credits: 1 per core-hour
    assert f'style="width: {charged / 10:.2f}%"' in row and f'style="width: {held / 10:.2f}%"' in row  # the bars
    assert f"{num(available)} credits available" in page


def test_the_usage_chart_draws_the_cumulative_use_per_class(world, browser):
    allocation = Allocation.objects.get(pk=world.objects["allocation"])
    url = reverse("allocations:allocation_detail", args=[allocation.pk])
    client = browser(world.users["pi_a"])
    assert "No usage yet" in client.get(url).content.decode()

    charge(allocation, "cpu", 100, "job-1")
    charge(allocation, "cpu", 150, "job-2")
    page = client.get(url).content.decode()

    svg = page.split('<figure class="al-chart">')[1].split("</figure>")[0]
    assert "<svg" in svg and "<polyline" in svg
    assert "250 of 1,000 core-hour (25.0%)" in svg
    points = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()
    heights = [float(p.split(",")[1]) for p in points]
    assert heights[0] > heights[-1]  # the line rises from 0 % to 25 %
    assert "Usage per day (table)" in page


def test_the_ledger_is_filtered_by_kind_paginated_and_exported_as_csv(world, browser):
    allocation = Allocation.objects.get(pk=world.objects["allocation"])
    for n in range(30):
        charge(allocation, "cpu", 1, f"job-{n}")  # 3 entries each: hold, release, charge
    client = browser(world.users["pi_a"])
    url = reverse("allocations:allocation_detail", args=[allocation.pk])

    page = client.get(url).content.decode()
    assert "Page 1 of 2" in page
    charges = client.get(url, {"kind": "charge"}).content.decode()
    ledger_table = charges.split('id="ledger"')[1]
    assert ledger_table.count("al-kind-charge") == 30
    assert "al-kind-hold" not in ledger_table
    export = reverse("api:ledger-export", args=[allocation.pk])
    assert f'href="{export}?kind=charge"' in charges

    csv = client.get(export, {"kind": "charge"})  # the API accepts the portal session
    assert csv.status_code == 200
    assert csv["Content-Type"].startswith("text/csv")
    body = b"".join(csv.streaming_content).decode()
    assert body.count("\n") == 31 and ",charge,cpu," in body


def test_the_allocation_list_shows_balances_and_the_pi_links_to_change_requests(world, browser):
    page = browser(world.users["pi_a"]).get(reverse("allocations:allocation_list")).content.decode()
    assert reverse("allocations:allocation_detail", args=[world.objects["allocation"]]) in page
    assert "1,000" in page  # cpu available of the explore award
    detail = (
        browser(world.users["pi_a"])
        .get(reverse("allocations:allocation_detail", args=[world.objects["allocation"]]))
        .content.decode()
    )
    assert f"?kind=supplement&amp;allocation={world.objects['allocation']}" in detail
    member = (
        browser(world.users["researcher_a"])
        .get(reverse("allocations:allocation_detail", args=[world.objects["allocation"]]))
        .content.decode()
    )
    assert "?kind=supplement" not in member


def test_the_institution_admin_sees_every_request_and_allocation_of_the_institution(world, browser):
    page = (
        browser(world.users["admin_a"])
        .get(reverse("allocations:institution_overview", args=[world.a.pk]))
        .content.decode()
    )
    for key in ("draft", "reviewed", "open"):
        assert reverse("allocations:request_detail", args=[world.objects[key]]) in page
    assert reverse("allocations:allocation_detail", args=[world.objects["allocation"]]) in page
    drafts = (
        browser(world.users["admin_a"])
        .get(reverse("allocations:institution_overview", args=[world.a.pk]), {"state": "draft"})
        .content.decode()
    )
    assert reverse("allocations:request_detail", args=[world.objects["draft"]]) in drafts
    assert reverse("allocations:request_detail", args=[world.objects["reviewed"]]) not in drafts

    thu = (
        browser(world.users["admin_b"])
        .get(reverse("allocations:institution_overview", args=[world.b.pk]))
        .content.decode()
    )
    assert "Climate" not in thu
