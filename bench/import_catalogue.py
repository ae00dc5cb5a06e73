"""``import_catalogue`` timings: a 100,000-product file, on PostgreSQL and on SQLite.

What runs (each as ``manage.py import_catalogue`` in its own process, on a freshly
created and migrated database per run, like ``bench/import.py``, whose helpers it uses):

* **new** — a generated CSV of 100,000 products (SKU, name, description, a two-level
  category path out of 20 x 10, price, currency, stock with 10% untracked, active,
  image URL and two extra columns kept as attributes) into an empty store.
* **again** — the same file a second time into that store (nothing changes: 0 created,
  0 updated).
* **changed** — a copy with every 10th product's price and stock changed (10,000 updates).
* **placeholders** — the file into a store where events created 100,000 placeholder
  products by SKU (all filled in: 100,000 updates).

Usage::

    .venv/bin/python bench/import_catalogue.py                  # both backends, 1 run each
    .venv/bin/python bench/import_catalogue.py --backends sqlite --products 20000

Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_import", ROOT / "bench" / "import.py")
assert _spec is not None and _spec.loader is not None
bench_import = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_import)
timed, PY = bench_import.timed, bench_import.PY
DB_NAME = "affinity_bench_catalogue"  # not bench/import.py's: the two may run at once


class Backend(bench_import.Backend):
    """`bench/import.py`'s fresh database per run, under this benchmark's own name."""

    def fresh(self) -> dict[str, str]:
        if self.kind != "postgresql":
            return super().fresh()
        self._psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        self._psql(f"CREATE DATABASE {DB_NAME}")
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "AFFINITY_VAR_DIR"}}
        env.update({"DJANGO_ENV": "development", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})
        env["DATABASE_URL"] = f"{self.pg}/{DB_NAME}"
        subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        return env

    def drop(self) -> None:
        if self.kind == "postgresql":
            self._psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


HEADER = "sku,name,description,category,price,currency,stock,active,image_url,colour,material\n"
COLOURS = ["red", "blue", "green", "white", "black", "grey", "pink"]
MATERIALS = ["wood", "glass", "metal", "cotton", "paper", "ceramic"]


def catalogue_file(path: Path, products: int, *, changed: bool = False) -> Path:
    rng = random.Random(7)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(HEADER)
        for i in range(products):
            top, sub = rng.randrange(20), rng.randrange(10)
            price = rng.randrange(50, 20000) / 100
            stock = "" if rng.random() < 0.1 else str(rng.randrange(0, 500))
            if changed and i % 10 == 0:
                price, stock = price + 1, "7"
            fh.write(
                f"P{i:07d},Product number {i} in {top}/{sub},A fine thing number {i},"
                f"Department {top} > Shelf {sub},{price:.2f},GBP,{stock},{'yes' if i % 50 else 'no'},"
                f"https://img.example.com/p/{i}.jpg,{rng.choice(COLOURS)},{rng.choice(MATERIALS)}\n"
            )
    return path


def events_file(path: Path, products: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("user,item,timestamp,kind\n")
        for i in range(products):
            fh.write(f"u{i % 5000},P{i:07d},2026-01-01T00:00:00Z,view\n")
    return path


def run(backend, env: dict[str, str], file: Path) -> tuple[float, float, str]:
    return timed([PY, "manage.py", "import_catalogue", str(file), "--no-progress"], env)


def summary(out: str) -> str:
    line = next((x for x in out.splitlines() if x.startswith("Imported")), out.strip().splitlines()[-1])
    return line.removeprefix("Imported: ").rstrip(".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="affinity_bench_catalogue_"))
    base = catalogue_file(work / "catalogue.csv", args.products)
    changed = catalogue_file(work / "catalogue_changed.csv", args.products, changed=True)
    events = events_file(work / "events.csv", args.products)
    rows = []
    for kind in args.backends.split(","):
        backend = Backend(kind, args.pg, work)
        env = backend.fresh()
        for task, file in (("new store", base), ("same file again", base), ("10% changed", changed)):
            wall, cpu, out = run(backend, env, file)
            rows.append((task, kind, wall, cpu, summary(out)))
        env = backend.fresh()
        subprocess.run(
            [PY, "manage.py", "import_interactions", str(events), "--no-progress"], cwd=ROOT, env=env, check=True
        )
        wall, cpu, out = run(backend, env, base)
        rows.append(("placeholders from events filled in", kind, wall, cpu, summary(out)))
        backend.drop()
    print(f"\n{args.products:,} products, {platform.node()}, load {os.getloadavg()[0]:.1f}\n")
    print("| import_catalogue | database | wall s | CPU s (command) | result |")
    print("|---|---|---|---|---|")
    for task, kind, wall, cpu, result in rows:
        print(f"| {task} | {kind} | {wall:.1f} | {cpu:.1f} | {result} |")


if __name__ == "__main__":
    main()
