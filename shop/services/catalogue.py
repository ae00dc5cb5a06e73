"""Catalogue writes: products upserted by SKU (one at a time or in bulk), the category
tree by path, products taken off sale, categories removed when empty.

One row validator, `product_row_check`, serves every way products come in (the
``import_catalogue`` file, the API's create/update/batch): it is pure (no database)
and returns a `ProductRow` holding only the fields given, or the `RowError` of each
bad field. `products_upsert` then stores checked rows in bulk: a few queries per
thousand rows whatever is in them (existing products read by SKU in batches,
``bulk_create``/``bulk_update``), never one query per row.

Meaning of the fields (the same in a file, a JSON line and the API):

* ``sku`` required, at most 64 characters; the key of the upsert.
* ``name`` required for a new product; empty or null keeps the current one.
* ``description`` text; empty or null clears it.
* ``category`` a path ``"Kitchen > Storage"`` (or a JSON list of names): each level is
  matched by name under its parent and created when missing; empty or null: none.
* ``price`` a decimal >= 0 with at most 2 decimal places; empty keeps it (0 for new).
* ``currency`` 3 letters (upper-cased); empty keeps it (GBP for new).
* ``stock`` an integer >= 0; empty or null: stock not tracked (always available).
* ``active`` (or ``is_active``) true/false/1/0/yes/no; empty keeps it (true for new).
* ``image_url`` an http(s) URL; empty clears it.
* ``attributes`` a JSON object (a file's other columns): replaces the stored one. An
  import always drops the ``placeholder`` mark that products created from events carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, connection, transaction
from django.db.models import Field
from django.utils import timezone
from django.utils.text import slugify

from shop.bulk import rows_bulk_insert
from shop.models import Category, Product
from shop.numbers import int_parse
from shop.signals import ProductChange, products_changed

from .errors import Conflict, RowError, ValidationFailed

FIELDS = ("sku", "name", "description", "category", "price", "currency", "stock", "active", "image_url")
ALIASES = {"is_active": "active"}
MAX_SKU = 64
MAX_NAME = 255
MAX_CATEGORY_NAME = 100
MAX_URL = 200
MAX_STOCK = 2**31 - 1
PRICE_MAX = Decimal("9999999999.99")  # max_digits=12, decimal_places=2
CATEGORY_SEPARATOR = ">"
PLACEHOLDER = "placeholder"  # the attributes mark of products created from events
TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f"}
CURRENCY = re.compile(r"^[A-Z]{3}$")
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")  # ASCII digits: str.isdigit() also passes "²", which int() refuses
BATCH_SIZE = 2000
# Product columns an upsert sets (besides sku and slug), in this order.
UPSERT_FIELDS = ("name", "description", "category_id", "price", "currency", "stock", "is_active", "image_url")
NEW_PRODUCT_DEFAULTS = {
    "description": "",
    "category_id": None,
    "price": Decimal("0.00"),
    "currency": "GBP",
    "stock": None,
    "is_active": True,
    "image_url": "",
}

_url = URLValidator(schemes=["http", "https"])


@dataclass(frozen=True)
class ProductRow:
    """One checked product row: its position (file line or request index), SKU, and
    the values of the fields it gives (model names: ``category`` is the path as a tuple
    of names, or None)."""

    index: int
    sku: str
    values: dict[str, Any]


def _has_nul(raw: object) -> bool:
    """A NUL character anywhere in a string, or in a JSON value's keys and strings
    (PostgreSQL stores none)."""
    if isinstance(raw, str):
        return "\x00" in raw
    if isinstance(raw, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in raw.items())
    if isinstance(raw, list | tuple):
        return any(_has_nul(v) for v in raw)
    return False


def _blank(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _text(raw: object) -> str | None:
    """A string (stripped), or None when it is not a string or a number."""
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        return str(raw)
    return None


def category_path_parse(raw: object) -> tuple[str, ...] | str:
    """``"Kitchen > Storage"`` or ``["Kitchen", "Storage"]`` -> ``("Kitchen", "Storage")``,
    or the reason it is not a path (a string)."""
    if isinstance(raw, list | tuple):
        parts = [p.strip() if isinstance(p, str) else None for p in raw]
    elif isinstance(raw, str):
        parts = [p.strip() for p in raw.split(CATEGORY_SEPARATOR)]
    else:
        return "must be a path like 'Kitchen > Storage'"
    if any(p is None for p in parts):
        return "every level of the path must be a name"
    names = [p for p in parts if p is not None]
    if not names or any(not p for p in names):
        return f"{raw!r} has an empty level"
    long = [p for p in names if len(p) > MAX_CATEGORY_NAME]
    if long:
        return f"{long[0][:20]!r}... is longer than {MAX_CATEGORY_NAME} characters"
    return tuple(names)


def product_row_check(
    values: Mapping[str, object], *, index: int, attributes: Mapping[str, object] | None = None
) -> ProductRow | list[RowError]:
    """Check one product row: ``values`` maps field names (`FIELDS`, ``is_active``,
    ``attributes``) to raw values, strings from a file or JSON values; ``attributes``
    are more attributes (a file's other columns), merged over ``values["attributes"]``.
    Returns the `ProductRow`, or every problem as a `RowError` (``index`` as given)."""
    errors: list[RowError] = []
    out: dict[str, Any] = {}

    def bad(name: str, message: str, code: str = "invalid") -> None:
        errors.append(RowError(index, name, message, code))

    given = {ALIASES.get(k, k): v for k, v in values.items()}
    for key in [k for k in given if _has_nul(given[k])]:
        bad(key, f"{key} contains a NUL character", "null_characters_not_allowed")
        given.pop(key)
    if attributes and _has_nul(attributes):
        bad("attributes", "attributes contain a NUL character", "null_characters_not_allowed")
        attributes = None
    sku = _text(given.get("sku"))
    if _blank(given.get("sku")):
        bad("sku", "sku is required", "required")
    elif sku is None:
        bad("sku", "sku must be a string")
    elif len(sku) > MAX_SKU:
        bad("sku", f"sku {sku[:20]!r}... is longer than {MAX_SKU} characters", "max_length")
    if "name" in given and not _blank(given["name"]):
        name = _text(given["name"])
        if name is None:
            bad("name", "name must be a string")
        elif len(name) > MAX_NAME:
            bad("name", f"name is longer than {MAX_NAME} characters", "max_length")
        else:
            out["name"] = name
    if "description" in given:
        raw = given["description"]
        if _blank(raw):
            out["description"] = ""
        elif not isinstance(raw, str):
            bad("description", "description must be a string")
        else:
            out["description"] = raw.strip()
    if "category" in given:
        raw = given["category"]
        if _blank(raw):
            out["category"] = None
        else:
            path = category_path_parse(raw)
            if isinstance(path, str):
                bad("category", f"category {path}")
            else:
                out["category"] = path
    if "price" in given and not _blank(given["price"]):
        raw = given["price"]
        text = _text(raw)
        try:
            price = Decimal(text) if text is not None else None
        except InvalidOperation:
            price = None
        if price is None or not price.is_finite():
            bad("price", f"price {raw!r} is not a number")
        elif price < 0:
            bad("price", f"price {raw!r} is negative", "min_value")
        elif price > PRICE_MAX:
            bad("price", f"price {raw!r} is more than {PRICE_MAX}", "max_value")
        elif price != price.quantize(Decimal("0.01")):
            bad("price", f"price {raw!r} has more than 2 decimal places", "max_decimal_places")
        else:
            out["price"] = price.quantize(Decimal("0.01"))
    if "currency" in given and not _blank(given["currency"]):
        raw = given["currency"]
        code = raw.strip().upper() if isinstance(raw, str) else ""
        if not CURRENCY.match(code):
            bad("currency", f"currency {raw!r} is not 3 letters (ISO 4217, e.g. GBP)")
        else:
            out["currency"] = code
    if "stock" in given:
        raw = given["stock"]
        if _blank(raw):
            out["stock"] = None
        else:
            stock: int | None = None
            if isinstance(raw, int) and not isinstance(raw, bool):
                stock = raw
            elif isinstance(raw, str) and WHOLE_NUMBER.fullmatch(raw.strip()):
                stock = int_parse(raw)
                if stock is None:  # beyond 64 bits: a whole number still, out of range below
                    stock = -1 if raw.strip().startswith("-") else MAX_STOCK + 1
            if stock is None:
                bad("stock", f"stock {raw!r} is not a whole number (leave it empty for untracked stock)")
            elif stock < 0:
                bad("stock", f"stock {raw!r} is negative", "min_value")
            elif stock > MAX_STOCK:
                bad("stock", f"stock {raw!r} is too large", "max_value")
            else:
                out["stock"] = stock
    if "active" in given and not _blank(given["active"]):
        raw = given["active"]
        if isinstance(raw, bool):
            out["is_active"] = raw
        elif isinstance(raw, int) and raw in (0, 1):
            out["is_active"] = bool(raw)
        elif isinstance(raw, str) and raw.strip().lower() in TRUE | FALSE:
            out["is_active"] = raw.strip().lower() in TRUE
        else:
            bad("active", f"active {raw!r} is not true/false, 1/0 or yes/no")
    if "image_url" in given:
        raw = given["image_url"]
        if _blank(raw):
            out["image_url"] = ""
        elif not isinstance(raw, str):
            bad("image_url", "image_url must be a string")
        elif len(raw.strip()) > MAX_URL:
            bad("image_url", f"image_url is longer than {MAX_URL} characters", "max_length")
        else:
            try:
                _url(raw.strip())
            except DjangoValidationError:
                bad("image_url", f"image_url {raw.strip()[:60]!r} is not an http(s) URL")
            else:
                out["image_url"] = raw.strip()
    if "attributes" in given or attributes:
        raw = given.get("attributes")
        if raw is not None and not isinstance(raw, dict):
            bad("attributes", "attributes must be a JSON object")
        else:
            out["attributes"] = {**(raw or {}), **(attributes or {})}
    if errors:
        return errors
    assert sku is not None
    return ProductRow(index, sku, out)


# --- slugs and categories --------------------------------------------------------------------
def product_slugs_unique(names_and_keys: list[tuple[str, str]]) -> list[str]:
    """``slugify(name)-slugify(key)`` per item, made unique against the database and
    each other (a numeric suffix when taken). One query."""
    base = [f"{slugify(name)[:200].strip('-') or 'item'}-{slugify(key)[:80]}" for name, key in names_and_keys]
    taken = set(Product.objects.filter(slug__in=base).values_list("slug", flat=True))
    out: list[str] = []
    for slug in base:
        candidate, n = slug, 2
        while candidate in taken:
            candidate, n = f"{slug}-{n}", n + 1
        taken.add(candidate)
        out.append(candidate)
    return out


class CategoryPaths:
    """The category tree in memory (one query) to resolve paths by name under the
    parent; ``ensure`` creates the missing levels (``dry_run``: counts them and gives
    them stand-in negative ids)."""

    def __init__(self) -> None:
        self.ids: dict[tuple[int | None, str], int] = {}
        self.slugs: set[str] = set()
        for pk, name, parent_id, slug in Category.objects.order_by("-id").values_list(
            "pk", "name", "parent_id", "slug"
        ):
            self.ids[(parent_id, name)] = pk  # by descending id: the oldest wins a (root) name clash
            self.slugs.add(slug)
        self.created = 0

    def ensure(self, path: tuple[str, ...], *, dry_run: bool = False) -> int:
        parent: int | None = None
        for depth, name in enumerate(path):
            key = (parent, name)
            if key not in self.ids:
                self.created += 1
                if dry_run:
                    self.ids[key] = -self.created
                else:
                    slug = base = slugify(" ".join(path[: depth + 1]))[:110] or "category"
                    n = 2
                    while slug in self.slugs:
                        slug, n = f"{base}-{n}", n + 1
                    self.slugs.add(slug)
                    self.ids[key] = Category.objects.create(name=name, slug=slug, parent_id=parent).pk
            parent = self.ids[key]
        assert parent is not None
        return parent


# --- upsert ----------------------------------------------------------------------------------
@dataclass
class UpsertOutcome:
    index: int
    sku: str
    status: str  # created, updated, unchanged (or rejected, in the API's report)
    product_id: int | None = None


@dataclass
class ProductsUpsertResult:
    """What `products_upsert` stored (``dry_run``: would store)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    placeholders_filled: int = 0
    categories_created: int = 0
    errors: list[RowError] = field(default_factory=list)
    outcomes: list[UpsertOutcome] = field(default_factory=list)


def _existing(skus: list[str]) -> dict[str, dict]:
    cols = ("pk", "sku", *UPSERT_FIELDS, "attributes")
    return {r["sku"]: r for r in Product.objects.filter(sku__in=skus).values(*cols)}


UPSERT_ATTEMPTS = 3


def products_upsert(
    *,
    rows: Sequence[ProductRow],
    partial: bool = False,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Any = None,
    index_label: str = "index",
) -> ProductsUpsertResult:
    """Create or update products by SKU from checked rows, in bulk (see
    `_products_upsert_once`). A concurrent writer that created one of the new SKUs (or
    took a slug) between the read and the write makes the write fail as a whole; it is
    then run again, and finds those products existing: two clients sending the same new
    product at once both succeed, one creating and one updating or leaving it unchanged."""
    for attempt in range(1, UPSERT_ATTEMPTS + 1):
        try:
            return _products_upsert_once(
                rows=rows,
                partial=partial,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=progress,
                index_label=index_label,
            )
        except IntegrityError:
            if attempt == UPSERT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _products_upsert_once(
    *,
    rows: Sequence[ProductRow],
    partial: bool,
    dry_run: bool,
    batch_size: int,
    progress: Any,
    index_label: str,
) -> ProductsUpsertResult:
    """Create or update products by SKU from checked rows, in bulk.

    A product is updated only when a value changes (a second run of the same rows
    reports them all unchanged). A SKU given twice, or a new product without a name, is
    an error: with ``partial`` those rows are skipped and the others stored; without it
    `ValidationFailed` lists them all and nothing is written. Runs in one transaction.
    ``dry_run`` reads, counts and writes nothing. ``progress.update(n)`` is called as
    rows are done; ``index_label`` names what ``ProductRow.index`` counts in messages."""
    result = ProductsUpsertResult()
    first: dict[str, int] = {}
    unique: list[ProductRow] = []
    for row in rows:
        if row.sku in first:
            result.errors.append(
                RowError(
                    row.index,
                    "sku",
                    f"sku {row.sku!r} is given twice (first at {index_label} {first[row.sku]})",
                    "duplicate",
                )
            )
        else:
            first[row.sku] = row.index
            unique.append(row)
    # Read pass: what exists, which rows are bad, which categories are needed.
    plans: list[tuple[ProductRow, dict | None]] = []
    for batch in _chunks(unique, batch_size):
        known = _existing([r.sku for r in batch])
        for row in batch:
            current = known.get(row.sku)
            if current is None and "name" not in row.values:
                result.errors.append(
                    RowError(row.index, "name", "name is required for a new product", "required_for_new")
                )
                continue
            plans.append((row, current))
    if result.errors and not partial:
        raise ValidationFailed(sorted(result.errors, key=lambda e: e.index))
    now = timezone.now()
    price_stock: list[ProductChange] = []  # told to listeners (back-in-stock and price-drop emails)
    with transaction.atomic():
        categories = CategoryPaths()
        for batch in _chunks(plans, batch_size):
            fresh: list[tuple[ProductRow, Product]] = []
            changed: list[tuple[ProductRow, Product]] = []
            for row, current in batch:
                values = dict(row.values)
                if "category" in values:
                    path = values.pop("category")
                    values["category_id"] = categories.ensure(path, dry_run=dry_run) if path else None
                if current is None:
                    attrs = values.pop("attributes", {})
                    data = {**NEW_PRODUCT_DEFAULTS, **values}
                    fresh.append((row, Product(sku=row.sku, attributes=attrs, **data)))
                    continue
                attrs = values.pop("attributes", current["attributes"])
                if PLACEHOLDER in attrs or PLACEHOLDER in current["attributes"]:
                    attrs = {k: v for k, v in attrs.items() if k != PLACEHOLDER}
                    result.placeholders_filled += 1
                new = {f: values.get(f, current[f]) for f in UPSERT_FIELDS}
                if attrs == current["attributes"] and all(new[f] == current[f] for f in UPSERT_FIELDS):
                    result.unchanged += 1
                    result.outcomes.append(UpsertOutcome(row.index, row.sku, "unchanged", current["pk"]))
                    continue
                changed.append((row, Product(pk=current["pk"], sku=row.sku, attributes=attrs, updated_at=now, **new)))
                if new["price"] != current["price"] or new["stock"] != current["stock"]:
                    price_stock.append(
                        ProductChange(current["pk"], current["price"], new["price"], current["stock"], new["stock"])
                    )
            if not dry_run and fresh:
                _products_insert([p for _, p in fresh], now=now)
            if not dry_run and changed:
                _products_update([p for _, p in changed])
            result.created += len(fresh)
            result.updated += len(changed)
            result.outcomes += [UpsertOutcome(r.index, r.sku, "created", p.pk) for r, p in fresh]
            result.outcomes += [UpsertOutcome(r.index, r.sku, "updated", p.pk) for r, p in changed]
            if progress is not None:
                progress.update(len(batch))
        result.categories_created = categories.created
        if price_stock and not dry_run:
            products_changed.send(sender=Product, changes=price_stock)
    result.outcomes.sort(key=lambda o: o.index)
    result.errors.sort(key=lambda e: e.index)
    return result


# --- one product, one category (the API's create / update / delete) ---------------------------
def product_row_require(row: ProductRow | list[RowError]) -> ProductRow:
    """The row, or `ValidationFailed` with its errors."""
    if isinstance(row, list):
        raise ValidationFailed(row)
    return row


def product_create(*, row: ProductRow) -> Product:
    """A new product from a checked row (``name`` required). `Conflict` when the SKU
    is taken: update that product, or upsert with `products_upsert`."""
    if "name" not in row.values:
        raise ValidationFailed([RowError(row.index, "name", "name is required for a new product", "required_for_new")])
    with transaction.atomic():
        if Product.objects.filter(sku=row.sku).exists():
            raise Conflict(f"a product with SKU {row.sku!r} exists already", "sku")
        values = dict(row.values)
        path = values.pop("category", None)
        attrs = values.pop("attributes", {})
        category_id = CategoryPaths().ensure(path) if path else None
        data = {**NEW_PRODUCT_DEFAULTS, **values, "category_id": category_id}
        [slug] = product_slugs_unique([(data["name"], row.sku)])
        return Product.objects.create(sku=row.sku, slug=slug, attributes=attrs, **data)


def product_update(*, product: Product, row: ProductRow) -> Product:
    """Set the fields the checked row gives (its SKU may rename the product's).
    `Conflict` when the new SKU belongs to another product."""
    values = dict(row.values)
    with transaction.atomic():
        if row.sku != product.sku:
            if Product.objects.filter(sku=row.sku).exclude(pk=product.pk).exists():
                raise Conflict(f"another product has SKU {row.sku!r}", "sku")
            product.sku = row.sku
        if "category" in values:
            path = values.pop("category")
            product.category_id = CategoryPaths().ensure(path) if path else None
        attrs = values.pop("attributes", None)
        if attrs is not None:
            product.attributes = attrs
        elif PLACEHOLDER in product.attributes:
            product.attributes = {k: v for k, v in product.attributes.items() if k != PLACEHOLDER}
        for name, value in values.items():
            setattr(product, name, value)
        product.save()
    return product


def product_deactivate(*, product: Product) -> Product:
    """Take a product off sale (``is_active=False``); its history stays."""
    if product.is_active:
        product.is_active = False
        product.save(update_fields=["is_active", "updated_at"])
    return product


def category_save(*, category: Category | None = None, values: Mapping[str, Any]) -> Category:
    """Create (``category=None``) or update a category from checked values (``name``,
    ``parent_id``, ``description``, ``colour``, ``position``, optional ``slug``).
    `ValidationFailed` for an unknown parent or one below the category itself;
    `Conflict` when the parent already has a category of that name, or the slug is taken."""
    node = category or Category()
    for name, value in values.items():
        setattr(node, name, value)
    with transaction.atomic():
        if "parent_id" in values and node.parent_id is not None:
            parents = dict(Category.objects.values_list("pk", "parent_id"))
            if node.parent_id not in parents:
                raise ValidationFailed([RowError(0, "parent_id", f"no category {node.parent_id}", "does_not_exist")])
            step: int | None = node.parent_id
            while step is not None:
                if node.pk is not None and step == node.pk:
                    raise ValidationFailed(
                        [RowError(0, "parent_id", "a category cannot be moved below itself", "cycle")]
                    )
                step = parents.get(step)
        clash = Category.objects.filter(parent_id=node.parent_id, name=node.name).exclude(pk=node.pk)
        if clash.exists():
            raise Conflict(f"the parent already has a category named {node.name!r}", "name")
        if not node.slug:
            path = [c.name for c in node.parent.ancestors()] + [node.parent.name] if node.parent else []
            base = slugify(" ".join([*path, node.name]))[:110] or "category"
            taken = set(Category.objects.filter(slug__startswith=base).values_list("slug", flat=True))
            node.slug, n = base, 2
            while node.slug in taken:
                node.slug, n = f"{base}-{n}", n + 1
        elif Category.objects.filter(slug=node.slug).exclude(pk=node.pk).exists():
            raise Conflict(f"slug {node.slug!r} is taken", "slug")
        node.save()
    return node


def category_delete(*, category: Category) -> None:
    """Delete an empty category; `Conflict` while products or categories are in it."""
    with transaction.atomic():
        products = Product.objects.filter(category=category).count()
        children = Category.objects.filter(parent=category).count()
        if products or children:
            raise Conflict(
                f"category {category.name!r} still holds {products} product(s) and {children} "
                "subcategory(ies): move or delete them first"
            )
        category.delete()


def _products_insert(products: list[Product], *, now) -> None:
    """Insert new products through `shop.bulk.rows_bulk_insert` (COPY on PostgreSQL),
    give them unique slugs first and their ids after (one query)."""
    slugs = product_slugs_unique([(p.name, p.sku) for p in products])
    columns = ("sku", "slug", *UPSERT_FIELDS, "attributes", "created_at", "updated_at")
    for p, slug in zip(products, slugs, strict=True):
        p.slug, p.created_at, p.updated_at = slug, now, now
    rows_bulk_insert(model=Product, fields=columns, rows=[tuple(getattr(p, c) for c in columns) for p in products])
    ids = dict(Product.objects.filter(sku__in=[p.sku for p in products]).values_list("sku", "pk"))
    for p in products:
        p.pk = ids[p.sku]


def _products_update(products: list[Product]) -> None:
    """Write the upsert columns of many products: one prepared ``UPDATE ... WHERE id``
    run with many parameter sets (``executemany``; psycopg pipelines them), values
    adapted by the model fields as the ORM would. ``bulk_update``'s ``CASE WHEN``
    statements take minutes for 100,000 rows; this takes seconds."""
    columns = [*UPSERT_FIELDS, "attributes", "updated_at"]
    fields = [f for c in columns if isinstance(f := Product._meta.get_field(c), Field)]
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(f.column or f.attname)} = %s" for f in fields)
    sql = f"UPDATE {quote(Product._meta.db_table)} SET {sets} WHERE {quote('id')} = %s"
    params = [[f.get_db_prep_save(getattr(p, f.attname), connection) for f in fields] + [p.pk] for p in products]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
