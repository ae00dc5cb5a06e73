"""The product page's social side: Open Graph / Twitter tags, share links with the
sharer's signed reference, visits through them (and UTM-tagged ones) recorded once
and credited, and social proof from real orders only."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache
from django.utils import timezone
from PIL import Image

from campaigns.models import ShareConversion, ShareVisit, TaggedVisit
from campaigns.social import share_report, share_token
from shop.models import Order
from shop.services import carts
from storefront import social
from tests.factories import CategoryFactory, OrderFactory, OrderLineFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-pass-phrase-42"


class _Meta(HTMLParser):
    def __init__(self):
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "meta" and (a.get("property") or a.get("name")):
            self.meta[a.get("property") or a.get("name")] = a.get("content", "")
        if tag == "link" and a.get("rel"):
            self.links[a["rel"]] = a.get("href", "")


def _meta(html: str) -> _Meta:
    parser = _Meta()
    parser.feed(html)
    return parser


@pytest.fixture
def product():
    cat = CategoryFactory(name="Bags", slug="bags", colour="#0f766e")
    return ProductFactory(
        name="LUNCH BAG RED RETROSPOT", slug="lunch-bag-red-retrospot", category=cat, price=Decimal("1.65")
    )


def test_product_page_has_open_graph_and_twitter_tags_with_a_real_png(client, product):
    html = client.get(f"/product/{product.slug}/").content.decode()
    tags = _meta(html)
    m = tags.meta
    assert m["og:type"] == "product" and m["og:title"] == "Lunch Bag Red Retrospot"
    assert m["og:url"] == f"http://testserver/product/{product.slug}/" == tags.links["canonical"]
    assert m["og:image"] == f"http://testserver/img/p/{product.pk}.png" == m["twitter:image"]
    assert (m["og:image:width"], m["og:image:height"], m["og:image:type"]) == ("600", "600", "image/png")
    assert m["product:price:amount"] == "1.65" and m["product:price:currency"] == "GBP"
    assert m["twitter:card"] == "summary" and m["og:description"].startswith("Lunch Bag Red Retrospot in Bags")
    # the image the tags name is a real PNG of that size
    r = client.get(urlsplit(m["og:image"]).path)
    assert r.status_code == 200 and r["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert image.format == "PNG" and image.size == (600, 600)


def test_a_product_with_its_own_picture_shares_that_picture(client, product):
    product.image_url = "https://cdn.example.com/bag.jpg"
    product.save()
    m = _meta(client.get(f"/product/{product.slug}/").content.decode()).meta
    assert m["og:image"] == "https://cdn.example.com/bag.jpg" and "og:image:width" not in m


def test_open_graph_urls_follow_site_url_when_it_is_set(client, product, settings):
    settings.SITE_URL, settings.SITE_URL_SET = "https://shop.example.com", True
    m = _meta(client.get(f"/product/{product.slug}/").content.decode()).meta
    assert m["og:url"] == f"https://shop.example.com/product/{product.slug}/"
    assert m["og:image"] == f"https://shop.example.com/img/p/{product.pk}.png"


def test_share_links_carry_the_signed_reference_of_a_logged_in_customer_only(client, product):
    anonymous = client.get(f"/product/{product.slug}/")
    assert "ref" not in parse_qs(urlsplit(anonymous.context["share"]["copy_url"]).query)  # anonymous: UTM only
    html = anonymous.content.decode()
    assert "%26ref%3D" not in html and "&amp;ref=" not in html and "utm_source%3Dfacebook" in html
    ada = UserFactory(email="ada@example.com")
    client.force_login(ada)
    response = client.get(f"/product/{product.slug}/")
    share = response.context["share"]
    copy = urlsplit(share["copy_url"])
    query = parse_qs(copy.query)
    assert copy.path == f"/product/{product.slug}/"
    assert query["ref"] == [share_token(user_id=ada.pk)]
    assert query["utm_source"] == ["copy"] and query["utm_campaign"] == ["share"]
    channels = {link.channel: link.href for link in share["links"]}
    assert set(channels) == {"email", "facebook", "x", "pinterest", "whatsapp", "linkedin"}
    assert channels["facebook"].startswith("https://www.facebook.com/sharer/sharer.php?u=http%3A%2F%2Ftestserver%2F")
    assert channels["email"].startswith("mailto:?subject=")
    # every platform link names this product's page, tagged with its own channel
    for channel, href in channels.items():
        assert "utm_source%3D" + channel in href, channel
    html = response.content.decode()
    assert 'src="/static/shop/share.js"' in html and "onclick" not in html  # no inline script


def test_a_visit_through_a_shared_link_is_recorded_once_and_the_url_cleaned(client, product):
    sharer = UserFactory()
    ref = share_token(user_id=sharer.pk)
    r = client.get(f"/product/{product.slug}/?ref={ref}&utm_source=facebook&utm_medium=social&utm_campaign=share&x=1")
    assert r.status_code == 302 and r["Location"] == f"/product/{product.slug}/?x=1"
    visit = ShareVisit.objects.get()
    assert (visit.sharer, visit.channel, visit.product, visit.visitor) == (sharer, "facebook", product, None)
    assert visit.session_key == client.session.session_key
    tagged = TaggedVisit.objects.get()
    assert (tagged.utm_source, tagged.utm_medium, tagged.utm_campaign, tagged.campaign) == (
        "facebook",
        "social",
        "share",
        None,
    )
    assert client.get(r["Location"]).status_code == 200
    assert ShareVisit.objects.count() == 1  # the clean page records nothing more


def test_a_forged_reference_and_the_sharers_own_visit_credit_nobody(client, product):
    sharer = UserFactory()
    forged = share_token(user_id=sharer.pk)[:-2] + "xx"
    assert client.get(f"/product/{product.slug}/?ref={forged}").status_code == 302
    other = share_token(user_id=sharer.pk).replace(f"{sharer.pk}:", f"{sharer.pk + 1}:")
    assert client.get(f"/product/{product.slug}/?ref={other}").status_code == 302
    client.force_login(sharer)
    client.get(f"/product/{product.slug}/?ref={share_token(user_id=sharer.pk)}")
    assert not ShareVisit.objects.exists()


def test_sign_up_and_order_through_a_shared_link_are_credited_to_the_sharer(
    client, product, django_capture_on_commit_callbacks
):
    sharer = UserFactory(email="sharer@example.com")
    client.get(f"/product/{product.slug}/?ref={share_token(user_id=sharer.pk)}&utm_source=copy")
    r = client.post(
        "/signup/",
        {
            "email": "friend@example.com",
            "first_name": "Friend",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    visit = ShareVisit.objects.get()
    assert visit.visitor.email == "friend@example.com" and visit.signed_up
    friend = visit.visitor
    cart = carts.cart_get_or_create(user=friend)
    carts.cart_add(cart=cart, product=product, quantity=3)
    with django_capture_on_commit_callbacks(execute=True):
        order = carts.cart_checkout(cart=cart)
    credit = ShareConversion.objects.get()
    assert (credit.sharer, credit.order, credit.revenue, credit.visit) == (sharer, order, Decimal("4.95"), visit)
    [row] = share_report()
    assert (row.email, row.visits, row.visitors, row.signups, row.orders, row.revenue) == (
        "sharer@example.com",
        1,
        1,
        1,
        1,
        Decimal("4.95"),
    )


def test_an_existing_customer_logging_in_after_a_shared_visit_is_not_a_sign_up(client, product):
    sharer = UserFactory()
    old = UserFactory(email="old@example.com", date_joined=timezone.now() - timedelta(days=30))
    client.get(f"/product/{product.slug}/?ref={share_token(user_id=sharer.pk)}")
    r = client.post("/login/", {"username": "old@example.com", "password": "correct-horse-battery"})
    assert r.status_code == 302, r.content.decode()[:1000]
    visit = ShareVisit.objects.get()
    assert visit.visitor == old and not visit.signed_up


def test_orders_outside_the_window_or_before_the_visit_are_not_credited(product, django_capture_on_commit_callbacks):
    sharer, friend = UserFactory(), UserFactory()
    now = timezone.now()
    ShareVisit.objects.create(sharer=sharer, visitor=friend, path="/", created_at=now - timedelta(days=40))
    with django_capture_on_commit_callbacks(execute=True):
        OrderLineFactory(order=OrderFactory(user=friend, placed_at=now), product=product)
    assert not ShareConversion.objects.exists()  # 40 days > SHARE_ATTRIBUTION_DAYS (30)
    ShareVisit.objects.create(sharer=sharer, visitor=friend, path="/", created_at=now - timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        OrderFactory(user=friend, placed_at=now - timedelta(days=2))  # before the visit
    assert not ShareConversion.objects.exists()


@pytest.fixture
def proof_settings(settings):
    settings.SOCIAL_PROOF_MIN_BUYERS = 3
    settings.SOCIAL_PROOF_HOURS = 24
    cache.clear()
    yield settings
    cache.clear()


def _bought(product, *, hours_ago: float, status=Order.Status.PLACED, user=None):
    at = timezone.now() - timedelta(hours=hours_ago)
    order = OrderFactory(user=user or UserFactory(), placed_at=at, status=status)
    OrderLineFactory(order=order, product=product)
    return order


def test_social_proof_counts_real_buyers_in_the_window_only(client, product, proof_settings):
    now = timezone.now()
    _bought(product, hours_ago=1)
    _bought(product, hours_ago=23)
    _bought(product, hours_ago=25)  # outside the window
    _bought(product, hours_ago=2, status=Order.Status.CANCELLED)  # cancelled
    repeat = UserFactory()
    _bought(product, hours_ago=3, user=repeat)
    _bought(product, hours_ago=4, user=repeat)  # the same customer counts once
    assert social.buyers_count(product_id=product.pk, since=now - timedelta(hours=24)) == 3
    assert social.social_proof(product_id=product.pk, now=now) == "3 people bought this in the last 24 hours"
    html = client.get(f"/product/{product.slug}/").content.decode()
    assert "3 people bought this in the last 24 hours" in html


def test_below_the_threshold_nothing_is_shown(client, product, proof_settings):
    _bought(product, hours_ago=1)
    _bought(product, hours_ago=2)
    _bought(product, hours_ago=30)
    assert social.social_proof(product_id=product.pk, now=timezone.now()) == ""
    html = client.get(f"/product/{product.slug}/").content.decode()
    assert "bought this" not in html and 'data-testid="social-proof"' not in html
    # relative to now: the same orders seen from 3 hours later are fewer still
    assert (
        social.buyers_count(product_id=product.pk, since=timezone.now() - timedelta(hours=24) + timedelta(hours=3)) == 2
    )


def test_a_failing_share_credit_never_fails_the_checkout(product, monkeypatch, django_capture_on_commit_callbacks):
    """Crediting a sharer is bookkeeping after the order commits: if it raises, the
    order stands and the shopper's checkout still answers."""
    from campaigns import social as campaign_social

    def broken(**kwargs):
        raise RuntimeError("attribution down")

    monkeypatch.setattr(campaign_social, "order_attribute", broken)
    shopper = UserFactory()
    cart = carts.cart_get_or_create(user=shopper)
    carts.cart_add(cart=cart, product=product, quantity=1)
    with django_capture_on_commit_callbacks(execute=True):
        order = carts.cart_checkout(cart=cart)
    assert Order.objects.filter(pk=order.pk).exists()
    assert not ShareConversion.objects.exists()
