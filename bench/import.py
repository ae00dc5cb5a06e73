"""Import and seed timings: the three data commands, on PostgreSQL and on SQLite.

What runs (all real, each as ``manage.py <command>`` in its own process, on a freshly
created and migrated database per run, so each is the "first import into a new
store" a user does):

* ``import_online_retail`` — the whole bundled file (541,909 rows -> 3,787 products,
  4,334 customers, 19,770 orders, 517k order lines, 1.87M interactions).
* ``import_interactions`` — a generated 1,000,000-row CSV (50,000 customers, 20,000
  SKUs, Zipf popularity, 180 days, mixed kinds), written to /tmp once. Also once into
  a store that already holds 1M events (no index deferral: the live-index path).
* ``seed_synthetic`` — 50k users / 20k products / 1M interactions (the training
  benchmark's store), and once 100k / 100k / 2M (the serving benchmark's store).

Reported per task and backend: the median wall time of ``--runs`` runs (each a new
database), the command process's CPU time (user+sys; PostgreSQL's server CPU is not
in it), rows written per second, and the ratio to the reference measured in the same
run: the floor of the database for the same 1M interaction rows — a bare ``COPY``
(PostgreSQL) or prepared ``executemany`` (SQLite) of pre-built rows into an
unindexed scratch copy of the interactions table.

Usage::

    .venv/bin/python bench/import.py                 # both backends, 3 runs each
    .venv/bin/python bench/import.py --runs 1 --backends postgresql --tasks seed

PostgreSQL: ``--pg`` (default postgres://postgres@127.0.0.1:5432), databases
``affinity_bench_import*`` are created and dropped. SQLite: files under a temporary
directory. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
INTERACTIONS_FILE = Path("/tmp/affinity_bench_interactions_1m.csv")
NUMBER_RE = re.compile(r"\d[\d,]*")


def rows_written(out: str) -> int:
    """Everything the command reports as created (its "(total N)" when it gives one)."""
    line = next((l for l in out.splitlines() if l.startswith("Created:")), "")
    total = re.search(r"\(total ([\d,]+)\)", line)
    if total:
        return int(total.group(1).replace(",", ""))
    return sum(int(n.replace(",", "")) for n in NUMBER_RE.findall(line))


# --- environment per backend -----------------------------------------------------------------
class Backend:
    def __init__(self, kind: str, pg: str, workdir: Path):
        self.kind, self.pg, self.workdir = kind, pg.rstrip("/"), workdir
        self.n = 0

    def fresh(self) -> dict[str, str]:
        """A new, migrated, empty database; the environment that points at it."""
        self.n += 1
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "AFFINITY_VAR_DIR"}}
        env.update({"DJANGO_ENV": "development", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})
        if self.kind == "postgresql":
            name = "affinity_bench_import"
            self._psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            self._psql(f"CREATE DATABASE {name}")
            env["DATABASE_URL"] = f"{self.pg}/{name}"
        else:
            var = self.workdir / f"sqlite-{self.n}"
            shutil.rmtree(var, ignore_errors=True)
            var.mkdir(parents=True)
            env["AFFINITY_VAR_DIR"] = str(var)
        subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        return env

    def _psql(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{self.pg}/postgres", autocommit=True) as conn:
            conn.execute(sql)

    def drop(self) -> None:
        if self.kind == "postgresql":
            self._psql("DROP DATABASE IF EXISTS affinity_bench_import WITH (FORCE)")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, CPU seconds of the process, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


# --- the 1M-row file -------------------------------------------------------------------------------
def interactions_file(rows: int = 1_000_000) -> Path:
    if INTERACTIONS_FILE.exists() and sum(1 for _ in INTERACTIONS_FILE.open()) == rows + 1:
        return INTERACTIONS_FILE
    import numpy as np

    rng = np.random.default_rng(42)
    users = rng.zipf(1.3, size=rows * 2) - 1
    users = users[users < 50_000][:rows]
    items = rng.permutation(20_000)[np.minimum(rng.zipf(1.15, size=rows) - 1, 19_999)]
    end = datetime.combine(date.today(), datetime.min.time()) - timedelta(days=1)
    ts = (end.timestamp() - rng.integers(0, 180 * 86_400, size=rows)).astype(np.int64)
    kinds = rng.choice(["view", "add_to_cart", "purchase"], p=[0.76, 0.15, 0.09], size=rows)
    qty = rng.integers(1, 6, size=rows)
    iso = rng.random(rows) < 0.5  # half ISO 8601 local times, half unix seconds
    with INTERACTIONS_FILE.open("w") as fh:
        fh.write("customer_id,sku,qty,ts,event\n")
        for u, i, t, k, q, as_iso in zip(
            users.tolist(), items.tolist(), ts.tolist(), kinds.tolist(), qty.tolist(), iso.tolist()
        ):
            stamp = datetime.fromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S") if as_iso else str(t)
            fh.write(f"cust-{u},SKU-{i:05d},{q},{stamp},{k}\n")
    return INTERACTIONS_FILE


# --- the floor: bare inserts of 1M interaction rows --------------------------------------------------
def reference(backend: Backend, rows: int = 1_000_000) -> float:
    """Seconds for the database alone to take 1M interaction rows into an unindexed
    scratch copy of the interactions table (rows pre-built in memory)."""

    rnd = random.Random(1)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    data = [
        (
            rnd.randrange(1, 50_000),
            "",
            rnd.randrange(1, 20_000),
            1,
            1.0,
            base + timedelta(seconds=rnd.randrange(0, 15_552_000)),
            4,
        )
        for _ in range(rows)
    ]
    cols = "user_id, session_key, product_id, kind, value, occurred_at, source"
    env = backend.fresh()
    if backend.kind == "postgresql":
        import psycopg

        with psycopg.connect(env["DATABASE_URL"]) as conn:
            conn.execute("CREATE TABLE scratch (LIKE shop_interaction INCLUDING DEFAULTS INCLUDING IDENTITY)")
            conn.commit()
            start = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY scratch ({cols}) FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
            conn.commit()
            return time.perf_counter() - start
    import sqlite3

    db = Path(env["AFFINITY_VAR_DIR"]) / "affinity.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE scratch (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id bigint, session_key "
        "varchar(64), product_id bigint, kind smallint, value real, occurred_at datetime, source smallint)"
    )
    text = [(u, s, p, k, v, str(t.replace(tzinfo=None)), src) for u, s, p, k, v, t, src in data]
    start = time.perf_counter()
    with conn:
        conn.executemany(f"INSERT INTO scratch ({cols}) VALUES (?,?,?,?,?,?,?)", text)
    took = time.perf_counter() - start
    conn.close()
    return took


# --- tasks ----------------------------------------------------------------------------------------
def tasks(selected: set[str]) -> list[tuple[str, list[str], int, str | None]]:
    """(label, manage.py arguments, runs multiplier (0 = once), preparation)."""
    out = []
    if "retail" in selected:
        out.append(("import_online_retail (whole file)", ["import_online_retail", "--no-progress"], 1, None))
    if "interactions" in selected:
        f = str(interactions_file())
        args = [
            "import_interactions",
            f,
            "--map",
            "user=customer_id,item=sku,value=qty,timestamp=ts,kind=event",
            "--no-progress",
        ]
        out.append(("import_interactions 1M rows, new store", args, 1, None))
        out.append(("import_interactions 1M rows, store holding 1M events", args, 0, "seed1m"))
    if "seed" in selected:
        out.append(
            (
                "seed_synthetic 50k users / 20k products / 1M",
                [
                    "seed_synthetic",
                    "--users",
                    "50000",
                    "--products",
                    "20000",
                    "--interactions",
                    "1000000",
                    "--no-progress",
                ],
                1,
                None,
            )
        )
        out.append(
            (
                "seed_synthetic 100k / 100k / 2M",
                [
                    "seed_synthetic",
                    "--users",
                    "100000",
                    "--products",
                    "100000",
                    "--interactions",
                    "2000000",
                    "--seed",
                    "2",
                    "--no-progress",
                ],
                0,
                None,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--tasks", default="retail,interactions,seed", help="retail, interactions, seed")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="affinity-bench-import-"))
    results = []
    try:
        for kind in [b.strip() for b in args.backends.split(",") if b.strip()]:
            backend = Backend(kind, args.pg, workdir)
            ref = statistics.median(reference(backend) for _ in range(max(1, min(args.runs, 3))))
            print(f"[{kind}] reference: 1M bare rows in {ref:.1f}s", flush=True)
            for label, cmd, mult, prep in tasks(set(args.tasks.split(","))):
                walls, cpus, rows = [], [], 0
                for _ in range(args.runs if mult else 1):
                    env = backend.fresh()
                    if prep == "seed1m":
                        timed(
                            [
                                PY,
                                "manage.py",
                                "seed_synthetic",
                                "--users",
                                "50000",
                                "--products",
                                "20000",
                                "--interactions",
                                "1000000",
                                "--seed",
                                "9",
                                "--no-progress",
                            ],
                            env,
                        )
                    wall, cpu, out = timed([PY, "manage.py", *cmd], env)
                    walls.append(wall)
                    cpus.append(cpu)
                    rows = rows_written(out)
                    print(
                        f"[{kind}] {label}: {wall:.1f}s wall, {cpu:.1f}s CPU, {rows:,} rows "
                        f"(load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
                results.append((label, kind, statistics.median(walls), statistics.median(cpus), len(walls), rows, ref))
            backend.drop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        f"{date.today()}, {platform.node()}, {os.cpu_count()} cores, load average now "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print()
    print(
        "| task | database | wall s (median) | CPU s (command) | runs | rows written | rows/s | "
        "x reference (1M bare rows) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, kind, wall, cpu, n, rows, ref in results:
        print(
            f"| {label} | {kind} | {wall:.1f} | {cpu:.1f} | {n} | {rows:,} | {rows / wall:,.0f} | "
            f"{wall / ref:.1f}x ({ref:.1f}s) |"
        )


if __name__ == "__main__":
    main()
