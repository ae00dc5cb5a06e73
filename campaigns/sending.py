"""Sending a campaign's deliveries: every recipient at most once, and everyone left
after a crash still once.

The protocol, per claim of rows within a send task's id range:

1. **Claim** (one transaction). Take up to ``SEND_CLAIM_SIZE`` open rows: pending rows
   that are due, and ``sending`` rows whose lease has expired (their sender died).
   PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``; SQLite: a conditional UPDATE
   that only takes rows still claimable. In the same transaction each row is checked
   *now*, at send time: the customer is active, has marketing consent, and the
   address is not suppressed. The rows that pass get their recommendations (batched:
   one call for the whole claim, which is why claims are large). Then the frequency
   cap: at most N marketing emails per customer per period. On PostgreSQL, so that
   two campaigns cannot both take a customer's last slot, the decision is serialised
   with every other claim for the same customers by advisory locks on buckets of
   customer ids: taken only now, held briefly, at most 64 per claim. Failing
   rows become ``skipped`` with the reason; holdout rows that pass become
   ``withheld``; the rest become ``sending`` under a lease (owner id + expiry) with
   their Message-ID and product snapshot stored *before* anything is sent.
2. **Prepare**, per batch of ``SEND_BATCH_SIZE`` claimed rows. The campaign's status
   is read again (staff pausing or cancelling stops the sender at the next batch and
   the rest of the claim goes back to pending); consent and suppression are read once
   more just before sending (an unsubscribe a moment ago still counts); each email is
   rendered.
3. **Send** over ONE connection of Django's email backend (SMTP by default,
   django-anymail by configuration). A row whose message the server accepted joins
   the *accepted* group; the group is marked ``sent`` in one UPDATE (``WHERE
   lease_owner = me``, each row with the time it was accepted) when it reaches
   ``SEND_MARK_EVERY`` rows, when its oldest is ``SEND_MARK_SECONDS`` old, and at the
   end of every batch. Only accepted rows are ever marked. The in-doubt window is
   from the server accepting a message to its group's UPDATE committing: at most
   ``SEND_MARK_EVERY`` accepted rows, plus the one message in flight, per sender. With
   the outbox backend the send and the mark are one transaction, so there is no
   window at all.
4. **Errors.** Transient errors (disconnects, timeouts, 4xx) put the row back to
   pending with exponential backoff, until ``SEND_MAX_ATTEMPTS``; permanent ones (5xx)
   fail the row, and a refused recipient is suppressed as a hard bounce. A rejected
   login pauses the campaign. When the share of failed attempts passes the
   campaign's ``max_error_rate`` the campaign pauses itself (judged after each
   batch). A database error while marking stops the sender: its accepted rows keep
   their lease (see 5), nothing is put back that might have been sent.
5. **Recovery.** A sender that dies leaves its rows ``sending``; when the lease
   expires another sender reclaims them and sends them with the SAME Message-ID and
   products (``recovered`` is set). Of a dead sender's rows, all but at most
   ``SEND_MARK_EVERY + 1`` had never been sent; those few (accepted but not yet
   marked, and the one in flight) may be transmitted twice, an identical message
   that mail systems deduplicate by Message-ID. A sender that stops cleanly marks its
   accepted group first, and puts back only rows it never attempted. Senders renew
   their lease while they work, so a slow sender's rows are never taken from under
   it.
"""

from __future__ import annotations

import json
import logging
import random
import smtplib
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import get_connection
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from shop.models import Product, User

from . import conf, products, tokens
from .lifecycle import deliveries_skip_cancelled
from .models import Campaign, Delivery, Suppression
from .rendering import (
    CompiledEmail,
    TemplateInvalid,
    email_compile,
    email_context,
    email_render,
    message_build,
    message_id_make,
)
from .suppressions import suppression_add

logger = logging.getLogger(__name__)
S = Delivery.Status
_ADVISORY_NAMESPACE = 0x0AFF  # first key of pg_advisory_xact_lock(int, int): "frequency cap"
_CAP_LOCK_BUCKETS = 64  # second key: the customer's id modulo this (see Sender._cap_counts)


# --- error classes ----------------------------------------------------------------------------
class _StrategyRefused(Exception):
    """The recommendations service refused the campaign's strategy."""


def classify(exc: BaseException) -> tuple[str, bool]:
    """(kind, hard_bounce): kind is "transient", "permanent" or "fatal"."""
    if isinstance(exc, smtplib.SMTPAuthenticationError | smtplib.SMTPNotSupportedError | ImproperlyConfigured):
        return "fatal", False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(500 <= c < 600 for c in codes):
            return "permanent", True
        return "transient", False
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, data error, ...
        return ("permanent" if 500 <= exc.smtp_code < 600 else "transient"), False
    if isinstance(exc, smtplib.SMTPServerDisconnected | socket.timeout | ConnectionError | OSError):
        return "transient", False
    if isinstance(exc, AnymailRecipientsRefused):
        return "permanent", True
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            return "fatal", False
        if status is not None and 400 <= status < 500 and status != 429:
            return "permanent", False
        return "transient", False
    return "transient", False


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped."""
    base = conf.get("RETRY_BASE_SECONDS")
    delay = min(conf.get("RETRY_MAX_SECONDS"), base * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.8, 1.2)


@dataclass
class SendStats:
    claimed: int = 0
    sent: int = 0
    withheld: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    retry_in: float | None = None
    stopped: str = ""
    skip_reasons: dict = field(default_factory=lambda: defaultdict(int))


@dataclass
class _Prepared:
    delivery: Delivery
    message: object


class Sender:
    """Sends the open deliveries of one campaign within an id range (one task)."""

    def __init__(
        self,
        *,
        campaign_id: int,
        min_id: int,
        max_id: int,
        batch_size: int | None = None,
        claim_size: int | None = None,
        connection=None,
    ):
        self.campaign_id = campaign_id
        self.min_id, self.max_id = min_id, max_id
        self.batch_size = batch_size or conf.get("SEND_BATCH_SIZE")
        self.claim_size = max(self.batch_size, claim_size or conf.get("SEND_CLAIM_SIZE"))
        self.lease_seconds = conf.get("SEND_LEASE_SECONDS")
        self.owner = uuid.uuid4()
        self.connection = connection
        self._own_connection = connection is None
        self._opened = False
        self.in_flight: int | None = None
        self.mark_every = max(1, int(conf.get("SEND_MARK_EVERY")))
        self.mark_seconds = float(conf.get("SEND_MARK_SECONDS"))
        self.accepted: list[tuple[int, float]] = []  # (delivery id, when accepted): not yet marked
        self._accepted_since = 0.0
        self.lease_deadline = 0.0
        self.stats = SendStats()
        self._compiled: dict[tuple, CompiledEmail] = {}
        self._excluded_categories: frozenset[int] | None = None
        self._variant_cache: dict | None = None

    # --- the loop -----------------------------------------------------------------------
    def run(self) -> SendStats:
        self._commit_mode(durable=False)
        try:
            while not self.stats.stopped:
                campaign = self._running_campaign()
                if campaign is None:
                    break
                claimed, any_rows = self.claim(campaign)
                if not any_rows:
                    break
                for start in range(0, len(claimed), self.batch_size):
                    if start and (campaign := self._running_campaign()) is None:
                        break  # paused or cancelled meanwhile: release() puts the rest back
                    self.send_batch(campaign, claimed[start : start + self.batch_size])
                    if self.stats.stopped:
                        break
        finally:
            self.release()
            self.close()
            self._commit_mode(durable=True)
        return self.stats

    def _running_campaign(self) -> Campaign | None:
        campaign = Campaign.objects.select_related("template").get(pk=self.campaign_id)
        if campaign.status != Campaign.Status.RUNNING:
            self.stats.stopped = f"campaign {campaign.get_status_display().lower()}"
            return None
        return campaign

    def send_batch(self, campaign: Campaign, rows: list[Delivery]) -> None:
        """Check again, render, send, mark and report one batch of claimed rows."""
        prepared = self.prepare(campaign, rows)
        errors_before = self.stats.failed + self.stats.retried
        sent_before = self.stats.sent
        if prepared:
            self.send(campaign, prepared)
            self.flush_marks()
        self.after_batch(
            campaign, sent=self.stats.sent - sent_before, errors=self.stats.failed + self.stats.retried - errors_before
        )

    @staticmethod
    def _commit_mode(*, durable: bool) -> None:
        """PostgreSQL: while sending, this session commits asynchronously (no WAL
        flush wait per "sent" mark: the mark is written, the disk catches up within
        wal_writer_delay). A *worker* crash loses nothing by it; a *database* crash
        could lose the last marks, whose rows are then resent after their lease with
        the same Message-ID. Claims stay durable (see `claim`): a Message-ID is on
        disk before its email leaves."""
        if db_connection.vendor != "postgresql":
            return
        try:
            with db_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO " + ("DEFAULT" if durable else "OFF"))
        except Exception:  # noqa: BLE001 - a broken connection is replaced by Django anyway
            if not durable:
                raise
            logger.warning("could not restore synchronous_commit", exc_info=True)

    # --- 1. claim -------------------------------------------------------------------------
    def _claimable(self, now) -> Q:
        return Q(status=S.PENDING, next_attempt_at__lte=now) | Q(status=S.SENDING, lease_expires_at__lt=now)

    def claim(self, campaign: Campaign) -> tuple[list[Delivery], bool]:
        """Claim and check a batch. Returns (rows to send now, whether any row was taken)."""
        now = timezone.now()
        lease_until = now + timedelta(seconds=self.lease_seconds)
        base = Delivery.objects.filter(campaign_id=self.campaign_id, pk__gte=self.min_id, pk__lte=self.max_id)
        fields = (
            "pk",
            "user_id",
            "status",
            "is_holdout",
            "message_id",
            "email",
            "attempts",
            "variant_id",
            "products",
            "context",
            "trigger_key",
            "campaign_id",
        )
        with transaction.atomic():
            if db_connection.vendor == "postgresql":
                with db_connection.cursor() as cursor:  # this commit waits for the disk (see _commit_mode)
                    cursor.execute("SET LOCAL synchronous_commit TO on")
                rows = list(
                    base.filter(self._claimable(now))
                    .select_for_update(skip_locked=True, of=("self",))
                    .order_by("pk")
                    .only(*fields)[: self.claim_size]
                )
            else:
                candidates = list(
                    base.filter(self._claimable(now)).order_by("pk").values_list("pk", flat=True)[: self.claim_size]
                )
                # The conditional UPDATE takes only rows that are still claimable.
                base.filter(pk__in=candidates).filter(self._claimable(now)).update(
                    lease_owner=self.owner, lease_expires_at=lease_until, status=S.SENDING
                )
                rows = list(
                    Delivery.objects.filter(pk__in=candidates, lease_owner=self.owner, status=S.SENDING)
                    .order_by("pk")
                    .only(*fields)
                )
            if not rows:
                return [], False
            try:
                to_send = self._check_and_lease(campaign, rows, now, lease_until)
            except _StrategyRefused as exc:
                refused = str(exc)
                transaction.set_rollback(True)  # the claim is undone: nothing changed
            else:
                refused = ""
                self.stats.claimed += len(rows)
        if refused:  # an unknown strategy: nothing this campaign sends can be right
            self.pause(campaign, f"recommendations refused the strategy: {refused}")
            return [], True
        self.lease_deadline = time.monotonic() + self.lease_seconds
        return to_send, True

    def _check_and_lease(self, campaign: Campaign, rows: list[Delivery], now, lease_until) -> list[Delivery]:
        user_ids = sorted({r.user_id for r in rows if r.user_id is not None})
        users = {
            u[0]: u
            for u in User.objects.filter(pk__in=user_ids).values_list("pk", "email", "is_active", "marketing_consent")
        }
        emails = {u[1].lower() for u in users.values()}
        suppressed = set(Suppression.objects.filter(email__in=emails).values_list("email", flat=True))
        skipped: dict[str, list[int]] = defaultdict(list)
        eligible: list[Delivery] = []
        for row in rows:
            user = users.get(row.user_id)
            if user is None or not user[2]:
                skipped[Delivery.SkipReason.INACTIVE].append(row.pk)
            elif not user[3]:
                skipped[Delivery.SkipReason.NO_CONSENT].append(row.pk)
            elif user[1].lower() in suppressed:
                skipped[Delivery.SkipReason.SUPPRESSED].append(row.pk)
            else:
                eligible.append(row)
        # The products, before anything is sent (a row begun before keeps its own), and
        # before the frequency cap's locks: they are held only for the decision below.
        self._recommend(campaign, [r for r in eligible if not r.is_holdout and not r.products])
        cap = conf.get("FREQUENCY_CAP")
        counts = self._cap_counts(rows, [r.user_id for r in eligible], now) if cap else defaultdict(int)
        withheld: list[int] = []
        to_send: list[Delivery] = []
        for row in eligible:
            if cap and counts[row.user_id] >= cap:
                skipped[Delivery.SkipReason.FREQUENCY_CAP].append(row.pk)
                continue
            if row.is_holdout:
                withheld.append(row.pk)
                continue
            if not row.products and not row.context.get("product_ids"):
                skipped[Delivery.SkipReason.NO_PRODUCTS].append(row.pk)  # takes no slot of the cap
                continue
            counts[row.user_id] += 1
            row.recovered = bool(row.message_id)  # begun before: resend the same message
            row.message_id = row.message_id or message_id_make(row.pk)
            row.email = row.email if row.recovered and row.email else users[row.user_id][1]
            row.status = S.SENDING
            row.lease_owner, row.lease_expires_at = self.owner, lease_until
            row.attempts += 1
            to_send.append(row)
        cleared = {"lease_owner": None, "lease_expires_at": None}
        for reason, ids in skipped.items():
            Delivery.objects.filter(pk__in=ids).update(
                status=S.SKIPPED, skip_reason=reason, processed_at=now, **cleared
            )
            self.stats.skipped += len(ids)
            self.stats.skip_reasons[reason] += len(ids)
        if withheld:
            Delivery.objects.filter(pk__in=withheld).update(status=S.WITHHELD, processed_at=now, **cleared)
            self.stats.withheld += len(withheld)
        if to_send:
            claim_rows(rows=to_send, owner=self.owner, lease_until=lease_until)
        return to_send

    def _cap_counts(self, rows: list[Delivery], user_ids: list[int], now) -> dict[int, int]:
        """Marketing emails each customer got in the period or is being sent, other than
        ``rows``. On PostgreSQL, first serialise cap decisions with every other claim
        for the same customers until this transaction ends: an advisory lock per bucket
        of customers (user id modulo ``_CAP_LOCK_BUCKETS``, taken in order: no
        deadlock), so a claim holds a bounded number of locks however large it is
        (PostgreSQL's lock table holds max_locks_per_transaction x max_connections)."""
        counts: dict[int, int] = defaultdict(int)
        if not user_ids:
            return counts
        if db_connection.vendor == "postgresql":
            with db_connection.cursor() as cur:
                cur.execute(
                    "SELECT pg_advisory_xact_lock(%s, b) FROM (SELECT DISTINCT (u %% %s)::int AS b "
                    "FROM unnest(%s::bigint[]) AS u) AS buckets ORDER BY b",
                    [_ADVISORY_NAMESPACE, _CAP_LOCK_BUCKETS, sorted(set(user_ids))],
                )
        since = now - timedelta(days=conf.get("FREQUENCY_PERIOD_DAYS"))
        recent = (
            Delivery.objects.filter(user_id__in=user_ids)
            .exclude(pk__in=[r.pk for r in rows])
            .filter(Q(status=S.SENT, sent_at__gte=since) | Q(status=S.SENDING))
            .values("user_id")
            .annotate(n=Count("pk"))
            .values_list("user_id", "n")
        )
        counts.update(dict(recent))
        return counts

    # --- 2. prepare -----------------------------------------------------------------------------
    def _compiled_for(self, campaign: Campaign, subject: str) -> CompiledEmail:
        t = campaign.template
        key = (t.pk, t.updated_at, subject)
        if key not in self._compiled:
            self._compiled[key] = email_compile(
                subject=subject or t.subject, html_body=t.html_body, text_body=t.text_body
            )
        return self._compiled[key]

    def _strategy(self, campaign: Campaign, variant) -> str:
        strategy = (variant.strategy if variant and variant.strategy else "") or campaign.strategy or products.AUTO
        if campaign.kind == Campaign.Kind.WELCOME and strategy == products.AUTO:
            return "interests"  # a new customer: their stated interests
        return strategy

    def _recently_sent_products(self, campaign: Campaign, user_ids: list[int]) -> dict[int, set[int]]:
        days = campaign.exclude_recently_sent_days
        if not days or not user_ids:
            return {}
        since = timezone.now() - timedelta(days=days)
        out: dict[int, set[int]] = defaultdict(set)
        for user_id, snapshots in Delivery.objects.filter(
            user_id__in=user_ids, status=S.SENT, sent_at__gte=since
        ).values_list("user_id", "products"):
            out[user_id].update(p["id"] for p in snapshots or ())
        return out

    def _variants(self, campaign: Campaign) -> dict:
        if self._variant_cache is None:
            self._variant_cache = {v.pk: v for v in campaign.variants.all()}
        return self._variant_cache

    def _recommend(self, campaign: Campaign, rows: list[Delivery]) -> None:
        """Each row's products: batched per strategy, with the campaign's exclusions
        and the row's own (cart or order items, products emailed recently)."""
        if not rows:
            return
        variants = self._variants(campaign)
        if self._excluded_categories is None:
            self._excluded_categories = frozenset(campaign.exclude_categories.values_list("pk", flat=True))
        exclusions = products.Exclusions(
            category_ids=self._excluded_categories, exclude_purchased=campaign.exclude_purchased
        )
        recently = self._recently_sent_products(campaign, [r.user_id for r in rows])
        by_strategy: dict[str, list[Delivery]] = defaultdict(list)
        for row in rows:
            by_strategy[self._strategy(campaign, variants.get(row.variant_id))].append(row)
        try:
            for strategy, group in by_strategy.items():
                excluded = {
                    r.user_id: set(r.context.get("product_ids", ())) | recently.get(r.user_id, set()) for r in group
                }
                picks = products.picks_for_users(
                    user_ids=[r.user_id for r in group],
                    strategy=strategy,
                    n=campaign.n_products,
                    exclusions=exclusions,
                    excluded_by_user=excluded,
                )
                for row in group:
                    row.products = picks.get(row.user_id, [])
                    row.strategy = strategy
        except ValueError as exc:
            raise _StrategyRefused(str(exc)) from exc

    def prepare(self, campaign: Campaign, rows: list[Delivery]) -> list[_Prepared]:
        variants = self._variants(campaign)
        # Cart / order items shown next to the recommendations (triggered campaigns).
        item_ids = {pid for r in rows for pid in r.context.get("product_ids", ())}
        items = (
            {p.pk: p for p in Product.objects.filter(pk__in=item_ids).select_related("category")} if item_ids else {}
        )
        rows, users = self._recheck(rows)
        prepared = []
        for row in rows:
            variant = variants.get(row.variant_id)
            try:
                compiled = self._compiled_for(campaign, variant.subject if variant else "")
            except TemplateInvalid as exc:
                self.pause(campaign, f"the template does not compile: {exc}")
                return []
            user = users.get(row.user_id) or {"first_name": "", "last_name": "", "email": row.email}
            context = email_context(
                user=user,
                products=row.products,
                kind=campaign.kind,
                campaign_name=campaign.name,
                campaign_id=campaign.pk,
                delivery_id=row.pk,
                context_data=row.context,
                items=items,
            )
            rendered = email_render(compiled, context, open_pixel_url=tokens.open_url(row.pk))
            message = message_build(
                to=row.email,
                rendered=rendered,
                message_id=row.message_id,
                unsubscribe_url=context["unsubscribe_url"],
                delivery_id=row.pk,
                from_email=campaign.from_email,
            )
            prepared.append(_Prepared(delivery=row, message=message))
        return prepared

    def _recheck(self, rows: list[Delivery]) -> tuple[list[Delivery], dict[int, dict]]:
        """Consent and suppression read again right before sending. Returns the rows
        still to send and their customers' names (read in the same query)."""
        if not rows:
            return rows, {}
        users = {
            u["pk"]: u
            for u in User.objects.filter(pk__in=[r.user_id for r in rows]).values(
                "pk", "marketing_consent", "first_name", "last_name", "email"
            )
        }
        suppressed = set(
            Suppression.objects.filter(email__in=[r.email.lower() for r in rows]).values_list("email", flat=True)
        )
        keep, no_consent, blocked = [], [], []
        for row in rows:
            if not users.get(row.user_id, {}).get("marketing_consent"):
                no_consent.append(row.pk)
            elif row.email.lower() in suppressed:
                blocked.append(row.pk)
            else:
                keep.append(row)
        if no_consent:
            self._skip(no_consent, Delivery.SkipReason.NO_CONSENT)
        if blocked:
            self._skip(blocked, Delivery.SkipReason.SUPPRESSED)
        return keep, users

    def _skip(self, ids: list[int], reason: str) -> None:
        Delivery.objects.filter(pk__in=ids, lease_owner=self.owner).update(
            status=S.SKIPPED,
            skip_reason=reason,
            processed_at=timezone.now(),
            lease_owner=None,
            lease_expires_at=None,
        )
        self.stats.skipped += len(ids)
        self.stats.skip_reasons[reason] += len(ids)

    # --- 3. send ----------------------------------------------------------------------------------
    def open(self) -> None:
        if self.connection is None:
            self.connection = get_connection(fail_silently=False)
        if not self._opened:
            self.connection.open()
            self._opened = True

    def close(self) -> None:
        if self.connection is not None and self._opened:
            try:
                self.connection.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                logger.debug("closing the email connection failed", exc_info=True)
            self._opened = False
        if self._own_connection:
            self.connection = None

    def renew_lease(self) -> None:
        if time.monotonic() < self.lease_deadline - self.lease_seconds / 3:
            return
        Delivery.objects.filter(lease_owner=self.owner, status=S.SENDING).update(
            lease_expires_at=timezone.now() + timedelta(seconds=self.lease_seconds)
        )
        self.lease_deadline = time.monotonic() + self.lease_seconds

    def send(self, campaign: Campaign, prepared: list[_Prepared]) -> None:
        for index, item in enumerate(prepared):
            row = item.delivery
            self.renew_lease()
            try:
                self.open()
                transactional = getattr(self.connection, "transactional", False)
                self.in_flight = row.pk
                if transactional:  # the send and the mark commit together: nothing in doubt
                    with transaction.atomic():
                        self._check_sent(self.connection.send_messages([item.message]))
                        self._check_marked(marks_write(accepted=[(row.pk, time.time())], owner=self.owner), 1)
                    self.stats.sent += 1
                else:
                    self._check_sent(self.connection.send_messages([item.message]))
                    self.accept(row.pk)  # --- in doubt from here: accepted, not yet marked ---
                self.in_flight = None
            except Exception as exc:  # noqa: BLE001 - every error is classified below
                self.in_flight = None
                kind, hard_bounce = classify(exc)
                if kind == "fatal":
                    self.put_back([row.pk], error=f"{type(exc).__name__}: {exc}")
                    self.pause(campaign, f"the email backend refused us: {type(exc).__name__}: {exc}")
                    return
                self.failed(row, exc, permanent=kind == "permanent", hard_bounce=hard_bounce)
                if kind == "transient":
                    self.close()  # the connection may be broken: reconnect for the next one
                    if isinstance(exc, OSError | smtplib.SMTPServerDisconnected):
                        try:
                            self.open()
                        except Exception as again:  # noqa: BLE001 - the server is gone for now
                            rest = [p.delivery.pk for p in prepared[index + 1 :]]
                            self.put_back(
                                rest,
                                error=f"cannot reconnect: {type(again).__name__}: {again}",
                                delay=backoff_seconds(1),
                            )
                            self.stats.stopped = "email server unreachable"
                            return
                continue
            if self.accepted and (
                len(self.accepted) >= self.mark_every or time.monotonic() - self._accepted_since >= self.mark_seconds
            ):
                self.flush_marks()  # a database error here stops the sender: see release()

    @staticmethod
    def _check_sent(sent: int) -> None:
        if not sent:
            raise smtplib.SMTPDataError(554, b"the email backend sent nothing")

    def accept(self, delivery_id: int) -> None:
        """The server accepted this row's message: it is marked with the next group."""
        if not self.accepted:
            self._accepted_since = time.monotonic()
        self.accepted.append((delivery_id, time.time()))

    def flush_marks(self) -> None:
        """Mark the accepted rows ``sent`` (one statement). They stay in ``accepted``
        until the statement succeeds."""
        if not self.accepted:
            return
        self._check_marked(marks_write(accepted=self.accepted, owner=self.owner), len(self.accepted))
        self.stats.sent += len(self.accepted)
        self.accepted = []

    @staticmethod
    def _check_marked(marked: int, sent: int) -> None:
        if marked < sent:  # cannot happen while the lease is renewed; loud if it does
            logger.error("%d deliveries were sent but their lease had been taken over", sent - marked)

    def failed(self, row: Delivery, exc: BaseException, *, permanent: bool, hard_bounce: bool) -> None:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if not permanent and row.attempts < conf.get("SEND_MAX_ATTEMPTS"):
            delay = backoff_seconds(row.attempts)
            Delivery.objects.filter(pk=row.pk, lease_owner=self.owner).update(
                status=S.PENDING,
                next_attempt_at=timezone.now() + timedelta(seconds=delay),
                last_error=error,
                lease_owner=None,
                lease_expires_at=None,
            )
            self.stats.retried += 1
            self.stats.retry_in = min(delay, self.stats.retry_in or delay)
            logger.warning("delivery %s: transient error, retry in %.0fs: %s", row.pk, delay, error)
            return
        Delivery.objects.filter(pk=row.pk, lease_owner=self.owner).update(
            status=S.FAILED, processed_at=timezone.now(), last_error=error, lease_owner=None, lease_expires_at=None
        )
        self.stats.failed += 1
        logger.warning("delivery %s failed: %s", row.pk, error)
        if hard_bounce and row.email:
            suppression_add(
                email=row.email,
                reason=Suppression.Reason.BOUNCED,
                delivery=row,
                note=f"refused by the mail server: {error}"[:500],
            )

    def put_back(self, ids: list[int], *, error: str = "", delay: float = 0.0) -> None:
        """Rows claimed but not attempted go back to pending (the claim is undone)."""
        if not ids:
            return
        Delivery.objects.filter(pk__in=ids, lease_owner=self.owner, status=S.SENDING).update(
            status=S.PENDING,
            lease_owner=None,
            lease_expires_at=None,
            attempts=F("attempts") - 1,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            last_error=error[:2000],
        )
        if delay:
            self.stats.retry_in = min(delay, self.stats.retry_in or delay)

    def release(self) -> None:
        """On the way out (done, paused, error, time limit): undo the claim of rows not
        attempted. The row in flight, if any, keeps its lease: whether the server took
        it is unknown, so it is resent (same Message-ID) only after the lease expires."""
        try:
            self.flush_marks()
        except Exception:  # noqa: BLE001 - the database is gone: these rows are resent after their lease
            logger.exception("could not mark %d accepted deliveries sent; they keep their lease", len(self.accepted))
        in_doubt = [pk for pk, _ in self.accepted] + ([self.in_flight] if self.in_flight is not None else [])
        rows = Delivery.objects.filter(lease_owner=self.owner, status=S.SENDING)
        if in_doubt:
            rows = rows.exclude(pk__in=in_doubt)
        try:
            rows.update(status=S.PENDING, lease_owner=None, lease_expires_at=None, attempts=F("attempts") - 1)
            if Campaign.objects.filter(pk=self.campaign_id, status=Campaign.Status.CANCELLED).exists():
                deliveries_skip_cancelled(campaign_id=self.campaign_id)  # rows it held will never go
        except Exception:  # noqa: BLE001 - the database is gone: the leases expire on their own
            logger.exception("could not release claimed deliveries; their leases will expire")

    # --- 4. after a batch ------------------------------------------------------------------------
    def after_batch(self, campaign: Campaign, *, sent: int, errors: int) -> None:
        Campaign.objects.filter(pk=campaign.pk).update(
            sent_count=F("sent_count") + sent, error_count=F("error_count") + errors, heartbeat_at=timezone.now()
        )
        if not errors:
            return
        sent_total, error_total = Campaign.objects.filter(pk=campaign.pk).values_list("sent_count", "error_count").get()
        attempts = sent_total + error_total
        if attempts >= conf.get("ERROR_RATE_MIN_ATTEMPTS") and error_total / attempts > campaign.max_error_rate:
            self.pause(
                campaign,
                f"error rate {error_total / attempts:.0%} of {attempts} attempts is above "
                f"{campaign.max_error_rate:.0%}; last error: see failed deliveries",
            )

    def pause(self, campaign: Campaign, reason: str) -> None:
        Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.RUNNING).update(
            status=Campaign.Status.PAUSED, status_note=reason[:500]
        )
        self.stats.stopped = reason
        logger.error("campaign %s paused: %s", campaign.pk, reason)


# --- fast writes on the hot path ---------------------------------------------------------------------
# The ORM's bulk_update (CASE WHEN per row) and per-call query compilation cost more
# than sending an email; these two statements are written out once, for both backends.
# A row is written three times in its life: created, claimed (with its Message-ID and
# products), sent.
def _db_value(field_name: str, value):
    return Delivery._meta.get_field(field_name).get_db_prep_value(value, db_connection, prepared=False)


def marks_write(*, accepted: list[tuple[int, float]], owner: uuid.UUID) -> int:
    """``sent`` at the time each was accepted (epoch seconds), for the rows whose
    lease ``owner`` still holds. One statement; returns the rows marked."""
    table = db_connection.ops.quote_name(Delivery._meta.db_table)
    lease_owner = _db_value("lease_owner", owner)
    with db_connection.cursor() as cursor:
        if db_connection.vendor == "postgresql":
            # Array literals written here: psycopg's client-side quoting of a list costs
            # a regex substitution per element.
            ids = "{" + ",".join(str(int(pk)) for pk, _ in accepted) + "}"
            times = "{" + ",".join(repr(float(at)) for _, at in accepted) + "}"
            cursor.execute(
                f"UPDATE {table} AS t SET status = %s, sent_at = to_timestamp(v.at), "
                "processed_at = to_timestamp(v.at), lease_owner = NULL, lease_expires_at = NULL, last_error = '' "
                "FROM unnest(%s::bigint[], %s::float8[]) AS v(id, at) WHERE t.id = v.id AND t.lease_owner = %s",
                [S.SENT, ids, times, lease_owner],
            )
            return cursor.rowcount
        params = []
        for pk, at in accepted:
            when = _db_value("sent_at", datetime.fromtimestamp(at, tz=UTC))
            params.append([S.SENT, when, when, pk, lease_owner])
        cursor.executemany(
            f"UPDATE {table} SET status = %s, sent_at = %s, processed_at = %s, lease_owner = NULL, "
            f"lease_expires_at = NULL, last_error = '' WHERE id = %s AND lease_owner = %s",
            params,
        )
        return cursor.rowcount  # the total over all rows (sqlite3)


def claim_rows(*, rows: list[Delivery], owner: uuid.UUID, lease_until) -> None:
    """Lease checked rows to ``owner`` with their Message-ID, address and product
    snapshot, in one statement. ``recovered`` marks rows that already had a
    Message-ID (begun by a sender that died)."""
    table = db_connection.ops.quote_name(Delivery._meta.db_table)
    lease = [S.SENDING, _db_value("lease_owner", owner), _db_value("lease_expires_at", lease_until)]
    with db_connection.cursor() as cursor:
        if db_connection.vendor == "postgresql":
            # One JSON document for all rows: psycopg's client-side quoting of text
            # arrays costs a regex substitution per element, one string costs one escape.
            document = json.dumps(
                [
                    {
                        "id": r.pk,
                        "mid": r.message_id,
                        "email": r.email,
                        "products": r.products,
                        "strategy": r.strategy or "",
                    }
                    for r in rows
                ],
                separators=(",", ":"),
            )
            cursor.execute(
                f"UPDATE {table} AS t SET status = %s, lease_owner = %s, lease_expires_at = %s, "
                "attempts = t.attempts + 1, recovered = (t.message_id <> ''), "
                "message_id = v.mid, email = v.email, products = v.products, strategy = v.strategy "
                "FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, mid text, email text, products jsonb, "
                "strategy text) WHERE t.id = v.id",
                [*lease, document],
            )
        else:  # SQLite evaluates every SET expression on the old row, as PostgreSQL does
            values = [(r.pk, r.message_id, r.email, json.dumps(r.products), r.strategy or "") for r in rows]
            cursor.executemany(
                f"UPDATE {table} SET status = %s, lease_owner = %s, lease_expires_at = %s, "
                "attempts = attempts + 1, recovered = (message_id <> ''), "
                "message_id = %s, email = %s, products = %s, strategy = %s WHERE id = %s",
                [(*lease, mid, email, products, strategy, pk) for pk, mid, email, products, strategy in values],
            )


def deliveries_send_range(
    *,
    campaign_id: int,
    min_id: int,
    max_id: int,
    batch_size: int | None = None,
    claim_size: int | None = None,
    connection=None,
) -> SendStats:
    """Send the open deliveries of a campaign with ids in [min_id, max_id]."""
    return Sender(
        campaign_id=campaign_id,
        min_id=min_id,
        max_id=max_id,
        batch_size=batch_size,
        claim_size=claim_size,
        connection=connection,
    ).run()
