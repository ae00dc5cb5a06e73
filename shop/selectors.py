"""Reads of the store's domain.

Every function here returns models or plain data in a bounded number of queries
(``select_related``/``prefetch_related``, no per-row lookups): the storefront's query
counts are asserted in tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.core.cache import cache
from django.db.models import Case, FloatField, Prefetch, Q, QuerySet, Sum, Value, When

from .models import (
    PRODUCT_IN_STOCK,
    Cart,
    CartItem,
    Category,
    ConsentChange,
    CustomerPrediction,
    Interaction,
    Order,
    OrderLine,
    Product,
    User,
)


def product_list(*, category_id: int | None = None, include_inactive: bool = False) -> QuerySet[Product]:
    qs = Product.objects.select_related("category")
    if not include_inactive:
        qs = qs.filter(is_active=True)
    if category_id is not None:
        qs = qs.filter(category_id=category_id)
    return qs


# --- categories -----------------------------------------------------------------------
CATEGORY_CACHE_KEY = "shop:categories:v1"
CATEGORY_CACHE_SECONDS = 300


@dataclass(frozen=True)
class CategoryNode:
    """A category as the storefront shows it (navigation, breadcrumbs, filters)."""

    id: int
    name: str
    slug: str
    colour: str
    parent_id: int | None
    position: int


def category_nodes() -> list[CategoryNode]:
    """All categories in display order, cached for a few minutes (one query on a miss).

    The tree is small and read on every page (navigation), so it is kept in the cache
    rather than queried each time; a staff edit shows up within ``CATEGORY_CACHE_SECONDS``.
    """
    nodes = cache.get(CATEGORY_CACHE_KEY)
    if nodes is None:
        nodes = [
            CategoryNode(
                id=c["id"],
                name=c["name"],
                slug=c["slug"],
                colour=c["colour"],
                parent_id=c["parent_id"],
                position=c["position"],
            )
            for c in Category.objects.order_by("position", "name").values(
                "id", "name", "slug", "colour", "parent_id", "position"
            )
        ]
        cache.set(CATEGORY_CACHE_KEY, nodes, CATEGORY_CACHE_SECONDS)
    return nodes


def category_by_slug(*, slug: str) -> CategoryNode | None:
    """A category by slug from the cached tree; a category added since the cache was
    filled is found in the database (and refreshes the cache)."""
    node = next((c for c in category_nodes() if c.slug == slug), None)
    if node is None and Category.objects.filter(slug=slug).exists():
        cache.delete(CATEGORY_CACHE_KEY)
        node = next((c for c in category_nodes() if c.slug == slug), None)
    return node


def category_top_level() -> list[CategoryNode]:
    return [c for c in category_nodes() if c.parent_id is None]


def category_children(*, category_id: int) -> list[CategoryNode]:
    return [c for c in category_nodes() if c.parent_id == category_id]


def category_descendant_ids(*, category_id: int) -> list[int]:
    """The category and every category below it (from the cached tree, no query)."""
    children: dict[int | None, list[int]] = {}
    for c in category_nodes():
        children.setdefault(c.parent_id, []).append(c.id)
    out, stack, seen = [], [category_id], set()
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        out.append(cid)
        stack.extend(children.get(cid, []))
    return out


def category_path(*, category_id: int) -> list[CategoryNode]:
    """From the root down to the category (breadcrumbs), without a query."""
    by_id = {c.id: c for c in category_nodes()}
    path: list[CategoryNode] = []
    node = by_id.get(category_id)
    while node is not None and node not in path:
        path.append(node)
        node = by_id.get(node.parent_id) if node.parent_id else None
    return list(reversed(path))


# --- browsing -------------------------------------------------------------------------
SORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "name": ("Name, A to Z", ("name", "id")),
    "price_asc": ("Price, low to high", ("price", "name", "id")),
    "price_desc": ("Price, high to low", ("-price", "name", "id")),
    "newest": ("Newest first", ("-created_at", "-id")),
}
DEFAULT_SORT = "name"


def product_browse(
    *,
    category_ids: Iterable[int] | None = None,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    in_stock: bool = False,
    sort: str = DEFAULT_SORT,
) -> QuerySet[Product]:
    """Active products, filtered and sorted for a category page.

    ``sort`` is one of `SORTS` (a ValueError names an unknown one).
    """
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; one of {sorted(SORTS)}")
    qs = product_list()
    if category_ids is not None:
        qs = qs.filter(category_id__in=list(category_ids))
    if min_price is not None:
        qs = qs.filter(price__gte=min_price)
    if max_price is not None:
        qs = qs.filter(price__lte=max_price)
    if in_stock:
        qs = qs.filter(PRODUCT_IN_STOCK)
    return qs.order_by(*SORTS[sort][1])


_WORD = re.compile(r"\w+", re.UNICODE)
_WEB_SYNTAX = re.compile(r'"|(^|\s)-\w|\sor\s', re.IGNORECASE)  # phrases, -exclusions, "or"
SEARCH_MAX_TERMS = 8


def search_terms(query: str) -> list[str]:
    """The words of a search query (letters and digits only, at most a few)."""
    return _WORD.findall(query.lower())[:SEARCH_MAX_TERMS]


def _search_document():
    """The product's search document. ``shop/migrations/0002_product_search_index``
    indexes exactly this expression (GIN): change both together."""
    return (
        SearchVector("name", weight="A", config="english")
        + SearchVector("sku", weight="A", config="simple")
        + SearchVector("description", weight="C", config="english")
    )


def product_search(
    *, query: str, category_ids: Iterable[int] | None = None, in_stock: bool = False
) -> QuerySet[Product]:
    """Active products matching ``query``, best first.

    On PostgreSQL: full-text search (``SearchVector``/``SearchQuery``/``SearchRank``)
    over name and SKU (weight A) and description (C), using the GIN index on that
    document; products of a category whose name matches come after (a category
    match ranks like a weak name match). Plain words also match as prefixes ("lant"
    finds "lantern"); ``websearch`` syntax ("quoted phrases", -exclusion, or)
    works. Elsewhere (SQLite): every word must occur in the name, SKU, description
    or category name. An empty query matches nothing.
    """
    terms = search_terms(query)
    qs = product_list()
    if category_ids is not None:
        qs = qs.filter(category_id__in=list(category_ids))
    if in_stock:
        qs = qs.filter(PRODUCT_IN_STOCK)
    if not terms:
        return qs.none()
    if settings.DATABASE_IS_POSTGRES:
        search = SearchQuery(query[:200], search_type="websearch", config="english")
        if not _WEB_SYNTAX.search(query):  # plain words: also match them as prefixes
            search |= SearchQuery(" & ".join(f"{t}:*" for t in terms), search_type="raw", config="english")
        # Categories are few: match their names apart (one small query), so the
        # product document stays on the product table and its index serves.
        category_hits = list(
            Category.objects.annotate(document=SearchVector("name", config="english"))
            .filter(document=search)
            .values_list("id", flat=True)
        )
        document = _search_document()
        matches = Q(document=search)
        boost = Value(0.0)
        if category_hits:
            hit_ids = [i for cid in category_hits for i in category_descendant_ids(category_id=cid)]
            matches |= Q(category_id__in=hit_ids)
            boost = Case(When(category_id__in=hit_ids, then=Value(0.2)), default=Value(0.0), output_field=FloatField())
        return (
            qs.annotate(document=document)
            .filter(matches)
            .annotate(rank=SearchRank(document, search) + boost)
            .order_by("-rank", "name", "id")
        )
    nodes = category_nodes()
    for term in terms:
        in_categories = [i for c in nodes if term in c.name.lower() for i in category_descendant_ids(category_id=c.id)]
        qs = qs.filter(
            Q(name__icontains=term)
            | Q(sku__icontains=term)
            | Q(description__icontains=term)
            | Q(category_id__in=in_categories)
        )
    return qs.order_by("name", "id")


def product_get_for_page(*, slug: str) -> Product | None:
    """An active product with its category, or None."""
    return product_list().filter(slug=slug).first()


def product_get(*, product_id: int | None) -> Product | None:
    """A product by id, for sale or not (None for an unknown id or None)."""
    return Product.objects.filter(pk=product_id).first()


def product_picture_facts(*, product_id: int) -> dict | None:
    """What a product's generated picture shows, in one query: ``name``,
    ``category__colour`` and ``category__name`` (None without a category), or None."""
    return Product.objects.filter(pk=product_id).values("name", "category__colour", "category__name").first()


# --- API lists (filtered by the client) ------------------------------------------------
PRODUCT_ORDERINGS = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "price": ("price", "name", "id"),
    "-price": ("-price", "name", "id"),
    "created_at": ("created_at", "id"),
    "-created_at": ("-created_at", "-id"),
}


def product_filter(
    *,
    active: bool = True,
    q: str = "",
    category_id: int | None = None,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    in_stock: bool | None = None,
    sku: str = "",
    ordering: str | None = None,
) -> QuerySet[Product]:
    """Products for the API's list: active (or withdrawn) ones, in a category and every
    category below it, between prices, with (``in_stock=True``) or without stock, by SKU.

    ``q`` on active products is the storefront's search (`product_search`: best match
    first unless an ``ordering`` of `PRODUCT_ORDERINGS` is given); on withdrawn ones every
    word must occur in the name, SKU or description. Default order: ``name``.
    """
    searching = bool(q) and active
    if searching:
        qs = product_search(query=q)
    else:
        qs = Product.objects.select_related("category").filter(is_active=active)
        for word in search_terms(q):
            qs = qs.filter(Q(name__icontains=word) | Q(sku__icontains=word) | Q(description__icontains=word))
    if category_id is not None:
        qs = qs.filter(category_id__in=category_descendant_ids(category_id=category_id))
    if min_price is not None:
        qs = qs.filter(price__gte=min_price)
    if max_price is not None:
        qs = qs.filter(price__lte=max_price)
    if in_stock is not None:
        qs = qs.filter(PRODUCT_IN_STOCK) if in_stock else qs.exclude(PRODUCT_IN_STOCK)
    if sku:
        qs = qs.filter(sku=sku)
    if searching and ordering is None:
        return qs  # best match first
    return qs.order_by(*PRODUCT_ORDERINGS[ordering or "name"])


def customer_list(
    *,
    external_id: str = "",
    email: str = "",
    country: str = "",
    marketing_consent: bool | None = None,
) -> QuerySet[User]:
    """Customer accounts with their interests, by id. Staff accounts are never customers."""
    qs = User.objects.filter(is_staff=False, is_superuser=False).prefetch_related("interests").order_by("id")
    if external_id:
        qs = qs.filter(external_id=external_id)
    if country:
        qs = qs.filter(country=country)
    if email:
        qs = qs.filter(email=email.lower())
    if marketing_consent is not None:
        qs = qs.filter(marketing_consent=marketing_consent)
    return qs


def interaction_list(
    *,
    user: User | None = None,
    user_id: int | None = None,
    user_external_id: str | None = None,
    session_key: str | None = None,
    product_id: int | None = None,
    kind: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Interaction]:
    """Events with their product, newest first: ``user``'s own, or (for a reader allowed
    to see anyone's) those of ``user_id``, ``user_external_id`` and/or ``session_key``;
    ``since`` inclusive, ``until`` exclusive."""
    qs = Interaction.objects.select_related("product").order_by("-occurred_at", "-id")
    if user is not None:
        qs = qs.filter(user=user)
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    if user_external_id is not None:
        qs = qs.filter(user__external_id=user_external_id)
    if session_key is not None:
        qs = qs.filter(session_key=session_key)
    if product_id is not None:
        qs = qs.filter(product_id=product_id)
    if kind is not None:
        qs = qs.filter(kind=kind)
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    if until is not None:
        qs = qs.filter(occurred_at__lt=until)
    return qs


# --- history ------------------------------------------------------------------------
def _actor_filter(*, user: User | None, session_key: str) -> Q | None:
    if user is not None and user.is_authenticated:
        return Q(user=user)
    if session_key:
        return Q(session_key=session_key, user__isnull=True)
    return None


def recently_viewed(*, user: User | None = None, session_key: str = "", n: int = 8, scan: int = 60) -> list[Product]:
    """The last ``n`` distinct active products the shopper looked at, newest first.

    Two queries: the latest ``scan`` view events (index on actor and time), then the
    products.
    """
    actor = _actor_filter(user=user, session_key=session_key)
    if actor is None:
        return []
    ids: list[int] = []
    for pid in (
        Interaction.objects.filter(actor, kind=Interaction.Kind.VIEW)
        .order_by("-occurred_at")
        .values_list("product_id", flat=True)[:scan]
    ):
        if pid not in ids:
            ids.append(pid)
            if len(ids) >= n:
                break
    if not ids:
        return []
    products = product_list().in_bulk(ids)
    return [products[i] for i in ids if i in products]


def click_exists(*, rec_list_id, product: Product, user: User | None = None, session_key: str = "") -> bool:
    """Whether this shopper already clicked this product in this recommendation list."""
    actor = _actor_filter(user=user, session_key=session_key)
    if actor is None:
        return False
    return Interaction.objects.filter(
        actor, rec_list_id=rec_list_id, product=product, kind=Interaction.Kind.CLICK
    ).exists()


# --- carts ----------------------------------------------------------------------------
def cart_find(*, user: User | None = None, session_key: str = "") -> Cart | None:
    """The shopper's cart if they have one (no row is created by a read)."""
    if user is not None and user.is_authenticated:
        return Cart.objects.filter(user=user).first()
    if session_key:
        return Cart.objects.filter(session_key=session_key, user__isnull=True).first()
    return None


def cart_item_count(*, user: User | None = None, session_key: str = "") -> int:
    """How many units are in the shopper's cart (one query; none for a new visitor)."""
    if user is not None and user.is_authenticated:
        qs = CartItem.objects.filter(cart__user=user)
    elif session_key:
        qs = CartItem.objects.filter(cart__session_key=session_key, cart__user__isnull=True)
    else:
        return 0
    return qs.aggregate(n=Sum("quantity"))["n"] or 0


@dataclass(frozen=True)
class CartLine:
    item: CartItem
    product: Product
    quantity: int
    amount: Decimal
    available: bool  # still for sale with enough stock


@dataclass(frozen=True)
class CartView:
    cart: Cart | None
    lines: list[CartLine]
    total: Decimal
    count: int
    currency: str

    @property
    def can_check_out(self) -> bool:
        return bool(self.lines) and all(line.available for line in self.lines)


def cart_view(*, cart: Cart | None) -> CartView:
    """The cart's lines with products and totals (one query)."""
    if cart is None:
        return CartView(cart=None, lines=[], total=Decimal("0"), count=0, currency="GBP")
    items = list(CartItem.objects.filter(cart=cart).select_related("product__category").order_by("added_at", "id"))
    lines = [
        CartLine(
            item=i,
            product=i.product,
            quantity=i.quantity,
            amount=i.product.price * i.quantity,
            available=i.product.is_active and i.product.has_stock_for(i.quantity),
        )
        for i in items
    ]
    return CartView(
        cart=cart,
        lines=lines,
        total=sum((line.amount for line in lines), Decimal("0")),
        count=sum(line.quantity for line in lines),
        currency=lines[0].product.currency if lines else "GBP",
    )


# --- orders ---------------------------------------------------------------------------
def user_orders(*, user: User) -> QuerySet[Order]:
    """The customer's orders, newest first, with lines and products (three queries)."""
    return (
        Order.objects.filter(user=user)
        .order_by("-placed_at", "-id")
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id")))
    )


def user_order_get(*, user: User, number) -> Order | None:
    return user_orders(user=user).filter(number=number).first()


# --- privacy ------------------------------------------------------------------------
def _iso(dt) -> str | None:
    return dt.isoformat() if dt else None


def user_data_export(*, user: User) -> dict:
    """Everything the store holds about a customer, as JSON-ready data (GDPR access).

    Profile, interests, consent history, cart, orders with lines, every interaction,
    and the predictions made from the order history (profiling: churn risk, value). A bounded number of queries whatever the history's size; the
    interactions are streamed with ``iterator()``.
    """
    kinds = dict(Interaction.Kind.choices)
    sources = dict(Interaction.Source.choices)
    cart = Cart.objects.filter(user=user).first()
    prediction = CustomerPrediction.objects.filter(user=user).first()
    data = {
        "format": "affinity-user-export/1",
        "profile": {
            "id": user.pk,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "country": user.country,
            "date_joined": _iso(user.date_joined),
            "last_login": _iso(user.last_login),
            "marketing_consent": user.marketing_consent,
            "consent_changed_at": _iso(user.consent_changed_at),
        },
        "interests": [
            {"id": c["id"], "name": c["name"], "slug": c["slug"]}
            for c in user.interests.order_by("name").values("id", "name", "slug")
        ],
        "consent_history": [
            {"consent": c.consent, "source": c.source, "changed_at": _iso(c.changed_at)}
            for c in ConsentChange.objects.filter(user=user).order_by("changed_at", "id")
        ],
        "cart": [
            {
                "product_id": i["product_id"],
                "sku": i["product__sku"],
                "name": i["product__name"],
                "quantity": i["quantity"],
                "added_at": _iso(i["added_at"]),
            }
            for i in CartItem.objects.filter(cart=cart)
            .order_by("added_at", "id")
            .values("product_id", "product__sku", "product__name", "quantity", "added_at")
        ]
        if cart
        else [],
        "orders": [
            {
                "number": str(o.number),
                "external_id": o.external_id,
                "status": o.status,
                "placed_at": _iso(o.placed_at),
                "total": str(o.total),
                "currency": o.currency,
                "country": o.country,
                "lines": [
                    {
                        "product_id": line.product_id,
                        "sku": line.product.sku,
                        "name": line.product.name,
                        "quantity": line.quantity,
                        "unit_price": str(line.unit_price),
                    }
                    for line in o.lines.all()
                ],
            }
            for o in user_orders(user=user)
        ],
        "interactions": [
            {
                "occurred_at": _iso(row["occurred_at"]),
                "kind": kinds.get(row["kind"], str(row["kind"])),
                "product_id": row["product_id"],
                "sku": row["product__sku"],
                "value": row["value"],
                "source": sources.get(row["source"], str(row["source"])),
                "rec_list_id": str(row["rec_list_id"]) if row["rec_list_id"] else None,
            }
            for row in Interaction.objects.filter(user=user)
            .order_by("occurred_at", "id")
            .values("occurred_at", "kind", "product_id", "product__sku", "value", "source", "rec_list_id")
            .iterator(chunk_size=2000)
        ],
        "predictions": {
            "probability_active": prediction.probability_alive,
            "churn_risk": prediction.churn_risk,
            "expected_purchases_90_days": prediction.expected_purchases_90d,
            "expected_order_value": prediction.expected_order_value,
            "predicted_value_12_months": prediction.predicted_value,
            "value_percentile": prediction.value_percentile,
            "currency": prediction.currency,
            "win_back_due_at": _iso(prediction.inactive_at),
            "computed_at": _iso(prediction.computed_at),
        }
        if prediction
        else None,
    }
    return data
