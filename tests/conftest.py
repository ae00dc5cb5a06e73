"""Shared fixtures: factories' data, a real Celery worker process, a real SMTP server.

The suite runs against whatever ``DATABASE_URL``/``REDIS_URL`` say: CI points them at
PostgreSQL and Redis. Integration fixtures start real processes on loopback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from django.conf import settings

from tests.browser import browser, page, phone_page, staff_page  # noqa: F401 - fixtures, registered once here

ROOT = Path(__file__).resolve().parent.parent


# --- data helpers -------------------------------------------------------------------
@pytest.fixture
def staff_user(db):
    from shop.models import User

    return User.objects.create_superuser(email="staff@affinity.example", password="staff-pass-123")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def serving_caches_clear(*extra_keys: str, epochs: int = 200) -> None:
    """Forget what recommendations serving keeps between calls: this process's state,
    the trending lists in the shared cache and the queued impressions. Tests roll the database back, so serving
    epochs (the cache keys) repeat from one test to the next."""
    from django.core.cache import cache

    from recommendations import data_quality, impressions, long_tail, model_cache, noise, serving_aids, trending

    model_cache.reset()
    cache.delete_many([*extra_keys, *(trending.TRENDING_CACHE_KEY.format(epoch=e) for e in range(epochs))])
    # who the noise filter excludes, the long-tail groups, the data reports: ids repeat between tests
    cache.delete_many([noise.NOISE_CACHE_KEY, data_quality.GENERATION_KEY, trending.LAST_TRENDING_KEY])
    long_tail.clear()
    serving_aids.queue_marks_clear()  # (their rows go with each test's database)
    impressions.clear()  # lists queued by an earlier test would land in this one's database


# --- database URL of the test database (for processes we start) ------------------------
def test_database_url() -> str:
    """A DATABASE_URL that points a child process at the database the tests use."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        name = db.get("TEST", {}).get("NAME") or db["NAME"]
        if not name or str(name).startswith(":memory:") or "mode=memory" in str(name):
            pytest.skip("a worker process needs a file or server database (set DATABASE_URL)")
        return f"sqlite:///{name}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DATABASE_URL": test_database_url(), "DJANGO_ENV": "test", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


# --- a real Celery worker ---------------------------------------------------------------
@dataclass
class WorkerProcess:
    queue: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "shop",
                "worker",
                "-Q",
                self.queue,
                "-c",
                "2",
                "--pool",
                "prefork",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test-{self.queue}@%h",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.log()}")
            if b"ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"celery worker did not become ready:\n{self.log()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the worker and its pool children at once (as a crash would)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


@pytest.fixture
def celery_worker_factory(transactional_db, tmp_path, settings):
    """Start real Celery worker processes on the configured broker (Redis in CI),
    listening on a queue of their own. Tasks sent by the test go to that queue."""
    from shop.celery import app

    if app.conf.task_always_eager:
        pytest.skip("CELERY_TASK_ALWAYS_EAGER is on")
    queue = f"test-{uuid.uuid4().hex[:10]}"
    old_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    workers: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        w = WorkerProcess(
            queue=queue,
            env=child_env(CELERY_TASK_DEFAULT_QUEUE=queue, **env),
            log_path=tmp_path / f"worker-{len(workers)}.log",
        )
        workers.append(w)
        w.start()
        return w

    yield start
    for w in workers:
        w.stop()
    app.conf.task_default_queue = old_queue


@pytest.fixture
def celery_worker(celery_worker_factory):
    return celery_worker_factory()


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; fail the test with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a real SMTP server on loopback -------------------------------------------------------
@dataclass
class SMTPSink:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def recipients(self) -> list[str]:
        with self.lock:
            return [r for _, rcpts in self.envelopes for r in rcpts]


@pytest.fixture
def smtp_server() -> Iterator[SMTPSink]:
    """An aiosmtpd server in a thread of this process, on a free loopback port."""
    from aiosmtpd.controller import Controller

    sink = SMTPSink(host="127.0.0.1", port=0)

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            with sink.lock:
                sink.messages.append(message_from_bytes(envelope.original_content or envelope.content))
                sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 Message accepted for delivery"

    sink.port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
