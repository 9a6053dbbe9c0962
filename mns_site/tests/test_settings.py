"""The settings module, run for real in a fresh interpreter with a given environment."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings

REPO = Path(settings.BASE_DIR)


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MNS_", "DATABASE_", "REDIS_", "CELERY_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=120
    )


def production_example(tmp_path: Path) -> dict[str, str]:
    """The production block of .env.example, with a real secret in place of the placeholder."""
    env = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z_]+)=(\S*)", line)
        if match:
            env[match[1]] = match[2]
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["MNS_VAR_DIR"] = str(tmp_path)
    return env


def test_an_unknown_value_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    result = run_manage("check", env={"DEBUG": "maybe", "MNS_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DEBUG='maybe' is not valid" in result.stderr


def test_the_placeholder_secret_key_is_refused(tmp_path: Path) -> None:
    env = production_example(tmp_path)
    env["SECRET_KEY"] = "replace-with-the-output-of-python-secrets-token-urlsafe-50-command-above"
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_check_deploy_is_clean_with_the_production_example(tmp_path: Path) -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_example(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_embedded_shape_uses_sqlite_in_wal_mode_and_the_filesystem_broker(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; from django.db import connection as c;"
        "c.ensure_connection(); cur = c.cursor(); cur.execute('PRAGMA journal_mode'); print(cur.fetchone()[0]);"
        "print(s.CELERY_BROKER_URL); print(s.CACHES['default']['BACKEND']); print(s.DEBUG)"
    )
    result = run_manage("shell", "--no-imports", "-c", code, env={"MNS_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    locmem = "django.core.cache.backends.locmem.LocMemCache"
    assert result.stdout.split() == ["wal", "filesystem://localhost/", locmem, "False"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_connecting_to_the_embedded_broker_logs_no_hostname_warning(tmp_path: Path) -> None:
    code = (
        "import logging; logging.basicConfig(); from mns_site.celery import app;"
        "conn = app.connection_for_write(); conn.ensure_connection(max_retries=1); print(conn.as_uri()); conn.release()"
    )
    result = run_manage("shell", "--no-imports", "-c", code, env={"MNS_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["filesystem://:**@localhost//"]
    assert "No hostname" not in result.stderr
