"""Configuration from the environment: production settings pass Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="p" * 20 + "-production-secret-" + "k" * 30,
        ALLOWED_HOSTS="suanwang.example.cn",
        SUANWANG_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_embedded_defaults_fail_check_deploy_loudly(tmp_path):
    # Without a real secret and TLS settings the deploy check must complain, not pass silently.
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="1", SUANWANG_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "security.W" in result.stdout + result.stderr


def test_embedded_mode_generates_and_keeps_a_secret_key(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = run_manage("shell", "-c", code, SUANWANG_VAR_DIR=str(tmp_path), DATABASE_URL="")
    second = run_manage("shell", "-c", code, SUANWANG_VAR_DIR=str(tmp_path), DATABASE_URL="")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and len(first.stdout.strip()) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
