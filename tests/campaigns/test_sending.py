"""Sending: exactly once, rules checked at send time, retries, error-rate pause,
recovery of a dead sender's rows. Against the real database; email through Django's
locmem backend, the outbox backend, or a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from email import message_from_bytes

import pytest
from django.core import mail
from django.db.models import Count
from django.utils import timezone

from campaigns import lifecycle, sending, services, suppressions
from campaigns.models import Campaign, Delivery, OutboxMessage, Suppression
from shop.models import ConsentChange
from shop.services.customers import user_consent_set
from tests.conftest import free_port, serving_caches_clear

from .conftest import buy, launch, make_campaign, make_customers

S = Delivery.Status


def send_all(campaign: Campaign, **kwargs) -> sending.SendStats:
    return sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62, **kwargs)


def test_each_customer_gets_one_email_and_a_second_run_sends_nothing(store, template):
    customers = make_customers(30)
    make_customers(5, prefix="no-consent", marketing_consent=False)
    campaign = launch(make_campaign(template))
    assert campaign.audience_size == 30  # built with consent only

    stats = send_all(campaign)
    assert stats.sent == 30
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in customers)
    again = send_all(campaign)
    assert again.sent == 0 and len(mail.outbox) == 30
    ids = {m.extra_headers["Message-ID"] for m in mail.outbox}
    assert ids == set(Delivery.objects.values_list("message_id", flat=True))
    assert Delivery.objects.filter(status=S.SENT).count() == 30
    lifecycle.campaign_complete_if_done(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED


def test_every_email_has_its_own_products_snapshotted(store, template):
    ada, bob = make_customers(2)
    buy(ada, store.in_category(store.candles)[:2])
    buy(bob, store.in_category(store.kitchen)[:2])
    campaign = launch(make_campaign(template, n_products=4))
    send_all(campaign)
    for user in (ada, bob):
        delivery = Delivery.objects.get(user=user)
        assert len(delivery.products) == 4
        bought = set(user.orders.values_list("lines__product_id", flat=True))
        assert not bought & {p["id"] for p in delivery.products}, "exclude_purchased"
        assert delivery.strategy
        message = next(m for m in mail.outbox if m.to == [user.email])
        for product in delivery.products:
            assert product["name"] in message.body


def test_consent_and_suppression_are_checked_when_the_email_is_sent(store, template):
    stays, unsubscribes, suppressed, opted_out = make_customers(4)
    campaign = launch(make_campaign(template))
    assert campaign.audience_size == 4
    # After the audience was built and before sending:
    suppressions.delivery_unsubscribe(delivery=Delivery.objects.get(user=unsubscribes))
    suppressions.suppression_add(email=suppressed.email, reason=Suppression.Reason.MANUAL)
    user_consent_set(user=opted_out, consent=False, source=ConsentChange.Source.PREFERENCES)

    send_all(campaign)
    assert [m.to for m in mail.outbox] == [[stays.email]]
    reasons = dict(Delivery.objects.filter(status=S.SKIPPED).values_list("user__email", "skip_reason"))
    assert reasons == {
        unsubscribes.email: Delivery.SkipReason.NO_CONSENT,  # unsubscribing withdraws consent too
        suppressed.email: Delivery.SkipReason.SUPPRESSED,
        opted_out.email: Delivery.SkipReason.NO_CONSENT,
    }


def test_suppressed_address_is_skipped_even_with_consent(store, template):
    (user,) = make_customers(1)
    campaign = launch(make_campaign(template))
    suppressions.suppression_add(email=user.email.upper(), reason=Suppression.Reason.BOUNCED)
    send_all(campaign)
    assert mail.outbox == []
    assert Delivery.objects.get().skip_reason == Delivery.SkipReason.SUPPRESSED


def test_frequency_cap_is_enforced_at_send_time(store, template, settings):
    settings.CAMPAIGNS_FREQUENCY_CAP = 2
    settings.CAMPAIGNS_FREQUENCY_PERIOD_DAYS = 7
    capped, fresh = make_customers(2)
    first = launch(make_campaign(template, name="first"))
    second = launch(make_campaign(template, name="second", segment=first.segment))
    third = launch(make_campaign(template, name="third", segment=first.segment))
    # fresh got the first email 8 days ago: outside the period.
    send_all(first)
    Delivery.objects.filter(campaign=first, user=fresh).update(sent_at=timezone.now() - timedelta(days=8))
    send_all(second)
    mail.outbox.clear()
    send_all(third)
    assert [m.to for m in mail.outbox] == [[fresh.email]]
    assert Delivery.objects.get(campaign=third, user=capped).skip_reason == Delivery.SkipReason.FREQUENCY_CAP


def test_a_large_claim_holds_a_bounded_number_of_cap_locks(store, template, settings):
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    settings.CAMPAIGNS_FREQUENCY_CAP = 3
    customers = make_customers(300)
    campaign = launch(make_campaign(template))
    sender = sending.Sender(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    with transaction.atomic():
        counts = sender._cap_counts([], [c.pk for c in customers], timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
            held = cursor.fetchone()[0]
    assert 0 < held <= sending._CAP_LOCK_BUCKETS < 300  # not one per customer: the lock table is finite
    assert not any(counts.values())  # pending deliveries are not counted against the cap


def test_holdout_is_seeded_withheld_and_never_sent(store, template):
    make_customers(200)
    a = launch(make_campaign(template, name="a", holdout_percent=25, seed=42))
    b = launch(make_campaign(template, name="b", holdout_percent=25, seed=42, segment=a.segment))
    held_a = set(Delivery.objects.filter(campaign=a, is_holdout=True).values_list("user_id", flat=True))
    held_b = set(Delivery.objects.filter(campaign=b, is_holdout=True).values_list("user_id", flat=True))
    assert held_a == held_b, "same seed, same holdout"
    assert 25 <= len(held_a) <= 75  # ~50 of 200
    send_all(a)
    assert Delivery.objects.filter(campaign=a, status=S.WITHHELD).count() == len(held_a)
    assert len(mail.outbox) == 200 - len(held_a)
    assert not {m.to[0] for m in mail.outbox} & set(
        Delivery.objects.filter(campaign=a, is_holdout=True).values_list("email", flat=True)
    )


def test_variants_split_the_audience_by_weight_and_use_their_subject(store, template):
    make_customers(120)
    campaign = launch(
        make_campaign(
            template,
            seed=7,
            variants=[
                {"name": "A", "weight": 1},
                {"name": "B", "weight": 1, "subject": "B: {{ greeting_name }}, new in"},
            ],
        )
    )
    counts = dict(campaign.deliveries.values_list("variant__name").annotate(n=Count("pk")))
    assert set(counts) == {"A", "B"} and min(counts.values()) > 30
    send_all(campaign)
    b_emails = set(campaign.deliveries.filter(variant__name="B").values_list("email", flat=True))
    for message in mail.outbox:
        assert message.subject.startswith("B: ") == (message.to[0] in b_emails)


def test_paused_or_cancelled_campaign_sends_nothing(store, template):
    make_customers(5)
    campaign = launch(make_campaign(template))
    lifecycle.campaign_pause(campaign=campaign)
    assert send_all(campaign).sent == 0
    services.campaign_resume(campaign=campaign)
    lifecycle.campaign_cancel(campaign=campaign)
    assert send_all(campaign).sent == 0
    assert mail.outbox == []
    assert set(Delivery.objects.values_list("skip_reason", flat=True)) == {Delivery.SkipReason.CANCELLED}


def test_a_dead_senders_rows_are_resent_after_the_lease_with_the_same_message_id(store, template, settings):
    settings.CAMPAIGNS_SEND_LEASE_SECONDS = 60
    make_customers(6)
    campaign = launch(make_campaign(template))
    dead = sending.Sender(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    claimed, _ = dead.claim(campaign)  # ...and then the process was killed
    assert len(claimed) == 6
    message_ids = {d.pk: d.message_id for d in claimed}
    # While the lease holds, nobody else takes them.
    assert send_all(campaign).sent == 0
    Delivery.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    stats = send_all(campaign)
    assert stats.sent == 6 and len(mail.outbox) == 6
    assert {m.extra_headers["Message-ID"] for m in mail.outbox} == set(message_ids.values())
    assert Delivery.objects.filter(status=S.SENT, recovered=True).count() == 6


def test_outbox_backend_stores_the_email_in_the_same_transaction(store, template, settings):
    settings.EMAIL_BACKEND = "campaigns.outbox.OutboxEmailBackend"
    make_customers(3)
    campaign = launch(make_campaign(template))
    send_all(campaign)
    assert OutboxMessage.objects.count() == 3
    stored = OutboxMessage.objects.first()
    delivery = Delivery.objects.get(message_id=stored.message_id)
    assert stored.to == [delivery.email]
    assert stored.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "<html" in stored.html and "Unsubscribe" in stored.text


@pytest.mark.parametrize("n", [50, 400])
def test_sending_costs_queries_per_claim_and_per_batch_not_per_email(
    store, template, settings, n, django_assert_max_num_queries
):
    settings.CAMPAIGNS_SEND_MARK_EVERY = 20
    make_customers(n)
    campaign = launch(make_campaign(template))
    serving_caches_clear()  # a cold process: what serving reads once is counted, every time
    # One claim (with the recommendations) for all -- including serving's once-per-process
    # reads: placements and rules, and the stored noise, popularity groups and trending
    # list (one row each); per batch of 50: the campaign's status, consent and
    # suppressions again, the progress, and a "sent" mark per 20.
    batches = n // 50
    with django_assert_max_num_queries(42 + batches * (4 + math.ceil(50 / 20))):
        stats = send_all(campaign, batch_size=50)
    assert stats.sent == n


# --- a real SMTP server that misbehaves on purpose -----------------------------------------------
class FlakySMTP:
    """aiosmtpd on loopback: refuses some recipients with 550, answers 451 to the
    first DATA of others, accepts the rest."""

    def __init__(self, *, bounce=(), defer_once=(), refuse_all=False, on_accept=None):
        self.bounce, self.defer_once, self.refuse_all = set(bounce), set(defer_once), refuse_all
        self.on_accept = on_accept  # called with the number accepted so far, in a thread
        self.deferred: set[str] = set()
        self.accepted: list = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.refuse_all or address in self.bounce:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        rcpt = envelope.rcpt_tos[0]
        if rcpt in self.defer_once and rcpt not in self.deferred:
            self.deferred.add(rcpt)
            return "451 4.3.0 Try again later"
        self.accepted.append(message_from_bytes(envelope.content))
        if self.on_accept:
            await asyncio.to_thread(self.on_accept, len(self.accepted))
        return "250 Accepted"


@pytest.fixture
def flaky_smtp(settings):
    from aiosmtpd.controller import Controller

    servers = []

    def start(**kwargs) -> FlakySMTP:
        handler = FlakySMTP(**kwargs)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        return handler

    yield start
    for controller in servers:
        controller.stop()
    asyncio.set_event_loop(None)


def test_transient_errors_are_retried_with_backoff_and_bounces_suppressed(store, template, flaky_smtp, settings):
    settings.CAMPAIGNS_RETRY_BASE_SECONDS = 30
    ok, deferred, bounced = make_customers(3)
    server = flaky_smtp(bounce=[bounced.email], defer_once=[deferred.email])
    campaign = launch(make_campaign(template, max_error_rate=1.0))
    stats = send_all(campaign)
    assert (stats.sent, stats.retried, stats.failed) == (1, 1, 1)
    retry = Delivery.objects.get(user=deferred)
    assert retry.status == S.PENDING and "451" in retry.last_error
    assert retry.next_attempt_at > timezone.now() + timedelta(seconds=20)
    assert Delivery.objects.get(user=bounced).status == S.FAILED
    assert Suppression.objects.get(email=bounced.email).reason == Suppression.Reason.BOUNCED
    # Not before its time ...
    assert send_all(campaign).sent == 0
    # ... then once, with the same Message-ID.
    Delivery.objects.filter(pk=retry.pk).update(next_attempt_at=timezone.now())
    assert send_all(campaign).sent == 1
    assert [m["To"] for m in server.accepted] == [ok.email, deferred.email]
    assert server.accepted[1]["Message-ID"] == Delivery.objects.get(pk=retry.pk).message_id


def test_campaign_pauses_itself_when_the_error_rate_passes_its_threshold(store, template, flaky_smtp, settings):
    settings.CAMPAIGNS_ERROR_RATE_MIN_ATTEMPTS = 20
    make_customers(60)
    flaky_smtp(refuse_all=True)
    campaign = launch(make_campaign(template, max_error_rate=0.5))
    stats = send_all(campaign, batch_size=25)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert "error rate" in campaign.status_note
    assert stats.failed == 25  # stopped after the first batch that crossed the threshold
    assert Delivery.objects.filter(status=S.PENDING).count() == 35


def test_staff_pausing_mid_claim_stops_the_sender_at_the_next_batch(
    transactional_db, unread_queue, flaky_smtp, settings
):
    from django.db import connections

    from .conftest import build_store, default_template

    build_store()
    make_customers(30)
    campaign = launch(make_campaign(default_template(), strategy="trending", exclude_purchased=False))

    def pause_at_fifth(accepted: int) -> None:  # staff press "pause" while the first batch is going out
        if accepted == 5:
            lifecycle.campaign_pause(campaign=Campaign.objects.get(pk=campaign.pk))
            connections.close_all()

    server = flaky_smtp(on_accept=pause_at_fifth)
    stats = send_all(campaign, batch_size=10, claim_size=1000)  # one claim takes all 30
    assert stats.claimed == 30
    assert stats.sent == 10 and len(server.accepted) == 10  # the batch under way is finished, no more
    assert stats.stopped == "campaign paused"
    assert Delivery.objects.filter(campaign=campaign, status=S.SENT).count() == 10
    rest = Delivery.objects.filter(campaign=campaign).exclude(status=S.SENT)
    assert set(rest.values_list("status", "attempts", "lease_owner")) == {(S.PENDING, 0, None)}, "claim undone"


def test_rows_held_by_a_sender_when_the_campaign_is_cancelled_are_never_sent(store, template):
    make_customers(4)
    campaign = launch(make_campaign(template))
    sender = sending.Sender(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    claimed, _ = sender.claim(campaign)
    assert len(claimed) == 4
    lifecycle.campaign_cancel(campaign=campaign)
    sender.release()  # what the sender does when it sees the campaign is no longer running
    assert set(Delivery.objects.values_list("status", "skip_reason")) == {(S.SKIPPED, Delivery.SkipReason.CANCELLED)}
    assert send_all(campaign).sent == 0 and mail.outbox == []
