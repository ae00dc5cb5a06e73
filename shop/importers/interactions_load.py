"""Load an interactions file from any shop (the ``import_interactions`` work).

All or nothing: a first pass validates every row and collects the customers and
products it names; if any row is bad, `InteractionsFileRejected` lists them (line
and reason) and nothing is written. Otherwise one transaction creates the unknown
customers (by external id) and products (by SKU, as placeholders "Product <sku>",
active, price 0) and streams the events into the database through
`shop.services.interactions.interactions_bulk_copy`.

Nothing is stored twice: every event carries its key (the file's ``event_id``, or
one derived from customer, product, kind and time: `interactions_file.event_key`) as
its ``Interaction.event_id``, and an event whose key is stored already, or repeats an
earlier row of the file, is skipped and counted as a duplicate. ``dry_run`` reads
the file and the database and reports what would be stored, writing nothing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils.text import slugify

from shop.bulk import tables_bulk_load
from shop.models import Interaction, Product, User
from shop.services.interactions import interactions_bulk_copy, max_future

from . import interactions_file as ifile
from .common import (
    NewCustomer,
    NewProduct,
    PhaseTimer,
    ProgressFactory,
    chunked,
    customers_ensure,
    no_progress,
    products_ensure,
)

KIND_NAMES = {v: k for k, v in ifile.KINDS.items()}


class InteractionsFileRejected(ValueError):
    """The file has bad rows; nothing was written. ``problems`` holds the first ones
    (line and reason, in file order), ``total`` how many there are in all."""

    def __init__(self, problems: list[ifile.RowProblem], total: int, rows: int):
        self.problems, self.total, self.rows = problems, total, rows
        super().__init__(f"{total:,} of {rows:,} rows are invalid; first: {problems[0]}")


@dataclass
class InteractionsImportReport:
    """What an import stored (or, with ``dry_run``, would store: ``created`` then
    counts what would be created). ``duplicates``: events already stored or repeated
    in the file, skipped; ``bad``: invalid rows (only a dry run gets this far with
    any, and lists the first in ``problems``)."""

    rows: int = 0
    created: dict = field(default_factory=lambda: {"customers": 0, "products": 0, "interactions": 0})
    by_kind: dict = field(default_factory=dict)
    existing_customers: int = 0
    existing_products: int = 0
    duplicates: int = 0
    bad: int = 0
    problems: list = field(default_factory=list)
    dry_run: bool = False
    bulk_load: bool = False
    timings: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(self.by_kind.items()))
        created = "Would create" if self.dry_run else "Created"
        lines = [
            f"Rows: {self.rows:,} ({kinds})" + (f", {self.bad:,} invalid" if self.bad else ""),
            f"{created}: customers {self.created['customers']:,}, products {self.created['products']:,} "
            f"(placeholders), interactions {self.created['interactions']:,}",
            f"Already known: customers {self.existing_customers:,}, products {self.existing_products:,}",
            f"Duplicates (events stored before or repeated in the file, skipped): {self.duplicates:,}",
        ]
        if not self.dry_run:
            lines.append(
                "Time: "
                + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
                + (" (indexes rebuilt after the load)" if self.bulk_load else "")
            )
        return lines


def placeholder_email(external_id: str) -> str:
    """A unique address on the reserved demo domain for a customer known only by id."""
    slug = slugify(external_id)[:40] or "customer"
    if slug != external_id.lower():
        slug = f"{slug}-{zlib.crc32(external_id.encode()):08x}"
    return f"imported-{slug}@{settings.AFFINITY_DEMO_EMAIL_DOMAIN}"


def interactions_file_import(
    *,
    path: Path | str,
    delimiter: str | None = None,
    mapping: str | dict | None = None,
    timestamp_unit: str = "s",
    default_kind: str = "purchase",
    default_value: float = 1.0,
    keep_problems: int = 1000,
    defer_indexes: bool = True,
    dry_run: bool = False,
    progress: ProgressFactory = no_progress,
) -> InteractionsImportReport:
    """Validate the whole file, then write all of it in one transaction, or nothing.
    Events already stored (by key, see the module doc) are skipped and counted.

    ``dry_run``: write nothing; the report says what would be created and skipped,
    and counts (``bad``) and lists (``problems``) the invalid rows instead of raising.

    With ``defer_indexes`` (default) a load larger than the interactions table takes
    the fast path of `shop.bulk.tables_bulk_load`, which locks the table until
    the import commits; pass False to import into a store that is serving shoppers.
    Raises `ifile.FileProblem` when the file cannot be read as mapped, and
    `InteractionsFileRejected` when any row is invalid."""
    path = Path(path)
    if not path.is_file():
        raise ifile.FileProblem(f"{path} does not exist or is not a file")
    fields = mapping if isinstance(mapping, dict) else ifile.parse_mapping(mapping)
    kind = ifile.kind_parse(default_kind)
    if kind is None:
        raise ifile.FileProblem(f"default kind {default_kind!r} is not one of {', '.join(ifile.KINDS)}")
    reader = ifile.FileReader(path, ifile.delimiter_for(path, delimiter), fields)
    stamp = ifile.TimestampParser(ZoneInfo(settings.TIME_ZONE), timestamp_unit, max_future=max_future())
    report = InteractionsImportReport(dry_run=dry_run)
    lap = PhaseTimer(report.timings)

    # --- pass 1: validate everything --------------------------------------------------------
    problems: list[ifile.RowProblem] = []
    bad = 0
    users: dict[str, None] = {}
    items: dict[str, None] = {}
    by_kind: dict[int, int] = {}
    keys: dict[str, None] = {}  # a dry run's event keys (a real run lets the database judge)
    bar = progress(total=None, desc="validate", unit="rows")
    rows = reader.rows()
    next(rows)  # the header (checked against the mapping)
    columns = reader.columns
    for line, raw in rows:
        report.rows += 1
        if report.rows % 50_000 == 0:
            bar.update(50_000)
        event = ifile.parse_event(raw, columns, stamp, kind, default_value, with_key=dry_run)
        if isinstance(event, list):
            bad += 1
            if len(problems) < keep_problems:
                problems.append(ifile.RowProblem(line, "; ".join(event)))
            continue
        users[event.user] = None
        items[event.item] = None
        by_kind[event.kind] = by_kind.get(event.kind, 0) + 1
        if dry_run:
            if event.event_id in keys:
                report.duplicates += 1
            else:
                keys[event.event_id] = None
    bar.update(report.rows % 50_000)
    bar.close()
    if bad and not dry_run:
        raise InteractionsFileRejected(problems, bad, report.rows)
    if report.rows == 0:
        raise ifile.FileProblem(f"{path} has a header but no rows")
    report.by_kind = {KIND_NAMES[k]: n for k, n in by_kind.items()}
    lap("validate")
    if dry_run:
        report.bad, report.problems = bad, problems
        return _dry_run_count(report, users=list(users), items=list(items), keys=list(keys))

    # --- pass 2: write, all in one transaction -------------------------------------------------
    with transaction.atomic():
        user_ids, created, _ = customers_ensure(
            customers=[NewCustomer(external_id=u, email=placeholder_email(u)) for u in users]
        )
        report.created["customers"] = created
        report.existing_customers = len(users) - created
        product_ids, created = products_ensure(
            products=[
                NewProduct(sku=i, name=f"Product {i}", price=0, stock=None, attributes={"placeholder": True})
                for i in items
            ]
        )
        report.created["products"] = created
        report.existing_products = len(items) - created
        del users, items
        lap("customers and products")
        source = Interaction.Source.IMPORT
        bar = progress(total=report.rows, desc="import", unit="rows")

        def events():
            n = 0
            rows = reader.rows()
            next(rows)
            for _line, raw in rows:
                ev = ifile.parse_event(raw, columns, stamp, kind, default_value)
                n += 1
                if n == 50_000:
                    bar.update(n)
                    n = 0
                yield (
                    user_ids[ev.user],
                    "",
                    product_ids[ev.item],
                    ev.kind,
                    ev.value,
                    ev.occurred_at,
                    source,
                    ev.event_id,
                )
            bar.update(n)

        expected = report.rows if defer_indexes else 0  # 0: never worth deferring
        with tables_bulk_load(models=[Interaction], expected_rows=expected) as report.bulk_load:
            report.created["interactions"] = interactions_bulk_copy(rows=events(), keyed=True)
            report.duplicates = report.rows - report.created["interactions"]
            lap("interactions")
        bar.close()
        if report.bulk_load:
            lap("index rebuild")
    lap("commit")
    return report


def _dry_run_count(
    report: InteractionsImportReport, *, users: list[str], items: list[str], keys: list[str]
) -> InteractionsImportReport:
    """Fill a dry run's report from the database (reads only, in chunks): customers,
    products and event keys already known. ``keys`` are the file's distinct keys."""
    known_users = sum(User.objects.filter(external_id__in=chunk).count() for chunk in chunked(users, 5000))
    known_items = sum(Product.objects.filter(sku__in=chunk).count() for chunk in chunked(items, 5000))
    stored = sum(
        Interaction.objects.filter(client_id=None, event_id__in=chunk).count() for chunk in chunked(keys, 5000)
    )  # the importers' namespace: no API client
    report.existing_customers, report.created["customers"] = known_users, len(users) - known_users
    report.existing_products, report.created["products"] = known_items, len(items) - known_items
    report.duplicates += stored
    report.created["interactions"] = len(keys) - stored
    return report
