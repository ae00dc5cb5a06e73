"""Parsing and cleaning of the UCI Online Retail file (data/online_retail.csv.xz).

Pure functions and small aggregators, no database. `OnlineRetailScan` is the first
pass over the file: it classifies every row (a sale, or skipped and why), counts the
spellings and prices of every stock code and the customers' first purchases; its
`finish()` turns that into the catalogue (`ProductSpec`) and customer list
(`CustomerSpec`) the loader writes. `browsing_events` invents the views and
add-to-cart events around one invoice, deterministically.

Decisions about the file's quirks (see data/ONLINE_RETAIL_README.md):

* **Not products.** A product code is five digits with up to three letters
  (``85123A``); anything else (``POST``, ``DOT``, ``M``, ``C2``, ``BANK CHARGES``,
  ``AMAZONFEE``, ``D``, ``CRUK``, ``PADS``, ``S``, ``B``, ``DCGS...``, ``gift_...``) is a
  fee, postage, discount or manual line and stays out of the catalogue. So do codes
  with a product-like number whose name is a service (``Next Day Carriage``,
  ``PACKING CHARGE``, gift vouchers). Both are reported with their row counts.
* **Stock codes in two cases** (``15056bl`` and ``15056BL``) are one product: codes
  are upper-cased.
* **Names.** Each stock code gets one name: the most frequent spelling on its sale
  rows, ignoring ``Unknown``, empty and lower-case staff notes ("check", "damaged"),
  whitespace collapsed, then title-cased. Codes with several spellings are counted.
* **Price.** The most common positive unit price of its sales; ties go to the most
  recent one.
* **Cancellations** (``C`` invoices) are not orders: their rows are skipped and
  counted (rows and invoices). The purchase they cancel stays in the history: the
  shopper did buy and look at the product, which is what recommendations learn from.
* **Negative quantities outside a cancellation** are stock adjustments (damaged,
  lost, found): skipped. **Zero or negative prices** are not sales: skipped.
* **Guest checkouts** (no ``CustomerID``) are kept as anonymous orders; their events
  carry the session key ``guest-<InvoiceNo>``.
* **CustomerID** is read as a float by naive readers (``17850.0``); it becomes the
  integer string ``17850``.
* **Huge quantities** (wholesale, up to 80,995) are kept as they are and counted.
* **Duplicate lines** (same invoice, code and price) are merged into one order line
  with the summed quantity.
* **Times** are Europe/London wall-clock times, made aware (kept in UTC).
"""

from __future__ import annotations

import csv
import io
import lzma
import random
import re
import unicodedata
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from faker import Faker

from shop.event_time import occurred_at_problem

from .catalogue import categorise, describe, normalise_description, title_case

LONDON = ZoneInfo("Europe/London")
COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
PRODUCT_CODE = re.compile(r"^\d{5}[A-Z]{0,3}$")
# Names that mark a product-like code as a service line, not something for sale.
SERVICE_NAME = re.compile(
    r"^(?:NEXT DAY CARRIAGE|CARRIAGE|POSTAGE|DOTCOM POSTAGE|PACKING CHARGE|HIGH RESOLUTION IMAGE|"
    r"BANK CHARGES|AMAZON FEE|DISCOUNT|MANUAL|SAMPLES?|ADJUST BAD DEBT)$|GIFT VOUCHER",
    re.IGNORECASE,
)
UNKNOWN_NAMES = frozenset({"", "UNKNOWN", "?", "??", "???"})
HUGE_QUANTITY = 1000
GUEST_SESSION_PREFIX = "guest-"
CENT = Decimal("0.01")

# Reasons a row is not imported, as the report prints them.
R_MALFORMED = "malformed row (missing field, bad number or date)"
R_CANCELLATION = "cancellation (C invoice): no order created"
R_NOT_PRODUCT = "non-product stock code (postage, fees, discounts, manual lines)"
R_SERVICE = "service line with a product-like code (carriage, packing, vouchers)"
R_ADJUSTMENT = "negative quantity outside a cancellation (stock adjustment)"
R_ZERO_QUANTITY = "zero quantity"
R_BAD_PRICE = "zero or negative unit price (not a sale)"


class MalformedRow(ValueError):
    pass


# --- one row ------------------------------------------------------------------------------
class Row(NamedTuple):
    line: int  # line number in the file (the header is line 1)
    invoice: str
    code: str  # upper-cased
    description: str  # whitespace collapsed
    quantity: int
    invoiced_at: datetime  # aware, Europe/London
    unit_price: Decimal
    customer_id: str | None  # "17850", None for a guest checkout
    country: str


def customer_id_clean(raw: str) -> str | None:
    """``"17850.0"`` -> ``"17850"``; ``""`` -> None. Raises `MalformedRow` otherwise."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        number = float(raw)
    except ValueError:
        raise MalformedRow(f"CustomerID {raw!r} is not a number") from None
    if not number.is_integer() or number <= 0:
        raise MalformedRow(f"CustomerID {raw!r} is not a positive whole number")
    return str(int(number))


def london_time(text: str) -> datetime:
    """``"2010-12-01 08:26:00"`` (UK wall-clock time) -> an aware datetime, in UTC
    (the same instant; UTC makes later arithmetic and database writes cheap)."""
    try:
        at = datetime.fromisoformat(text.strip()).replace(tzinfo=LONDON).astimezone(UTC)
    except (ValueError, OverflowError):
        raise MalformedRow(f"InvoiceDate {text!r} is not YYYY-MM-DD HH:MM:SS") from None
    if problem := occurred_at_problem(at, now=datetime.now(UTC)):
        raise MalformedRow(f"InvoiceDate {text!r} {problem[1]}")
    return at


def unit_price_parse(text: str) -> Decimal:
    try:
        price = Decimal(text.strip())
    except InvalidOperation:
        raise MalformedRow(f"UnitPrice {text!r} is not a number") from None
    if not price.is_finite():
        raise MalformedRow(f"UnitPrice {text!r} is not a number")
    return price


COUNTRY_NAMES = {"EIRE": "Ireland", "RSA": "South Africa", "USA": "United States", "Unspecified": ""}


def country_clean(raw: str) -> str:
    raw = raw.strip()
    return COUNTRY_NAMES.get(raw, raw)


class _Memo(dict):
    """A bounded memo of a pure function of one string (the file repeats its dates,
    prices, customers and descriptions hundreds of thousands of times)."""

    def __init__(self, fn, limit: int = 200_000):
        super().__init__()
        self.fn, self.limit = fn, limit

    def __missing__(self, key: str):
        value = self.fn(key)
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


_time = _Memo(london_time)
_price = _Memo(unit_price_parse)
_customer = _Memo(customer_id_clean)
_description = _Memo(normalise_description)
_country = _Memo(country_clean)


def parse_row(fields: list[str], line: int) -> Row:
    if len(fields) != len(COLUMNS):
        raise MalformedRow(f"{len(fields)} fields, expected {len(COLUMNS)}")
    nul = [name for name, value in zip(COLUMNS, fields, strict=True) if "\x00" in value]
    if nul:
        raise MalformedRow(f"a NUL byte in {', '.join(nul)}")
    invoice, code, description, quantity, invoiced, price, customer, country = fields
    invoice, code = invoice.strip(), code.strip().upper()
    if not invoice or not code:
        raise MalformedRow("empty InvoiceNo or StockCode")
    try:
        qty = int(quantity)
    except ValueError:
        raise MalformedRow(f"Quantity {quantity!r} is not a whole number") from None
    return Row(
        line,
        invoice,
        code,
        _description[description],
        qty,
        _time[invoiced],
        _price[price],
        _customer[customer],
        _country[country],
    )


_is_product_code = _Memo(lambda code: PRODUCT_CODE.match(code) is not None)


def is_product_code(code: str) -> bool:
    """Five digits and up to three letters (upper-cased): ``85123A``, ``15056BL``."""
    return _is_product_code[code]


def skip_reason(row: Row) -> str | None:
    """Why a row is not a sale of a product, or None for a sale. (Service lines with
    product-like codes are decided per code after the scan, see `OnlineRetailScan`.)"""
    if row.invoice[0] in "Cc":
        return R_CANCELLATION
    if not _is_product_code[row.code]:
        return R_NOT_PRODUCT
    if row.quantity < 0:
        return R_ADJUSTMENT
    if row.quantity == 0:
        return R_ZERO_QUANTITY
    if row.unit_price <= 0:
        return R_BAD_PRICE
    return None


def open_text(path: Path) -> io.TextIOBase:
    """Open a CSV file, xz-compressed (``.xz``) or plain."""
    if str(path).endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - the caller closes it


def read_rows(path: Path, *, limit: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, fields)`` of the data rows. With ``limit``, stop after
    about ``limit`` rows: the invoice in progress is read to its end, so no order is
    ever cut in two (a later full import would otherwise leave it incomplete)."""
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        if [h.strip() for h in header] != list(COLUMNS):
            raise MalformedRow(f"unexpected header {header!r}; expected {','.join(COLUMNS)}")
        count = 0
        last_invoice = None
        for fields in reader:
            count += 1
            if limit is not None and count > limit and (not fields or fields[0] != last_invoice):
                return
            last_invoice = fields[0] if fields else None
            yield reader.line_num, fields


# --- the catalogue and customers -----------------------------------------------------------
@dataclass
class ProductSpec:
    sku: str
    name: str
    category: str  # "Parent > Child"
    description: str
    price: Decimal
    stock: int
    first_sold: datetime
    spellings: int


@dataclass
class CustomerSpec:
    external_id: str
    country: str
    first_purchase: datetime


@dataclass
class _CodeStats:
    names: Counter = field(default_factory=Counter)
    prices: Counter = field(default_factory=Counter)
    price_last: dict = field(default_factory=dict)
    units: int = 0
    sale_rows: int = 0
    first_sold: datetime | None = None
    raw_spellings: set = field(default_factory=set)


def _name_key(description: str) -> tuple[int, str] | None:
    """Rank a spelling: upper-case catalogue names before mixed/lower-case staff notes."""
    if description.upper() in UNKNOWN_NAMES or sum(c.isalpha() for c in description) < 3:
        return None
    return (0 if description == description.upper() else 1, description)


def price_round(price: Decimal) -> Decimal:
    rounded = price.quantize(CENT, rounding=ROUND_HALF_UP)
    return rounded if rounded > 0 else CENT


def stock_level(sku: str, units_sold: int, weeks: float = 53.0) -> int:
    """A plausible stock level: 2-8 weeks of the product's sales, 3% sold out."""
    h = zlib.crc32(f"stock:{sku}".encode())
    if h % 100 < 3:
        return 0
    weekly = units_sold / weeks
    return int(min(5000, max(5, round(weekly * (2 + h % 7)))))


@dataclass
class OnlineRetailScan:
    """First pass: classify rows and aggregate what the catalogue needs."""

    rows: int = 0
    sale_rows: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> rows
    non_product_codes: Counter = field(default_factory=Counter)  # code -> rows
    cancelled_invoices: set = field(default_factory=set)
    malformed_examples: list = field(default_factory=list)
    codes: dict = field(default_factory=lambda: defaultdict(_CodeStats))
    code_case_variants: dict = field(default_factory=lambda: defaultdict(set))
    customers: dict = field(default_factory=dict)  # id -> [first purchase, Counter(country)]
    invoice_last_line: dict = field(default_factory=dict)  # invoice -> last sale row's line
    guest_invoices: set = field(default_factory=set)
    huge_lines: int = 0
    unknown_description_rows: int = 0

    def add(self, line: int, fields: list[str]) -> Row | None:
        """Account for one raw row; return it parsed when it is a sale of a product code."""
        self.rows += 1
        try:
            row = parse_row(fields, line)
        except MalformedRow as exc:
            self.skipped[R_MALFORMED] += 1
            if len(self.malformed_examples) < 20:
                self.malformed_examples.append(f"line {line}: {exc}")
            return None
        if row.description.upper() in UNKNOWN_NAMES:
            self.unknown_description_rows += 1
        code = row.code
        raw_code = fields[1].strip()
        if raw_code != code and is_product_code(code):
            self.code_case_variants[code].add(raw_code)
        reason = skip_reason(row)
        if reason is not None:
            self.skipped[reason] += 1
            if reason == R_NOT_PRODUCT:
                self.non_product_codes[code] += 1
            elif reason == R_CANCELLATION:
                self.cancelled_invoices.add(row.invoice)
            return None
        self.sale_rows += 1
        stats = self.codes[code]
        stats.sale_rows += 1
        stats.units += row.quantity
        at = row.invoiced_at
        if row.description:
            stats.names[row.description] += 1
        price = row.unit_price
        stats.prices[price] += 1
        last = stats.price_last.get(price)
        if last is None or at > last:
            stats.price_last[price] = at
        if stats.first_sold is None or at < stats.first_sold:
            stats.first_sold = at
        if row.quantity >= HUGE_QUANTITY:
            self.huge_lines += 1
        self.invoice_last_line[row.invoice] = line
        customer = row.customer_id
        if customer is None:
            self.guest_invoices.add(row.invoice)
        else:
            entry = self.customers.get(customer)
            if entry is None:
                self.customers[customer] = [at, Counter({row.country: 1})]
            else:
                if at < entry[0]:
                    entry[0] = at
                entry[1][row.country] += 1
        return row

    @staticmethod
    def canonical_name(names: Counter, sku: str) -> str:
        ranked = [(key, n) for d, n in names.items() if (key := _name_key(d)) is not None]
        if not ranked:
            return f"Item {sku}"
        # Catalogue-style spelling first, then the most frequent, then alphabetical.
        (_, best), _ = min(ranked, key=lambda kn: (kn[0][0], -kn[1], kn[0][1]))
        return title_case(best)

    def finish(self) -> tuple[list[ProductSpec], list[CustomerSpec], set[str]]:
        """The catalogue, the customers, and the codes found to be service lines
        (their rows move from sales to the ``R_SERVICE`` reason)."""
        products: list[ProductSpec] = []
        services: set[str] = set()
        for sku in sorted(self.codes):
            stats = self.codes[sku]
            name = self.canonical_name(stats.names, sku)
            if SERVICE_NAME.search(name):
                services.add(sku)
                self.skipped[R_SERVICE] += stats.sale_rows
                self.sale_rows -= stats.sale_rows
                continue
            best_price = max(stats.prices, key=lambda p: (stats.prices[p], stats.price_last[p]))
            category = categorise(name)
            products.append(
                ProductSpec(
                    sku=sku,
                    name=name,
                    category=category,
                    description=describe(name=name, category_path=category, key=sku),
                    price=price_round(best_price),
                    stock=stock_level(sku, stats.units),
                    first_sold=stats.first_sold,
                    spellings=len({d.upper() for d in stats.names if _name_key(d) is not None}),
                )
            )
        customers = [
            CustomerSpec(
                external_id=cid, first_purchase=first, country=max(countries.items(), key=lambda kv: (kv[1], kv[0]))[0]
            )
            for cid, (first, countries) in sorted(self.customers.items(), key=lambda kv: int(kv[0]))
        ]
        return products, customers, services

    @property
    def case_merged_codes(self) -> int:
        """Codes that also occur in another case (``15056bl`` beside ``15056BL``)."""
        return len(self.code_case_variants)


# --- customers' generated identities ----------------------------------------------------
FAKER_LOCALES = {
    "United Kingdom": "en_GB",
    "Ireland": "en_IE",
    "Channel Islands": "en_GB",
    "Germany": "de_DE",
    "France": "fr_FR",
    "Spain": "es_ES",
    "Netherlands": "nl_NL",
    "Belgium": "nl_BE",
    "Switzerland": "de_CH",
    "Portugal": "pt_PT",
    "Australia": "en_AU",
    "Norway": "no_NO",
    "Italy": "it_IT",
    "Finland": "fi_FI",
    "Sweden": "sv_SE",
    "Austria": "de_AT",
    "Denmark": "da_DK",
    "Poland": "pl_PL",
    "United States": "en_US",
    "Canada": "en_CA",
    "Iceland": "is_IS",
    "Malta": "en_GB",
    "Lithuania": "lt_LT",
    "Brazil": "pt_BR",
    "Czech Republic": "cs_CZ",
    "South Africa": "en_GB",
    "Singapore": "en_GB",
    "Hong Kong": "en_GB",
}


def consent_given(external_id: str, share_percent: int = 60) -> bool:
    """Whether an imported customer opted in to marketing: about 60%, and always the
    same answer for the same customer."""
    return zlib.crc32(f"consent:{external_id}".encode()) % 100 < share_percent


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "", folded.lower())


class CustomerNamer:
    """Seeded Faker names per customer id: deterministic, whatever the import order."""

    def __init__(self) -> None:
        self._fakers: dict[str, object] = {}

    def _faker(self, locale: str):
        fk = self._fakers.get(locale)
        if fk is None:
            try:
                fk = Faker(locale)
            except AttributeError:
                fk = Faker("en_GB")
            self._fakers[locale] = fk
        return fk

    def name(self, external_id: str, country: str) -> tuple[str, str]:
        fk = self._faker(FAKER_LOCALES.get(country, "en_GB"))
        fk.seed_instance(zlib.crc32(f"name:{external_id}".encode()))
        return fk.first_name()[:150], fk.last_name()[:150]

    @staticmethod
    def email(first: str, last: str, external_id: str, domain: str) -> str:
        local = ".".join(p for p in (_ascii(first), _ascii(last)) if p) or "customer"
        return f"{local}.{external_id}@{domain}"


# --- browsing around a purchase --------------------------------------------------------
VIEW, ADD_TO_CART, PURCHASE = 1, 3, 5


def browsing_events(
    *,
    invoice: str,
    placed_at: datetime,
    lines: list[tuple[int, int, str]],
    related: Callable[[str, random.Random], int | None],
) -> list[tuple[int, int, float, datetime]]:
    """Events of the visit that ended in one order, deterministic per invoice.

    ``lines`` are ``(product key, quantity, category)`` of distinct products bought;
    ``related(category, rng)`` picks another product of a category (or None). Returns
    ``(product key, kind, value, occurred_at)`` for: 1-3 views of every bought product
    (the last one minutes before it was put in the cart, earlier ones up to two days
    before), one add-to-cart per product between its last view and the purchase, the
    purchase itself at ``placed_at``, and views of a few products of the same
    categories that were looked at but not bought. Times satisfy
    view < add_to_cart < purchase for every product.
    """
    rng = random.Random(zlib.crc32(f"visit:{invoice}".encode()))
    uniform, rand = rng.uniform, rng.random
    events: list[tuple[int, int, float, datetime]] = []
    append = events.append
    n = len(lines)
    # The visit: about a minute per line, at least a few minutes, at most three hours.
    visit = min(180.0, 4.0 + n * uniform(0.6, 1.4)) * 60.0  # seconds
    second = timedelta(seconds=1)
    for key, quantity, _category in lines:
        cart_at = placed_at - second * uniform(30.0, visit)
        view_at = cart_at - second * uniform(12.0, 480.0)
        append((key, VIEW, 1.0, view_at))
        r = rand()
        if r < 0.35:  # came back to it: an earlier visit, one hour to two days before
            append((key, VIEW, 1.0, view_at - second * uniform(3600.0, 172800.0)))
            if r < 0.08:
                append((key, VIEW, 1.0, view_at - second * uniform(3600.0, 172800.0)))
        append((key, ADD_TO_CART, float(quantity), cart_at))
        append((key, PURCHASE, float(quantity), placed_at))
    wanted = min(15, max(1, round(n * uniform(0.1, 0.35))))
    categories = [c for _, _, c in lines]
    bought = {key for key, _, _ in lines}
    seen: set[int] = set()
    for _ in range(wanted * 2):
        if len(seen) >= wanted:
            break
        other = related(rng.choice(categories), rng)
        if other is None or other in bought or other in seen:
            continue
        seen.add(other)
        append((other, VIEW, 1.0, placed_at - second * uniform(30.0, visit + 300.0)))
    return events
