"""Parsing and validation of an interactions file from any shop (CSV or TSV).

Pure functions, no database. A file has a header row; a *mapping* says which of its
columns holds each field (``user``, ``item``, ``timestamp``, and optionally ``kind``
and ``value``), e.g. ``user=customer_id,item=sku,value=qty,timestamp=ts,kind=event``.
Every row is checked; a problem is reported with its line number and the reason,
e.g. ``line 17: timestamp 'yesterday' is not ISO 8601 or unix seconds``.

Every event gets a key, so that importing a file again stores nothing twice: the
file's own ``event_id`` column when it has one (the same idempotency key API clients
send), else one derived from the event's natural key -- customer, product, kind and
time (to the microsecond, whatever the file's time notation), not the value -- as
``imp:`` and 20 characters of its hash (`event_key`). Two rows of a file with the
same key are one event.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import NamedTuple

from shop.event_time import DEFAULT_MAX_FUTURE, occurred_at_problem

FIELDS = ("user", "item", "timestamp", "kind", "value", "event_id")
REQUIRED = ("user", "item", "timestamp")
MAX_ID_LENGTH = 64  # User.external_id, Product.sku and Interaction.event_id
DERIVED_KEY_PREFIX = "imp:"  # keys derived from the natural key; API clients' ids should not start so
_EPOCH, _MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)
KINDS = {"view": 1, "click": 2, "add_to_cart": 3, "remove_from_cart": 4, "purchase": 5, "rating": 6, "wishlist": 7}
# Other spellings found in public event logs (RetailRocket: addtocart, transaction).
KIND_ALIASES = {
    "addtocart": "add_to_cart",
    "cart": "add_to_cart",
    "add": "add_to_cart",
    "removefromcart": "remove_from_cart",
    "remove": "remove_from_cart",
    "transaction": "purchase",
    "buy": "purchase",
    "order": "purchase",
    "checkout": "purchase",
    "rate": "rating",
    "pageview": "view",
    "detail": "view",
    "wish": "wishlist",
}
RATING = KINDS["rating"]
UTC = UTC


class FileProblem(ValueError):
    """The file as a whole cannot be read (header, mapping, delimiter, encoding)."""


class RowProblem(NamedTuple):
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class EventRow(NamedTuple):
    user: str
    item: str
    kind: int
    value: float
    occurred_at: datetime  # aware, UTC
    event_id: str  # the file's event_id, or `event_key` of the natural key


def event_key(user: str, item: str, kind: int, occurred_at: datetime) -> str:
    """The key of an event the file gives no id: ``imp:`` + 20 URL-safe characters of
    a 120-bit BLAKE2b hash of customer, product, kind code and time (unix microseconds),
    so the same event in any notation (ISO or unix time, any zone) has the same key."""
    at = (occurred_at - _EPOCH) // _MICROSECOND
    digest = hashlib.blake2b(f"{user}\x1f{item}\x1f{kind}\x1f{at}".encode(), digest_size=15).digest()
    return DERIVED_KEY_PREFIX + base64.urlsafe_b64encode(digest).decode()


def parse_mapping(text: str | None, fields: tuple[str, ...] = FIELDS) -> dict[str, str]:
    """``"user=customer_id,item=sku"`` -> ``{"user": "customer_id", "item": "sku"}``.
    Fields not named map to a column of the same name when the header has one.
    ``fields``: the names a mapping may use (the events' by default; the catalogue
    importer passes its own)."""
    mapping: dict[str, str] = {}
    if not text:
        return mapping
    for part in text.split(","):
        if not part.strip():
            continue
        field, sep, column = part.partition("=")
        field, column = field.strip().lower(), column.strip()
        if not sep or not column:
            raise FileProblem(f"--map entry {part.strip()!r} is not field=column")
        if field not in fields:
            raise FileProblem(f"--map field {field!r} is unknown; the fields are {', '.join(fields)}")
        if field in mapping:
            raise FileProblem(f"--map names the field {field!r} twice")
        mapping[field] = column
    return mapping


def delimiter_for(path: Path, delimiter: str | None) -> str:
    """The delimiter given (``,``, ``;``, ``|``, ``\\t`` or ``tab``), or ``\\t`` for a
    ``.tsv``/``.tab`` file and ``,`` otherwise."""
    if delimiter is None or delimiter == "":
        return "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    if delimiter in {"\\t", "tab", "TAB", "\t"}:
        return "\t"
    if len(delimiter) != 1:
        raise FileProblem(f"--delimiter must be one character (or \\t), not {delimiter!r}")
    return delimiter


# Column names that mean a field when no --map names it (compared without case),
# in order of preference after the field's own name.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "user": ("customer", "customer_id", "user_id", "customerid", "userid", "client", "client_id"),
    "item": ("product", "product_id", "sku", "item_id", "itemid", "productid", "stock_code", "stockcode"),
    "timestamp": ("time", "date", "datetime", "occurred_at", "event_time", "ts", "created_at"),
    "kind": ("event", "event_type", "type", "action"),
    "value": ("rating", "quantity", "qty", "score"),
}


def resolve_columns(header: list[str], mapping: dict[str, str]) -> dict[str, int]:
    """Column index of each mapped field; raises `FileProblem` naming what is missing.

    A field not in ``mapping`` takes the column of its own name, else the first of its
    usual other names (``SYNONYMS``: customer for user, product or sku for item, ...)."""
    names = [h.strip() for h in header]
    index = {name: i for i, name in enumerate(names)}
    lowered = {name.lower(): i for name, i in reversed(list(index.items()))}
    columns: dict[str, int] = {}
    for field in FIELDS:
        column = mapping.get(field, field)
        if column in index:
            columns[field] = index[column]
            continue
        if field not in mapping:
            found = next((lowered[n] for n in (field, *SYNONYMS.get(field, ())) if n in lowered), None)
            if found is not None and found not in columns.values():
                columns[field] = found
                continue
        if field in mapping or field in REQUIRED:
            shown = ", ".join(repr(n) for n in names) or "(empty)"
            how = f"column {column!r} ({field})" if field in mapping else f"no column for {field!r}"
            hint = "" if field in mapping else f" (map it: --map {field}=<column>)"
            raise FileProblem(f"{how} is not in the header: {shown}{hint}")
    return columns


def kind_parse(text: str) -> int | None:
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    key = KIND_ALIASES.get(key.replace("_", ""), key) if key not in KINDS else key
    if key in KINDS:
        return KINDS[key]
    if key.isdigit() and int(key) in KINDS.values():
        return int(key)
    return None


class TimestampParser:
    """ISO 8601 (naive times are in ``tz``) or unix seconds (``unit="ms"``: millis)."""

    def __init__(
        self, tz: tzinfo, unit: str = "s", now: datetime | None = None, max_future: timedelta = DEFAULT_MAX_FUTURE
    ):
        if unit not in {"s", "ms"}:
            raise FileProblem(f"timestamp unit must be s or ms, not {unit!r}")
        self.tz, self.scale = tz, 1000.0 if unit == "ms" else 1.0
        self.now, self.max_future = now or datetime.now(UTC), max_future
        self.unit = "unix milliseconds" if unit == "ms" else "unix seconds"

    def __call__(self, text: str) -> datetime | str:
        """The aware UTC datetime, or the reason it is not one (a string)."""
        raw = text.strip()
        if not raw:
            return "timestamp is empty"
        at: datetime | None = None
        if raw[0].isdigit() and raw.replace(".", "", 1).isdigit():
            try:
                seconds = float(raw) / self.scale
                at = datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError):
                return f"timestamp {raw!r} is out of range as {self.unit}"
        else:
            try:
                at = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
            except ValueError:
                return f"timestamp {raw!r} is not ISO 8601 or {self.unit}"
            at = at.replace(tzinfo=self.tz) if at.tzinfo is None else at
            at = at.astimezone(UTC)
        if problem := occurred_at_problem(at, now=self.now, max_future=self.max_future):
            return f"timestamp {raw!r} {problem[1]}"
        return at


def parse_event(
    fields: list[str],
    columns: dict[str, int],
    stamp: TimestampParser,
    default_kind: int,
    default_value: float,
    with_key: bool = True,
) -> EventRow | list[str]:
    """One row -> an `EventRow`, or the list of everything wrong with it. Without
    ``with_key`` an event the file gives no id gets ``event_id`` "" (validation only:
    the key costs a hash)."""
    problems: list[str] = []
    width = max(columns.values()) + 1
    if len(fields) < width:
        return [f"{len(fields)} fields, the mapped columns need {width}"]
    nul = [name for name, column in columns.items() if "\x00" in fields[column]]
    if nul:  # no text column can store one (PostgreSQL refuses it)
        return [f"{name} contains a NUL byte" for name in nul]
    user = fields[columns["user"]].strip()
    if not user:
        problems.append("user is empty")
    elif len(user) > MAX_ID_LENGTH:
        problems.append(f"user {user[:20]!r}... is longer than {MAX_ID_LENGTH} characters")
    item = fields[columns["item"]].strip()
    if not item:
        problems.append("item is empty")
    elif len(item) > MAX_ID_LENGTH:
        problems.append(f"item {item[:20]!r}... is longer than {MAX_ID_LENGTH} characters")
    kind = default_kind
    if "kind" in columns:
        raw_kind = fields[columns["kind"]]
        if raw_kind.strip():
            parsed = kind_parse(raw_kind)
            if parsed is None:
                problems.append(f"kind {raw_kind.strip()!r} is not one of {', '.join(KINDS)}")
            else:
                kind = parsed
    value = default_value
    if "value" in columns:
        raw_value = fields[columns["value"]].strip()
        if raw_value:
            try:
                value = float(raw_value)
            except ValueError:
                problems.append(f"value {raw_value!r} is not a number")
            else:
                if not math.isfinite(value):
                    problems.append(f"value {raw_value!r} is not a finite number")
                elif kind == RATING and not 0 <= value <= 5:
                    problems.append(f"rating {raw_value!r} is not between 0 and 5")
                elif value < 0:
                    problems.append(f"value {raw_value!r} is negative")
    event_id = fields[columns["event_id"]].strip() if "event_id" in columns else ""
    if len(event_id) > MAX_ID_LENGTH:
        problems.append(f"event_id {event_id[:20]!r}... is longer than {MAX_ID_LENGTH} characters")
    at = stamp(fields[columns["timestamp"]])
    if isinstance(at, str):
        problems.append(at)
    if problems:
        return problems
    if not event_id and with_key:
        event_id = event_key(user, item, kind, at)
    return EventRow(user, item, kind, value, at, event_id)


@dataclass
class FileReader:
    """Open, check the header, and iterate ``(line, fields)`` of a CSV/TSV file."""

    path: Path
    delimiter: str
    mapping: dict[str, str]

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = None
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as fh:
                reader = csv.reader(fh, delimiter=self.delimiter)
                header = next(reader, None)
                if not header:
                    raise FileProblem(f"{self.path} is empty: a header row is needed")
                self.columns = resolve_columns(header, self.mapping)
                yield 1, header
                for fields in reader:
                    if not fields or (len(fields) == 1 and not fields[0].strip()):
                        continue  # blank line
                    yield reader.line_num, fields
        except UnicodeDecodeError as exc:
            raise FileProblem(f"{self.path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            where = f"line {reader.line_num}: " if reader is not None else ""
            raise FileProblem(f"{self.path}: {where}{exc}") from None
