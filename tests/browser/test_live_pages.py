"""In a real browser against a real server: a job submitted from the portal form reaches "completed" on
the job list without a reload; the job page appends its timeline live; an operator takes a centre offline
and the federation status board shows it at once (in Chinese); nothing on the way raises a script error."""

import re

import pytest

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser

JOB_WAIT_MS = 90_000  # dispatch on the next tick (2 s), a few seconds of simulated run at 60×


def _submit_job(page, base: str, name: str) -> int:
    page.goto(base + "/jobs/#submit")
    page.wait_for_selector("details#submit[open]")
    project = page.locator("form.fd-form select[name=project]")
    project.select_option(project.locator("option:not([value=''])").first.get_attribute("value"))
    form = page.locator("form.fd-form")
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=nodes]").fill("1")
    form.locator("input[name=cores_per_node]").fill("2")
    form.locator("input[name=memory_gb_per_node]").fill("4")
    form.locator("input[name=gpus_per_node]").fill("0")
    form.locator("input[name=walltime]").fill("0:05")
    page.click("form.fd-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    return int(re.search(r"/jobs/(\d+)/$", page.url).group(1))


def _live(page) -> None:
    page.wait_for_selector('[data-live-indicator][data-state="live"]')


def test_a_job_submitted_from_the_form_reaches_completed_on_the_list_without_a_reload(login, portal_server):
    page = login("researcher@pku.edu.cn")
    job_id = _submit_job(page, portal_server.url, "browser-list")
    page.click("p.fd-crumb a")  # back to the list, as a person would
    page.wait_for_url(portal_server.url + "/jobs/")
    row = page.locator(f'tr[data-job="{job_id}"]')
    first_state = row.get_attribute("data-state")
    assert first_state in ("routed", "dispatched", "queued", "running"), first_state
    _live(page)
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page
    screenshot(page, "jobs-list-before")
    page.wait_for_selector(f'tr[data-job="{job_id}"][data-state="completed"]', timeout=JOB_WAIT_MS)
    assert page.evaluate("window.__sameDocument === true")
    badge = row.locator('[data-f="state"]')
    assert badge.inner_text() == "Completed" and "badge-ok" in badge.get_attribute("class")
    assert re.match(r"ended \d\d:\d\d:\d\d", row.locator('[data-f="times"]').inner_text())
    assert "core-hours" in row.locator('[data-f="charged"]').inner_text()
    screenshot(page, "jobs-list-completed")
    assert page.js_errors == []


def test_the_job_page_follows_its_job_and_appends_the_timeline(login, portal_server):
    page = login("researcher@pku.edu.cn")
    job_id = _submit_job(page, portal_server.url, "browser-detail")
    _live(page)
    page.evaluate("window.__sameDocument = true")
    assert page.locator("section.fd-why").is_visible()  # the routing explanation
    before = page.locator('[data-f="timeline"] li').count()
    page.wait_for_selector('[data-live-page="job"][data-state="completed"]', timeout=JOB_WAIT_MS)
    assert page.evaluate("window.__sameDocument === true")
    page.wait_for_selector('[data-f="timeline"] li[data-event-state="completed"]')
    assert page.locator('[data-f="timeline"] li').count() > before
    assert page.locator('h1 [data-f="state"]').inner_text() == "Completed"
    assert page.locator('[data-f="ended_at"]').inner_text() != "—"
    assert not page.locator('[data-f="cancel"]').is_visible()  # a finished job cannot be cancelled
    assert page.locator(f'text=#{job_id}').count() >= 1
    screenshot(page, "job-detail-completed")
    assert page.js_errors == []


def test_an_operator_takes_a_centre_offline_and_the_status_board_shows_it(login, portal_server):
    board = login("researcher@pku.edu.cn", language="zh-hans")
    board.goto(portal_server.url + "/centres/status/")
    _live(board)
    board.evaluate("window.__sameDocument = true")
    card = board.locator('.sb-card[data-site="tianjin"]')
    assert card.get_attribute("data-state") == "online"
    routable = board.locator('[data-t="routable"]').inner_text()
    screenshot(board, "board-before")

    operator = login("operator@scnet.example.cn")
    watcher = operator.context.new_page()  # the same operator's page left open in another tab
    watcher.goto(portal_server.url + "/centres/tianjin/")
    _live(watcher)
    assert watcher.locator('button[name=state][value="online"]').count() == 0
    operator.goto(portal_server.url + "/centres/tianjin/")
    operator.fill("input[name=reason]", "cooling maintenance")
    operator.click('button[name=state][value="offline"]')
    operator.wait_for_selector('.flash')

    board.wait_for_selector('.sb-card[data-site="tianjin"][data-state="offline"]', timeout=15_000)
    assert board.evaluate("window.__sameDocument === true")
    assert "sb-offline" in card.get_attribute("class")
    assert card.locator('[data-f="state_label"]').inner_text() == "离线"  # the state written out, in Chinese
    assert card.locator('[data-f="reason"]').inner_text() == "cooling maintenance"
    assert int(board.locator('[data-t="routable"]').inner_text()) == int(routable) - 1
    assert board.locator('[data-t="offline"]').inner_text() == "1"
    screenshot(board, "board-offline")
    # The other tab follows: the state, the note, and the operator's buttons are the moves from "offline".
    watcher.wait_for_selector('[data-live-page="centre"][data-state="offline"]')
    assert watcher.locator('[data-f="site_state"]').inner_text() == "Offline"
    assert watcher.locator('[data-state-note="offline"]').is_visible()
    assert watcher.locator('button[name=state][value="online"]').is_visible()
    assert watcher.locator('button[name=state][value="offline"]').count() == 0
    assert watcher.locator("[data-live-site-jobs]").is_visible()  # the centre's jobs, for its operator

    # Back online: the board follows again (and the other tests keep every centre).
    operator.goto(portal_server.url + "/centres/tianjin/")
    operator.click('button[name=state][value="online"]')
    board.wait_for_selector('.sb-card[data-site="tianjin"][data-state="online"]', timeout=15_000)
    assert board.js_errors == [] and operator.js_errors == []
    watcher.close()


def _api_submit(page, base: str, jobs: list[dict]) -> list[dict]:
    """Submit jobs through the REST API with the page's session (as the portal's own scripts would)."""
    import json

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(base + "/api/v1/jobs/batch/", data=json.dumps({"project": 1, "jobs": jobs}),
                                 headers={"X-CSRFToken": csrf, "Content-Type": "application/json",
                                          "Referer": base + "/"})
    assert response.status == 200, response.text()
    body = response.json()
    assert not body["refused"], body
    return body["accepted"]


def test_the_dashboard_slides_in_new_jobs_and_the_board_counts_them_running(login, portal_server):
    page = login("researcher@pku.edu.cn")  # lands on the dashboard
    _live(page)
    page.evaluate("window.__sameDocument = true")
    assert page.locator(".db-allocation [data-balance]").count() >= 1  # balances of the active allocation
    assert page.locator(".db-allocation svg polyline").count() >= 1  # and its usage chart
    held = page.locator('[data-balance$=":cpu"] [data-f="held"]').first
    held_before = held.inner_text()
    accepted = _api_submit(page, portal_server.url, [
        {"name": "browser-long", "cores_per_node": 8, "walltime_s": 4 * 3600, "memory_mb_per_node": 8000}])
    job_id, site = accepted[0]["id"], accepted[0]["site"]
    row = page.wait_for_selector(f'.db-jobs tr[data-job="{job_id}"]')  # a row the server never rendered
    assert page.locator(".db-jobs tr[data-job]").first.get_attribute("data-job") == str(job_id)
    assert "browser-long" in row.inner_text()
    # The whole walltime is held at submission (8 cores × 4 h): the balance follows.
    page.wait_for_function("(before) => document.querySelector('[data-balance$=\":cpu\"] [data-f=\"held\"]')"
                           ".textContent !== before", arg=held_before)
    page.wait_for_selector(f'.db-jobs tr[data-job="{job_id}"][data-state="running"]', timeout=JOB_WAIT_MS)
    page.wait_for_function(  # the cost so far ticks while it runs
        f"""() => (document.querySelector('.db-jobs tr[data-job="{job_id}"] [data-f="so_far"]') || {{}})
                   .textContent.indexOf("so far") > 0""")
    assert page.evaluate("window.__sameDocument === true")

    board = login("operator@scnet.example.cn")
    board.goto(portal_server.url + "/centres/status/")
    _live(board)
    card = f'.sb-card[data-site="{site}"]'
    # The centre reports the job running: its cores are in use on the board (8 cores of one node at least).
    board.wait_for_function(
        f"""() => Number(document.querySelector('{card} [data-f="running"]').textContent) >= 1 &&
                  Number(document.querySelector('{card} .sb-row-cores [data-f="used"]').textContent
                         .replace(/,/g, "")) >= 8""", timeout=30_000)
    screenshot(board, "board-running")
    page.goto(portal_server.url + f"/jobs/{job_id}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('[data-f="cancel"] button')
    page.wait_for_selector('[data-live-page="job"][data-state="cancelled"]')
    assert page.js_errors == [] and board.js_errors == []
