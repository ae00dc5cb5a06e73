"""What the importers share: progress reporting, catalogue writes by natural key."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from tqdm import tqdm

from shop.models import Category, ConsentChange, Product, User
from shop.services.catalogue import product_slugs_unique

from .catalogue import CATEGORY_TREE, category_colours, category_paths


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...
    def close(self) -> object: ...


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass


ProgressFactory = Callable[..., Progress]


def no_progress(**_kwargs) -> Progress:
    return _NoProgress()


def tqdm_progress(file=None) -> ProgressFactory:
    """A factory of tqdm bars on ``file`` (stderr by default) for the commands."""

    def make(*, total: int | None = None, desc: str = "", unit: str = "rows") -> Progress:
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=True,
            file=file,
            mininterval=0.5,
            dynamic_ncols=True,
            leave=True,
        )

    return make


class PhaseTimer:
    """``lap("phase")`` records the seconds since the previous lap into ``timings``."""

    def __init__(self, timings: dict[str, float]):
        self.timings, self.clock = timings, time.monotonic()

    def __call__(self, phase: str) -> None:
        now = time.monotonic()
        self.timings[phase] = now - self.clock
        self.clock = now


def chunked(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- catalogue writes by natural key ---------------------------------------------------------
def category_tree_ensure(*, paths: Iterable[str] | None = None) -> tuple[dict[str, int], int]:
    """Make sure the categories exist (looked up by slug; existing ones are left as
    they are). ``paths`` are "Parent > Child" strings, all of the standard tree by
    default. Returns ``({path: category id}, created count)``."""
    colours = category_colours()
    wanted = list(paths) if paths is not None else category_paths()
    tops = list(dict.fromkeys(p.split(" > ")[0] for p in wanted))
    created = 0
    ids: dict[str, int] = {}
    with transaction.atomic():
        for position, top in enumerate(tops):
            slug = slugify(top)
            node = Category.objects.filter(slug=slug).first()
            if node is None:
                order = list(CATEGORY_TREE).index(top) if top in CATEGORY_TREE else position
                node = Category.objects.create(name=top, slug=slug, colour=colours.get(top, "#5b6c8f"), position=order)
                created += 1
            ids[top] = node.pk
        for path in wanted:
            top, child = path.split(" > ", 1)
            slug = slugify(f"{top} {child}")
            node = Category.objects.filter(slug=slug).first()
            if node is None:
                children = CATEGORY_TREE.get(top, [])
                node = Category.objects.create(
                    name=child,
                    slug=slug,
                    parent_id=ids[top],
                    colour=colours.get(path, "#5b6c8f"),
                    position=children.index(child) if child in children else 0,
                )
                created += 1
            ids[path] = node.pk
    return ids, created


@dataclass
class NewProduct:
    sku: str
    name: str
    price: object
    category_id: int | None = None
    description: str = ""
    stock: int | None = 0  # None: stock not tracked
    created_at: datetime | None = None
    attributes: dict | None = None


def products_ensure(*, products: list[NewProduct], batch_size: int = 2000) -> tuple[dict[str, int], int]:
    """Create the products whose SKU is unknown (existing ones are not modified).
    Returns ``({sku: id} for all given SKUs, created count)``."""
    ids: dict[str, int] = {}
    created = 0
    for batch in chunked(products, batch_size):
        skus = [p.sku for p in batch]
        known = dict(Product.objects.filter(sku__in=skus).values_list("sku", "pk"))
        ids.update(known)
        fresh = [p for p in batch if p.sku not in known]
        if not fresh:
            continue
        slugs = product_slugs_unique([(p.name, p.sku) for p in fresh])
        rows = []
        for p, slug in zip(fresh, slugs):
            row = Product(
                sku=p.sku,
                name=p.name[:255],
                slug=slug,
                description=p.description,
                category_id=p.category_id,
                price=p.price,
                stock=p.stock,
                is_active=True,
                attributes=p.attributes or {},
            )
            if p.created_at is not None:
                row.created_at = p.created_at
            rows.append(row)
        with transaction.atomic():
            Product.objects.bulk_create(rows)
        created += len(rows)
        ids.update(Product.objects.filter(sku__in=[p.sku for p in fresh]).values_list("sku", "pk"))
    return ids, created


@dataclass
class NewCustomer:
    external_id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    country: str = ""
    joined_at: datetime | None = None
    consent: bool | None = None  # None: no consent recorded (stays opted out)


def customers_ensure(*, customers: list[NewCustomer], batch_size: int = 2000) -> tuple[dict[str, int], int, int]:
    """Create the customers whose external id is unknown, with an unusable password
    and, when ``consent`` is given, their consent recorded as a `ConsentChange` from
    the import. Existing customers are not modified. Returns ``({external_id: id},
    created, consent records created)``."""
    ids: dict[str, int] = {}
    created = consents = 0
    unusable = make_password(None)  # "!..." : nobody can log in until they reset it
    now = timezone.now()
    for batch in chunked(customers, batch_size):
        known = dict(
            User.objects.filter(external_id__in=[c.external_id for c in batch]).values_list("external_id", "pk")
        )
        ids.update(known)
        fresh = [c for c in batch if c.external_id not in known]
        if not fresh:
            continue
        emails = [c.email.lower() for c in fresh]
        taken = set(User.objects.filter(email__in=emails).values_list("email", flat=True))
        rows = []
        for c, email in zip(fresh, emails):
            if email in taken:  # someone else has it: keep the domain, make it unique
                local, _, domain = email.partition("@")
                email = f"{local}.x{c.external_id}@{domain}"
            taken.add(email)
            user = User(
                email=email,
                first_name=c.first_name[:150],
                last_name=c.last_name[:150],
                country=c.country[:64],
                external_id=c.external_id,
                password=unusable,
                marketing_consent=bool(c.consent),
                consent_changed_at=(c.joined_at or now) if c.consent is not None else None,
            )
            if c.joined_at is not None:
                user.date_joined = c.joined_at
            rows.append(user)
        with transaction.atomic():
            User.objects.bulk_create(rows)
            new_ids = dict(
                User.objects.filter(external_id__in=[c.external_id for c in fresh]).values_list("external_id", "pk")
            )
            changes = [
                ConsentChange(
                    user_id=new_ids[c.external_id],
                    consent=c.consent,
                    source=ConsentChange.Source.IMPORT,
                    changed_at=c.joined_at or now,
                )
                for c in fresh
                if c.consent is not None
            ]
            ConsentChange.objects.bulk_create(changes)
        ids.update(new_ids)
        created += len(rows)
        consents += len(changes)
    return ids, created, consents


class ModelRows:
    """Full rows of a model's table for `shop.bulk.rows_bulk_insert` from the few
    values a loader knows: every other column gets the model field's default (called
    per row when it is callable, e.g. ``uuid4``), ``now`` for ``auto_now`` fields, or
    NULL when nullable. A column with none of these must be given."""

    def __init__(self, model, given: list[str]):
        now = timezone.now()
        self.fields: list[str] = []
        template: list = []
        self.callables: list[tuple[int, object]] = []
        positions: dict[str, int] = {}
        for f in model._meta.concrete_fields:
            if f.primary_key and f.attname not in given:
                continue
            i = len(self.fields)
            self.fields.append(f.attname)
            positions[f.attname] = i
            if f.attname in given:
                template.append(None)
            elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                template.append(now)
            elif f.has_default():
                if callable(f.default):
                    self.callables.append((i, f.default))
                    template.append(None)
                else:
                    template.append(f.get_default())
            elif f.null or f.get_default() is not None:  # "" for text fields, as the ORM does
                template.append(f.get_default())
            else:
                raise ValueError(f"{model.__name__}.{f.name} has no default: give it a value")
        unknown = set(given) - set(positions)
        if unknown:
            raise ValueError(f"{model.__name__} has no column(s) {sorted(unknown)}")
        self.template = template
        self.given_positions = [positions[g] for g in given]

    def expand(self, values) -> list:
        row = self.template.copy()
        for i, v in zip(self.given_positions, values):
            row[i] = v
        for i, fn in self.callables:
            row[i] = fn()
        return row
