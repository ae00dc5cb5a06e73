"""Load the UCI Online Retail file into the store (the ``import_online_retail`` work).

Pass 1 streams the file once (`OnlineRetailScan`): it classifies every row and
builds the catalogue and the customer list, which are written by natural key (SKU,
customer external id; existing rows are left as they are). Pass 2 groups the sale
rows by invoice (kept in memory from pass 1 up to `MAX_KEPT_SALE_ROWS`, else read
from the file again) and writes, in batches of invoices, the orders (external id =
InvoiceNo), their lines and the shopper's events — the purchases and the generated
browsing around them — through `shop.services.interactions.interactions_bulk_copy`. Pass 2 is one
transaction: an interrupted import leaves no half-imported orders, and a re-run
skips every invoice whose order exists, so running it twice writes nothing. A first
import into empty tables rebuilds the interaction indexes once at the end
(`shop.bulk.tables_bulk_load`) instead of maintaining them row by row.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import accumulate
from pathlib import Path

from django.conf import settings
from django.db import transaction

from shop.bulk import rows_bulk_insert, tables_bulk_load
from shop.models import Interaction, Order, OrderLine
from shop.services.interactions import interactions_bulk_copy

from . import online_retail as orr
from .common import (
    NewCustomer,
    NewProduct,
    PhaseTimer,
    ProgressFactory,
    category_tree_ensure,
    customers_ensure,
    no_progress,
    products_ensure,
)

DEFAULT_FILE = Path(settings.BASE_DIR) / "data" / "online_retail.csv.xz"
# Parsed sale rows kept between the passes (about 130 bytes each, their strings shared):
# the bundled file's 528k take ~70 MB. A larger file is read a second time instead.
MAX_KEPT_SALE_ROWS = 2_000_000
KIND_NAMES = {orr.VIEW: "view", orr.ADD_TO_CART: "add_to_cart", orr.PURCHASE: "purchase"}


@dataclass
class OnlineRetailReport:
    rows_read: int = 0
    sale_rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    non_product_codes: Counter = field(default_factory=Counter)
    service_codes: dict = field(default_factory=dict)
    malformed_examples: list = field(default_factory=list)
    cancelled_invoices: int = 0
    guest_invoices: int = 0
    huge_lines: int = 0
    unknown_description_rows: int = 0
    case_merged_codes: int = 0
    products_with_several_spellings: int = 0
    merged_duplicate_lines: int = 0
    created: Counter = field(default_factory=Counter)
    existing: Counter = field(default_factory=Counter)
    catch_all_products: int = 0
    catalogue_products: int = 0
    bulk_load: bool = False
    timings: dict = field(default_factory=dict)

    @property
    def total_created(self) -> int:
        return sum(self.created.values())

    def lines(self) -> list[str]:
        out = [f"Rows read: {self.rows_read:,}; sales of products: {self.sale_rows:,}"]
        out.append("Skipped rows by reason:")
        for reason, n in self.skipped.most_common():
            out.append(f"  {n:>8,}  {reason}")
        if self.non_product_codes:
            codes = ", ".join(f"{c} ({n:,})" for c, n in self.non_product_codes.most_common())
            out.append(f"  non-product codes kept out of the catalogue: {codes}")
        if self.service_codes:
            codes = ", ".join(f"{c} {name!r} ({n:,})" for c, (name, n) in sorted(self.service_codes.items()))
            out.append(f"  service lines with product-like codes: {codes}")
        for example in self.malformed_examples[:10]:
            out.append(f"  malformed: {example}")
        out.append("Handled and kept:")
        out.append(f"  {self.cancelled_invoices:>8,}  cancelled invoices (not imported as orders)")
        out.append(
            f"  {self.guest_invoices:>8,}  guest checkouts (no CustomerID): anonymous orders, "
            f"session key {orr.GUEST_SESSION_PREFIX}<InvoiceNo>"
        )
        out.append(f"  {self.unknown_description_rows:>8,}  rows described 'Unknown' (names come from other rows)")
        out.append(
            f"  {self.products_with_several_spellings:>8,}  products with several spellings "
            "(the most frequent one is the name)"
        )
        out.append(f"  {self.case_merged_codes:>8,}  stock codes seen in two cases, merged (upper-cased)")
        out.append(f"  {self.huge_lines:>8,}  lines with {orr.HUGE_QUANTITY:,}+ units (wholesale, kept)")
        out.append(f"  {self.merged_duplicate_lines:>8,}  duplicate lines merged (same invoice, code, price)")
        out.append(
            f"  {self.catch_all_products:>8,}  of {self.catalogue_products:,} products in the "
            "catch-all category Gifts > Other"
        )
        out.append(
            "Created: " + ", ".join(f"{k} {v:,}" for k, v in self.created.items()) + f" (total {self.total_created:,})"
        )
        if self.existing:
            out.append("Already present, left unchanged: " + ", ".join(f"{k} {v:,}" for k, v in self.existing.items()))
        if self.timings:
            out.append(
                "Time: "
                + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
                + (" (indexes rebuilt after the load)" if self.bulk_load else "")
            )
        return out


_price_round = orr._Memo(orr.price_round)


class _Sampler:
    """Pick a product of a category, weighted by how often it sold."""

    def __init__(self, weights_by_category: dict[str, dict[int, int]]):
        self._keys: dict[str, list[int]] = {}
        self._cum: dict[str, list[int]] = {}
        for category, weights in weights_by_category.items():
            keys = sorted(weights)
            self._keys[category] = keys
            self._cum[category] = list(accumulate(weights[k] for k in keys))

    def __call__(self, category: str, rng: random.Random) -> int | None:
        keys = self._keys.get(category)
        if not keys:
            return None
        cum = self._cum[category]
        return keys[bisect_right(cum, rng.random() * cum[-1])]


def online_retail_import(
    *,
    path: Path | str | None = None,
    limit: int | None = None,
    batch_invoices: int = 1500,
    progress: ProgressFactory = no_progress,
) -> OnlineRetailReport:
    """Import the Online Retail file (the bundled one by default). Idempotent."""
    path = Path(path) if path else DEFAULT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    report = OnlineRetailReport()
    lap = PhaseTimer(report.timings)

    # --- pass 1: scan -------------------------------------------------------------------
    scan = orr.OnlineRetailScan()
    bar = progress(total=limit, desc="scan", unit="rows")
    kept: list[orr.Row] | None = []  # the parsed sales, while they fit in memory
    for n, (line, fields) in enumerate(orr.read_rows(path, limit=limit), 1):
        row = scan.add(line, fields)
        if row is not None and kept is not None:
            kept.append(row)
            if len(kept) > MAX_KEPT_SALE_ROWS:
                kept = None  # a very large file: pass 2 reads it again instead
        if n % 20_000 == 0:
            bar.update(20_000)
    bar.update(scan.rows % 20_000)
    bar.close()
    sales = scan.sale_rows
    specs, customers, services = scan.finish()
    lap("scan")

    # --- catalogue and customers -----------------------------------------------------------
    category_ids, created = category_tree_ensure()
    report.created["categories"] = created
    product_ids, created = products_ensure(
        products=[
            NewProduct(
                sku=s.sku,
                name=s.name,
                price=s.price,
                category_id=category_ids[s.category],
                description=s.description,
                stock=s.stock,
                created_at=s.first_sold,
                attributes={"imported_from": "online_retail"},
            )
            for s in specs
        ]
    )
    report.created["products"] = created
    report.existing["products"] = len(specs) - created
    namer = orr.CustomerNamer()
    domain = settings.AFFINITY_DEMO_EMAIL_DOMAIN
    new_customers = []
    for c in customers:
        first, last = namer.name(c.external_id, c.country)
        new_customers.append(
            NewCustomer(
                external_id=c.external_id,
                email=namer.email(first, last, c.external_id, domain),
                first_name=first,
                last_name=last,
                country=c.country,
                joined_at=c.first_purchase,
                consent=orr.consent_given(c.external_id),
            )
        )
    user_ids, created, consents = customers_ensure(customers=new_customers)
    report.created["customers"] = created
    report.created["consent records"] = consents
    report.existing["customers"] = len(customers) - created

    spec_by_sku = {s.sku: s for s in specs}
    weights: dict[str, dict[int, int]] = defaultdict(dict)
    for s in specs:
        weights[s.category][product_ids[s.sku]] = scan.codes[s.sku].sale_rows
    related = _Sampler(weights)
    lap("catalogue and customers")

    # --- pass 2: invoices --------------------------------------------------------------------
    for key in ("orders", "order lines", *KIND_NAMES.values()):
        report.created[key] += 0
    report.existing["orders"] = 0
    invoices = list(scan.invoice_last_line)
    known = 0
    for start in range(0, len(invoices), 5000):
        known += Order.objects.filter(external_id__in=invoices[start : start + 5000]).count()
    # About 3.6 interactions and one order line per sale row of a new invoice.
    expected = int(scan.sale_rows * 4.6 * (len(invoices) - known) / max(1, len(invoices)))
    with transaction.atomic():
        with tables_bulk_load(models=[Interaction, OrderLine], expected_rows=expected) as report.bulk_load:
            rows = kept if kept is not None else _sale_rows(path, limit)
            _load_invoices(
                rows,
                sales,
                scan,
                services,
                report,
                product_ids,
                user_ids,
                spec_by_sku,
                related,
                batch_invoices,
                progress,
            )
            del kept, rows
            lap("orders and events")
        if report.bulk_load:
            lap("index rebuild")
    lap("commit")

    report.rows_read = scan.rows
    report.sale_rows = scan.sale_rows
    report.skipped = scan.skipped
    report.non_product_codes = scan.non_product_codes
    report.service_codes = {
        c: (orr.OnlineRetailScan.canonical_name(scan.codes[c].names, c), scan.codes[c].sale_rows) for c in services
    }
    report.malformed_examples = scan.malformed_examples
    report.cancelled_invoices = len(scan.cancelled_invoices)
    report.guest_invoices = len(scan.guest_invoices)
    report.huge_lines = scan.huge_lines
    report.unknown_description_rows = scan.unknown_description_rows
    report.case_merged_codes = scan.case_merged_codes
    report.products_with_several_spellings = sum(1 for s in specs if s.spellings > 1)
    report.catalogue_products = len(specs)
    report.catch_all_products = sum(1 for s in specs if s.category == "Gifts > Other")
    return report


def _sale_rows(path: Path, limit: int | None) -> Iterator[orr.Row]:
    """The sale rows of the file, read and parsed again (pass 2 of a very large file)."""
    for line, fields in orr.read_rows(path, limit=limit):
        try:
            row = orr.parse_row(fields, line)
        except orr.MalformedRow:
            continue  # counted in pass 1
        if orr.skip_reason(row) is None:
            yield row


def _load_invoices(
    rows, total, scan, services, report, product_ids, user_ids, spec_by_sku, related, batch_invoices, progress
) -> None:
    """Pass 2: group the sale rows by invoice and write them in batches of invoices.
    An invoice is complete at its last sale row (its rows need not be adjacent)."""
    open_invoices: dict[str, dict] = {}
    batch: list[tuple[str, dict]] = []
    last_line = scan.invoice_last_line
    bar = progress(total=total, desc="import", unit="rows")
    pending = 0
    for row in rows:
        pending += 1
        if pending == 20_000:
            bar.update(pending)
            pending = 0
        invoice = row.invoice
        if row.code in services:  # a service line: no order line, but it may end its invoice
            if row.line == last_line[invoice] and invoice in open_invoices:
                batch.append((invoice, open_invoices.pop(invoice)))
            continue
        inv = open_invoices.get(invoice)
        if inv is None:
            inv = open_invoices[invoice] = {
                "customer": row.customer_id,
                "country": row.country,
                "at": row.invoiced_at,
                "lines": {},
            }
        lines = inv["lines"]
        k = (row.code, row.unit_price)
        if k in lines:
            report.merged_duplicate_lines += 1
            lines[k] += row.quantity
        else:
            lines[k] = row.quantity
        if row.line == last_line[invoice]:
            batch.append((invoice, open_invoices.pop(invoice)))
            if len(batch) >= batch_invoices:
                _write_invoices(batch, report, product_ids, user_ids, spec_by_sku, related)
                bar.set_postfix_str(f"{report.created['orders']:,} orders", refresh=False)
                batch = []
    batch.extend(open_invoices.items())  # defensive: an invoice whose last line was not seen
    if batch:
        _write_invoices(batch, report, product_ids, user_ids, spec_by_sku, related)
    bar.update(pending)
    bar.close()


def _write_invoices(batch, report, product_ids, user_ids, spec_by_sku, related) -> None:
    """One transaction: the batch's new orders, their lines and their events."""
    with transaction.atomic():
        known = set(
            Order.objects.filter(external_id__in=[inv for inv, _ in batch]).values_list("external_id", flat=True)
        )
        report.existing["orders"] += len(known)
        fresh = [(inv, data) for inv, data in batch if inv not in known]
        if not fresh:
            return
        orders = []
        for inv, data in fresh:
            total = sum((price * qty for (_, price), qty in data["lines"].items()), Decimal("0"))
            orders.append(
                Order(
                    external_id=inv,
                    user_id=user_ids.get(data["customer"]) if data["customer"] else None,
                    status=Order.Status.SHIPPED,
                    total=total.quantize(orr.CENT),
                    currency="GBP",
                    country=data["country"][:64],
                    placed_at=data["at"],
                )
            )
        Order.objects.bulk_create(orders)
        if any(o.pk is None for o in orders):  # a backend that does not return ids
            ids = dict(
                Order.objects.filter(external_id__in=[o.external_id for o in orders]).values_list("external_id", "pk")
            )
            for o in orders:
                o.pk = ids[o.external_id]
        line_rows = []
        events: list[tuple] = []
        source = Interaction.Source.IMPORT
        bought = 0
        for order, (inv, data) in zip(orders, fresh):
            per_product: dict[int, list] = {}
            for (code, price), qty in data["lines"].items():
                pid = product_ids[code]
                line_rows.append((order.pk, pid, qty, _price_round[price]))
                if pid in per_product:
                    per_product[pid][1] += qty
                else:
                    per_product[pid] = [pid, qty, spec_by_sku[code].category]
            user_id = order.user_id
            session = "" if user_id else f"{orr.GUEST_SESSION_PREFIX}{inv}"
            visit = orr.browsing_events(
                invoice=inv, placed_at=data["at"], related=related, lines=[tuple(v) for v in per_product.values()]
            )
            events.extend([(user_id, session, pid, kind, value, at, source) for pid, kind, value, at in visit])
            bought += len(per_product)
        rows_bulk_insert(model=OrderLine, fields=("order_id", "product_id", "quantity", "unit_price"), rows=line_rows)
        interactions_bulk_copy(rows=events)
        report.created["orders"] += len(orders)
        report.created["order lines"] += len(line_rows)
        report.created["view"] += len(events) - 2 * bought
        report.created["add_to_cart"] += bought
        report.created["purchase"] += bought
