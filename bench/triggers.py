#!/usr/bin/env python
"""Real-time triggers (issue 15): the delay from a store event to the trigger's email
being accepted by the SMTP server, with a Celery worker running (target: p95 < 10 s).

The real path and nothing else: no periodic sweep runs. A fresh PostgreSQL database,
Redis as the broker (``REDIS_URL``), one Celery worker process (2 pool processes), a
real SMTP server on loopback (aiosmtpd in a thread of this process, noting when each
message arrives). Running campaigns: post-purchase, back in stock, price drop (no
delay) and browse abandonment (1 hour after the last view). This process plays the
store, one event at a time with a pause between, through the store's own services:

- ``order``: a customer places an order (`order_place`) -> post-purchase email;
- ``back_in_stock``: a product a customer viewed while it was out is restocked by a
  catalogue upsert -> back-in-stock email;
- ``price_drop``: the price of a product a customer viewed drops (one product's
  ``save()``, as admin does) -> price-drop email;
- ``browse``: a customer's last view was 1 hour minus 2 seconds ago; the delay is
  measured from the moment it is due (last view + 1 hour) -> browse-abandonment email.

The delay of an event is from its commit (``browse``: its due time) to the SMTP
server accepting the message. Reported per kind and overall: p50, p95, max.

    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/triggers.py --events 60
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._rec_common import ROOT, database_drop, database_ensure, machine  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/affinity_bench_triggers"
DOMAIN = "bench-triggers.affinity.example"
KINDS = ("order", "back_in_stock", "price_drop", "browse")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """An SMTP server on loopback: when each recipient's message was accepted."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.arrived: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                at = time.time()
                with sink.lock:
                    for rcpt in envelope.rcpt_tos:
                        sink.arrived[rcpt].append(at)
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def worker_start(env: dict[str, str], queue: str, log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "shop", "worker", "-Q", queue, "-c", "2", "--pool", "prefork"]
        + ["--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"{queue}@%h", "--loglevel", "INFO"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited:\n{log.read_text()[-3000:]}")
        if b"ready." in log.read_bytes():
            return proc
        time.sleep(0.2)
    raise SystemExit("the worker did not become ready")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60, help="store events in all (spread over the four kinds)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between two events")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    if args.events < len(KINDS):
        parser.error(f"--events must be at least {len(KINDS)} (one of each kind)")
    if args.pause < 0:
        parser.error("--pause must not be negative")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url.startswith("redis"):
        raise SystemExit("set REDIS_URL (the broker the worker and this process share)")
    queue = f"bench-triggers-{uuid.uuid4().hex[:8]}"
    print(f"fresh database {args.database_url} ...")
    database_drop(args.database_url)
    database_ensure(args.database_url)
    os.environ.update(
        {
            "DATABASE_URL": args.database_url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "DJANGO_SETTINGS_MODULE": "shop.settings",
        }
    )
    import django

    django.setup()
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from campaigns import lifecycle, services
    from campaigns.models import Campaign, Delivery, EmailTemplate
    from shop.models import Category, Interaction, Product, User
    from shop.services.catalogue import product_row_check, products_upsert
    from shop.services.interactions import interaction_record, interactions_bulk_insert
    from shop.services.orders import OrderLineIn, order_place

    per_kind = -(-args.events // len(KINDS))
    category = Category.objects.create(name="Bench", slug="bench")
    products = Product.objects.bulk_create(
        [
            Product(
                sku=f"T{i:05d}",
                name=f"Trigger product {i}",
                slug=f"trigger-product-{i}",
                category=category,
                price=Decimal("20.00"),
                stock=0 if i < per_kind else 1000,
            )
            for i in range(3 * per_kind + 20)
        ]
    )
    customers = User.objects.bulk_create(
        [
            User(
                email=f"c{i}@{DOMAIN}",
                first_name=f"Cust{i}",
                marketing_consent=True,
                password="!",
                date_joined=timezone.now() - timedelta(days=30),
            )
            for i in range(len(KINDS) * per_kind)
        ]
    )
    # Some anonymous history, so that every email has recommendations beside its items.
    now = timezone.now()
    interactions_bulk_insert(
        rows=[
            Interaction(
                session_key=f"s{j}", product=p, kind=Interaction.Kind.VIEW, occurred_at=now - timedelta(hours=j)
            )
            for j, p in enumerate(products[-20:] * 3)
        ]
    )
    template = EmailTemplate.objects.order_by("pk").first()
    if template is None:
        raise SystemExit("no email template: the migrations install a default one")
    for kind, delay in (
        (Campaign.Kind.POST_PURCHASE, 0),
        (Campaign.Kind.BACK_IN_STOCK, 0),
        (Campaign.Kind.PRICE_DROP, 0),
        (Campaign.Kind.BROWSE_ABANDONMENT, 1),
    ):
        campaign = services.campaign_create(
            name=f"bench {kind}",
            template=template,
            kind=kind,
            strategy="trending",
            trigger_delay_hours=delay,
            exclude_purchased=False,
            n_products=3,
        )
        services.campaign_schedule(campaign=campaign)
        lifecycle.campaign_launch(campaign_id=campaign.pk)
        # Listening since a little before the browsing below began.
        Campaign.objects.filter(pk=campaign.pk).update(started_at=timezone.now() - timedelta(hours=2))

    # Interest before the events: views of the out-of-stock products (back in stock) and
    # of the products whose price will drop.
    groups = {k: customers[i * per_kind : (i + 1) * per_kind] for i, k in enumerate(KINDS)}
    restock = products[:per_kind]
    cheaper = products[per_kind : 2 * per_kind]
    for user, product in zip(groups["back_in_stock"], restock, strict=True):
        interaction_record(product=product, kind=Interaction.Kind.VIEW, user=user)
    for user, product in zip(groups["price_drop"], cheaper, strict=True):
        interaction_record(product=product, kind=Interaction.Kind.VIEW, user=user)

    env = {**os.environ}
    started: dict[str, tuple[str, float]] = {}  # recipient -> (kind, when the delay starts)
    log = Path(f"/tmp/{queue}.log")
    with Sink() as sink:
        env["EMAIL_URL"] = f"smtp://127.0.0.1:{sink.port}"
        print("starting a Celery worker ...")
        worker = worker_start(env, queue, log)
        try:
            plan = [(k, i) for i in range(per_kind) for k in KINDS][: args.events]
            print(f"{len(plan)} events, {args.pause}s apart ...")
            for kind, i in plan:
                user = groups[kind][i]
                if kind == "order":
                    order_place(lines=[OrderLineIn(product=products[-1 - i % 20], quantity=1)], user=user)
                    started[user.email] = (kind, time.time())
                elif kind == "back_in_stock":
                    row = product_row_check({"sku": restock[i].sku, "stock": "50"}, index=0)
                    products_upsert(rows=[row])  # type: ignore[list-item]
                    started[user.email] = (kind, time.time())
                elif kind == "price_drop":
                    product = Product.objects.get(pk=cheaper[i].pk)
                    product.price = Decimal("15.00")
                    product.save()
                    started[user.email] = (kind, time.time())
                else:
                    viewed = timezone.now() - timedelta(hours=1) + timedelta(seconds=2)
                    interaction_record(
                        product=products[-1 - i % 20], kind=Interaction.Kind.VIEW, user=user, occurred_at=viewed
                    )
                    started[user.email] = (kind, viewed.timestamp() + 3600)
                time.sleep(args.pause)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with sink.lock:
                    if set(started) <= set(sink.arrived):
                        break
                time.sleep(0.2)
        finally:
            os.killpg(worker.pid, 15)
            worker.wait(30)
        with sink.lock:
            arrived = {k: list(v) for k, v in sink.arrived.items()}
    delays: dict[str, list[float]] = defaultdict(list)
    missing = [email for email in started if email not in arrived]
    twice = [email for email, times in arrived.items() if len(times) > 1]
    for email, (kind, t0) in started.items():
        if email in arrived:
            delays[kind].append(arrived[email][0] - t0)
    sent = Delivery.objects.filter(status=Delivery.Status.SENT).count()
    everything = [d for v in delays.values() for d in v]
    if not everything:
        raise SystemExit(f"no email arrived; worker log: {log}")
    lines = [
        f"Machine: {machine()}. {len(started)} store events, {args.pause} s apart, one Celery worker (2 processes), "
        "PostgreSQL, Redis broker, aiosmtpd on loopback; no periodic sweep running.",
        "",
        "| event | emails | p50 (s) | p95 (s) | max (s) |",
        "|---|---|---|---|---|",
    ]
    for kind in (*KINDS, "all"):
        values = everything if kind == "all" else delays[kind]
        if values:
            lines.append(
                f"| {kind} | {len(values)} | {percentile(values, 50):.2f} | {percentile(values, 95):.2f} "
                f"| {max(values):.2f} |"
            )
    p95 = percentile(everything, 95)
    lines += [
        "",
        f"p95 over all events **{p95:.2f} s** (target < 10 s: {'met' if p95 < 10 else 'NOT met'}). "
        f"Emails that never arrived: {len(missing)}; recipients with more than one: {len(twice)}; "
        f"deliveries marked sent: {sent}.",
    ]
    print("\n".join(lines))
    if missing or twice:
        raise SystemExit(f"missing {missing[:5]} twice {twice[:5]}; worker log: {log}")


if __name__ == "__main__":
    main()
