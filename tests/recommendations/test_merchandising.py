"""Placements and merchandising rules: the rule language, each rule kind on every
surface (the store, the API, emails, the export), time windows, pins under diversity,
the API's per-request rules and their 400s, placements and their fallback chains,
impressions naming the placement and the rules, the admin preview."""

from __future__ import annotations

import csv
import importlib
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.products import Exclusions, picks_for_users
from recommendations import impressions, placements, rules, services
from recommendations.models import Impression, MerchandisingRule, Placement
from shop.models import Product, User
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1"


def rule(action: str, condition: dict | None = None, **kwargs) -> MerchandisingRule:
    placements = kwargs.pop("placements", [])
    row = MerchandisingRule.objects.create(name=f"{action} rule", action=action, condition=condition or {}, **kwargs)
    if placements:
        row.placements.set(Placement.objects.filter(key__in=placements))
    return row


def placement_set(key: str, **fields) -> Placement:
    """Change a placement as admin does (a save: serving reads placements again)."""
    row = Placement.objects.get(key=key)
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return row


# --- the language ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("condition", "path", "message"),
    [
        ("cheap", "condition", "a JSON object"),
        ({"price": {"max": "10"}}, "condition.price.max", "must be a number"),
        ({"price": {"min": 20, "max": 10}}, "condition.price", "greater than max"),
        ({"price": {"upto": 3}}, "condition.price", "unknown key 'upto'"),
        ({"colour": "red"}, "condition.colour", "unknown condition 'colour'"),
        ({"category": [], "price": {}}, "condition", "exactly one key"),
        ({"all": [{"new_days": 30}, {"stock": {"min": 1.5}}]}, "condition.all[1].stock", "whole numbers"),
        ({"any": []}, "condition.any", "non-empty list"),
        ({"not": {"new_days": 0}}, "condition.not.new_days", "from 1 to 36500"),
        ({"attribute": {"key": "colour"}}, "condition.attribute", 'exactly one of "equals"'),
        ({"product": [1, "2"]}, "condition.product[1]", "positive whole number"),
        ({"category": [999999]}, "condition.category", "unknown category 999999"),
    ],
)
def test_a_bad_condition_is_refused_naming_the_bad_part(condition, path, message):
    with pytest.raises(rules.RuleError) as err:
        rules.condition_check(condition)
    assert err.value.path == path
    assert message in str(err.value)


def test_conditions_match_what_they_say(store):
    kettle = store.products[0]
    kettle.attributes = {"colour": "Red", "sizes": ["S", "M"]}
    kettle.price = Decimal("4.50")
    kettle.stock = 3
    kettle.created_at = timezone.now() - timedelta(days=3)
    now = timezone.now().timestamp()

    def matches(condition) -> bool:
        predicate, _ = rules.condition_compile(condition)
        return predicate(kettle, now)

    assert matches({})
    assert matches({"category": [store.categories[0].pk]})
    assert not matches({"category": [store.categories[1].pk]})
    assert matches({"price": {"max": 5}}) and not matches({"price": {"min": 5}})
    assert matches({"stock": {"max": 5}}) and not matches({"stock": {"min": 10}})
    assert matches({"new_days": 7}) and not matches({"new_days": 2})
    assert matches({"attribute": {"key": "colour", "equals": "red"}})  # case-folded
    assert matches({"attribute": {"key": "sizes", "in": ["M", "XL"]}})
    assert not matches({"attribute": {"key": "colour", "in": ["blue"]}})
    assert matches({"attribute": {"key": "material", "exists": False}})
    assert matches({"all": [{"price": {"max": 5}}, {"not": {"new_days": 1}}]})
    assert not matches({"any": [{"price": {"min": 6}}, {"product": [kettle.pk + 1]}]})
    kettle.stock = None  # untracked stock counts as unlimited
    assert matches({"stock": {"min": 1000}})


# --- each rule kind on every surface ------------------------------------------------------------
def _store_list(client, user) -> list[int]:
    client.force_login(user)
    html = client.get("/cart/").content.decode()
    section = re.search(r'<section class="shelf"[^>]*data-shelf="cart-recs".*?</section>', html, re.S)
    assert section, "the cart page shows the cart placement's shelf"
    slugs = re.findall(r'href="/product/([\w-]+)/\?rl=', section.group(0))
    by_slug = dict(Product.objects.filter(slug__in=slugs).values_list("slug", "pk"))
    return [by_slug[s] for s in dict.fromkeys(slugs)]


def _api_list(user) -> list[int]:
    client = APIClient()
    client.force_login(user)
    body = client.get(f"{BASE}/recommendations/me", {"n": 8}).json()
    return [item["product"]["id"] for item in body["items"]]


def _email_list(user) -> list[int]:
    picks = picks_for_users(user_ids=[user.pk], strategy="auto", n=8, exclusions=Exclusions())
    return [p["id"] for p in picks[user.pk]]


def _export_list(user, tmp_path) -> list[int]:
    out = tmp_path / "recs.csv"
    call_command("recommend", "--user", str(user.pk), "--n", "8", "--out", str(out), "--workers", "1", verbosity=0)
    with out.open() as f:
        skus = [row["sku"] for row in csv.DictReader(f)]
    by_sku = dict(Product.objects.filter(sku__in=skus).values_list("sku", "pk"))
    return [by_sku[s] for s in skus]


SURFACES = ("store", "api", "email", "export")


def _surface_list(surface: str, client, user, tmp_path) -> list[int]:
    if surface == "store":
        return _store_list(client, user)
    if surface == "api":
        return _api_list(user)
    if surface == "email":
        return _email_list(user)
    return _export_list(user, tmp_path)


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("kind", ["boost", "bury", "include", "exclude", "pin"])
def test_each_rule_kind_on_every_surface(kind, surface, store, trained, client, tmp_path):
    user = store.customers[0]  # likes categories[0]: the model's picks come from it
    mine, other = store.categories[0], store.categories[1]
    category_of = {p.pk: p.category_id for p in store.products}
    before = _surface_list(surface, client, user, tmp_path)
    assert before and category_of[before[0]] == mine.pk, "without rules the model's taste leads"
    pinned = store.by_category[store.categories[2].pk][-1]
    if kind == "boost":
        rule("boost", {"category": [other.pk]}, weight=2.0)
    elif kind == "bury":
        rule("bury", {"category": [mine.pk]}, weight=2.0)
    elif kind == "include":
        rule("include", {"category": [other.pk]})
    elif kind == "exclude":
        rule("exclude", {"category": [mine.pk]})
    else:
        rule("pin", product=pinned, position=2)
    after = _surface_list(surface, client, user, tmp_path)
    assert after and after != before
    if kind in ("boost", "bury"):
        assert category_of[after[0]] != mine.pk
        assert category_of[after[0]] == other.pk or kind == "bury"
    elif kind == "include":
        assert {category_of[p] for p in after} == {other.pk}
    elif kind == "exclude":
        assert mine.pk not in {category_of[p] for p in after}
    else:
        assert after[1] == pinned.pk and after[0] == before[0]


def test_a_rule_applies_only_in_its_window_and_while_switched_on(store, trained):
    user = store.customers[0]
    pinned = store.by_category[store.categories[3].pk][-1]
    now = timezone.now()

    def first() -> int:
        return services.recommend_for_user(user=user, context="api", n=5, record_impression=False).picks[0].product.pk

    natural = first()
    assert natural != pinned.pk
    pin = rule("pin", product=pinned, position=1, starts_at=now + timedelta(hours=1))
    assert first() == natural, "not yet started"
    pin.starts_at, pin.ends_at = now - timedelta(hours=2), now - timedelta(hours=1)
    pin.save()
    assert first() == natural, "already ended"
    pin.ends_at = now + timedelta(hours=1)
    pin.save()
    assert first() == pinned.pk, "live"
    pin.is_active = False
    pin.save()
    assert first() == natural, "switched off"


def test_a_rule_for_one_placement_leaves_the_others_alone(store, trained):
    user = store.customers[0]
    pinned = store.by_category[store.categories[3].pk][-1]
    rule("pin", product=pinned, position=1, placements=["cart"])
    cart = services.placement_serve("cart", user=user, record_impression=False)
    home = services.placement_serve("home", user=user, record_impression=False)
    assert cart.picks[0].product.pk == pinned.pk and cart.rule_ids
    assert pinned.pk not in {p.product.pk for p in home.picks} and not home.rule_ids


def test_pins_survive_diversity_and_carry_their_source(store, trained, settings):
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 1
    user = store.customers[0]
    mine = store.by_category[store.categories[0].pk]
    bought = set(Product.objects.filter(interactions__user=user, interactions__kind=5).values_list("pk", flat=True))
    a, b = [p for p in mine if p.pk not in bought][-2:]
    rule("pin", product=a, position=1)
    rule("pin", product=b, position=3)
    rec = services.recommend_for_user(user=user, context="api", n=6, record_impression=False)
    ids = [p.product.pk for p in rec.picks]
    assert ids[0] == a.pk and ids[2] == b.pk, "the per-category cap of 1 does not move pins"
    assert rec.picks[0].source == "pin" and rec.picks[0].reason_code == "rule"
    assert [e.action for e in rec.picks[0].rule_effects] == ["pin"]
    categories = [p.product.category_id for p in rec.picks]
    others = [c for i, c in enumerate(categories) if i not in (0, 2)]
    assert len(others) == len(set(others)), "the rest is still diverse"


def test_a_pin_never_shows_what_must_not_be_shown(store, trained):
    user = store.customers[0]
    gone = store.by_category[store.categories[2].pk][0]
    Product.objects.filter(pk=gone.pk).update(stock=0)
    rule("pin", product=gone, position=1)
    rec = services.recommend_for_user(user=user, context="api", n=5, record_impression=False)
    assert gone.pk not in {p.product.pk for p in rec.picks}


def test_a_boost_that_brings_a_product_in_marks_it_as_the_rules(store, trained):
    user = store.customers[0]
    other = store.categories[1]
    natural = services.recommend_for_user(user=user, context="api", n=4, record_impression=False)
    boost = rule("boost", {"category": [other.pk]}, weight=3.0)
    rec = services.recommend_for_user(user=user, context="api", n=4, record_impression=True)
    assert rec.picks[0].product.category_id == other.pk
    before = {p.product.pk: p.source for p in natural.picks}
    brought = [p for p in rec.picks if p.product.pk not in before]
    assert brought, "the boost brought products in"
    for pick in rec.picks:
        if pick.product.category_id == other.pk:
            assert [(e.rule_id, e.action, e.weight) for e in pick.rule_effects] == [(boost.pk, "boost", 3.0)]
        # what only the boost brought in is the rule's; what was there anyway keeps its source
        assert pick.source == ("rule" if pick in brought else before[pick.product.pk])
    assert rec.rule_ids == (boost.pk,)
    impressions.wait_drained()
    row = Impression.objects.get(pk=rec.id)
    assert row.placement == "api" and row.rule_ids == [boost.pk]


# --- placements -------------------------------------------------------------------------------
def test_default_placements_are_seeded_as_the_code_serves_them():
    migration = importlib.import_module("recommendations.migrations.0007_h14a_placements_rules")
    seeded = {
        key: (name, strategy, size, tuple(fb)) for key, name, strategy, size, fb, _ in migration.DEFAULT_PLACEMENTS
    }
    assert seeded == {
        key: (name, strategy, size, fb) for key, name, strategy, size, fb in placements.DEFAULT_PLACEMENTS
    }
    served = services.placements_all()
    assert set(served) >= set(seeded)
    Placement.objects.all().delete()  # a missing default row serves with its defaults
    MerchandisingRule.objects.create(name="bump the epoch", action="exclude", condition={"product": [1]})
    assert services.placements_all()["home"].strategy == "personal"
    assert placements.placements_seed() == len(seeded)


def test_a_placement_serves_its_strategy_size_and_fallback_chain(store, trained):
    user = store.customers[1]
    placement_set("cart", strategy="new_arrivals", size=5, fallbacks=[])
    newest = ProductFactory(category=store.categories[0], stock=5, created_at=timezone.now())
    rec = services.placement_serve("cart", user=user, record_impression=False)
    assert len(rec.picks) == 5 and rec.picks[0].product.pk == newest.pk
    assert rec.picks[0].source == "new_arrivals"
    # similar without a product has nothing to say: the chain falls back to trending
    placement_set("cart", strategy="similar", fallbacks=["trending"], size=4)
    rec = services.placement_serve("cart", user=user, record_impression=True)
    assert len(rec.picks) == 4 and rec.strategy == "trending" and rec.placement == "cart"
    impressions.wait_drained()
    assert Impression.objects.get(pk=rec.id).placement == "cart"


def test_shoppers_like_you_come_from_customers_with_the_same_products(store):
    user = store.customers[2]  # likes categories[2], as every fourth customer
    placement_set("home", strategy="neighbours", fallbacks=[], size=5)
    rec = services.placement_serve("home", user=user, record_impression=False)
    assert rec.picks and {p.source for p in rec.picks} == {"neighbours"}
    assert {p.product.category_id for p in rec.picks} == {store.categories[2].pk}
    seen = set(user.interactions.values_list("product_id", flat=True))
    assert not seen & {p.product.pk for p in rec.picks}


def test_an_unknown_or_switched_off_placement(store):
    with pytest.raises(services.PlacementNotFound, match="unknown placement 'nowhere'"):
        services.placement_serve("nowhere")
    placement_set("home", is_active=False)
    assert services.placement_serve("home", record_impression=False).picks == []


# --- the API ----------------------------------------------------------------------------------
@pytest.fixture
def api(db):
    account = UserFactory(email="pipeline@partner.example")
    account.user_permissions.set(
        Permission.objects.filter(content_type__app_label="recommendations", codename="view_recommendations")
    )
    client = APIClient()
    client.force_login(account)
    return client


def test_the_api_serves_a_placement_by_name(api, store, trained):
    user = store.customers[0]
    pinned = store.by_category[store.categories[3].pk][-1]
    rule("pin", product=pinned, position=1, placements=["email"])
    body = api.get(f"{BASE}/recommendations/users/{user.pk}", {"placement": "email"}).json()
    assert body["placement"] == "email" and len(body["items"]) == 6  # the placement's size
    assert body["items"][0]["product"]["id"] == pinned.pk
    assert body["items"][0]["rule_effects"][0]["action"] == "pin"
    bad = api.get(f"{BASE}/recommendations/users/{user.pk}", {"placement": "nowhere"})
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "validation_error" and error["fields"][0]["field"] == "placement"
    assert "unknown placement 'nowhere'" in error["fields"][0]["message"]


def test_the_api_takes_a_filter_and_boosts_per_request(api, store, trained):
    user = store.customers[0]
    other = store.categories[1]
    url = f"{BASE}/recommendations/users/{user.pk}"
    body = api.get(url, {"filter": json.dumps({"category": [other.pk]}), "n": 5}).json()
    assert body["items"] and {i["product"]["category"]["id"] for i in body["items"]} == {other.pk}
    boosted = api.get(url, {"boost": json.dumps([{"if": {"category": [other.pk]}, "weight": 2}]), "n": 5}).json()
    assert boosted["items"][0]["product"]["category"]["id"] == other.pk
    assert boosted["items"][0]["rule_effects"][0] == {
        "rule_id": None,
        "action": "boost",
        "weight": 2.0,
        "name": "request boost 1",
    }


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"filter": "{not json"}, "filter", "not valid JSON"),
        ({"filter": json.dumps({"price": {"max": "ten"}})}, "filter", "filter.price.max: must be a number"),
        ({"filter": json.dumps({"colour": "red"})}, "filter", "unknown condition 'colour'"),
        ({"filter": json.dumps({"category": [999999]})}, "filter", "unknown category 999999"),
        ({"boost": json.dumps({"if": {}, "weight": 1})}, "boost", "must be a list"),
        ({"boost": json.dumps([{"if": {}, "weight": 0}])}, "boost", "boost[0].weight: must be non-zero"),
        ({"boost": json.dumps([{"if": {"new_days": -1}, "weight": 1}])}, "boost", "boost[0].if.new_days"),
        ({"boost": json.dumps([{"when": {}, "weight": 1}])}, "boost", 'exactly "if" and "weight"'),
    ],
)
def test_bad_api_rule_expressions_get_a_clear_400(api, store, params, field, message):
    response = api.get(f"{BASE}/recommendations/users/{store.customers[0].pk}", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"][0]["field"] == field and message in error["fields"][0]["message"]


# --- the admin ---------------------------------------------------------------------------------
def test_the_admin_preview_shows_the_list_with_and_without_the_rule(admin_client, store, trained):
    user = store.customers[0]
    pinned = store.by_category[store.categories[3].pk][-1]
    pin = rule("pin", product=pinned, position=1, is_active=False)  # previewed before it is switched on
    url = f"/admin/recommendations/merchandisingrule/{pin.pk}/preview/"
    html = admin_client.get(url, {"placement": "home", "customer": user.email}).content.decode()
    with_rule = re.search(r'<table id="preview-with">.*?</table>', html, re.S).group(0)
    without = re.search(r'<table id="preview-without">.*?</table>', html, re.S).group(0)
    assert re.search(rf'<tr class="selected" data-product="{pinned.pk}">\s*<td>1</td>', with_rule)
    assert f'data-product="{pinned.pk}"' not in without
    assert f"pin +0 (rule {pin.pk}" in with_rule
    bad = admin_client.get(url, {"placement": "home", "customer": "nobody@example.com"}).content.decode()
    assert "No customer with id or email" in bad


def test_the_admin_form_refuses_a_bad_condition(admin_client, store):
    response = admin_client.post(
        "/admin/recommendations/merchandisingrule/add/",
        {"name": "cheap", "action": "boost", "condition": '{"price": {"max": "ten"}}', "weight": "0.5"},
    )
    assert response.status_code == 200
    assert "condition.price.max: must be a number" in response.content.decode()
    assert not MerchandisingRule.objects.exists()


# --- offline: each rule's effect on NDCG ------------------------------------------------------------
def test_evaluate_rules_shows_each_rules_effect_on_ndcg(store, trained):
    from io import StringIO

    from recommendations.rule_effects import rule_effects_ndcg

    exclude = rule("exclude", {"category": [c.pk for c in store.categories[:2]]}, placements=["email"])
    harmless = rule("bury", {"price": {"min": 1000}}, weight=1.0)  # matches nothing: no effect
    elsewhere = rule("exclude", {}, placements=["cart"])  # another placement's rule is not measured
    rows = rule_effects_ndcg(placement="email", holdout_days=14)
    none, everything, *per_rule = rows
    assert none.ndcg > 0 and everything.ndcg < none.ndcg
    effects = {r.rule_id: r.delta for r in per_rule}
    assert set(effects) == {exclude.pk, harmless.pk} and elsewhere.pk not in effects
    assert effects[exclude.pk] < 0 and effects[harmless.pk] == 0
    out = StringIO()
    call_command("evaluate", "--rules", "--placement", "email", stdout=out)
    text = out.getvalue()
    assert f"#{exclude.pk} exclude rule | exclude |" in text and f"{effects[exclude.pk]:+.4f}" in text


def test_the_export_follows_the_placement_it_is_told(store, trained, tmp_path):
    user = store.customers[0]
    pinned = store.by_category[store.categories[3].pk][-1]
    rule("pin", product=pinned, position=1, placements=["api"])
    assert _export_list(user, tmp_path)[0] != pinned.pk  # the export follows "email" by default
    out = tmp_path / "api.csv"
    call_command("recommend", "--user", str(user.pk), "--out", str(out), "--placement", "api", verbosity=0)
    with out.open() as f:
        assert next(csv.DictReader(f))["sku"] == pinned.sku
    with pytest.raises(Exception, match="unknown placement 'nowhere'"):
        call_command("recommend", "--user", str(user.pk), "--out", str(out), "--placement", "nowhere")


def test_a_placements_long_tail_weight_favours_less_popular_products(store, trained):
    from django.core.cache import cache
    from django.db.models import Count

    from recommendations import long_tail

    # the popularity groups are cached (process and shared cache): this test's store, not an earlier one's
    long_tail._memo.clear()
    cache.delete(long_tail.CACHE_KEY)
    long_tail.groups_refresh()  # what the beat task does; serving never computes them itself
    user = store.customers[0]
    popularity = dict(Product.objects.annotate(n=Count("interactions__user", distinct=True)).values_list("pk", "n"))

    def picks() -> list[int]:
        rec = services.placement_serve("api", user=user, n=8, record_impression=False)
        return [p.product.pk for p in rec.picks]

    plain = picks()
    placement_set("api", long_tail_weight=1.0)
    calibrated = picks()
    assert calibrated != plain
    assert sum(popularity[p] for p in calibrated) < sum(popularity[p] for p in plain)


def test_staff_edit_placements_in_admin(admin_client, store):
    home = Placement.objects.get(key="home")
    url = f"/admin/recommendations/placement/{home.pk}/change/"
    form = {
        "key": "home",
        "name": "For you",
        "strategy": "neighbours",
        "size": "5",
        "fallbacks": '["trending"]',
        "long_tail_weight": "0",
        "is_active": "on",
        "description": "",
    }
    bad = admin_client.post(url, {**form, "fallbacks": '["sometimes"]'})
    assert bad.status_code == 200 and "unknown strategy &#x27;sometimes&#x27; in fallbacks" in bad.content.decode()
    assert admin_client.post(url, form).status_code == 302
    served = services.placements_all()["home"]  # the save bumped the serving epoch
    assert (served.name, served.strategy, served.size, served.fallbacks) == ("For you", "neighbours", 5, ("trending",))
    listing = admin_client.get("/admin/recommendations/placement/").content.decode()
    assert "product-also-bought" in listing
    rule("boost", {"price": {"max": 3}}, weight=0.5, placements=["home"])
    listing = admin_client.get("/admin/recommendations/placement/").content.decode()
    counts = dict(re.findall(r'>([a-z-]+)</a></th>.*?class="field-n_rules">(\d+)<', listing, re.S))
    assert counts["home"] == "1" and counts["cart"] == "0"  # each placement's number of rules
    rules_page = admin_client.get("/admin/recommendations/merchandisingrule/").content.decode()
    assert "boost rule" in rules_page and "home" in rules_page


# --- a shop's own data: purchases only, no catalogue (no categories, prices, text) ----------------
def test_rules_and_placements_on_purchases_without_a_catalogue(tmp_path):
    from tests.own_data import make_shape, read_export

    shape = make_shape(tmp_path, "bare", customers=60, products=50, kinds=("purchase",))
    call_command("import_interactions", str(shape.events), verbosity=0)
    call_command("train", "--algorithm", "item_knn", verbosity=0)
    featured = Product.objects.get(sku=shape.popular[-1])
    gone = Product.objects.get(sku=shape.popular[0])
    rule("pin", product=featured, position=1)
    rule("exclude", {"product": [gone.pk]})
    rule("boost", {"price": {"max": 1}}, weight=0.5)  # placeholders have no price to speak of
    out = tmp_path / "recs.csv"
    call_command("recommend", "--all", "--n", "5", "--out", str(out), "--workers", "1", verbosity=0)
    picks = read_export(out)
    assert picks
    for customer, skus in picks.items():  # first, unless the customer bought it already
        expected = featured.sku not in shape.consumed.get(customer, set())
        assert (skus[0] == featured.sku) == expected, customer
    assert not any(gone.sku in skus for skus in picks.values())
    customer = User.objects.get(external_id=shape.customers[0])
    for key in ("home", "cart", "api"):
        rec = services.placement_serve(key, user=customer, record_impression=False)
        assert rec.picks and gone.pk not in {p.product.pk for p in rec.picks}
    placement_set("home", strategy="neighbours", fallbacks=["trending"], size=5)
    rec = services.placement_serve("home", user=customer, record_impression=False)
    assert len(rec.picks) == 5 and "neighbours" in {p.source for p in rec.picks[1:]}


def test_serving_never_computes_the_popularity_groups_itself(store, trained, django_assert_max_num_queries):
    """Grouped queries over every event take seconds on a real store: a shopper's request
    reads what the beat task stored (or, never computed yet, goes without and queues it)."""
    from recommendations import long_tail, serving_aids

    long_tail.clear()
    serving_aids.clear("long_tail_groups")
    with django_assert_max_num_queries(1):
        groups = long_tail.product_groups([p.pk for p in store.products[:5]])
    assert list(groups) == [long_tail.TAIL] * 5  # no groups yet: every product counts as tail
    long_tail.groups_refresh()
    long_tail._memo.clear()
    from django.core.cache import cache

    cache.delete(long_tail.CACHE_KEY)
    with django_assert_max_num_queries(1):
        stored = long_tail.product_groups([p.pk for p in store.products[:5]])
    assert list(stored) != [long_tail.TAIL] * 5  # read back from its stored row


def test_a_quiet_category_pages_newest_products_obey_the_rules_too(store):
    category = store.categories[0]
    excluded = store.by_category[category.pk][0]
    rule("exclude", {"product": [excluded.pk]})
    rec = services.trending_products(category=category, n=10, record_impression=False)
    shown = {p.product.pk for p in rec.picks}
    assert len(shown) == 9 and excluded.pk not in shown  # the newest-products filler does not bring it back
