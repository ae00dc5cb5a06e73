#!/usr/bin/env python
"""Campaign sending (EVALUATION.md section 4).

100,000 consenting recipients with purchase histories and an active model, so every
email carries the customer's own recommendations. The real path: the audience is
built by the campaign launch (one Delivery row each), then Celery workers on Redis
claim, check, recommend (batched), render and send over one SMTP connection per task
to a real SMTP server on loopback (an aiosmtpd sink in its own process, counting
what it receives per recipient).

In the same run, the floor: a raw SMTP loop sending pre-rendered copies of the same
email over one connection to the same sink. Reported: personalised emails delivered
per second (from the workers' start to the last email), the floor, their ratio
(goal >= 50%), and the exactly-once check from the server's own counts: every
recipient once, nobody twice, nobody who unsubscribed or has no consent.

    .venv/bin/python bench/campaign.py                    # 100,000 recipients, writes bench/RESULTS.md
    .venv/bin/python bench/campaign.py --recipients 5000 --no-write
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._rec_common import ROOT, database_ensure, machine, median, results_section_write  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/affinity_bench_campaign"
DOMAIN = "bench.affinity.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the SMTP sink, in a process of its own ---------------------------------------------------
def sink_main(port: int, ready, stop, received, out_path: str) -> None:
    from aiosmtpd.controller import Controller

    counts: Counter[str] = Counter()

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            for rcpt in envelope.rcpt_tos:
                counts[rcpt] += 1
            with received.get_lock():
                received.value += 1
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port, data_size_limit=10_000_000)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
    Path(out_path).write_text(json.dumps(counts))


class Sink:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.port = free_port()
        self.ready, self.stop_event = ctx.Event(), ctx.Event()
        self.received = ctx.Value("q", 0)
        self.out = Path(tempfile.mkdtemp(prefix="bench-sink-")) / "counts.json"
        self.proc = ctx.Process(
            target=sink_main, args=(self.port, self.ready, self.stop_event, self.received, str(self.out)), daemon=True
        )

    def __enter__(self) -> Sink:
        self.proc.start()
        if not self.ready.wait(30):
            raise RuntimeError("the SMTP sink did not start")
        return self

    def counts(self, *, keep_running: bool = False) -> Counter:
        """The per-recipient counts so far (the sink writes them when asked to stop;
        with ``keep_running`` a fresh sink takes over on the same port)."""
        self.stop_event.set()
        self.proc.join(30)
        counts = Counter(json.loads(self.out.read_text()))
        if keep_running:
            ctx = mp.get_context("spawn")
            self.ready, self.stop_event = ctx.Event(), ctx.Event()
            self.proc = ctx.Process(
                target=sink_main,
                args=(self.port, self.ready, self.stop_event, self.received, str(self.out)),
                daemon=True,
            )
            self.__enter__()
        return counts

    def __exit__(self, *exc) -> None:
        if self.proc.is_alive():
            self.stop_event.set()
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.kill()


# --- seeding ---------------------------------------------------------------------------------------
def seed(*, recipients: int, products: int, per_user: int, rng: random.Random) -> None:
    """Customers (consenting, plus some without consent and some suppressed), a
    catalogue, purchase histories, and a trained item-kNN model. Kept between runs."""
    from django.db import transaction
    from django.utils import timezone
    from tqdm import tqdm

    from campaigns.models import Suppression
    from shop.bulk import rows_bulk_insert
    from shop.models import Category, Interaction, Product, User
    from shop.services.interactions import interactions_bulk_copy

    extra_no_consent, extra_suppressed = recipients // 100, recipients // 200
    total = recipients + extra_no_consent + extra_suppressed
    have = User.objects.filter(email__endswith=f"@{DOMAIN}").count()
    if have == total and Product.objects.count() >= products:
        print(f"database already seeded: {have:,} customers")
        return
    print(f"seeding {recipients:,} customers, {products:,} products, ~{recipients * per_user:,} purchases ...")
    now = timezone.now()
    with transaction.atomic():
        Interaction.objects.all().delete()
        Suppression.objects.filter(email__endswith=f"@{DOMAIN}").delete()
        User.objects.filter(email__endswith=f"@{DOMAIN}").delete()
        Product.objects.all().delete()
        Category.objects.all().delete()
        cats = [Category.objects.create(name=f"Bench {c}", slug=f"bench-{c}", colour="#3366aa") for c in range(20)]
        Product.objects.bulk_create(
            [
                Product(
                    sku=f"B{i:06d}",
                    name=f"Bench product {i}",
                    slug=f"bench-product-{i}",
                    category=cats[i % 20],
                    price=Decimal("3.50") + i % 40,
                    stock=10_000,
                )
                for i in range(products)
            ],
            batch_size=5000,
        )
        fields = (
            "password",
            "is_superuser",
            "email",
            "first_name",
            "last_name",
            "country",
            "marketing_consent",
            "consent_changed_at",
            "is_staff",
            "is_active",
            "date_joined",
        )

        def users():
            for i in tqdm(range(total), desc="customers", unit="row", mininterval=1):
                consent = i < recipients or i >= recipients + extra_no_consent
                yield (
                    "!",
                    False,
                    f"c{i}@{DOMAIN}",
                    f"Cust{i}",
                    "Bench",
                    "United Kingdom",
                    consent,
                    now,
                    False,
                    True,
                    now - timedelta(days=400),
                )

        rows_bulk_insert(model=User, fields=fields, rows=users())
        Suppression.objects.bulk_create(
            [
                Suppression(email=f"c{i}@{DOMAIN}", reason=Suppression.Reason.BOUNCED)
                for i in range(recipients + extra_no_consent, total)
            ]
        )
        user_ids = list(User.objects.filter(email__endswith=f"@{DOMAIN}").order_by("pk").values_list("pk", flat=True))
        product_ids = list(Product.objects.order_by("pk").values_list("pk", flat=True))
        weights = [1.0 / (r + 1) ** 0.8 for r in range(len(product_ids) // 20)]

        def events():
            for u, uid in enumerate(tqdm(user_ids, desc="histories", unit="customer", mininterval=1)):
                taste = u % 20
                pool = product_ids[taste::20]
                for pid in rng.choices(pool, weights=weights[: len(pool)], k=per_user):
                    kind = Interaction.Kind.PURCHASE if rng.random() < 0.5 else Interaction.Kind.VIEW
                    yield (uid, "", pid, kind, 1.0, now - timedelta(days=rng.random() * 90), Interaction.Source.WEB)

        interactions_bulk_copy(rows=events())
    print("training an item-kNN model for the recommendations ...")
    from recommendations import services as rec_services

    version = rec_services.model_version_create(algorithm="item_knn", params={})
    version = rec_services.model_train(version_id=version.pk)
    print(f"model {version.pk}: {version.status} {version.error or ''}")


# --- the floor -------------------------------------------------------------------------------------
def floor(*, port: int, messages: int) -> float:
    """Messages per second of a raw SMTP loop: pre-rendered copies of a campaign email
    (its real size and parts), distinct recipients, one connection."""
    from campaigns.rendering import email_compile, email_render, message_build, message_id_make, sample_context

    html = (ROOT / "templates/campaigns/emails/recommendations.html").read_text()
    text = (ROOT / "templates/campaigns/emails/recommendations.txt").read_text()
    compiled = email_compile(subject="{{ greeting_name }}, we picked these for you", html_body=html, text_body=text)
    context = sample_context()
    context["products"] = context["products"] * 3  # six products, as the campaign sends
    rendered = email_render(compiled, context, open_pixel_url="https://shop.example.com/c/o/x.gif")
    payloads = []
    for i in range(messages):
        msg = message_build(
            to=f"floor{i}@{DOMAIN}",
            rendered=rendered,
            message_id=message_id_make(i),
            unsubscribe_url="https://shop.example.com/c/u/x/",
            delivery_id=i,
        )
        payloads.append((f"floor{i}@{DOMAIN}", msg.message().as_bytes(linesep="\r\n")))
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        started = time.perf_counter()
        for rcpt, payload in payloads:
            smtp.sendmail("store@affinity.example", [rcpt], payload)
        elapsed = time.perf_counter() - started
    return messages / elapsed


# --- where the machine's CPU goes ----------------------------------------------------------------------
def _proc_cpu(pid: int) -> tuple[float, float, int, str]:
    """(own CPU s, reaped children's CPU s, parent pid, command line) of a process."""
    tick = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    # fields[0] is the state (the 3rd field of stat): utime, stime, cutime, cstime are 14..17
    return (
        (int(fields[11]) + int(fields[12])) / tick,
        (int(fields[13]) + int(fields[14])) / tick,
        int(fields[1]),
        cmdline,
    )


def _machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent by each group of processes between `start` and `stop`, from
    /proc: the Celery workers (their pool processes included), PostgreSQL (live
    sessions plus whatever the postmaster reaped meanwhile: every database's, so a
    neighbour's queries count here too), the SMTP sink, Redis, this driver, and the
    machine as a whole ("other": everything else, e.g. a neighbour's work)."""

    def __init__(self, *, sink_pid: int) -> None:
        self.sink_pid = sink_pid
        self.worker_pids: list[int] = []

    def _sample(self) -> dict[str, float]:
        groups = {"Celery workers": 0.0, "PostgreSQL": 0.0, "SMTP sink": 0.0, "Redis": 0.0, "benchmark driver": 0.0}
        procs = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    procs[int(name)] = _proc_cpu(int(name))
                except (OSError, IndexError, ValueError):
                    continue  # gone meanwhile
        for pid, (own, reaped, ppid, cmdline) in procs.items():
            if pid in self.worker_pids:
                groups["Celery workers"] += own + reaped
            elif ppid in self.worker_pids:
                groups["Celery workers"] += own
            elif cmdline.startswith("postgres:") or "bin/postgres " in cmdline:  # sessions, the postmaster
                groups["PostgreSQL"] += own + reaped
            elif pid == self.sink_pid:
                groups["SMTP sink"] += own
            elif cmdline.startswith("redis-server") or "/redis-server" in cmdline:
                groups["Redis"] += own
        me = os.times()
        groups["benchmark driver"] = me.user + me.system
        groups["machine"] = _machine_busy()
        return groups

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> dict[str, float]:
        """CPU seconds per group since `start` (call while the workers still run)."""
        after = self._sample()
        used = {k: max(0.0, after[k] - self.before.get(k, 0.0)) for k in after}
        used["other"] = max(0.0, used["machine"] - sum(v for k, v in used.items() if k != "machine"))
        return used


# --- the campaign ------------------------------------------------------------------------------------
def start_workers(*, n: int, concurrency: int, env: dict, logdir: Path) -> list[subprocess.Popen]:
    procs = []
    for w in range(n):
        log = open(logdir / f"worker-{w}.log", "wb")  # noqa: SIM115 - owned by the process
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "shop",
                    "worker",
                    "-Q",
                    env["CELERY_TASK_DEFAULT_QUEUE"],
                    "-c",
                    str(concurrency),
                    "--pool",
                    "prefork",
                    "--without-heartbeat",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"bench{w}-{os.getpid()}@%h",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def run_campaign(
    *, sink: Sink, workers: int, concurrency: int, unsubscribe: int, timeout: float, audience: int | None = None
) -> dict:
    from django.db.models import Count, Max, Min
    from tqdm import tqdm

    from campaigns import services, suppressions, tasks
    from campaigns.models import Campaign, Delivery, EmailTemplate, Segment, Suppression
    from shop.models import ConsentChange, User

    Campaign.objects.filter(name__startswith="bench:").delete()
    # Who unsubscribed in an earlier run opts in again (the same population every run).
    again = User.objects.filter(email__endswith=f"@{DOMAIN}", consent_changes__source=ConsentChange.Source.UNSUBSCRIBE)
    User.objects.filter(pk__in=list(again.values_list("pk", flat=True))).update(marketing_consent=True)
    ConsentChange.objects.filter(user__email__endswith=f"@{DOMAIN}", source=ConsentChange.Source.UNSUBSCRIBE).delete()
    Suppression.objects.filter(email__endswith=f"@{DOMAIN}", reason=Suppression.Reason.UNSUBSCRIBED).delete()
    if audience:  # a quicker run: the first customers only
        ids = list(
            User.objects.filter(email__endswith=f"@{DOMAIN}", marketing_consent=True)
            .order_by("pk")
            .values_list("pk", flat=True)[:audience]
        )
        segment, _ = Segment.objects.update_or_create(
            name="bench: the first customers", defaults={"rules": {"rule": "users", "ids": ids}}
        )
    else:
        segment, _ = Segment.objects.get_or_create(
            name="bench: everyone with consent", defaults={"rules": {"rule": "consent"}}
        )
    template = EmailTemplate.objects.filter(name="bench: recommended").first()
    if template is None:
        template = EmailTemplate.objects.create(
            name="bench: recommended",
            subject="{{ greeting_name }}, we picked these for you",
            html_body=(ROOT / "templates/campaigns/emails/recommendations.html").read_text(),
            text_body=(ROOT / "templates/campaigns/emails/recommendations.txt").read_text(),
        )
    campaign = services.campaign_create(
        name=f"bench: {time.strftime('%H:%M:%S')}", template=template, segment=segment, n_products=6
    )
    services.campaign_schedule(campaign=campaign)  # queues the launch; the workers are not up yet
    started = time.perf_counter()
    size = tasks.campaign_launch_task(campaign.pk)  # builds the audience here, queues the sends
    build_s = time.perf_counter() - started
    # Between the audience build and the send: some unsubscribe (one click each).
    leaving = list(Delivery.objects.filter(campaign=campaign).order_by("?")[:unsubscribe])
    for delivery in leaving:
        suppressions.delivery_unsubscribe(delivery=delivery)
    unsubscribed = {d.email for d in leaving}

    env = {**os.environ, "EMAIL_URL": f"smtp://127.0.0.1:{sink.port}", "DEBUG": "false", "LOG_LEVEL": "WARNING"}
    logdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    meter = CpuMeter(sink_pid=sink.proc.pid)
    procs = start_workers(n=workers, concurrency=concurrency, env=env, logdir=logdir)
    meter.worker_pids = [p.pid for p in procs]
    meter.start()
    t0 = time.time()
    loads: list[float] = []
    try:
        with tqdm(total=size, desc="sending", unit="email", mininterval=1) as bar:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                # Counting the open rows reads the senders' small partial index; counting the
                # done ones would scan the campaign every second, on the database being measured.
                done = size - Delivery.objects.filter(campaign=campaign, status__in=Delivery.OPEN_STATUSES).count()
                bar.update(done - bar.n)
                loads.append(os.getloadavg()[0])
                if done >= size:
                    cpu = meter.stop()
                    break
                for p in procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"a worker died; see {logdir}")
                time.sleep(1)
            else:
                raise RuntimeError(f"not done after {timeout}s; see {logdir}")
    finally:
        stop_workers(procs)
    span = Delivery.objects.filter(campaign=campaign, status="sent").aggregate(
        first=Min("sent_at"), last=Max("sent_at")
    )
    sent = Delivery.objects.filter(campaign=campaign, status="sent").count()
    send_s = span["last"].timestamp() - t0
    by_status = dict(Delivery.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("pk")))
    expected = set(Delivery.objects.filter(campaign=campaign, status="sent").values_list("email", flat=True))
    return {
        "campaign": campaign.pk,
        "audience": size,
        "build_s": build_s,
        "cpu": cpu,
        "sent": sent,
        "send_s": send_s,
        "first_email_after_s": span["first"].timestamp() - t0,
        "by_status": by_status,
        "expected": expected,
        "unsubscribed": unsubscribed,
        "load": median(loads),
    }


def cpu_budget(*, sink: Sink, recipients: int, queue: str) -> list[tuple[str, float, float]]:
    """Where one sender's time goes: a small campaign sent in this process over SMTP
    to the same sink, with the CPU and wall time of each stage per email."""
    import collections

    from django.core.mail import get_connection
    from django.core.mail.backends.smtp import EmailBackend

    from campaigns import products, sending, services, tasks
    from campaigns.models import Campaign, EmailTemplate, Segment
    from shop.celery import app
    from shop.models import User

    ids = list(
        User.objects.filter(email__endswith=f"@{DOMAIN}", marketing_consent=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:recipients]
    )
    segment, _ = Segment.objects.update_or_create(
        name="bench: cpu budget", defaults={"rules": {"rule": "users", "ids": ids}}
    )
    campaign = services.campaign_create(
        name="bench: cpu budget",
        segment=segment,
        n_products=6,
        template=EmailTemplate.objects.get(name="bench: recommended"),
    )
    services.campaign_schedule(campaign=campaign)
    tasks.campaign_launch_task(campaign.pk)  # the launch task's work here; its send tasks are purged below
    wall, cpu = collections.Counter(), collections.Counter()
    patched = [
        (products, "picks_for_users", "recommendations (one batched call per claim of rows)"),
        (sending, "email_context", "context: signed links, prices"),
        (sending, "email_render", "templates: subject, text, HTML"),
        (EmailBackend, "send_messages", "message bytes + SMTP (waits for the server)"),
        (sending, "marks_write", "mark sent (one UPDATE per group of accepted emails)"),
    ]
    originals = []
    for owner, name, label in patched:
        original = getattr(owner, name)
        originals.append((owner, name, original))

        def wrapper(*a, _f=original, _label=label, **k):
            t, c = time.perf_counter(), time.process_time()
            try:
                return _f(*a, **k)
            finally:
                wall[_label] += time.perf_counter() - t
                cpu[_label] += time.process_time() - c

        setattr(owner, name, wrapper)
    connection = get_connection("django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=sink.port)
    try:
        t, c = time.perf_counter(), time.process_time()
        stats = sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62, connection=connection)
        total_wall, total_cpu = time.perf_counter() - t, time.process_time() - c
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
        with app.connection_for_write() as conn:  # the send tasks the launch queued: done here instead
            conn.default_channel.queue_purge(queue)
    n = max(stats.sent, 1)
    rows = [(label, 1000 * cpu[label] / n, 1000 * wall[label] / n) for _, _, label in patched]
    # recommendations run inside the claim; "claims, checks, bookkeeping" is the rest
    rows.append(
        (
            "claims, checks, bookkeeping",
            1000 * (total_cpu - sum(cpu.values())) / n,
            1000 * (total_wall - sum(wall.values())) / n,
        )
    )
    rows.append(("**total per email (one sender)**", 1000 * total_cpu / n, 1000 * total_wall / n))
    Campaign.objects.filter(pk=campaign.pk).delete()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_CAMPAIGN_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--history", type=int, default=6, help="events per customer")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="pool processes per worker (more than cores: each waits on SMTP and the database)",
    )
    parser.add_argument("--floor-messages", type=int, default=5_000)
    parser.add_argument("--floor-runs", type=int, default=2, help="floor runs before and again after the campaign")
    parser.add_argument("--unsubscribe", type=int, default=500, help="who unsubscribe after the audience is built")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument(
        "--audience",
        type=int,
        default=None,
        help="send to the first N (at most 20,000) consenting customers only (a quicker run; default: all)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="CAMPAIGNS_SEND_BATCH_SIZE for this run (default: the app's setting)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    if args.batch_size:
        os.environ["CAMPAIGNS_SEND_BATCH_SIZE"] = str(args.batch_size)  # the workers inherit it

    queue = f"bench-campaign-{os.getpid()}"
    os.environ.update(
        {
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "DEBUG": "false",
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "DJANGO_SETTINGS_MODULE": "shop.settings",
        }
    )
    database_ensure(args.database_url)
    import django

    django.setup()
    rng = random.Random(4)
    seed(recipients=args.recipients, products=args.products, per_user=args.history, rng=rng)

    started_load = machine()
    with Sink() as sink:
        # The floor before and after the campaign: the machine is shared, its load moves.
        floors, sink_ms = [], []

        def floor_run() -> None:
            before = _proc_cpu(sink.proc.pid)[0]
            floors.append(floor(port=sink.port, messages=args.floor_messages))
            sink_ms.append(1000 * (_proc_cpu(sink.proc.pid)[0] - before) / args.floor_messages)
            print(f"floor: {floors[-1]:,.0f} messages/s (the sink: {sink_ms[-1]:.2f} ms CPU per message)")

        for i in range(args.floor_runs):
            floor_run()
        result = run_campaign(
            sink=sink,
            workers=args.workers,
            concurrency=args.concurrency,
            unsubscribe=args.unsubscribe,
            timeout=args.timeout,
            audience=args.audience,
        )
        for i in range(args.floor_runs):
            floor_run()
        counts = sink.counts(keep_running=True)
        budget = cpu_budget(sink=sink, recipients=min(1000, args.recipients // 10), queue=queue)
    campaign_counts = Counter({r: n for r, n in counts.items() if not r.startswith("floor")})
    twice = sum(1 for n in campaign_counts.values() if n > 1)
    missing = len(result["expected"] - set(campaign_counts))
    unexpected = len(set(campaign_counts) - result["expected"])
    to_unsubscribed = len(set(campaign_counts) & result["unsubscribed"])
    no_consent = sum(1 for r in campaign_counts if int(r[1:].split("@")[0]) >= args.recipients)
    rate = result["sent"] / result["send_s"]
    floor_rate = median(floors)
    exactly_once = (
        twice == 0
        and missing == 0
        and unexpected == 0
        and to_unsubscribed == 0
        and no_consent == 0
        and sum(campaign_counts.values()) == result["sent"]
    )
    lines = [
        f"Machine: {started_load}; median load average while sending {result['load']:.1f}. "
        f"{args.workers} Celery worker(s) x {args.concurrency} processes on Redis, "
        f"PostgreSQL, aiosmtpd sink in its own process on loopback. {args.recipients:,} consenting recipients "
        f"with histories and an active item-kNN model (6 personalised picks per email).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| audience built (launch, in-process) | {result['audience']:,} deliveries in {result['build_s']:.1f} s |",
        f"| unsubscribed after the build, before sending | {args.unsubscribe:,} |",
        f"| sent | {result['sent']:,} in {result['send_s']:.1f} s (first email {result['first_email_after_s']:.1f} s after the workers started) |",
        f"| **personalised emails delivered / s** | **{rate:,.0f}** |",
        f"| floor: raw SMTP loop, pre-rendered, one connection (median of {len(floors)}: before, after) | "
        f"{floor_rate:,.0f} / s ({', '.join(f'{f:,.0f}' for f in floors)}) |",
        f"| ratio (goal >= 50%) | **{100 * rate / floor_rate:.0f}%** |",
        f"| deliveries by state | {', '.join(f'{k} {v:,}' for k, v in sorted(result['by_status'].items()))} |",
        f"| server counts: received / twice / missing / to unsubscribed / without consent | "
        f"{sum(campaign_counts.values()):,} / {twice} / {missing} / {to_unsubscribed} / {no_consent} |",
        f"| exactly once | **{'yes' if exactly_once else 'NO'}** |",
    ]
    cpu = result["cpu"]
    largest = max(budget[:-2], key=lambda row: row[1])  # of the stages (not the rest, not the total)
    per_email = {k: 1000 * v / max(result["sent"], 1) for k, v in cpu.items()}
    lines += [
        "",
        f"Where the machine's CPU went while sending (core-ms per email delivered, from /proc; "
        f"{os.cpu_count()} cores give {1000 * os.cpu_count() / rate:.1f} core-ms per email at this rate):",
        "",
        "| processes | core-ms per email |",
        "|---|---|",
        *[
            f"| {label} | {per_email[label]:.2f} |"
            for label in ("Celery workers", "PostgreSQL", "SMTP sink", "Redis", "benchmark driver", "other")
        ],
        f"| **machine, all processes** | **{per_email['machine']:.2f}** |",
        "",
        f"PostgreSQL counts every session, a neighbour's too; \"other\" is the rest of the machine (the kernel's "
        f"own threads, a neighbour's work). The sink alone spends {median(sink_ms):.2f} ms per message in the "
        f"floor runs.",
    ]
    lines += [
        "",
        "Where one sender's time goes (a campaign to "
        f"{min(1000, args.recipients // 10):,} of the same customers sent in one process to the same server, "
        "per email; the wall time includes waiting for the SMTP server and the database, which other "
        "senders fill):",
        "",
        "| stage | CPU ms | wall ms |",
        "|---|---|---|",
        *[f"| {label} | {c:.2f} | {w:.2f} |" for label, c, w in budget],
        "",
        f"Reading: the floor is one connection taking turns with the sink ({1000 / floor_rate:.2f} ms of wall "
        f"time per pre-rendered message, {median(sink_ms):.2f} ms of it the sink's CPU), so it keeps about one core "
        f"busy. The campaign keeps all {os.cpu_count()} busy: per email delivered the machine spent "
        f"{per_email['machine']:.2f} core-ms (the workers {per_email['Celery workers']:.2f}, PostgreSQL "
        f"{per_email['PostgreSQL']:.2f}, the sink {per_email['SMTP sink']:.2f}, the rest "
        f"{per_email['machine'] - per_email['Celery workers'] - per_email['PostgreSQL'] - per_email['SMTP sink']:.2f}), "
        f"and at that cost {os.cpu_count()} cores allow at most {1000 * os.cpu_count() / per_email['machine']:,.0f}/s; "
        f"measured {rate:,.0f}/s, {'meeting' if rate >= floor_rate / 2 else 'short of'} the goal of half the floor. "
        f"Of a sender's own {budget[-1][1]:.2f} ms of CPU per email (above), the largest part is "
        f"{largest[0]} ({largest[1]:.2f} ms). Every email exactly once {'held' if exactly_once else 'did NOT hold'}.",
    ]
    body = "\n".join(lines) + "\n\nCommand: `.venv/bin/python bench/campaign.py " + " ".join(sys.argv[1:]) + "`\n"
    print()
    print(body)
    if not args.no_write:
        results_section_write("Campaign sending", body)
    if not exactly_once:
        sys.exit(1)


if __name__ == "__main__":
    main()
