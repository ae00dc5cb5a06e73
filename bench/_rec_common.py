"""Helpers shared by the recommendations benchmarks (bench/train.py, bench/serve.py):
a PostgreSQL database of their own, seeding it with ``manage.py seed_synthetic``,
medians, and writing one section of bench/RESULTS.md."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"


def manage(*args: str, env: dict[str, str] | None = None, quiet: bool = False) -> None:
    """Run ``manage.py`` in a child process (its own output, its own progress bars)."""
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=True,
        stdout=subprocess.DEVNULL if quiet else None,
    )


def database_ensure(url: str) -> None:
    """Create the benchmark database if it does not exist, then migrate it."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    manage("migrate", "--noinput", "-v", "0", env={"DATABASE_URL": url})


def counts(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("shop_interaction", "shop_product", "shop_user")
        }


def database_drop(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: benchmark databases have 'bench' in their name")
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, *, users: int, products: int, interactions: int, seed_value: int = 0) -> None:
    """Fill the benchmark database with the synthetic store (``manage.py
    seed_synthetic``) unless it already holds one of that size; a store of another
    size is dropped first (the database is the benchmark's own)."""
    have = counts(url)
    if (
        have["shop_product"] == products
        and have["shop_interaction"] >= interactions * 0.95
        and have["shop_user"] >= users
    ):
        print(f"database already seeded: {have}")
        return
    if have["shop_product"] or have["shop_interaction"]:
        print(f"database holds another store ({have}): recreating it")
        database_drop(url)
        database_ensure(url)
    manage(
        "seed_synthetic",
        "--users",
        str(users),
        "--products",
        str(products),
        "--interactions",
        str(interactions),
        "--seed",
        str(seed_value),
        env={"DATABASE_URL": url},
    )
    print(f"seeded: {counts(url)}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def results_section_write(title: str, body: str) -> None:
    """Replace (or append) the ``## <title>`` section of bench/RESULTS.md, leaving
    every other section as it is."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)
    print(f"wrote the '{title}' section of {RESULTS.relative_to(ROOT)}")


def machine() -> str:
    cpus = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpus} CPU(s), load average {load:.1f} at the start (shared machine: read the ratios)"
