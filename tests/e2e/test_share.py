"""Share attribution in real headless Chromium: a customer copies a product's share
link, a new visitor opens it, signs up and orders, and the sharer is credited (and
staff see it in admin's sharers report). Screenshots under test-artifacts/e2e/."""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from campaigns.models import ShareConversion, ShareVisit
from campaigns.social import share_token
from shop.models import Order, User
from tests.browser import Shots
from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = [pytest.mark.e2e]
PASSWORD = "a-long-pass-phrase-42"


@pytest.fixture
def lantern(transactional_db):
    cat = CategoryFactory(name="Lights", slug="lights", colour="#c2410c")
    return ProductFactory(
        name="MOROCCAN METAL LANTERN", slug="moroccan-metal-lantern", category=cat, price=Decimal("4.25"), stock=20
    )


def _log_in(page, email: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_shared_link_credits_the_sharer_with_the_sign_up_and_the_order(
    page, browser, live_server, lantern, staff_user
):
    shot = page.shots
    sharer = UserFactory(email="sharer@example.com", first_name="Sam")
    sharer.set_password(PASSWORD)
    sharer.save()

    # 1. Sam, logged in, opens the product and copies its share link.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    _log_in(page, "sharer@example.com", PASSWORD)
    page.goto(f"/product/{lantern.slug}/")
    share = page.get_by_test_id("share")
    assert share.is_visible()
    shared_url = page.get_by_test_id("share-url").input_value()
    query = parse_qs(urlsplit(shared_url).query)
    assert query["ref"] == [share_token(user_id=sharer.pk)] and query["utm_source"] == ["copy"]
    page.get_by_test_id("share-copy").click()
    page.get_by_text("Link copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == shared_url
    fb = page.get_by_test_id("share-facebook").get_attribute("href")
    assert fb.startswith("https://www.facebook.com/sharer/sharer.php?u=") and "ref%3D" in fb
    assert page.locator('meta[property="og:image"]').get_attribute("content").endswith(f"/img/p/{lantern.pk}.png")
    shot("sharer-copies-the-link")

    # 2. A friend, in another browser, opens the link: the visit is recorded for Sam.
    friend_context = browser.new_context(
        base_url=live_server.url, locale="en-GB", viewport={"width": 1280, "height": 900}
    )
    friend_context.set_default_timeout(10_000)
    friend = friend_context.new_page()
    errors: list[str] = []
    friend.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        friend.goto(shared_url)
        friend.wait_for_url(re.compile(rf"/product/{lantern.slug}/$"))  # the parameters are gone from the bar
        visit = ShareVisit.objects.get()
        assert (visit.sharer, visit.channel, visit.product, visit.visitor) == (sharer, "copy", lantern, None)
        friend_shots = Shots(friend, "test_a_shared_link__friend")
        friend_shots("friend-lands-on-the-product")

        # 3. The friend signs up ...
        friend.get_by_role("link", name="Sign up").click()
        friend.get_by_label("Email address").fill("friend@example.com")
        friend.get_by_label("First name").fill("Fran")
        friend.get_by_label("Password", exact=True).fill(PASSWORD)
        friend.get_by_label("Password again").fill(PASSWORD)
        friend.get_by_role("button", name="Create account").click()
        friend.wait_for_url(live_server.url + "/")
        fran = User.objects.get(email="friend@example.com")
        visit.refresh_from_db()
        assert visit.visitor == fran and visit.signed_up

        # ... and orders the lantern.
        friend.goto(f"/product/{lantern.slug}/")
        friend.get_by_label("Quantity").fill("2")
        friend.get_by_role("button", name="Add to cart").click()
        friend.get_by_test_id("cart-link").click()
        friend.get_by_role("link", name="Check out").click()
        friend.get_by_role("button", name=re.compile("Place order")).click()
        friend.wait_for_url(re.compile(r"/account/orders/[0-9a-f-]+/"))
        friend_shots("friend-ordered")
        assert not errors, errors
    finally:
        friend_context.close()

    # 4. Sam is credited with the order and its revenue.
    order = Order.objects.get(user=fran)
    credit = ShareConversion.objects.get()
    assert (credit.sharer, credit.order, credit.revenue) == (sharer, order, Decimal("8.50"))

    # 5. Staff see it in admin's sharers report.
    page.goto("/admin/login/?next=/admin/campaigns/sharevisit/")
    page.get_by_label("Email address").fill(staff_user.email)
    page.get_by_label("Password").fill("staff-pass-123")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Sharers report").click()
    page.wait_for_url("**/admin/campaigns/sharevisit/report/")
    row = page.get_by_test_id("share-report").locator("tbody tr").first
    row.wait_for()  # all_inner_texts() does not wait for the page
    cells = [c.strip() for c in row.locator("td").all_inner_texts()]
    assert cells == ["sharer@example.com", "1", "1", "1", "1", "8.50"]
    shot("admin-sharers-report")
