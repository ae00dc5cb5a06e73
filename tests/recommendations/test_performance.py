"""The performance dashboard's figures against a hand-counted store: lists shown,
clicks, adds to cart, orders (cancelled ones left out), revenue, per placement,
strategy, rule and model version, per day; coverage and novelty; the admin page."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from recommendations import performance
from recommendations.models import Impression, MerchandisingRule, ModelVersion
from shop.models import Interaction, Order
from tests.factories import OrderFactory, OrderLineFactory, ProductFactory, UserFactory, interaction_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_day():
    """Three lists in the last 30 days (and one older), hand-counted:

    L1 home, model v1, rule r1, [p1, p2]: 2 clicks on p1, p1 put in the cart, an order of 2 x 5.00
    L2 home, model v1, no rule, [p2, p3]: nothing but a cancelled order of 3.00
    L3 cart, trending, rule r1, [p3, p4]: 1 click, an order of 1 x 7.50
    L4 cart, 40 days ago, [p1]: a click (outside the window)
    and an order of 20.00 that came from no list."""
    now = timezone.now()
    p1, p2, p3, p4 = (ProductFactory(price=Decimal("5.00")) for _ in range(4))
    ProductFactory(is_active=True)  # active, never shown
    ProductFactory(is_active=False)  # not in the catalogue's count
    u1, u2, u3 = UserFactory(), UserFactory(), UserFactory()
    v1 = ModelVersion.objects.create(algorithm="als", status="succeeded", metrics={"ndcg@10": 0.25})
    r1 = MerchandisingRule.objects.create(name="Summer boost", action="boost", condition={"category": [1]})
    yesterday, two_days_ago = now - timedelta(days=1), now - timedelta(days=2)

    def shown(placement, strategy, version, rules, products, at):
        return Impression.objects.create(
            created_at=at,
            context="home" if placement == "home" else "cart",
            placement=placement,
            strategy=strategy,
            model_version=version,
            rule_ids=rules,
            product_ids=[p.pk for p in products],
            reason_codes=["history"] * len(products),
        )

    l1 = shown("home", f"model:als#{v1.pk}", v1, [r1.pk], [p1, p2], yesterday)
    l2 = shown("home", f"model:als#{v1.pk}", v1, [], [p2, p3], yesterday)
    l3 = shown("cart", "trending", None, [r1.pk], [p3, p4], two_days_ago)
    l4 = shown("cart", "fallback:interests", None, [], [p1], now - timedelta(days=40))
    for _ in range(2):
        interaction_make(user=u1, product=p1, kind=Interaction.Kind.CLICK, rec_list_id=l1.id, occurred_at=yesterday)
    interaction_make(user=u1, product=p1, kind=Interaction.Kind.ADD_TO_CART, rec_list_id=l1.id, occurred_at=yesterday)
    interaction_make(user=u2, product=p4, kind=Interaction.Kind.CLICK, rec_list_id=l3.id, occurred_at=two_days_ago)
    interaction_make(
        user=u3, product=p1, kind=Interaction.Kind.CLICK, rec_list_id=l4.id, occurred_at=now - timedelta(days=40)
    )
    OrderLineFactory(
        order=OrderFactory(user=u1, placed_at=yesterday),
        product=p1,
        quantity=2,
        unit_price=Decimal("5.00"),
        rec_list_id=l1.id,
    )
    OrderLineFactory(
        order=OrderFactory(user=u2, placed_at=yesterday, status=Order.Status.CANCELLED),
        product=p2,
        unit_price=Decimal("3.00"),
        rec_list_id=l2.id,
    )
    OrderLineFactory(
        order=OrderFactory(user=u2, placed_at=two_days_ago), product=p4, unit_price=Decimal("7.50"), rec_list_id=l3.id
    )
    OrderLineFactory(order=OrderFactory(user=u3, placed_at=yesterday), product=p3, unit_price=Decimal("20.00"))
    return {"now": now, "v1": v1, "r1": r1, "products": (p1, p2, p3, p4), "lists": (l1, l2, l3, l4)}


def test_totals_are_the_hand_counted_ones(shop_day):
    report = performance.performance_report(days=30, until=shop_day["now"])
    t = report.total
    assert (t.lists, t.items, t.clicks, t.clicked, t.carted, t.ordered) == (3, 6, 3, 2, 1, 2)
    assert t.revenue == Decimal("17.50")  # 10.00 + 7.50; the cancelled 3.00 and the 20.00 from no list left out
    assert t.ctr == pytest.approx(2 / 3) and t.add_to_cart_rate == pytest.approx(1 / 3)
    assert t.conversion == pytest.approx(2 / 3)
    assert not report.truncated


def test_per_placement_rule_strategy_and_model(shop_day):
    report = performance.performance_report(days=30, until=shop_day["now"])
    home = next(f for k, f in report.by["placement"].items() if k.endswith("(home)"))
    cart = next(f for k, f in report.by["placement"].items() if k.endswith("(cart)"))
    assert (home.lists, home.clicked, home.carted, home.ordered, home.revenue) == (2, 1, 1, 1, Decimal("10.00"))
    assert (cart.lists, cart.clicked, cart.carted, cart.ordered, cart.revenue) == (1, 1, 0, 1, Decimal("7.50"))
    rule = report.by["rule"][f"Summer boost (#{shop_day['r1'].pk})"]
    assert (rule.lists, rule.clicked, rule.ordered, rule.revenue) == (2, 2, 2, Decimal("17.50"))
    assert report.by["rule"][performance.NO_RULE].lists == 1
    assert report.by["rule"][performance.NO_RULE].clicked == 0
    assert set(report.by["strategy"]) == {"model: als", "trending"}
    assert report.by["strategy"]["model: als"].lists == 2
    model = report.by["model"][shop_day["v1"].label]
    assert (model.lists, model.clicked, model.ctr) == (2, 1, 0.5)
    assert report.by["model"][performance.NO_MODEL].lists == 1


def test_per_day_and_the_model_comparison(shop_day):
    now = shop_day["now"]
    report = performance.performance_report(days=30, until=now)
    yesterday = timezone.localdate(now - timedelta(days=1))
    two_days_ago = timezone.localdate(now - timedelta(days=2))
    home = next(k for k in report.by["placement"] if k.endswith("(home)"))
    assert set(report.daily["placement"][home]) == {yesterday}
    assert report.daily["placement"][home][yesterday].ctr == 0.5
    assert report.daily["strategy"]["trending"][two_days_ago].ordered == 1
    assert report.days[0] == timezone.localdate(now - timedelta(days=30)) and report.days[-1] == timezone.localdate(now)
    [day] = report.model_days
    assert (day.day, day.label, day.ndcg, day.ctr, day.lists) == (yesterday, shop_day["v1"].label, 0.25, 0.5, 2)
    spec = performance.model_spec(report)
    ctr_line = next(d for d in spec["datasets"] if d["label"].endswith("online click-through"))
    assert ctr_line["data"][report.days.index(yesterday)] == 0.5
    ndcg_line = next(d for d in spec["datasets"] if d["label"].endswith("offline NDCG@10"))
    assert ndcg_line["data"][report.days.index(yesterday)] == 0.25
    # the older list counts in a 90-day report
    assert performance.performance_report(days=90, until=now).total.lists == 4


def test_coverage_and_novelty(shop_day):
    report = performance.performance_report(days=30, until=shop_day["now"])
    assert report.catalogue == 5 and report.distinct_shown == 4
    assert report.coverage == pytest.approx(4 / 5)

    # shoppers with events: u1 (p1), u2 (p4), u3 (p1): N = 3; shown p1 x1, p2 x2, p3 x2, p4 x1
    def info(n):
        return -math.log2((n + 1) / (3 + 1))

    expected = (info(2) + 2 * info(0) + 2 * info(0) + info(1)) / 6
    assert report.novelty == pytest.approx(expected)


def test_charts_and_the_revenue_share(shop_day):
    report = performance.performance_report(days=30, until=shop_day["now"])
    spec = performance.daily_spec(report, "placement", "ctr")
    assert spec["type"] == "line" and len(spec["labels"]) == len(report.days)
    assert {d["label"] for d in spec["datasets"]} == set(report.by["placement"])
    with pytest.raises(ValueError, match="unknown dimension 'colour'"):
        performance.daily_spec(report, "colour", "ctr")
    with pytest.raises(ValueError, match="unknown metric"):
        performance.daily_spec(report, "placement", "likes")
    with pytest.raises(ValueError, match="days must be a whole number"):
        performance.performance_report(days=0)
    total, attributed = performance.recommendation_revenue_share(since=shop_day["now"] - timedelta(days=7))
    assert (total, attributed) == (Decimal("37.50"), Decimal("17.50"))


def test_empty_period_says_so(db):
    report = performance.performance_report(days=7)
    assert report.total.lists == 0 and report.coverage is None and report.novelty is None
    assert "No recommendation lists" in performance.daily_spec(report, "placement", "ctr")["empty"]
    assert "No list served by a model" in performance.model_spec(report)["empty"]


def test_dashboard_page(shop_day, staff_client):
    response = staff_client.get("/admin/performance/?days=30&by=rule")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Summer boost" in html and 'id="chart-model"' in html and 'id="chart-ctr"' in html
    assert "<script>" not in html  # specs go out as JSON data, drawn by a static script
    assert staff_client.get("/admin/performance/?days=12").status_code == 400
    bad = staff_client.get("/admin/performance/?by=colour")
    assert bad.status_code == 400 and b"by must be one of" in bad.content
    # not signed in: the admin's login page
    response = Client().get("/admin/performance/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_staff_member_without_the_permission_is_refused(shop_day, client):
    user = UserFactory(is_staff=True)
    client.force_login(user)
    assert client.get("/admin/performance/").status_code == 403
