"""`make run`'s process, for real: the store, a worker and the scheduler on the embedded
default (SQLite, the filesystem broker), started and stopped as a user does.

What a user reads in that log matters: the staff login once more when the store is up,
no warnings from our own configuration, no impressions drain waking every 5 seconds
with nothing to do (no Redis), and no errors on a clean stop.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request

import pytest

from shop.management.commands.bootstrap_demo import staff_login_write
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow


def test_the_staff_login_file_is_readable_by_its_owner_only(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    path = staff_login_write(email="admin@affinity.example", password="s3cret-pass")
    assert path == tmp_path / "staff-login.txt"
    assert path.read_text() == "admin@affinity.example / s3cret-pass\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _env(var_dir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SITE_URL"}}
    env.update({"AFFINITY_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1", "DJANGO_ENV": "development"})
    return env


def test_a_store_run_starts_says_the_login_and_stops_cleanly(tmp_path):
    env = _env(tmp_path)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr
    (tmp_path / "staff-login.txt").write_text("admin@affinity.example / from-the-file\n")
    port = free_port()
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runstore", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    assert proc.poll() is None, log_path.read_text()
                    time.sleep(0.5)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/favicon.ico", timeout=5) as icon:
                assert icon.status == 200 and icon.url.endswith("/static/shop/favicon.svg")
            time.sleep(12)  # the scheduler's first ticks: a drain every 5 s would show by now
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    text = log_path.read_text()
    assert code == 0, text
    assert "Staff login: admin@affinity.example / from-the-file" in text
    assert "stopped" in text.splitlines()[-1], text[-2000:]
    assert "No hostname was supplied" not in text
    assert "impressions_drain[" not in text, "the drain runs with no queue to drain"
    problems = [line for line in text.splitlines() if "ERROR" in line or "Traceback" in line or "signal 15" in line]
    assert not problems, "\n".join(problems)
