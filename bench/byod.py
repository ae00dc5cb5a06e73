"""Any store's own data, through the commands only (EVALUATION.md section 6).

Run from the repository root::

    .venv/bin/python bench/byod.py [--skip-retail] [--skip-shapes] [--write-results]

Every run uses a fresh SQLite database in a temporary folder of its own
(``AFFINITY_VAR_DIR``; never var/affinity.sqlite3), or PostgreSQL with
``--database-url postgres://.../affinity_bench_byod`` (dropped and created).

1. **Online Retail** (section 1's protocol): the purchases of the train pairs
   (before 2011-11-01) as a plain events file ``customer,product,value,timestamp,kind``
   -> ``manage.py import_interactions`` (no catalogue) -> ``manage.py train`` (no
   arguments) -> ``manage.py recommend --all --n 10 --out FILE`` -> the file scored
   with section 1's metrics on section 1's test pairs. Then again in the same store
   after ``manage.py import_catalogue`` of a file holding only sku, name and category.
2. **Shapes** (bench/shapes.py): explicit ratings, purchases, view-heavy events, one
   kind, tiny; a random 20% of each customer's products is held out (the positive
   ones: a rating of 4 or more, any other kind); the rest goes through the same
   commands. Next to it, each single algorithm (EASE, ALS, item-kNN) tuned in
   process: its settings chosen by ``select_model`` on a random split of the
   training events only, refitted on all of them, scored on the same held-out
   pairs. Auto should come within 2% of the best of them.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import quality  # noqa: E402
import shapes  # noqa: E402

from recommendations.engine import algorithm_build, candidates_for, matrix_build, select_model  # noqa: E402
from recommendations.engine.evaluation import (  # noqa: E402
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    random_stratified_split,
    recall_at_k,
)

K = 10
SECTION = "## Any store's own data, through the commands (EVALUATION.md section 6)"
KIND_CODES = {"view": 1, "click": 2, "add_to_cart": 3, "purchase": 5, "rating": 6}


# --------------------------------------------------------------------------- commands
class Store:
    """One fresh database and the manage.py commands run against it."""

    def __init__(self, folder: Path, database_url: str | None) -> None:
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env["AFFINITY_VAR_DIR"] = str(folder)
        self.env["MEDIA_ROOT"] = str(folder / "media")
        if database_url:
            self.env["DATABASE_URL"] = database_url
            self._postgres_reset(database_url)
        self.seconds: dict[str, float] = {}
        self.run("migrate", "--noinput", "-v", "0")

    def _postgres_reset(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        if "bench" not in name:
            raise SystemExit(f"refusing to reset {name!r}: use a database with 'bench' in its name")
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')

    def run(self, *args: str) -> str:
        tic = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        self.seconds[args[0]] = self.seconds.get(args[0], 0.0) + time.perf_counter() - tic
        if done.returncode:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout


def recommendations_read(path: Path) -> dict[str, list[str]]:
    lists: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            lists[row["user"]].append((int(row["rank"]), row["sku"]))
    return {user: [sku for _, sku in sorted(picks)] for user, picks in lists.items()}


def score(lists: dict[str, list[str]], test: dict[str, set[str]]) -> dict[str, float]:
    """Section 1's metrics over the customers with a test pair (no list: all misses)."""
    users = sorted(test)
    universe = {
        sku: i
        for i, sku in enumerate(
            sorted({s for u in users for s in test[u]} | {s for u in users for s in lists.get(u, [])})
        )
    }
    recommended = np.full((len(users), K), -1, dtype=np.int64)
    for row, user in enumerate(users):
        picks = [universe[s] for s in lists.get(user, [])[:K]]
        recommended[row, : len(picks)] = picks
    relevant = [{universe[s] for s in test[u]} for u in users]
    return {
        "ndcg": float(ndcg_at_k(recommended, relevant, K)),
        "precision": float(precision_at_k(recommended, relevant, K)),
        "recall": float(recall_at_k(recommended, relevant, K)),
        "map": float(map_at_k(recommended, relevant, K)),
        "users": float(len(users)),
        "with_list": float(sum(1 for u in users if lists.get(u))),
    }


def chosen_model(train_output: str) -> str:
    match = re.search(r"^(\w+)#\d+:", train_output, re.M)
    holdout = re.search(r"^holdout: (.*)$", train_output, re.M)
    return (match.group(1) if match else "?") + (f" [{holdout.group(1)[:40]}...]" if holdout else "")


def commands_run(store: Store, work: Path, tag: str, n: int = K) -> tuple[dict[str, list[str]], str]:
    out = store.run("train")
    print(out, flush=True)
    picks = work / f"recs-{tag}.csv"
    store.run("recommend", "--all", "--n", str(n), "--out", str(picks), "-v", "0")
    return recommendations_read(picks), out


# --------------------------------------------------------------------------- Online Retail
def category_of(name: str, common: set[str]) -> str:
    words = re.findall(r"[A-Z]+", name.upper())
    last = words[-1] if words else ""
    return last.title() if last in common else "Other"


def retail(database_url: str | None, plain_only: bool = False) -> list[dict]:
    data = quality.load_purchases()
    fold = quality.make_fold(data, quality.CUTOFF)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="byod-retail-") as tmp:
        work = Path(tmp)
        events = work / "train-events.csv"
        t = np.flatnonzero(fold.train)
        with open(events, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["customer", "product", "value", "timestamp", "kind"])
            for i in t.tolist():
                stamp = dt.datetime.fromtimestamp(data.times[i], tz=dt.UTC).isoformat()
                out.writerow([data.customers[i], data.stock_codes[data.items[i]], 1, stamp, "purchase"])
        test: dict[str, set[str]] = collections.defaultdict(set)
        for i in np.flatnonzero(fold.test).tolist():
            test[str(data.customers[i])].add(str(data.stock_codes[data.items[i]]))
        store = Store(work, database_url)
        tic = time.perf_counter()
        store.run("import_interactions", str(events), "--map", "user=customer,item=product", "--no-progress")
        lists, out = commands_run(store, work, "plain")
        rows.append(
            {
                "run": "events only, no catalogue",
                "model": chosen_model(out),
                **score(lists, test),
                "seconds": time.perf_counter() - tic,
                "train_s": store.seconds.get("train", 0.0),
            }
        )
        print(rows[-1], flush=True)
        if plain_only:
            return rows
        # a catalogue holding only names and categories (the last word of the name)
        last = collections.Counter(
            re.findall(r"[A-Z]+", n.upper())[-1]
            for n in data.descriptions
            if n.strip() and re.findall(r"[A-Z]+", n.upper())
        )
        common = {w for w, c in last.items() if c >= 15}
        catalogue = work / "catalogue.csv"
        with open(catalogue, "w", newline="") as handle:
            out_csv = csv.writer(handle)
            out_csv.writerow(["sku", "name", "category"])
            for code, name in zip(data.stock_codes.tolist(), data.descriptions):
                out_csv.writerow([code, name or code, category_of(name, common)])
        store.seconds.clear()
        tic = time.perf_counter()
        store.run("import_catalogue", str(catalogue), "--no-progress")
        lists, out = commands_run(store, work, "catalogue")
        rows.append(
            {
                "run": "after import_catalogue (names, categories)",
                "model": chosen_model(out),
                **score(lists, test),
                "seconds": time.perf_counter() - tic,
                "train_s": store.seconds.get("train", 0.0),
            }
        )
        print(rows[-1], flush=True)
    return rows


# --------------------------------------------------------------------------- shapes
def shape_split(rows: list[shapes.Row], seed: int = 7):
    users = np.array([r[0] for r in rows])
    items = np.array([r[1] for r in rows])
    pair_keys, pair_index = np.unique(np.char.add(np.char.add(users, "|"), items), return_inverse=True)
    pair_users = np.array([k.split("|")[0] for k in pair_keys])
    split = random_stratified_split(pair_users, test_fraction=0.2, seed=seed)
    test_pair = split.test[pair_index.ravel()]
    train_rows = [r for r, held in zip(rows, test_pair) if not held]
    test: dict[str, set[str]] = collections.defaultdict(set)
    for r, held in zip(rows, test_pair):
        if held and (r[4] != "rating" or r[2] >= 4):
            test[r[0]].add(r[1])
    train_items = {r[1] for r in train_rows}
    test = {u: {s for s in ss if s in train_items} for u, ss in test.items()}
    return train_rows, {u: ss for u, ss in test.items() if ss}


def tuned_singles(train_rows: list[shapes.Row], test: dict[str, set[str]]) -> list[dict]:
    """EASE, ALS, item-kNN each tuned by select_model on a split of the training rows."""
    user_names, users = np.unique(np.array([r[0] for r in train_rows]), return_inverse=True)
    item_names, items = np.unique(np.array([r[1] for r in train_rows]), return_inverse=True)
    users, items = users.ravel().astype(np.int64), items.ravel().astype(np.int64)
    kinds = np.array([KIND_CODES[r[4]] for r in train_rows], dtype=np.int16)
    values = np.array([r[2] for r in train_rows])
    times = np.array([r[3] for r in train_rows])
    full = matrix_build(users=users, items=items, kinds=kinds, values=values, times=times)
    inner_split = random_stratified_split(users, test_fraction=0.2, seed=3)
    t = inner_split.train
    inner = matrix_build(
        users=users[t],
        items=items[t],
        kinds=kinds[t],
        values=values[t],
        times=times[t],
        user_ids=full.user_ids,
        item_ids=full.item_ids,
    )
    good = inner_split.test & ((kinds != 6) | (values >= 4))
    valid = matrix_build(
        users=users[good],
        items=items[good],
        kinds=kinds[good],
        values=np.ones(int(good.sum())),
        times=times[good],
        user_ids=full.user_ids,
        item_ids=full.item_ids,
        value_modes={},
    ).user_items
    valid = valid - valid.multiply(inner.user_items > 0)
    grid = candidates_for(inner.user_items)
    row_of = {str(user_names[u]): i for i, u in enumerate(full.user_ids.tolist())}
    order = [u for u in sorted(test) if u in row_of]
    rows = np.array([row_of[u] for u in order], dtype=np.int64)
    # what serving never shows: every product the customer rated or bought (even a bad rating)
    consumed = sp.csr_matrix(
        (
            np.ones(users.size, np.float32),
            (np.searchsorted(full.user_ids, users), np.searchsorted(full.item_ids, items)),
        ),
        shape=full.user_items.shape,
    )
    consumed.sum_duplicates()
    out = []
    for name in ("ease", "als", "item_knn", "item_knn_bm25"):
        result = select_model(inner.user_items, valid, candidates={name: grid[name]}, hybrid=False)
        model = algorithm_build(name, **result.best_params).fit(full.user_items)
        ids, _ = model.recommend(full.user_items[rows], n=K, exclude=consumed[rows])
        lists = {u: [str(item_names[full.item_ids[c]]) for c in r if c >= 0] for u, r in zip(order, ids)}
        out.append({"model": name, "params": result.best_params, **score(lists, test)})
    return out


def shape_run(shape: str, database_url: str | None) -> dict:
    rows = shapes.events(shape, seed=11)
    train_rows, test = shape_split(rows)
    with tempfile.TemporaryDirectory(prefix=f"byod-{shape}-") as tmp:
        work = Path(tmp)
        events = shapes.events_write(work / "events.csv", train_rows)
        store = Store(work, database_url)
        store.run("import_interactions", str(events), "--map", "user=customer,item=product", "--no-progress")
        lists, out = commands_run(store, work, shape, n=3 * K)
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for r in train_rows:
        seen[r[0]].add(r[1])
    # the held-out pairs are new pairs: a product the customer already viewed (which serving
    # may show again) is never an answer here, so it is dropped from every list alike
    lists = {u: [s for s in picks if s not in seen[u]][:K] for u, picks in lists.items()}
    auto = {"model": chosen_model(out), **score(lists, test), "train_s": store.seconds.get("train", 0.0)}
    ranked = [s for s, _ in collections.Counter(r[1] for r in train_rows).most_common()]
    popular = {u: [s for s in ranked if s not in seen[u]][:K] for u in test}
    return {
        "shape": shape,
        "events": len(rows),
        "auto": auto,
        "singles": tuned_singles(train_rows, test),
        "popularity_ndcg": score(popular, test)["ndcg"],
    }


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-retail", action="store_true")
    parser.add_argument("--skip-shapes", action="store_true")
    parser.add_argument("--no-catalogue-run", action="store_true", help="Online Retail without a catalogue only")
    parser.add_argument("--shapes", default="ratings,purchases,views,single,tiny")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    retail_rows = [] if args.skip_retail else retail(args.database_url, args.no_catalogue_run)
    shape_rows = []
    if not args.skip_shapes:
        for shape in args.shapes.split(","):
            result = shape_run(shape, args.database_url)
            shape_rows.append(result)
            best = max(result["singles"], key=lambda r: r["ndcg"])
            print(
                shape,
                "auto",
                result["auto"]["model"],
                f"{result['auto']['ndcg']:.4f}",
                "best single",
                best["model"],
                f"{best['ndcg']:.4f}",
                "popularity",
                f"{result['popularity_ndcg']:.4f}",
                flush=True,
            )
    text = render(retail_rows, shape_rows, time.perf_counter() - started, args.database_url)
    print(text)
    if args.write_results:
        quality_write(text)
    return 0


def render(retail_rows: list[dict], shape_rows: list[dict], seconds: float, database_url: str | None) -> str:
    lines = [
        SECTION,
        "",
        f"Date: {dt.date.today().isoformat()}. Machine: {os.cpu_count()} cores ({platform.machine()}, shared), "
        f"Python {platform.python_version()}, {'PostgreSQL' if database_url else 'SQLite'} (a fresh database per run).",
        f"Command: `.venv/bin/python bench/byod.py --write-results` ({seconds:.0f}s).",
        "",
    ]
    if retail_rows:
        lines += [
            "Online Retail, section 1's protocol through `import_interactions` (the train pairs' purchases as "
            "`customer,product,value,timestamp,kind`), `train` (no arguments), `recommend --all --n 10 --out FILE`, "
            "the file scored on section 1's test pairs (customers without a list count as misses).",
            "",
            "| run | chosen model [holdout] | NDCG@10 | P@10 | R@10 | MAP@10 | customers (with a list) | train s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in retail_rows:
            lines.append(
                f"| {r['run']} | {r['model']} | {r['ndcg']:.4f} | {r['precision']:.4f} | {r['recall']:.4f} | "
                f"{r['map']:.4f} | {r['users']:.0f} ({r['with_list']:.0f}) | {r['train_s']:.0f} |"
            )
        lines += ["", "bench/quality.py's selected model on the same protocol (in process): NDCG@10 0.1239.", ""]
    if shape_rows:
        lines += [
            "Synthetic shapes (bench/shapes.py), a random 20% of each customer's products held out; auto through "
            "the commands (`recommend --all --n 30`, the customer's own products dropped, the first 10 scored) next "
            "to each single algorithm tuned in process on the training rows only (`select_model` on a random split "
            "of them, refitted on all, the customer's own products excluded).",
            "",
            "| shape | events | auto (chosen) | auto NDCG@10 | best tuned single | its NDCG@10 | auto / best | "
            "popularity NDCG@10 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in shape_rows:
            best = max(r["singles"], key=lambda s: s["ndcg"])
            lines.append(
                f"| {r['shape']} | {r['events']:,} | {r['auto']['model']} | {r['auto']['ndcg']:.4f} | "
                f"{best['model']} | {best['ndcg']:.4f} | {r['auto']['ndcg'] / best['ndcg']:.3f} | "
                f"{r['popularity_ndcg']:.4f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def quality_write(text: str) -> None:
    path = quality.RESULTS
    current = path.read_text()
    start = current.find(SECTION)
    if start < 0:
        path.write_text(current.rstrip() + "\n\n" + text)
        return
    end = current.find("\n## ", start + len(SECTION))
    path.write_text(current[:start] + text + ("" if end < 0 else current[end + 1 :]))


if __name__ == "__main__":
    raise SystemExit(main())
