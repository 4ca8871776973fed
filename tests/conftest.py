"""Shared fixtures, and the rule that service-backed tests never silently skip in CI.

Tests marked ``postgres``, ``redis`` or ``slurm`` skip on a newcomer's machine without those services,
but with SUANWANG_REQUIRE_SERVICES=1 (set by .ci/run) they fail instead, and the run fails
if no test of a marker ran at all.
"""

import os

import pytest
from django.conf import settings
from django.db import connection

from tests.factories import Fed, build_federation

REQUIRE_SERVICES = os.environ.get("SUANWANG_REQUIRE_SERVICES") == "1"
_SERVICE_MARKERS = ("postgres", "redis", "slurm")
_passed_by_marker = {m: 0 for m in _SERVICE_MARKERS}


def _service_missing(marker: str) -> str | None:
    if marker == "postgres" and connection.vendor != "postgresql":
        return f"needs PostgreSQL (DATABASE_URL), running on {connection.vendor}"
    if marker == "redis" and not settings.REDIS_URL:
        return "needs Redis (REDIS_URL)"
    if marker == "slurm":
        return _slurm_missing()
    return None


_slurm_checked: list[str | None] = []


def _slurm_missing() -> str | None:
    """A real Slurm (scripts/local-slurm.sh start): SUANWANG_SLURM_URL and a token file that slurmrestd accepts."""
    if not _slurm_checked:
        url = os.environ.get("SUANWANG_SLURM_URL", "")
        token_file = os.environ.get("SUANWANG_SLURM_TOKEN_FILE", "/var/lib/slurm-local/ci.jwt")
        if not url:
            _slurm_checked.append("needs a real Slurm (SUANWANG_SLURM_URL; scripts/local-slurm.sh start)")
        else:
            from federation.slurm import SlurmClient, SlurmError, TokenFile

            try:
                SlurmClient(url, os.environ.get("SUANWANG_SLURM_USER", "ci"), TokenFile(token_file), retries=0).ping()
                _slurm_checked.append(None)
            except SlurmError as exc:
                _slurm_checked.append(f"needs a real Slurm at {url}: {exc.code} ({exc.message})")
    return _slurm_checked[0]


def pytest_runtest_setup(item):
    for marker in _SERVICE_MARKERS:
        if item.get_closest_marker(marker):
            missing = _service_missing(marker)
            if missing:
                if REQUIRE_SERVICES:
                    pytest.fail(f"{missing}, but SUANWANG_REQUIRE_SERVICES=1", pytrace=False)
                pytest.skip(missing)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a service-backed test that skips for any reason (a skipif, a pytest.skip in its body) fails."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SERVICES and report.skipped and any(item.get_closest_marker(m) for m in _SERVICE_MARKERS):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped ({reason}), but SUANWANG_REQUIRE_SERVICES=1"


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        for marker in _SERVICE_MARKERS:
            if marker in report.keywords:
                _passed_by_marker[marker] += 1


def pytest_sessionfinish(session, exitstatus):
    if not REQUIRE_SERVICES or session.config.option.collectonly:
        return
    missing = [m for m, n in _passed_by_marker.items() if n == 0]
    if missing and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nCI: no passing test used {', '.join(missing)}; service-backed tests must run here.")


def pytest_terminal_summary(terminalreporter):
    if REQUIRE_SERVICES:
        counts = ", ".join(f"{m}: {n} passed" for m, n in _passed_by_marker.items())
        terminalreporter.write_line(f"service-backed tests: {counts}")


@pytest.fixture
def fed(db) -> Fed:
    """Two institutions (A = PKU, B = THU) and one person per role, plus tokens."""
    return build_federation()


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    # PBKDF2 at production strength costs ~0.4 s per password; tests only need correctness.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield


@pytest.fixture(autouse=True)
def _isolated_cache():
    from django.core.cache import cache

    from federation import routing_cache

    cache.clear()
    routing_cache.invalidate()  # the per-process partition snapshot must not outlive a test's rolled-back rows
    yield
