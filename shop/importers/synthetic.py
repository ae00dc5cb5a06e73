"""A synthetic store with the structure of real shopping data, generated with numpy.

Pure (no database) and deterministic for a seed and an end date. The structure:

* **Catalogue.** Products spread over categories of the standard tree (category sizes
  vary), log-normal prices around a per-category level, a few sold out.
* **Popularity** follows a power law (Zipf, exponent ``zipf`` ~1): a few products are
  touched very often, most rarely; with the defaults the top 1% of products get
  about half of all events.
* **Customers** have heavy-tailed activity (log-normal) and category tastes drawn from
  a Dirichlet distribution (``taste_alpha`` < 1: each shopper likes a few categories).
* **Funnels.** Each time a shopper takes an interest in a product ("touch") they view
  it 1-3 times; some add it to the cart, some of those buy it. For every touch
  view < add_to_cart < purchase in time.
* **Sessions and orders.** A shopper's touches group into visits; the purchases of a
  visit are one order, checked out after the last add-to-cart of the visit.
* **Time.** ``days`` days (default 180) up to ``end``, with weekly seasonality
  (busier weekends), a daily rhythm (evening peak) and slight growth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from faker.providers.person.en_GB import Provider as Names

from .catalogue import CATEGORY_TREE, RULES

VIEW, ADD_TO_CART, PURCHASE = 1, 3, 5
# Events per touch: views (1-3), an add-to-cart, a purchase.
VIEW_COUNTS = np.array([1, 2, 3])
VIEW_COUNT_P = np.array([0.72, 0.20, 0.08])
P_CART = 0.28
P_BUY_GIVEN_CART = 0.55
P_NEW_VISIT = 0.3  # chance that a shopper's next touch starts a new visit
WEEKDAY_WEIGHT = np.array([1.0, 0.95, 0.95, 1.0, 1.08, 1.3, 1.25])  # Monday..Sunday
HOUR_WEIGHT = np.array(
    [
        0.3,
        0.2,
        0.12,
        0.1,
        0.1,
        0.15,
        0.3,
        0.6,
        0.9,
        1.0,
        1.05,
        1.1,
        1.2,
        1.15,
        1.05,
        1.0,
        1.05,
        1.15,
        1.3,
        1.5,
        1.7,
        1.6,
        1.2,
        0.7,
    ]
)
COUNTRIES = ("United Kingdom",) * 16 + ("Ireland", "Germany", "France", "Netherlands")
ADJECTIVES = (
    "Vintage",
    "Classic",
    "Modern",
    "Rustic",
    "Retro",
    "Handmade",
    "Scandi",
    "Botanical",
    "Pastel",
    "Folk",
    "Deluxe",
    "Mini",
    "Large",
    "Small",
    "Set of 3",
    "Set of 6",
    "Painted",
    "Enamel",
    "Wooden",
    "Glass",
    "Ceramic",
    "Woven",
    "Printed",
    "Striped",
    "Spotty",
    "Floral",
)
COLOURS = (
    "Red",
    "Blue",
    "Green",
    "Pink",
    "Ivory",
    "Cream",
    "Black",
    "White",
    "Yellow",
    "Grey",
    "Sage",
    "Mustard",
    "Navy",
    "Teal",
    "Lilac",
    "Gold",
    "Silver",
    "Coral",
)
BASE_PRICE = {
    "Home": 6.0,
    "Kitchen": 4.5,
    "Bags": 3.0,
    "Christmas": 2.5,
    "Stationery": 1.8,
    "Garden": 5.5,
    "Toys & Games": 3.5,
    "Jewellery & Accessories": 4.0,
    "Gifts": 3.0,
}


@dataclass
class SyntheticStore:
    seed: int
    categories: list[str]  # "Parent > Child" paths
    # products (index = product number)
    product_category: np.ndarray  # int, index into categories
    product_name: list[str]
    product_price_pence: np.ndarray  # int64
    product_stock: np.ndarray
    product_popularity: np.ndarray  # float, sums to 1
    # customers
    user_first: list[str]
    user_last: list[str]
    user_country: list[str]
    user_consent: np.ndarray  # bool
    user_joined_us: np.ndarray  # int64 unix microseconds
    # events, in time order
    event_user: np.ndarray
    event_product: np.ndarray
    event_kind: np.ndarray
    event_value: np.ndarray  # float64
    event_time_us: np.ndarray  # int64 unix microseconds
    # orders and their lines
    order_user: np.ndarray
    order_time_us: np.ndarray
    line_order: np.ndarray
    line_product: np.ndarray
    line_quantity: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_first)

    @property
    def n_products(self) -> int:
        return len(self.product_name)


def choose_categories(n: int) -> list[str]:
    """``n`` leaf categories of the standard tree, spread over its top levels (round
    robin); beyond the tree's 31, numbered collections are added to the tops."""
    if n < 1:
        raise ValueError("at least one category is needed")
    per_top = [
        [f"{top} > {child}" for child in children if child != "Other"] for top, children in CATEGORY_TREE.items()
    ]
    chosen: list[str] = []
    depth = 0
    while len(chosen) < n and depth < max(len(p) for p in per_top):
        for paths in per_top:
            if depth < len(paths) and len(chosen) < n:
                chosen.append(paths[depth])
        depth += 1
    tops = list(CATEGORY_TREE)
    k = 0
    while len(chosen) < n:
        chosen.append(f"{tops[k % len(tops)]} > Collection {k // len(tops) + 1}")
        k += 1
    return chosen


def _nouns(path: str) -> list[str]:
    words = [
        w.title()
        for rule in RULES
        if rule.path == path
        for w in (rule.requires or rule.words)
        if " " not in w and len(w) > 3 and not w.endswith("S")
    ]
    return words[:40] or [path.split(" > ")[-1].rstrip("s") or "Item"]


def generate(
    *,
    users: int,
    products: int,
    interactions: int,
    seed: int = 0,
    categories: int = 20,
    days: int = 180,
    end: datetime | None = None,
    zipf: float = 1.0,
    taste_alpha: float = 0.3,
) -> SyntheticStore:
    """Generate a store with exactly ``interactions`` events (see the module doc)."""
    if users < 1 or products < 1 or interactions < 1:
        raise ValueError("users, products and interactions must be at least 1")
    if days < 1:
        raise ValueError("days must be at least 1")
    rng = np.random.default_rng(seed)
    end = end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end_us = int(end.timestamp() * 1_000_000)
    paths = choose_categories(categories)
    C = len(paths)

    # --- catalogue ---------------------------------------------------------------------
    cat_share = rng.dirichlet(np.full(C, 3.0))
    product_category = rng.choice(C, size=products, p=cat_share)
    rank = rng.permutation(products)
    popularity = 1.0 / (rank + 1.0) ** zipf
    popularity /= popularity.sum()
    base = np.array([BASE_PRICE.get(p.split(" > ")[0], 3.0) for p in paths])
    price = np.maximum(0.39, rng.lognormal(np.log(base[product_category]), 0.55))
    price_pence = np.round(price * 100).astype(np.int64)
    stock = rng.integers(5, 400, size=products)
    stock[rng.random(products) < 0.03] = 0
    nouns = [_nouns(p) for p in paths]
    adj = rng.integers(0, len(ADJECTIVES), size=products)
    col = rng.integers(0, len(COLOURS), size=products)
    pick = rng.random(products)
    names = [
        f"{ADJECTIVES[a]} {COLOURS[c]} {nouns[k][int(u * len(nouns[k]))]}"
        for a, c, k, u in zip(adj.tolist(), col.tolist(), product_category.tolist(), pick.tolist())
    ]

    # --- customers -------------------------------------------------------------------------
    firsts = list(Names.first_names_female) + list(Names.first_names_male)
    lasts = list(Names.last_names)
    user_first = [firsts[i] for i in rng.integers(0, len(firsts), size=users).tolist()]
    user_last = [lasts[i] for i in rng.integers(0, len(lasts), size=users).tolist()]
    user_country = [COUNTRIES[i] for i in rng.integers(0, len(COUNTRIES), size=users).tolist()]
    user_consent = rng.random(users) < 0.6
    activity = rng.lognormal(0.0, 1.2, size=users)
    activity /= activity.sum()
    taste_cum = np.cumsum(rng.dirichlet(np.full(C, taste_alpha), size=users), axis=1)

    # --- touches: who looked at what, and how far they went ------------------------------
    per_touch = float(VIEW_COUNTS @ VIEW_COUNT_P) + P_CART + P_CART * P_BUY_GIVEN_CART
    T = int(interactions / per_touch * 1.05) + 8
    n_views = rng.choice(VIEW_COUNTS, size=T, p=VIEW_COUNT_P)
    cart = rng.random(T) < P_CART
    buy = cart & (rng.random(T) < P_BUY_GIVEN_CART)
    counts = n_views + cart + buy
    cum = np.cumsum(counts)
    keep = int(np.searchsorted(cum, interactions, side="right"))  # whole touches that fit
    short = interactions - (int(cum[keep - 1]) if keep else 0)
    T = keep + short  # the rest: touches that are a single view
    n_views, cart, buy = n_views[:T].copy(), cart[:T].copy(), buy[:T].copy()
    n_views[keep:], cart[keep:], buy[keep:] = 1, False, False

    touch_user = np.sort(rng.choice(users, size=T, p=activity))
    r = rng.random(T)
    touch_cat = np.empty(T, dtype=np.int64)
    for start in range(0, T, 200_000):  # bounded memory: T x C booleans per chunk
        stop = min(T, start + 200_000)
        touch_cat[start:stop] = (taste_cum[touch_user[start:stop]] < r[start:stop, None]).sum(axis=1)
    np.minimum(touch_cat, C - 1, out=touch_cat)
    touch_product = np.empty(T, dtype=np.int64)
    by_cat = np.argsort(product_category, kind="stable")
    bounds = np.searchsorted(product_category[by_cat], np.arange(C + 1))
    empty = [c for c in range(C) if bounds[c] == bounds[c + 1]]
    if empty:  # a category with no product: its fans look elsewhere
        touch_cat[np.isin(touch_cat, empty)] = product_category[rng.choice(products, p=popularity)]
    for c in range(C):
        idx = np.flatnonzero(touch_cat == c)
        if len(idx) == 0:
            continue
        members = by_cat[bounds[c] : bounds[c + 1]]
        p = popularity[members] / popularity[members].sum()
        touch_product[idx] = rng.choice(members, size=len(idx), p=p)

    # --- visits and time ----------------------------------------------------------------------
    first_of_user = np.ones(T, dtype=bool)
    first_of_user[1:] = touch_user[1:] != touch_user[:-1]
    new_visit = first_of_user | (rng.random(T) < P_NEW_VISIT)
    visit = np.cumsum(new_visit) - 1
    V = int(visit[-1]) + 1
    day_of = np.arange(days)
    start_day = end_us // 86_400_000_000 - days
    weekday = (start_day + day_of + 3) % 7  # 1970-01-01 was a Thursday
    day_w = WEEKDAY_WEIGHT[weekday] * (1.0 + 0.3 * day_of / days)
    day = rng.choice(days, size=V, p=day_w / day_w.sum())
    hour = rng.choice(24, size=V, p=HOUR_WEIGHT / HOUR_WEIGHT.sum())
    second = 1_000_000
    visit_start = (
        end_us
        - days * 86_400 * second
        + day * 86_400 * second
        + hour * 3600 * second
        + rng.integers(0, 3600 * second, size=V)
    )
    # Keep every visit (they last minutes to a few hours) before ``end``.
    visit_start = np.minimum(visit_start, end_us - 12 * 3600 * second - rng.integers(0, 3600 * second, size=V))
    visit_first = np.flatnonzero(new_visit)
    position = np.arange(T) - visit_first[visit]
    touch_time = visit_start[visit] + position * rng.integers(30 * second, 240 * second, size=T)
    last_view = touch_time + (n_views - 1) * rng.integers(5 * second, 60 * second, size=T)
    cart_time = last_view + rng.integers(10 * second, 300 * second, size=T)
    # A visit checks out once, after its last add-to-cart: that is the order's time.
    checkout = np.zeros(V, dtype=np.int64)
    np.maximum.at(checkout, visit[buy], cart_time[buy])
    checkout[checkout > 0] += rng.integers(60 * second, 1800 * second, size=int((checkout > 0).sum()))
    quantity = rng.geometric(0.6, size=T)

    # --- events ----------------------------------------------------------------------------------
    view_touch = np.repeat(np.arange(T), n_views)
    view_rank = np.arange(len(view_touch)) - np.repeat(np.cumsum(n_views) - n_views, n_views)
    view_time = np.repeat(touch_time, n_views) + view_rank * (
        (np.repeat(last_view - touch_time, n_views)) // np.maximum(1, np.repeat(n_views - 1, n_views))
    )
    cart_touch = np.flatnonzero(cart)
    buy_touch = np.flatnonzero(buy)
    ev_touch = np.concatenate([view_touch, cart_touch, buy_touch])
    ev_kind = np.concatenate(
        [np.full(len(view_touch), VIEW), np.full(len(cart_touch), ADD_TO_CART), np.full(len(buy_touch), PURCHASE)]
    ).astype(np.int16)
    ev_time = np.concatenate([view_time, cart_time[cart_touch], checkout[visit[buy_touch]]])
    ev_value = np.where(ev_kind == VIEW, 1.0, quantity[ev_touch].astype(np.float64))
    order = np.argsort(ev_time, kind="stable")
    assert len(order) == interactions

    # --- orders ---------------------------------------------------------------------------------
    buying_visits, line_order = np.unique(visit[buy_touch], return_inverse=True)
    order_user = touch_user[visit_first[buying_visits]]
    order_time = checkout[buying_visits]

    # --- customers joined before they first came -------------------------------------------------
    first_seen = np.full(users, end_us, dtype=np.int64)
    np.minimum.at(first_seen, touch_user, touch_time)
    joined = first_seen - rng.integers(0, 30 * 86_400 * second, size=users)

    return SyntheticStore(
        seed=seed,
        categories=paths,
        product_category=product_category,
        product_name=names,
        product_price_pence=price_pence,
        product_stock=stock,
        product_popularity=popularity,
        user_first=user_first,
        user_last=user_last,
        user_country=user_country,
        user_consent=user_consent,
        user_joined_us=joined,
        event_user=touch_user[ev_touch][order],
        event_product=touch_product[ev_touch][order],
        event_kind=ev_kind[order],
        event_value=ev_value[order],
        event_time_us=ev_time[order],
        order_user=order_user,
        order_time_us=order_time,
        line_order=line_order.ravel(),
        line_product=touch_product[buy_touch],
        line_quantity=quantity[buy_touch],
    )
