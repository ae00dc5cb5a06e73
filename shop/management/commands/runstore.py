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

from django.conf import settings
from django.core.management.base import BaseCommand

from shop.celery import broker_folders_ensure


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
        procs: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, cmd in commands.items():
            procs[name] = subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True)
            self.stdout.write(f"started {name} (pid {procs[name].pid})")
        self.stdout.write(
            self.style.SUCCESS(
                f"Affinity store: http://{host}:{port}/  admin: http://{host}:{port}/admin/  (Ctrl-C stops)"
            )
        )
        failed = None
        while not stopping:
            for name, p in procs.items():
                if p.poll() is not None:
                    failed = f"{name} exited with code {p.returncode}"
                    stopping = True
            time.sleep(0.5)
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
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
