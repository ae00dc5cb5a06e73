"""The data report and the noise filter on a store with known faults: duplicates,
bots of each kind, a gap, a spike, products missing each field, a placeholder,
events on inactive products. The report must find every one; the filter must
change the training matrix and leave the raw events alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from recommendations import data_quality, long_tail, noise
from recommendations.models import ServingAid
from recommendations.tasks import noise_refresh_task
from recommendations.training_data import interaction_matrix_build
from shop.models import Interaction, Product, User
from shop.services.interactions import interactions_bulk_insert
from tests.factories import CategoryFactory, ProductFactory, UserFactory
from tests.own_data import make_shape

from .conftest import train

DAY0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # day 1 of the fixture's ten days


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return DAY0 + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)


@pytest.fixture
def noise_rules(settings):
    settings.AFFINITY_NOISE_MAX_EVENTS_PER_HOUR = 50
    settings.AFFINITY_NOISE_MAX_PRODUCTS_PER_DAY = 12
    settings.AFFINITY_NOISE_VIEW_ONLY_MIN_EVENTS = 30
    settings.AFFINITY_NOISE_MAX_ACTIVE_HOURS_PER_DAY = 20
    settings.AFFINITY_NOISE_TEST_ACCOUNT_EMAILS = [r"@test\.example$"]
    cache.delete(noise.NOISE_CACHE_KEY)
    long_tail.clear()
    yield settings
    cache.delete(noise.NOISE_CACHE_KEY)
    long_tail.clear()


@pytest.fixture
def dirty(db, noise_rules):
    """Ten days of events with the faults named in each comment."""
    category = CategoryFactory(name="Home", slug="home")
    good = [
        ProductFactory(sku=f"G{i:02d}", category=category, image_url=f"https://img.example/{i}.png") for i in range(16)
    ]
    no_text = ProductFactory(sku="NOTEXT", description="", category=category, image_url="https://img.example/t.png")
    no_category = ProductFactory(sku="NOCAT", category=None, image_url="https://img.example/c.png")
    no_image = ProductFactory(sku="NOIMG", category=category, image_url="")
    no_price = ProductFactory(sku="FREE", category=category, price=Decimal("0"), image_url="https://img.example/f.png")
    placeholder = ProductFactory(
        sku="PH1", name="Product PH1", description="", category=None, attributes={"placeholder": True}
    )
    inactive = ProductFactory(sku="OLD", category=category, is_active=False, image_url="https://img.example/o.png")
    customers = [UserFactory(email=f"c{u}@customers.affinity.example") for u in range(10)]
    bot = UserFactory(email="bot@customers.affinity.example")
    wholesale = UserFactory(email="wholesale@customers.affinity.example")
    staff = UserFactory(email="merchandiser@affinity.example", is_staff=True)
    tester = UserFactory(email="qa+1@test.example")
    rows: list[Interaction] = []

    def add(user, product, kind, when, session_key="", value=1.0):
        rows.append(
            Interaction(user=user, session_key=session_key, product=product, kind=kind, value=value, occurred_at=when)
        )

    rng = np.random.default_rng(1)
    # normal shoppers: two events a day on days 1-10 except day 5 (THE GAP)
    for day in (1, 2, 3, 4, 6, 7, 8, 9, 10):
        for u, user in enumerate(customers):
            product = good[int(rng.integers(0, 16))]
            add(user, product, Interaction.Kind.VIEW, at(day, 9 + u % 8, u))
            add(user, product, Interaction.Kind.PURCHASE if u % 3 == 0 else Interaction.Kind.ADD_TO_CART, at(day, 10))
    # ratings: 5 stars x4, 4 stars x2
    for u in range(6):
        add(customers[u], good[u], Interaction.Kind.RATING, at(2, 15), value=5.0 if u < 4 else 4.0)
    # DUPLICATES: one event three times (2 extra copies), another twice (1 extra)
    for _ in range(3):
        add(customers[0], good[1], Interaction.Kind.VIEW, at(4, 18, 30, 7))
    for _ in range(2):
        add(customers[1], good[2], Interaction.Kind.ADD_TO_CART, at(6, 18, 31, 8))
    # BOT (rate, views only): 100 views in one hour on day 3 -> also THE SPIKE of day 3
    for i in range(100):
        add(bot, good[i % 16], Interaction.Kind.VIEW, at(3, 14, i // 2, i % 60))
    # a wholesale buyer: 60 views and purchases in one hour, spared (buyers are shoppers)
    for i in range(60):
        add(wholesale, good[i % 16], Interaction.Kind.VIEW, at(7, 11, i % 60))
        add(wholesale, good[i % 16], Interaction.Kind.PURCHASE, at(7, 11, i % 60, 30))
    # CRAWLER session (breadth): 14 different products on day 6
    for i in range(14):
        add(None, good[i], Interaction.Kind.VIEW, at(6, 13, i), session_key="crawl-1")
    # ROUND THE CLOCK session: a view in each of 22 hours of day 9
    for hour in range(22):
        add(None, good[hour % 8], Interaction.Kind.VIEW, at(9, hour, 5), session_key="clock-1")
    # the shop's people: a staff member and a test account
    for i in range(3):
        add(staff, good[i], Interaction.Kind.PURCHASE, at(2, 11, i))
        add(tester, good[i + 3], Interaction.Kind.PURCHASE, at(4, 11, i))
    # events on the placeholder (2) and the inactive product (3)
    for u in range(2):
        add(customers[u], placeholder, Interaction.Kind.VIEW, at(8, 16, u))
    for u in range(3):
        add(customers[u], inactive, Interaction.Kind.VIEW, at(8, 17, u))
    interactions_bulk_insert(rows=rows)
    return {
        "customers": customers,
        "bot": bot,
        "wholesale": wholesale,
        "staff": staff,
        "tester": tester,
        "rows": len(rows),
        "products": {
            "no_text": no_text,
            "no_category": no_category,
            "no_image": no_image,
            "no_price": no_price,
            "placeholder": placeholder,
            "inactive": inactive,
        },
    }


def test_the_noise_rules_name_each_bot_and_spare_shoppers(dirty):
    found = noise.noise_find()
    assert found.users == {
        dirty["bot"].pk: ["rate", "breadth", "views_only"],  # 16 products too
        dirty["staff"].pk: ["staff"],
        dirty["tester"].pk: ["test_account"],
    }
    assert found.sessions == {"crawl-1": ["breadth"], "clock-1": ["round_the_clock"]}
    assert dirty["wholesale"].pk not in found.users  # 60 views in an hour, but a buyer
    summary = found.summary(events=100)
    assert summary["by_reason"]["rate"] == {"customers": 1, "sessions": 0}
    assert summary["sample_customer_ids"]["staff"] == [dirty["staff"].pk]
    assert "50 events in one hour" in summary["rules"]["rate"]
    # the queryset helpers leave their events out, and only theirs
    kept = noise.interactions_kept(noise=found)
    assert kept.count() == dirty["rows"] - 100 - 3 - 3 - 14 - 22
    assert not kept.filter(user=dirty["bot"]).exists() and not kept.filter(session_key="crawl-1").exists()


def test_bad_rules_are_named(dirty, settings):
    settings.AFFINITY_NOISE_MAX_EVENTS_PER_HOUR = 0
    with pytest.raises(ValueError, match="AFFINITY_NOISE_MAX_EVENTS_PER_HOUR"):
        noise.noise_find()
    settings.AFFINITY_NOISE_MAX_EVENTS_PER_HOUR = 50
    settings.AFFINITY_NOISE_TEST_ACCOUNT_EMAILS = ["(unclosed"]
    with pytest.raises(ValueError, match="not a regular expression"):
        noise.noise_find()


def test_the_report_finds_every_known_fault(dirty):
    progress: list[tuple[float, str]] = []
    report = data_quality.report_build(progress=lambda f, s: progress.append((f, s)))
    assert progress[-1][0] == pytest.approx(1.0) and [f for f, _ in progress] == sorted(f for f, _ in progress)
    assert report.events == dirty["rows"]
    duplicates = report.finding("duplicates")
    assert duplicates.figures == {"extra_copies": 3, "duplicated_events": 2}
    assert duplicates.severity != "ok" and "event_id" in duplicates.action
    bots = report.finding("bots")
    assert (bots.figures["customers"], bots.figures["sessions"]) == (3, 2)
    assert bots.figures["events"] == 100 + 3 + 3 + 14 + 22
    assert set(bots.figures["by_reason"]) == {
        "rate",
        "views_only",
        "breadth",
        "round_the_clock",
        "staff",
        "test_account",
    }
    assert report.finding("unknown_products").figures == {"placeholder": 2, "inactive": 3}
    catalogue = report.finding("catalogue").figures
    assert (catalogue["no_description"], catalogue["no_category"], catalogue["no_price"]) == (2, 2, 1)
    # no image: NOIMG, the placeholder and the 0 other products made without one
    assert catalogue["no_image"] == Product.objects.filter(image_url="").count() == 2
    assert report.finding("placeholders").figures == {"placeholders": 1}
    stream = report.finding("stream").figures
    assert stream["gaps"] == ["2026-03-06"]  # day 5
    assert stream["spikes"] == ["2026-03-04", "2026-03-08"]  # day 3: the bot; day 7: the wholesale order
    kinds = report.finding("kinds").figures["by_kind"]
    assert kinds["rating"] == 6 and sum(kinds.values()) == dirty["rows"]
    assert report.finding("ratings").figures["by_stars"] == {"4": 2, "5": 4}
    popularity = report.finding("popularity").figures
    assert 0 < popularity["gini"] < 1 and 0 < popularity["top_1pct_share"] < 1
    assert report.finding("cold_items").figures["cold_products"] >= 4  # the products nobody touched
    cold = report.finding("cold_customers").figures
    assert cold["customers"] == User.objects.filter(is_staff=False).count()
    for finding in report.findings:
        assert finding.severity in data_quality.SEVERITIES
        assert finding.effect and finding.action and finding.summary
    charts = data_quality.report_charts(report)
    assert charts["daily"]["labels"][4] == "2026-03-06" and charts["daily"]["datasets"][0]["data"][4] == 0
    assert charts["daily"]["datasets"][0]["backgroundColor"][2] == data_quality.PALETTE[1]  # the spike in red
    assert charts["popularity"]["type"] == "line" and charts["kinds"]["type"] == "bar"


def test_the_report_of_a_window_sees_only_its_events(dirty):
    report = data_quality.report_build(since=at(6, 0), until=at(6, 23, 59))
    assert report.finding("duplicates").figures["extra_copies"] == 1
    assert report.finding("bots").figures["sessions"] == 1  # the crawler
    assert report.finding("stream").figures["gaps"] == []


def test_a_clean_store_reports_ok(db, noise_rules):
    category = CategoryFactory()
    product = ProductFactory(category=category, image_url="https://img.example/p.png")
    user = UserFactory()
    rows = [
        Interaction(user=user, product=product, kind=Interaction.Kind.PURCHASE, occurred_at=at(d)) for d in (1, 2, 3)
    ]
    interactions_bulk_insert(rows=rows)
    report = data_quality.report_build()
    for key in ("duplicates", "bots", "unknown_products", "catalogue", "placeholders", "stream", "cold_customers"):
        assert report.finding(key).severity == "ok", report.finding(key)


def test_training_leaves_the_noise_out_of_the_matrix_not_out_of_the_database(dirty, settings):
    before = Interaction.objects.count()
    version = train("item_knn", {"k": 10})
    assert version.status == "succeeded", version.error
    assert Interaction.objects.count() == before  # raw events untouched
    excluded = version.metrics["excluded"]
    assert excluded["enabled"] and excluded["customers"] == 3
    assert excluded["events"] == 100 + 3 + 3  # the bot's, the staff member's, the tester's (sessions never train)
    assert excluded["sample_customer_ids"]["rate"] == [dirty["bot"].pk]
    assert excluded["rules"]["rate"].startswith("more than 50")
    customers_with_events = Interaction.objects.filter(user__isnull=False).values("user").distinct().count()
    assert version.n_users == customers_with_events - 3
    events = interaction_matrix_build()
    kept, dropped = noise.events_exclude(events, noise.noise_find())
    assert dropped == 106 and dirty["bot"].pk in events.users and dirty["bot"].pk not in kept.users
    # off: everything trains, and the version says so
    settings.AFFINITY_NOISE_FILTER = False
    off = train("item_knn", {"k": 10})
    assert off.metrics["excluded"]["enabled"] is False and off.metrics["excluded"]["customers"] == 0
    assert off.n_users == customers_with_events


def test_the_command_prints_and_exports_the_report(dirty):
    out = StringIO()
    call_command("data_quality", "--no-progress", stdout=out)
    text = out.getvalue()
    assert "[WARNING] Duplicate events: 3 extra copies of 2 events" in text
    assert "effect:" in text and "to do:" in text
    out = StringIO()
    call_command(
        "data_quality", "--no-progress", "--json", "--since", "2026-03-07", "--until", "2026-03-07", stdout=out
    )
    data = json.loads(out.getvalue())
    assert data["since"].startswith("2026-03-07T00:00") and {f["key"] for f in data["findings"]} >= {"bots", "stream"}
    with pytest.raises(CommandError, match="not a date"):
        call_command("data_quality", "--no-progress", "--since", "yesterday")
    with pytest.raises(CommandError, match="no model version"):
        call_command("data_quality", "--no-progress", "--model-version", "999999")


def test_the_admin_page_shows_the_store_and_a_training_run(dirty, staff_client):
    url = reverse("admin:recommendations_data_report")
    page = staff_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="finding-duplicates"' in html and 'data-severity="warning"' in html
    assert 'data-chart="chart-daily"' in html and "<script>" not in html  # charts as JSON data, no inline script
    version = train("item_knn", {"k": 10})
    page = staff_client.get(url, {"version": version.pk})
    assert page.status_code == 200 and version.label in page.content.decode()
    assert "left out 3 customers" in page.content.decode()
    assert staff_client.get(url, {"version": "x"}).status_code == 400
    assert staff_client.get(url, {"version": "999999"}).status_code == 404
    change = staff_client.get(reverse("admin:recommendations_modelversion_change", args=[version.pk]))
    assert "The data report of this run" in change.content.decode()
    assert version.metrics["long_tail_tradeoff"] and 'class="long-tail-tradeoff"' in change.content.decode()
    assert Client().get(url).status_code == 302  # not logged in: the login page


def test_long_tail_positions_for_serving(dirty):
    ids = [p.pk for p in Product.objects.filter(sku__startswith="G").order_by("sku")]
    groups = long_tail.product_groups(ids + [10**9])
    assert groups[-1] == 2 and set(groups.tolist()) <= {0, 1, 2}
    assert long_tail.rerank_positions(ids, weight=0, n=5) == [0, 1, 2, 3, 4]
    moved = long_tail.rerank_positions(ids, weight=1.0, n=5, history_product_ids=ids[-3:])
    assert len(set(moved)) == 5 and all(0 <= p < len(ids) for p in moved)


def test_serving_reads_the_last_refresh_and_never_computes_it(dirty, django_assert_max_num_queries):
    cache.delete(noise.NOISE_CACHE_KEY)
    with django_assert_max_num_queries(1):  # the stored row's read, nothing more
        # never refreshed: a shopper's request does not wait for grouped queries over every
        # event (a minute on the demo store); nothing is excluded until the task has run
        assert noise.noise_cached().users == {}
    noise_refresh_task()
    cache.delete(noise.NOISE_CACHE_KEY)  # a restart, another process without Redis, an outage
    with django_assert_max_num_queries(1):
        first = noise.noise_cached()  # its stored row: one read by key
    assert set(first.users) == {dirty["bot"].pk, dirty["staff"].pk, dirty["tester"].pk}
    late_bot = UserFactory(email="late-bot@customers.affinity.example")
    product = Product.objects.filter(sku="G00").get()
    interactions_bulk_insert(
        rows=[
            Interaction(user=late_bot, product=product, kind=Interaction.Kind.VIEW, occurred_at=at(10, 3, i % 60, i))
            for i in range(60)
        ]
    )
    assert late_bot.pk not in noise.noise_cached().users  # the cached answer until the next refresh
    assert noise_refresh_task() == -1  # queued again by another process right after: skipped
    ServingAid.objects.filter(name="noise").update(computed_at=timezone.now() - timedelta(minutes=10))
    assert noise_refresh_task() == 4 + 2
    assert noise.noise_cached().users[late_bot.pk] == ["rate", "views_only"]


def test_the_report_on_a_shops_own_ratings_file_without_a_catalogue(db, noise_rules, tmp_path):
    """Not the demo store: a plain ratings file, no catalogue -- every product is a
    placeholder the report asks to fill in, the ratings are reported by stars, and the
    filter names nobody (these are people rating things, at a human pace)."""
    shape = make_shape(tmp_path, "ratings-only", kinds=("rating",), start=datetime(2015, 3, 1, tzinfo=UTC), days=900)
    call_command("import_interactions", str(shape.events), verbosity=0)
    report = data_quality.report_build()
    products = Product.objects.count()
    assert report.finding("placeholders").figures == {"placeholders": products}
    assert report.finding("placeholders").severity == "warning"
    assert report.finding("unknown_products").figures["placeholder"] == report.events
    assert report.finding("catalogue").figures["no_category"] == products
    assert sum(report.finding("ratings").figures["by_stars"].values()) == report.events
    assert report.finding("kinds").figures["by_kind"] == {"rating": report.events}
    assert report.finding("bots").figures["customers"] == 0
    version = train("item_knn", {"k": 20})
    assert version.status == "succeeded", version.error
    assert version.metrics["excluded"]["customers"] == 0
    assert version.metrics["long_tail_tradeoff"][0]["weight"] == 0.0


def test_the_admin_report_is_kept_until_new_events_or_a_refresh(dirty):
    first = data_quality.report_cached()
    assert data_quality.report_cached().computed_at == first.computed_at  # from the cache
    again = data_quality.report_cached(refresh=True)
    assert again.computed_at > first.computed_at
    product = Product.objects.get(sku="G00")
    interactions_bulk_insert(
        rows=[Interaction(user=dirty["customers"][0], product=product, kind=Interaction.Kind.VIEW, occurred_at=at(10))]
    )
    fresh = data_quality.report_cached()
    assert fresh.computed_at > again.computed_at and fresh.events == first.events + 1
