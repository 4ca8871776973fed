"""Real-browser tests: a real server process (uvicorn, the embedded mode with simulated centres ticking)
on a free port, driven by Playwright through Debian's Chromium.

Tests here are marked ``browser``. Without Playwright or /usr/bin/chromium they skip on a newcomer's
machine; with SUANWANG_REQUIRE_SERVICES=1 (.ci/run) they fail instead, and the run fails if no browser
test passed. Screenshots go to $SUANWANG_BROWSER_SHOTS when it is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SUANWANG_CHROMIUM", "/usr/bin/chromium")
PORTS = range(*(int(p) for p in os.environ.get("SUANWANG_BROWSER_PORTS", "8200-8300").split("-")))
PASSWORD = "suanwang-demo-2026"
REQUIRE = os.environ.get("SUANWANG_REQUIRE_SERVICES") == "1"
_passed = {"browser": 0}


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real Chromium against a real server; "
                                       "skipped locally without Playwright/Chromium, a failure in CI")


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs Playwright for Python (pip install -r requirements.txt)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("browser"):
        missing = _missing()
        if missing:
            if REQUIRE:
                pytest.fail(f"{missing}, but SUANWANG_REQUIRE_SERVICES=1", pytrace=False)
            pytest.skip(missing)


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed and "browser" in report.keywords:
        _passed["browser"] += 1


def pytest_sessionfinish(session, exitstatus):
    if REQUIRE and not session.config.option.collectonly and exitstatus == 0 and _passed["browser"] == 0:
        session.exitstatus = 1
        print("\nCI: no browser test passed; the real-browser tests must run here.")


def _free_port() -> int:
    for port in PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


class Server:
    def __init__(self, url: str, env: dict, process: subprocess.Popen, log: Path):
        self.url, self.env, self.process, self.log = url, env, process, log

    def manage(self, *args: str) -> str:
        """Run a management command against the server's database (another process)."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=120, check=True)
        return done.stdout


@pytest.fixture(scope="package")
def portal_server(tmp_path_factory):
    """The portal served by uvicorn as `make run` serves it (embedded mode: SQLite, in-memory channel layer,
    simulated centres ticking inside the server), seeded with the demo federation. The simulated centres
    run 60× faster than the wall clock, so a 5-minute job ends within seconds."""
    missing = _missing()
    if missing:
        if REQUIRE:
            pytest.fail(f"{missing}, but SUANWANG_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(missing)
    var = tmp_path_factory.mktemp("browser-var")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update({"SUANWANG_VAR_DIR": str(var), "DATABASE_URL": "", "REDIS_URL": "", "SUANWANG_TICK_SITES": "1",
                "SIM_TIME_SCALE": "60", "DEBUG": "0", "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"})
    env.pop("SUANWANG_TICK_SITES_DISABLED", None)
    for args in (("migrate", "--noinput"), ("seed_demo",)):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**env, "SUANWANG_TICK_SITES": "0"},
                       capture_output=True, text=True, timeout=300, check=True)
    port = _free_port()
    log = var / "server.log"
    uvicorn = shutil.which("uvicorn", path=str(Path(sys.executable).parent)) or "uvicorn"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [uvicorn, "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--ws", "websockets-sansio", "--no-access-log"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:  # noqa: S310 (our own server)
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server did not start:\n{log.read_text()[-4000:]}", pytrace=False)
        time.sleep(0.3)
    yield Server(url, env, process, log)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="package")
def chromium(portal_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def login(chromium, portal_server):
    """login(email, language="en") → a Playwright page signed in as that demo person (own browser context)."""
    contexts = []

    def make(email: str, language: str = "en"):
        context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="en-US")
        context.add_cookies([{"name": "django_language", "value": language, "url": portal_server.url}])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.js_errors = errors
        page.goto(portal_server.url + "/login/")
        page.fill("input[name=username]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("main form button[type=submit]")
        page.wait_for_url(portal_server.url + "/")
        return page

    yield make
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> None:
    folder = os.environ.get("SUANWANG_BROWSER_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
