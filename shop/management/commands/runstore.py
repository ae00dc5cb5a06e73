"""Run the whole store on this machine: web server, Celery worker and scheduler.

Each runs in its own process; if one dies the others are stopped, so a broken setup
is never half running. Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from shop.celery import broker_folders_ensure
from shop.management.commands.bootstrap_demo import STAFF_LOGIN_FILE


def served_url(*, host: str, port: int) -> str:
    """The address a browser reaches the server on: a wildcard bind (0.0.0.0, ::) is
    reached on the loopback address; IPv6 literals are bracketed."""
    if host in {"", "0.0.0.0"}:
        host = "127.0.0.1"
    elif host in {"::", "[::]"}:
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def served_env(environ, *, host: str, port: int, site_url_set: bool) -> dict[str, str]:
    """The children's environment: SITE_URL follows the address served unless it is
    set, so email links and images (sent by the worker) work on any port."""
    env = dict(environ)
    if not site_url_set:
        env["SITE_URL"] = served_url(host=host, port=port)
    return env


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and the Celery beat scheduler together."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes")

    def handle(self, *args, port: int, host: str, concurrency: int, **options):
        broker_folders_ensure()
        py = sys.executable
        commands = {
            "worker": [
                py,
                "-m",
                "celery",
                "-A",
                "shop",
                "worker",
                "--loglevel",
                "INFO",
                "-c",
                str(concurrency),
                "-n",
                "affinity@%h",
            ],
            "beat": [
                py,
                "-m",
                "celery",
                "-A",
                "shop",
                "beat",
                "--loglevel",
                "INFO",
                "-s",
                str(settings.VAR_DIR / "celerybeat-schedule"),
            ],
            "web": [py, "manage.py", "runserver", "--noreload", f"{host}:{port}"],
        }
        child_env = served_env(os.environ, host=host, port=port, site_url_set=settings.SITE_URL_SET)
        procs: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, cmd in commands.items():
            procs[name] = subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True, env=child_env)
            self.stdout.write(f"started {name} (pid {procs[name].pid})")
        self.stdout.write(
            self.style.SUCCESS(
                f"Affinity store: http://{host}:{port}/  admin: http://{host}:{port}/admin/  (Ctrl-C stops)"
            )
        )
        login = Path(settings.VAR_DIR) / STAFF_LOGIN_FILE
        if login.exists():
            self.stdout.write(f"Staff login: {login.read_text().strip()}  (kept in {login}, readable by you only)")
        failed = None
        while not stopping:
            for name, p in procs.items():
                if p.poll() is not None:
                    failed = f"{name} exited with code {p.returncode}"
                    stopping = True
            time.sleep(0.5)
        for p in procs.values():
            if p.poll() is None:
                # The leader only: a Celery worker stops its own pool processes (a warm
                # shutdown); a TERM sent to the whole group made it log each of them as
                # "exited with signal 15" errors on a clean stop.
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if failed:
            self.stderr.write(self.style.ERROR(f"stopped: {failed}"))
            sys.exit(1)
        self.stdout.write("stopped")
