"""Ingestion benchmark (EVALUATION.md section 5): the bulk events API under load.

What runs (all real): gunicorn serving Affinity on loopback, on PostgreSQL; several
client processes POST ``/api/v1/interactions/batch`` with 1,000 events each, for a
fixed time, with a token of an integration account holding ``shop.add_interaction``.
The events mix every shape the API takes (product by id or SKU; customer by id, by
external id, or an anonymous session) and every batch carries ``event_id``\\ s; every
20th request re-sends the client's previous batch, as a client retrying after a
timeout would, so idempotency is exercised under load.

Reported: events accepted per second (created + duplicates, as the server reports
them), request latency (p50/p95/p99), rejected rows and errors, and the COUNT CHECK:
the database holds exactly the events the server said it created, and none twice.

Reference in the same run (same machine, same database): the service alone,
``shop.services.interactions_bulk_record`` called in-process with the same batches
(no HTTP, no JSON), and a bare ``INSERT ... SELECT unnest(...)`` of 1,000-row batches
through psycopg (the database's floor for this table and its indexes). Results read as
ratios to these.

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/affinity_bench \\
        .venv/bin/python bench/ingest.py --duration 60 --clients 4 --workers 3

The database is migrated and seeded (products, customers) if needed. Interactions the
run creates are deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

BATCH = 1000
N_PRODUCTS = 20_000
N_CUSTOMERS = 20_000
PIPELINE_EMAIL = "ingest-bench@integrations.affinity.example"
KINDS = ["view"] * 12 + ["click"] * 4 + ["add_to_cart"] * 2 + ["purchase", "rating", "wishlist"]


# --- setup -----------------------------------------------------------------------------
def django_setup() -> None:
    import django

    django.setup()


def prepare(args) -> dict:
    """Migrate, seed products and customers if missing, make the pipeline's token."""
    from decimal import Decimal

    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from shop.models import Category, Product, User

    call_command("migrate", verbosity=0, interactive=False)
    if Product.objects.filter(sku__startswith="BENCH-").count() < N_PRODUCTS:
        print(f"seeding {N_PRODUCTS:,} products and {N_CUSTOMERS:,} customers ...", flush=True)
        cat, _ = Category.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        Product.objects.bulk_create(
            [
                Product(
                    sku=f"BENCH-{i}",
                    name=f"Bench product {i}",
                    slug=f"bench-product-{i}",
                    category=cat,
                    price=Decimal("1.00") + i % 50,
                    stock=100,
                )
                for i in range(N_PRODUCTS)
            ],
            batch_size=5000,
            ignore_conflicts=True,
        )
        User.objects.bulk_create(
            [
                User(email=f"bench{i}@customers.affinity.example", external_id=f"bench-{i}", password="!")
                for i in range(N_CUSTOMERS)
            ],
            batch_size=5000,
            ignore_conflicts=True,
        )
    user, _ = User.objects.get_or_create(email=PIPELINE_EMAIL, defaults={"password": "!"})
    user.user_permissions.add(Permission.objects.get(content_type__app_label="shop", codename="add_interaction"))
    token, _ = Token.objects.get_or_create(user=user)
    product_ids = list(Product.objects.filter(sku__startswith="BENCH-").values_list("pk", flat=True)[:N_PRODUCTS])
    user_ids = list(User.objects.filter(external_id__startswith="bench-").values_list("pk", flat=True)[:N_CUSTOMERS])
    return {"token": token.key, "product_ids": product_ids, "user_ids": user_ids}


# --- event bodies -------------------------------------------------------------------------
def make_batch(rng, run: str, client: int, seq, product_ids, user_ids) -> bytes:
    """1,000 events as the JSON a client would send (built as text). A mix of
    references: product by id (3/4) or SKU (1/4); a customer by id (1/2), by external
    id (1/4), or an anonymous session (1/4). ``seq`` goes into every event_id."""
    now = datetime.now(UTC)
    parts = []
    for i in range(BATCH):
        r = rng.random()
        pid = product_ids[int(rng.paretovariate(1.2)) % len(product_ids)]
        product = f'"product_id":{pid}' if r < 0.75 else f'"product_sku":"BENCH-{pid % N_PRODUCTS}"'
        r = rng.random()
        if r < 0.5:
            actor = f'"user_id":{user_ids[rng.randrange(len(user_ids))]}'
        elif r < 0.75:
            actor = f'"user_external_id":"bench-{rng.randrange(len(user_ids))}"'
        else:
            actor = f'"session_key":"s{client}x{rng.randrange(5000)}"'
        kind = KINDS[rng.randrange(len(KINDS))]
        value = f',"value":{rng.randrange(1, 6)}' if kind in ("purchase", "rating") else ""
        at = (now - timedelta(seconds=rng.randrange(86400))).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts.append(
            f'{{"event_id":"{run}-{client}-{seq}-{i}",{product},{actor},"kind":"{kind}"{value},"occurred_at":"{at}"}}'
        )
    return ('{"events":[' + ",".join(parts) + "]}").encode()


# --- a client process ----------------------------------------------------------------------
def client_main(client: int, args, setup: dict, run: str, start_at: float, out: mp.Queue) -> None:
    import random

    rng = random.Random(client)
    stats = {"requests": 0, "created": 0, "duplicates": 0, "rejected": 0, "errors": 0, "latencies": [], "statuses": {}}
    headers = {"Authorization": f"Token {setup['token']}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    # A few random batches made in advance, each a template whose event ids take the
    # request's number: the client spends ~0.1 ms per request, not the server's CPU.
    templates = [make_batch(rng, run, client, "@SEQ@", setup["product_ids"], setup["user_ids"]) for _ in range(8)]
    previous: bytes | None = None
    seq = 0
    while time.time() < start_at:
        time.sleep(0.01)
    deadline = start_at + args.duration
    while time.time() < deadline:
        if previous is not None and seq % 20 == 19:
            body = previous  # a retry: must be all duplicates
        else:
            body = templates[seq % len(templates)].replace(b"@SEQ@", str(seq).encode())
        seq += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/interactions/batch", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            stats["errors"] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
            continue
        stats["latencies"].append(time.perf_counter() - t0)
        stats["requests"] += 1
        stats["statuses"][response.status] = stats["statuses"].get(response.status, 0) + 1
        if response.status in (200, 201):
            report = json.loads(data)
            stats["created"] += report["created"]
            stats["duplicates"] += report["duplicates"]
            stats["rejected"] += report["rejected"]
        else:
            stats["errors"] += 1
            if stats["errors"] <= 3:
                print(f"client {client}: HTTP {response.status}: {data[:300]!r}", file=sys.stderr, flush=True)
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
        previous = body
    conn.close()
    out.put(stats)


# --- the server ------------------------------------------------------------------------------
def start_gunicorn(args) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        {
            "DEBUG": "false",
            "API_THROTTLE_BULK": "off",
            "API_THROTTLE_USER": "off",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "shop.wsgi:application",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        "gthread",
        "--threads",
        "1",
        "--keep-alive",
        "30",
        "--timeout",
        "120",
        "--log-level",
        "warning",
        "--access-logfile",
        "-" if args.access_log else "/dev/null",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
            c.request("GET", "/health/live")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise SystemExit("gunicorn did not start")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- references -------------------------------------------------------------------------------
def reference_service(setup: dict, seconds: float) -> float:
    """Events/s of `interactions_bulk_record` in-process (parsed events, no HTTP, no JSON)."""
    import random

    from shop.models import Interaction
    from shop.services.interactions import KIND_BY_NAME, InteractionIn, interactions_bulk_record

    rng = random.Random(99)
    run = f"ref-{uuid.uuid4().hex[:6]}"
    marker = uuid.uuid4().int % 2**62  # delivery_id of the reference's rows, to delete them after
    batches = []
    for seq in range(6):
        doc = json.loads(make_batch(rng, run, 0, seq, setup["product_ids"], setup["user_ids"]))
        batches.append(
            [
                InteractionIn(
                    product_id=e.get("product_id"),
                    product_sku=e.get("product_sku"),
                    user_id=e.get("user_id"),
                    user_external_id=e.get("user_external_id"),
                    session_key=e.get("session_key", ""),
                    kind=KIND_BY_NAME[e["kind"]],
                    value=e.get("value", 1),
                    event_id=None,
                    delivery_id=marker,
                    occurred_at=datetime.fromisoformat(e["occurred_at"]),
                )
                for e in doc["events"]
            ]
        )
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        result = interactions_bulk_record(events=batches[n // BATCH % len(batches)], partial=True)
        n += result.created
    elapsed = time.perf_counter() - t0
    Interaction.objects.filter(delivery_id=marker).delete()
    return n / elapsed


def reference_insert(setup: dict, seconds: float) -> float:
    """Events/s of a bare 1,000-row ``INSERT ... SELECT unnest(...)`` into the same table."""
    import random

    from django.db import connection, transaction

    rng = random.Random(7)
    now = datetime.now(UTC)
    pids, uids = setup["product_ids"], setup["user_ids"]
    cols = [
        [uids[rng.randrange(len(uids))] for _ in range(BATCH)],
        [""] * BATCH,
        [pids[rng.randrange(len(pids))] for _ in range(BATCH)],
        [1] * BATCH,
        [1.0] * BATCH,
        [now] * BATCH,
        [2] * BATCH,
    ]
    sql = (
        "INSERT INTO shop_interaction (user_id, session_key, product_id, kind, value, occurred_at, source, "
        "event_id) SELECT *, NULL FROM unnest(%s::bigint[], %s::varchar[], %s::bigint[], %s::smallint[], "
        "%s::float8[], %s::timestamptz[], %s::smallint[]) RETURNING id"
    )
    n, ids, t0 = 0, [], time.perf_counter()
    with connection.cursor() as cursor:
        while time.perf_counter() - t0 < seconds:
            with transaction.atomic():
                cursor.execute(sql, cols)
                ids.extend(r[0] for r in cursor.fetchall())
            n += BATCH
        elapsed = time.perf_counter() - t0
        cursor.execute("DELETE FROM shop_interaction WHERE id = ANY(%s)", [ids])
    return n / elapsed


def _insert_worker(setup: dict, seconds: float, start_at: float, out: mp.Queue) -> None:
    django_setup()
    from django.db import connection

    connection.close()
    while time.time() < start_at:
        time.sleep(0.01)
    out.put(reference_insert(setup, seconds))


def reference_insert_parallel(setup: dict, seconds: float, processes: int) -> float:
    """Events/s of ``processes`` processes doing the bare INSERT at once: what the
    database takes on this machine with the server's parallelism."""
    from django.db import connection

    connection.close()
    out: mp.Queue = mp.Queue()
    start_at = time.time() + 1.0
    procs = [mp.Process(target=_insert_worker, args=(setup, seconds, start_at, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


# --- main -----------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--port", type=int, default=8106)
    parser.add_argument("--reference-seconds", type=float, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the events this run stored")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database (the benchmark is about PostgreSQL).")
    django_setup()
    from django.db import connection

    from shop.models import Interaction

    setup = prepare(args)
    run = f"r{uuid.uuid4().hex[:8]}"
    before = Interaction.objects.count()
    print(
        f"run {run}: {args.clients} clients x batches of {BATCH:,} for {args.duration:.0f} s, "
        f"gunicorn {args.workers} workers on 127.0.0.1:{args.port}, {before:,} interactions already stored",
        flush=True,
    )
    connection.close()  # no connection inherited by the client processes

    server = start_gunicorn(args)
    try:
        out: mp.Queue = mp.Queue()
        start_at = time.time() + 1.0
        procs = [mp.Process(target=client_main, args=(c, args, setup, run, start_at, out)) for c in range(args.clients)]
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        wall = time.time() - start_at
    finally:
        stop(server)

    created = sum(r["created"] for r in results)
    duplicates = sum(r["duplicates"] for r in results)
    rejected = sum(r["rejected"] for r in results)
    errors = sum(r["errors"] for r in results)
    requests = sum(r["requests"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    statuses: dict[int, int] = {}
    for r in results:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v

    stored = Interaction.objects.filter(event_id__startswith=f"{run}-").count()
    distinct = Interaction.objects.filter(event_id__startswith=f"{run}-").values("event_id").distinct().count()
    accepted = created + duplicates
    rate = accepted / wall
    print(f"\nrequests {requests:,} ({statuses}), transport errors/non-2xx {errors}")
    print(
        f"events accepted {accepted:,} = created {created:,} + duplicates (retries) {duplicates:,}; "
        f"rejected rows {rejected:,}"
    )
    print(f"wall {wall:.1f} s -> {rate:,.0f} events/s accepted, {created / wall:,.0f} events/s newly stored")
    print(
        f"latency per batch: p50 {pct(latencies, 0.5) * 1000:.0f} ms, p95 {pct(latencies, 0.95) * 1000:.0f} ms, "
        f"p99 {pct(latencies, 0.99) * 1000:.0f} ms"
    )
    ok = stored == created and distinct == stored and rejected == 0
    print(
        f"COUNT CHECK: database holds {stored:,} events of this run ({distinct:,} distinct ids); "
        f"server reported {created:,} created -> {'OK' if ok else 'MISMATCH'}"
    )

    ref_service = reference_service(setup, args.reference_seconds)
    ref_insert = reference_insert(setup, args.reference_seconds)
    ref_parallel = reference_insert_parallel(setup, args.reference_seconds, args.workers)
    print(
        f"\nreference: service in-process (1 process) {ref_service:,.0f} events/s; bare unnest INSERT "
        f"{ref_insert:,.0f} events/s (1 process), {ref_parallel:,.0f} events/s ({args.workers} processes)"
    )
    print(f"API / bare INSERT with the same parallelism: {rate / ref_parallel:.2f}")
    print(
        "\n| run | clients | gunicorn workers | events/s accepted | p50 | p95 | p99 | errors | count check |"
        " service in-process (1 proc) | bare INSERT (1 proc) | bare INSERT (same procs) | ratio |"
    )
    print(
        f"| {run} | {args.clients} | {args.workers} | {rate:,.0f} | {pct(latencies, 0.5) * 1000:.0f} ms | "
        f"{pct(latencies, 0.95) * 1000:.0f} ms | {pct(latencies, 0.99) * 1000:.0f} ms | {errors} | "
        f"{'OK' if ok else 'MISMATCH'} ({stored:,}) | {ref_service:,.0f} | {ref_insert:,.0f} | "
        f"{ref_parallel:,.0f} | {rate / ref_parallel:.2f} |"
    )
    if not args.keep:
        Interaction.objects.filter(event_id__startswith=f"{run}-").delete()
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
