"""A shopper's journey through the store in real headless Chromium.

Every step saves a screenshot under ``test-artifacts/e2e/<test>/``.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from shop import selectors
from shop.models import ConsentChange, Interaction, Order, OrderLine, Product, User
from tests.browser import assert_contrast
from tests.conftest import serving_caches_clear
from tests.factories import CategoryFactory, ProductFactory, UserFactory, interaction_make

pytestmark = [pytest.mark.e2e]

PASSWORD = "a-long-pass-phrase-42"
NAMES = {
    "lights": [
        "MOROCCAN METAL LANTERN",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "STAR FAIRY LIGHTS",
        "GLASS STAR FROSTED T-LIGHT HOLDER",
        "PAPER CHAIN KIT VINTAGE",
        "RED RETROSPOT LAMP",
        "ZINC HEART LANTERN",
        "HANGING GLASS CANDLE HOLDER",
    ],
    "kitchen": [
        "ENAMEL MUG BLUE",
        "JAM MAKING SET PRINTED",
        "CAKE TINS PANTRY DESIGN",
        "RETROSPOT TEA SET",
        "LUNCH BAG RED RETROSPOT",
        "SPOTTY BUNTING",
        "BAKING SET 9 PIECE",
        "RECIPE BOX PANTRY",
    ],
    "garden": [
        "WATERING CAN BLUE",
        "GARDEN KNEELER",
        "BIRD HOUSE HOT WATER BOTTLE",
        "HERB MARKER THYME",
        "PLANT POT GINGHAM",
        "DOORMAT UNION FLAG",
        "GARDEN TOOL SET",
        "WOODEN BIRD FEEDER",
    ],
    "stationery": [
        "PACK OF 12 PENCILS",
        "NOTEBOOK VINTAGE MAP",
        "WRAPPING PAPER ROSES",
        "GIFT TAG SET",
        "JOURNAL LEATHER",
        "STICKER SHEET",
        "ENVELOPE SET 50",
        "POSTCARD BOX",
    ],
}
COLOURS = {"lights": "#c2410c", "kitchen": "#0369a1", "garden": "#15803d", "stationery": "#7c3aed"}


def _forget_cached_state():
    serving_caches_clear(selectors.CATEGORY_CACHE_KEY)  # the recommender's view, the menu


@pytest.fixture
def store(transactional_db):
    _forget_cached_state()
    cats, products = {}, {}
    for pos, (slug, names) in enumerate(NAMES.items()):
        cats[slug] = CategoryFactory(name=slug.title(), slug=slug, colour=COLOURS[slug], position=pos)
        for i, name in enumerate(names):
            products[name] = ProductFactory(
                name=name,
                slug=re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"),
                category=cats[slug],
                price=Decimal("1.25") + Decimal(i * 2 + pos),
                stock=40,
            )
    # Other shoppers were here before: everything sold a little, some products a lot.
    for i, product in enumerate(products.values()):
        interaction_make(product=product, session_key=f"shopper-{i % 3}", kind=Interaction.Kind.PURCHASE)
    for s in range(6):
        for name in NAMES["lights"][:4] + NAMES["garden"][:2]:
            interaction_make(product=products[name], session_key=f"shopper-{s}", kind=Interaction.Kind.PURCHASE)
    yield {"categories": cats, "products": products}
    _forget_cached_state()


def shelf_product_ids(page, key: str) -> list[int]:
    cards = page.locator(f'section[data-shelf="{key}"] article.card')
    return [int(x) for x in cards.evaluate_all("els => els.map(e => e.dataset.productId)")]


def test_a_shoppers_journey(page, live_server, store):
    shot = page.shots
    # 1. A new visitor sees what is trending.
    page.goto("/")
    assert page.locator("h1").first.inner_text() == "Gifts and homeware, picked for you"
    trending = shelf_product_ids(page, "trending")
    assert len(trending) >= 4
    trending_names = set(Product.objects.filter(pk__in=trending[:4]).values_list("name", flat=True))
    assert trending_names <= set(NAMES["lights"][:4] + NAMES["garden"][:2])
    assert page.locator('img[src^="/img/p/"]').first.evaluate("img => img.complete && img.naturalWidth > 0")
    assert_contrast(page)
    shot("new-visitor-sees-trending")

    # 2. They sign up, choosing interests and marketing consent.
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_label("Kitchen").check()
    page.get_by_label(re.compile("Email me offers")).check()
    assert_contrast(page)
    shot("sign-up-form")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(live_server.url + "/")
    assert page.get_by_role("status").first.inner_text().startswith("Welcome to Affinity")
    user = User.objects.get(email="ada@example.com")
    assert user.marketing_consent and [c.slug for c in user.interests.all()] == ["kitchen"]

    # ... and sees picks from their interests first, each saying why.
    picks = shelf_product_ids(page, "for-you")
    assert picks, "no personal picks after sign-up"
    first = Product.objects.select_related("category").get(pk=picks[0])
    assert first.category.slug == "kitchen"
    why = page.locator('section[data-shelf="for-you"] details.why').first
    assert why.locator("p").is_hidden()
    why.locator("summary").focus()
    page.keyboard.press("Enter")  # the disclosure works from the keyboard
    assert why.get_attribute("open") is not None
    assert why.locator("p").inner_text().strip() == "Matches your interest in Kitchen"
    assert_contrast(page)
    shot("signed-up-picks-from-interests")

    # 3. They open a trending product from its list (a click, attributed to the list) ...
    list_id = page.locator('section[data-shelf="trending"]').get_attribute("data-list-id")
    page.locator('section[data-shelf="trending"] a.card-link').first.click()
    page.wait_for_url(re.compile(r"/product/[\w-]+/\?rl="))
    clicked = Product.objects.get(pk=int(page.locator("article.product").get_attribute("data-product-id")))
    click = Interaction.objects.get(kind=Interaction.Kind.CLICK, user=user)
    assert str(click.rec_list_id) == list_id and click.product == clicked
    assert_contrast(page)
    shot("product-page-from-a-recommendation")
    # ... and look at a couple of garden products from the category page.
    page.get_by_role("navigation", name="Categories").get_by_role("link", name="Garden").click()
    page.locator("section.listing-results a.card-link").nth(2).click()
    page.wait_for_url(re.compile(r"/product/"))
    page.go_back()
    page.locator("section.listing-results a.card-link").nth(3).click()
    page.wait_for_url(re.compile(r"/product/"))
    last_viewed = page.locator("h1").inner_text()
    assert Interaction.objects.filter(user=user, kind=Interaction.Kind.VIEW).count() == 3

    # 4. The home page's picks react at once, without retraining.
    page.goto("/")
    assert page.locator('section[data-shelf="because-viewed"] h2').inner_text() == f"Because you viewed {last_viewed}"
    recent = shelf_product_ids(page, "recently-viewed")
    assert recent[0] == int(Product.objects.get(name__iexact=last_viewed).pk) and len(recent) == 3
    after = shelf_product_ids(page, "for-you") + shelf_product_ids(page, "because-viewed")
    assert after != picks, "the home page's picks did not change after viewing products"
    shot("home-after-viewing-products")

    # 5. Add the recommended product to the cart and check out.
    page.goto(f"/product/{clicked.slug}/?rl={list_id}")
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    assert page.get_by_test_id("cart-count").inner_text().startswith("2")
    page.get_by_test_id("cart-link").click()
    assert_contrast(page)
    shot("cart")
    page.get_by_role("link", name="Check out").click()
    shot("checkout")
    page.get_by_role("button", name=re.compile("Place order")).click()
    page.wait_for_url(re.compile(r"/account/orders/[0-9a-f-]+/"))
    assert "Thank you! Your order is placed." in page.get_by_role("status").first.inner_text()
    order = Order.objects.get(user=user)
    line = OrderLine.objects.get(order=order)
    assert (line.product, line.quantity, str(line.rec_list_id)) == (clicked, 2, list_id)
    assert Interaction.objects.filter(user=user, kind=Interaction.Kind.PURCHASE, product=clicked).exists()
    shot("order-placed")

    # 6. Turn off marketing email.
    page.goto("/account/preferences/")
    consent = page.get_by_label(re.compile("Send me marketing email"))
    assert consent.is_checked()
    consent.uncheck()
    page.get_by_role("button", name="Save preferences").click()
    assert "Your preferences are saved." in page.get_by_role("status").first.inner_text()
    user.refresh_from_db()
    assert not user.marketing_consent
    assert user.consent_changes.filter(source=ConsentChange.Source.PREFERENCES, consent=False).exists()
    shot("marketing-email-off")

    # 7. Download their data.
    page.get_by_role("link", name="Your data").first.click()
    with page.expect_download() as info:
        page.get_by_role("link", name="Download my data (JSON)").click()
    data = json.loads(open(info.value.path(), encoding="utf-8").read())
    assert info.value.suggested_filename.startswith("affinity-my-data-")
    assert data["profile"]["email"] == "ada@example.com"
    assert [i["slug"] for i in data["interests"]] == ["kitchen"]
    assert [(c["consent"], c["source"]) for c in data["consent_history"]] == [(True, "signup"), (False, "preferences")]
    assert data["orders"][0]["lines"][0]["quantity"] == 2
    assert {"view", "click", "add to cart", "purchase"} <= {i["kind"] for i in data["interactions"]}
    assert_contrast(page)
    shot("your-data")

    # 8. Delete the account; the same login no longer works.
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_label(re.compile("I understand")).check()
    page.get_by_role("button", name="Delete my account").click()
    page.wait_for_url(live_server.url + "/")
    assert "deleted" in page.get_by_role("status").first.inner_text()
    assert not User.objects.filter(email="ada@example.com").exists()
    assert Order.objects.get(pk=order.pk).user_id is None
    shot("account-deleted")
    page.get_by_role("link", name="Log in").first.click()
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    assert "Please enter a correct email address and password" in page.get_by_role("alert").inner_text()
    shot("cannot-log-in-any-more")


def test_phone_visitor_keeps_the_cart_when_logging_in_and_uses_the_keyboard(phone_page, live_server, store):
    page, shot = phone_page, phone_page.shots
    UserFactory(email="sam@example.com", first_name="Sam", password=PASSWORD)
    page.goto("/")
    # The first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.evaluate("el => el === document.activeElement")
    assert skip.bounding_box()["y"] >= 0  # shown when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Nothing overflows sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot("phone-home")

    page.get_by_role("searchbox", name="Search products").fill("lantern")
    page.get_by_role("searchbox", name="Search products").press("Enter")
    page.wait_for_url(re.compile(r"/search/\?q=lantern"))
    results = page.locator("section.listing-results article.card")
    assert results.count() == 2
    shot("phone-search")
    results.first.locator("a.card-link").click()
    page.get_by_role("button", name="Add to cart").click()
    assert page.get_by_test_id("cart-count").inner_text().startswith("1")
    page.get_by_test_id("cart-link").click()
    shot("phone-cart-anonymous")
    page.get_by_role("link", name="Check out").click()
    page.wait_for_url(re.compile(r"/login/\?next=/checkout/"))
    page.get_by_label("Email address").fill("SAM@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    shot("phone-login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/checkout/$"))
    assert page.locator("table.table tbody tr").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot("phone-checkout-after-login")

    # Category filters: a price range and sorting.
    page.goto("/category/kitchen/?min_price=4&max_price=12&sort=price_desc")
    prices = [Decimal(t.replace("£", "")) for t in page.locator("section.listing-results .price").all_inner_texts()]
    assert prices and prices == sorted(prices, reverse=True) and all(Decimal(4) <= p <= Decimal(12) for p in prices)
    assert_contrast(page)
    shot("phone-category-filtered")
