"""End to end with real parts: a real Celery worker process on the configured broker
(Redis in CI), the real test database, and a real SMTP server on loopback. The
server's own count of messages is the proof."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta
from email import message_from_bytes

import pytest
from django.test import Client
from django.utils import timezone

from campaigns import conf, sending, services, tokens
from campaigns.models import Campaign, Delivery, Suppression
from campaigns.tasks import campaign_launch_task, campaigns_tick_task
from shop.models import ConsentChange, User
from shop.services.customers import user_consent_set
from tests.conftest import ROOT, child_env, free_port, wait_for

from .conftest import build_store, default_template, make_campaign

pytestmark = pytest.mark.integration
S = Delivery.Status


@pytest.fixture
def real_store(transactional_db):
    return build_store()


def bulk_customers(n: int, *, prefix: str, consent: bool = True) -> list[User]:
    User.objects.bulk_create(
        [
            User(
                email=f"{prefix}{i}@customers.affinity.example",
                first_name=f"Cust{i}",
                marketing_consent=consent,
                password="!",
            )
            for i in range(n)
        ],
        batch_size=2000,
    )
    return list(User.objects.filter(email__startswith=prefix).order_by("pk"))


def by_recipient(smtp_server) -> dict[str, list[str]]:
    """Message-IDs the server received, per recipient."""
    with smtp_server.lock:
        messages = list(smtp_server.messages)
    out: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        out[message["To"]].append(message["Message-ID"])
    return out


def wait_until_done(campaign: Campaign, *, timeout: float, nudge=None) -> None:
    def done():
        if nudge:
            nudge()
        return not Delivery.objects.filter(campaign=campaign, status__in=Delivery.OPEN_STATUSES).exists()

    wait_for(done, timeout=timeout, interval=1.0, what=f"campaign {campaign.pk} to finish sending")


def test_a_campaign_to_thousands_arrives_exactly_once_and_never_to_who_said_no(
    real_store, smtp_server, celery_worker_factory, settings
):
    settings.CAMPAIGNS_SEND_CHUNK_SIZE = 500
    customers = bulk_customers(3000, prefix="bulk")
    never_asked = bulk_customers(100, prefix="noconsent", consent=False)
    Suppression.objects.create(email=customers[0].email, reason=Suppression.Reason.BOUNCED)
    campaign = make_campaign(default_template(), n_products=4, strategy="trending", exclude_purchased=False)
    services.campaign_schedule(campaign=campaign)
    campaign_launch_task(campaign.pk)  # the task's work here: the audience is built; sending is queued
    campaign.refresh_from_db()
    assert campaign.audience_size == 2999
    # After the audience was built, before anything is sent: 30 unsubscribe with one
    # POST each, 20 withdraw consent in their preferences.
    client = Client(enforce_csrf_checks=True)
    for user in customers[1:31]:
        delivery = Delivery.objects.get(campaign=campaign, user=user)
        assert client.post(f"/c/u/{tokens.unsubscribe_token(delivery.pk)}/").status_code == 200
    for user in customers[31:51]:
        user_consent_set(user=user, consent=False, source=ConsentChange.Source.PREFERENCES)

    started = time.monotonic()
    celery_worker_factory(EMAIL_URL=smtp_server.url)
    wait_until_done(campaign, timeout=90)
    elapsed = time.monotonic() - started

    received = by_recipient(smtp_server)
    expected = {u.email for u in customers[51:]}
    assert set(received) == expected, "exactly the customers who may be emailed"
    assert all(len(ids) == 1 for ids in received.values()), "nobody twice"
    assert not set(received) & {u.email for u in never_asked + customers[:51]}
    sent = dict(Delivery.objects.filter(campaign=campaign, status=S.SENT).values_list("email", "message_id"))
    assert {email: [mid] for email, mid in sent.items()} == dict(received)
    skipped = dict(
        Delivery.objects.filter(campaign=campaign, status=S.SKIPPED).values_list("user__email", "skip_reason")
    )
    assert len(skipped) == 50 and set(skipped.values()) == {Delivery.SkipReason.NO_CONSENT}
    wait_for(
        lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.COMPLETED,
        timeout=20,
        what="the campaign to complete",
    )
    print(f"\n{len(sent)} emails delivered through SMTP in {elapsed:.1f}s ({len(sent) / elapsed:.0f}/s)")


def test_a_worker_killed_mid_send_and_restarted_delivers_the_rest_exactly_once(
    real_store, smtp_server, celery_worker_factory, settings
):
    lease = 4
    settings.CAMPAIGNS_SEND_CHUNK_SIZE = 500
    settings.CAMPAIGNS_SEND_LEASE_SECONDS = lease  # this process's view (the tick runs in the worker)
    customers = bulk_customers(2000, prefix="kill")
    env = {"EMAIL_URL": smtp_server.url, "CAMPAIGNS_SEND_LEASE_SECONDS": str(lease), "CAMPAIGNS_SEND_BATCH_SIZE": "50"}
    worker = celery_worker_factory(**env)
    campaign = make_campaign(default_template(), n_products=3, strategy="trending", exclude_purchased=False)
    services.campaign_schedule(campaign=campaign)

    def mid_send():
        return (
            sum(len(v) for v in by_recipient(smtp_server).values()) >= 300
            and Delivery.objects.filter(campaign=campaign, status=S.SENDING).exists()
        )

    wait_for(mid_send, timeout=60, interval=0.05, what="sending to be under way")
    worker.kill()  # SIGKILL to the worker and its pool: no clean-up runs
    held = dict(Delivery.objects.filter(campaign=campaign, status=S.SENDING).values_list("pk", "message_id"))
    at_kill = sum(len(v) for v in by_recipient(smtp_server).values())
    assert at_kill < 2000, "the kill came mid-send"

    celery_worker_factory(**env)  # a fresh worker takes the queued work
    last_nudge = [0.0]

    def nudge():  # what the scheduler does every few minutes
        if time.monotonic() - last_nudge[0] > lease:
            campaigns_tick_task.delay()
            last_nudge[0] = time.monotonic()

    wait_until_done(campaign, timeout=90, nudge=nudge)

    received = by_recipient(smtp_server)
    assert set(received) == {u.email for u in customers}, "every remaining recipient got their email"
    # Exactly once per recipient: one Message-ID each, the one stored before sending.
    sent = dict(Delivery.objects.filter(campaign=campaign, status=S.SENT).values_list("email", "message_id"))
    assert len(sent) == 2000
    assert all(set(ids) == {sent[email]} for email, ids in received.items())
    # On the wire, only what a pool process had in doubt at the kill can have gone
    # twice -- the same message, with the same Message-ID: per process, the accepted
    # messages not yet marked (at most SEND_MARK_EVERY) and the one in flight.
    transmissions = sum(len(ids) for ids in received.values())
    assert transmissions - 2000 <= 2 * (conf.get("SEND_MARK_EVERY") + 1)
    if held:  # rows the dead worker held were reclaimed after their lease, same Message-IDs
        recovered = dict(Delivery.objects.filter(pk__in=held).values_list("pk", "message_id"))
        assert recovered == {pk: mid for pk, mid in held.items() if mid}
        assert Delivery.objects.filter(pk__in=held, recovered=True).count() == sum(1 for m in held.values() if m)
    print(f"\nkilled after {at_kill} messages with {len(held)} rows held; {transmissions} transmissions in all")


# --- a sender killed after the server accepted, before it marked -------------------------------
class GateSMTP:
    """aiosmtpd handler: accepts the first ``accept`` messages (each after ``delay``
    seconds), then leaves the next DATA unanswered until ``release`` is set, and
    refuses it then. ``accepted`` holds what it accepted, in order."""

    def __init__(self, *, accept: int, delay: float = 0.0):
        self.accept, self.delay = accept, delay
        self.accepted: list = []
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        if self.delay:
            await asyncio.sleep(self.delay)
        if len(self.accepted) >= self.accept and not self.release.is_set():
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 Try again later"  # its sender is dead by now
        self.accepted.append(message_from_bytes(envelope.content))
        return "250 Accepted"


# The sender of a real deployment (claim, check, render, send, mark), in a process of
# its own so that it can be killed; the marking settings are the parameters.
SENDER = """
import os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django.setup()
from django.conf import settings
settings.CAMPAIGNS_SEND_MARK_EVERY = int(sys.argv[2])
settings.CAMPAIGNS_SEND_MARK_SECONDS = float(sys.argv[3])
from campaigns import sending
sending.deliveries_send_range(campaign_id=int(sys.argv[1]), min_id=0, max_id=2**62)
"""


@pytest.mark.parametrize(
    ("mark_every", "mark_seconds", "delay", "accept"),
    [
        (10, 3600.0, 0.0, 25),  # marks by count: 20 marked, 5 in doubt
        (1000, 0.3, 0.2, 6),  # by time: the count is never reached, marks are written anyway
    ],
)
def test_a_sender_killed_after_the_server_accepted_leaves_at_most_one_group_in_doubt(
    real_store, unread_queue, settings, mark_every, mark_seconds, delay, accept
):
    from aiosmtpd.controller import Controller

    customers = bulk_customers(35, prefix="doubt")
    campaign = make_campaign(default_template(), n_products=3, strategy="trending", exclude_purchased=False)
    services.campaign_schedule(campaign=campaign)
    campaign_launch_task(campaign.pk)  # its send tasks go unread: the child sends
    gate = GateSMTP(accept=accept, delay=delay)
    port = free_port()
    controller = Controller(gate, hostname="127.0.0.1", port=port)
    controller.start()
    sender = None
    try:
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(campaign.pk), str(mark_every), str(mark_seconds)],
            cwd=ROOT,
            env=child_env(EMAIL_URL=f"smtp://127.0.0.1:{port}"),
            start_new_session=True,
        )
        assert gate.holding.wait(60), "the sender never reached the held message"
        os.killpg(sender.pid, signal.SIGKILL)  # mid-send: no clean-up runs
        sender.wait(10)

        accepted = [m["Message-ID"] for m in gate.accepted]
        assert len(accepted) == accept
        marked = dict(Delivery.objects.filter(campaign=campaign, status=S.SENT).values_list("message_id", "email"))
        assert set(marked) <= set(accepted), "a row marked sent was accepted by the server"
        in_doubt = len(accepted) - len(marked)
        assert in_doubt <= mark_every, "at most one group accepted but not marked"
        if mark_every < accept:
            assert len(marked) == accept // mark_every * mark_every  # marked group by group
        else:
            assert marked, "marked after SEND_MARK_SECONDS though the group never filled"
        assert Delivery.objects.filter(campaign=campaign, status=S.SENDING).count() == 35 - len(marked)

        # The lease runs out; another sender takes the rows over and sends them again.
        gate.release.set()
        Delivery.objects.filter(campaign=campaign, status=S.SENDING).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        stats = sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
        assert stats.sent == 35 - len(marked)
    finally:
        if sender is not None and sender.poll() is None:
            os.killpg(sender.pid, signal.SIGKILL)
        gate.release.set()
        controller.stop()
        asyncio.set_event_loop(None)

    received: dict[str, list[str]] = defaultdict(list)
    for message in gate.accepted:
        received[message["To"]].append(message["Message-ID"])
    stored = dict(Delivery.objects.filter(campaign=campaign, status=S.SENT).values_list("email", "message_id"))
    assert set(received) == set(stored) == {c.email for c in customers}, "everyone got their email"
    assert all(set(ids) == {stored[email]} for email, ids in received.items()), "one Message-ID each"
    # Exactly the rows in doubt went twice: the same message, which receivers deduplicate.
    assert sum(len(ids) for ids in received.values()) - 35 == in_doubt
