"""Real-time triggers: browse abandonment, back in stock and price drop (who is found,
and who is not), the store's changes noted as they commit, and -- with a real Celery
worker and a real SMTP server -- every trigger's email leaving seconds after its
event, once, only with consent, and exactly once when the worker is killed mid-send."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from campaigns import tasks, tick, triggers
from campaigns.models import Campaign, Delivery, ProductChange, Suppression
from campaigns.tasks import campaigns_tick_task, triggers_react_task
from campaigns.triggers import Scope, triggers_evaluate
from shop.celery import app
from shop.models import Cart, Interaction, Product, User
from shop.services.carts import cart_add, cart_get_or_create
from shop.services.catalogue import product_row_check, products_upsert
from shop.services.customers import user_register
from shop.services.interactions import InteractionIn, interaction_record, interactions_bulk_record
from tests.conftest import free_port, wait_for

from .conftest import build_store, buy, default_template, make_campaign, make_customers, sent_delivery
from .test_integration import GateSMTP
from .test_triggers import send_all, start

V, CART, WISH = Interaction.Kind.VIEW, Interaction.Kind.ADD_TO_CART, Interaction.Kind.WISHLIST


def did(user: User, product: Product, kind: int, *, hours_ago: float = 0.0) -> None:
    interaction_record(product=product, kind=kind, user=user, occurred_at=timezone.now() - timedelta(hours=hours_ago))


def upsert(sku: str, **values) -> None:
    """A catalogue update through the bulk path (a file import, the API's batch)."""
    row = product_row_check({"sku": sku, **{k: str(v) for k, v in values.items()}}, index=0)
    assert not isinstance(row, list), row
    products_upsert(rows=[row])


def customer(name: str, *, consent: bool) -> User:
    suffix = "" if consent else "-no"
    return User.objects.create_user(
        email=f"{name}{suffix}@customers.affinity.example", password=None, marketing_consent=consent
    )


def changes(product: Product) -> list[str]:
    return list(ProductChange.objects.filter(product=product).order_by("pk").values_list("kind", flat=True))


# --- who each new trigger finds -------------------------------------------------------------
def test_browse_abandonment_once_per_visit_without_cart_or_order(store, template):
    left, carted, bought, browsing, no_consent = make_customers(5)
    User.objects.filter(pk=no_consent.pk).update(marketing_consent=False)
    p = store.products
    for user in (left, carted, bought, no_consent):
        did(user, p[0], V, hours_ago=3)
        did(user, p[1], V, hours_ago=2.5)
    did(carted, p[1], CART, hours_ago=2.4)  # put it in the cart in the same visit
    buy(bought, [p[5]], days_ago=0.1)  # ordered after browsing
    did(browsing, p[2], V, hours_ago=3)
    did(browsing, p[3], V, hours_ago=0.2)  # still browsing: the last view is recent
    campaign = start(make_campaign(template, kind=Campaign.Kind.BROWSE_ABANDONMENT, trigger_delay_hours=1))

    assert triggers_evaluate(campaign=campaign) == 1
    assert triggers_evaluate(campaign=campaign) == 0, "the same visit never twice"
    delivery = Delivery.objects.get()
    assert delivery.user == left
    assert delivery.context["product_ids"] == [p[1].pk, p[0].pk], "what they looked at, latest first"
    send_all(campaign)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert not {x["id"] for x in delivery.products} & {p[0].pk, p[1].pk}, "recommendations beside, not the same"

    # More views in the same visit after the email: not another one.
    did(left, p[2], V, hours_ago=1.5)
    assert triggers_evaluate(campaign=campaign) == 0


def test_browse_abandonment_needs_an_hour(template):
    with pytest.raises(Exception, match="at least 1 hour"):
        make_campaign(template, kind=Campaign.Kind.BROWSE_ABANDONMENT, trigger_delay_hours=0)


def test_back_in_stock_for_those_who_viewed_or_wished_while_it_was_out(store, template):
    viewer, wisher, before, buyer, no_consent = make_customers(5)
    User.objects.filter(pk=no_consent.pk).update(marketing_consent=False)
    product = store.products[0]
    Product.objects.filter(pk=product.pk).update(stock=1)
    product.refresh_from_db()
    campaign = start(make_campaign(template, kind=Campaign.Kind.BACK_IN_STOCK))
    did(before, product, V, hours_ago=1)  # viewed while it was in stock
    buy(buyer, [product], days_ago=0)  # takes the last unit: noted as out of stock
    assert changes(product) == [ProductChange.Kind.OUT_OF_STOCK]
    did(viewer, product, V)
    did(wisher, product, WISH)
    did(no_consent, product, V)
    assert triggers_evaluate(campaign=campaign) == 0, "nothing while it is out"

    product.refresh_from_db()
    product.stock = 12  # an admin edit: one product's save()
    product.save()
    assert changes(product) == [ProductChange.Kind.OUT_OF_STOCK, ProductChange.Kind.BACK_IN_STOCK]
    assert triggers_evaluate(campaign=campaign) == 2
    assert triggers_evaluate(campaign=campaign) == 0
    restock = ProductChange.objects.get(kind=ProductChange.Kind.BACK_IN_STOCK)
    rows = Delivery.objects.filter(campaign=campaign)
    assert {d.user_id for d in rows} == {viewer.pk, wisher.pk}
    assert {d.trigger_key for d in rows} == {f"restock:{restock.pk}"}
    send_all(campaign)
    assert rows.filter(status=Delivery.Status.SENT).count() == 2

    # It sells out and comes back again (a catalogue upsert): a new event, for who viewed it since.
    upsert(product.sku, stock=0)
    did(before, product, V)
    upsert(product.sku, stock=3)
    assert triggers_evaluate(campaign=campaign) == 1
    assert Delivery.objects.filter(campaign=campaign, user=before).exists()


def test_back_in_stock_sends_nothing_when_it_is_gone_again(store, template):
    (viewer,) = make_customers(1)
    product = store.products[0]
    campaign = start(make_campaign(template, kind=Campaign.Kind.BACK_IN_STOCK))
    upsert(product.sku, stock=0)
    did(viewer, product, V)
    upsert(product.sku, stock=2)
    upsert(product.sku, stock=0)  # sold out again before the email went
    assert triggers_evaluate(campaign=campaign) == 0


def test_price_drop_for_viewers_and_carters_above_the_threshold(store, template):
    viewer, carter, wisher, owner, long_ago, no_consent = make_customers(6)
    User.objects.filter(pk=no_consent.pk).update(marketing_consent=False)
    product = store.products[6]  # 20.00
    did(viewer, product, V, hours_ago=5)
    cart_add(cart=cart_get_or_create(user=carter), product=product)
    did(wisher, product, WISH, hours_ago=1)
    did(owner, product, V, hours_ago=5)
    buy(owner, [product], days_ago=0.1)
    did(long_ago, product, V, hours_ago=24 * 40)  # outside the interest window
    did(no_consent, product, V, hours_ago=1)
    campaign = start(make_campaign(template, kind=Campaign.Kind.PRICE_DROP, price_drop_min_percent=10))

    upsert(product.sku, price="19.00")  # 5 %: below the campaign's threshold
    assert triggers_evaluate(campaign=campaign) == 0
    upsert(product.sku, price="15.00")  # 21 % below 19.00
    drop = ProductChange.objects.filter(kind=ProductChange.Kind.PRICE_DROP).latest("pk")
    assert (drop.price_before, drop.price_after) == (Decimal("19.00"), Decimal("15.00"))
    assert triggers_evaluate(campaign=campaign) == 3
    assert triggers_evaluate(campaign=campaign) == 0
    rows = Delivery.objects.filter(campaign=campaign)
    assert {d.user_id for d in rows} == {viewer.pk, carter.pk, wisher.pk}
    assert all(d.context["price_before"] == "19.00" and d.context["price_after"] == "15.00" for d in rows)
    upsert(product.sku, price="25.00")  # a rise is no event
    assert ProductChange.objects.filter(kind=ProductChange.Kind.PRICE_DROP).count() == 2


def test_price_drop_sends_nothing_once_the_price_is_back_up(store, template):
    (viewer,) = make_customers(1)
    product = store.products[6]
    did(viewer, product, V, hours_ago=1)
    campaign = start(make_campaign(template, kind=Campaign.Kind.PRICE_DROP))
    upsert(product.sku, price="10.00")
    upsert(product.sku, price="20.00")
    assert triggers_evaluate(campaign=campaign) == 0


def test_a_scoped_evaluation_sees_only_its_event(store, template):
    a, b = make_customers(2)
    for user in (a, b):
        buy(user, store.products[:1], days_ago=0.01)
    campaign = start(make_campaign(template, kind=Campaign.Kind.POST_PURCHASE))
    assert triggers_evaluate(campaign=campaign, scope=Scope(user_ids=frozenset({a.pk}))) == 1
    assert Delivery.objects.get().user == a
    assert triggers_evaluate(campaign=campaign, scope=Scope(change_ids=frozenset({1}))) == 0
    assert triggers_evaluate(campaign=campaign) == 1, "the sweep finds the rest"
    with pytest.raises(ValueError, match="customers or product changes"):
        triggers.triggers_react(kinds=[Campaign.Kind.POST_PURCHASE])


def test_store_events_queue_one_evaluation_after_commit_only_when_a_campaign_listens(
    store, template, django_capture_on_commit_callbacks, unread_queue, monkeypatch
):
    if not str(app.conf.broker_url).startswith("redis"):
        pytest.skip("counts the messages in a Redis queue")

    def queued() -> int:
        with app.connection_for_write() as conn:
            return conn.default_channel.client.llen(unread_queue)

    monkeypatch.setattr(tasks, "_publish_retry_at", 0.0)
    (user,) = make_customers(1)
    with django_capture_on_commit_callbacks(execute=True):
        did(user, store.products[0], V)
    assert queued() == 0, "no campaign listens for views: nothing is queued"
    start(make_campaign(template, kind=Campaign.Kind.BROWSE_ABANDONMENT, trigger_delay_hours=1))
    assert triggers.kinds_listening(triggers.kinds_of_interactions({V, CART})) == {Campaign.Kind.BROWSE_ABANDONMENT}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        did(user, store.products[0], V)
        assert queued() == 0, "nothing before the store's transaction commits"
    for callback in callbacks:
        callback()
    assert queued() == 1
    # The API's batch ingestion announces its customers once per batch.
    with django_capture_on_commit_callbacks(execute=True):
        interactions_bulk_record(
            events=[InteractionIn(product_id=p.pk, kind=V, user_id=user.pk) for p in store.products[:5]]
        )
    assert queued() == 2
    with django_capture_on_commit_callbacks(execute=True):  # a wish fires no campaign kind
        did(user, store.products[1], WISH)
    assert queued() == 2


# --- end to end: a real worker, a real SMTP server ---------------------------------------------
@pytest.fixture
def real_store(transactional_db):
    return build_store()


def bodies(smtp_server) -> dict[str, list[str]]:
    with smtp_server.lock:
        messages = list(smtp_server.messages)
    out: dict[str, list[str]] = {}
    for m in messages:
        text = next(part for part in m.walk() if part.get_content_type() == "text/plain")
        out.setdefault(m["To"], []).append(text.get_payload(decode=True).decode())
    return out


@pytest.mark.integration
def test_each_trigger_emails_seconds_after_its_event_once_and_only_with_consent(
    real_store, smtp_server, celery_worker_factory
):
    celery_worker_factory(EMAIL_URL=smtp_server.url)
    template = default_template()
    p = real_store.products
    kinds = Campaign.Kind
    people = {
        (name, consent): customer(name, consent=consent)
        for name in ("buyer", "viewer", "wisher", "browser", "pd_viewer")
        for consent in (True, False)
    }
    suppressed = customer("suppressed", consent=True)
    Suppression.objects.create(email=suppressed.email, reason=Suppression.Reason.UNSUBSCRIBED)
    User.objects.update(date_joined=timezone.now() - timedelta(hours=2))  # not new: no welcome
    for kind, extra in (
        (kinds.POST_PURCHASE, {}),
        (kinds.BACK_IN_STOCK, {}),
        (kinds.PRICE_DROP, {}),
        (kinds.WELCOME, {}),
        (kinds.BROWSE_ABANDONMENT, {"trigger_delay_hours": 1}),
    ):
        campaign = make_campaign(template, name=kind, kind=kind, strategy="trending", exclude_purchased=False, **extra)
        start(campaign, hours_ago=1.1)  # listening since before the browsing below
    Product.objects.filter(pk=p[0].pk).update(stock=0)
    Product.objects.filter(pk=p[1].pk).update(stock=0)

    # The events, each committed by the store's own services (no sweep runs meanwhile).
    for consent in (True, False):
        buy(people["buyer", consent], [p[4]], days_ago=0)
        did(people["viewer", consent], p[0], V)  # while it is out
        did(people["wisher", consent], p[1], WISH)
        did(people["pd_viewer", consent], p[6], V, hours_ago=0.01)
        # The last view of a visit, 1 hour minus a few seconds ago: due in a few seconds.
        did(people["browser", consent], p[7], V, hours_ago=1 - 4 / 3600)
    buy(suppressed, [p[4]], days_ago=0)
    upsert(p[0].sku, stock=5)  # back in stock (bulk path)
    product = Product.objects.get(pk=p[1].pk)
    product.stock = 5  # back in stock (admin path)
    product.save()
    upsert(p[6].sku, price="15.00")  # price drop
    welcomed = user_register(email="new@customers.affinity.example", password=None, marketing_consent=True)
    user_register(email="new-no@customers.affinity.example", password=None, marketing_consent=False)

    expected = {
        people["buyer", True].email: "Thank you for your order",
        people["viewer", True].email: "back in stock",
        people["wisher", True].email: "back in stock",
        people["pd_viewer", True].email: "now £15.00 (was £20.00)",
        people["browser", True].email: "Still thinking about these?",
        welcomed.email: "We picked these for you",
    }
    wait_for(lambda: set(bodies(smtp_server)) >= set(expected), timeout=60, what="every trigger's email")
    time.sleep(3)  # anything else would have arrived by now
    # Exactly once, only with consent and not to a suppressed address, each with its own text.
    received = bodies(smtp_server)
    assert set(received) == set(expected)
    for email, text in expected.items():
        assert len(received[email]) == 1, email
        assert text in received[email][0], (email, received[email][0])

    # At most once: the sweep and repeated reactions find every event handled.
    assert tick.campaigns_tick().triggered == 0
    users = [u.pk for u in User.objects.all()]
    changes_ids = list(ProductChange.objects.values_list("pk", flat=True))
    triggers_react_task.delay([k.value for k in kinds if k != kinds.ONE_OFF], users, [], False)
    triggers_react_task.delay([kinds.BACK_IN_STOCK, kinds.PRICE_DROP], [], changes_ids, False)
    campaigns_tick_task.delay()
    time.sleep(4)
    assert {e: len(v) for e, v in bodies(smtp_server).items()} == dict.fromkeys(expected, 1)
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == len(expected)


@pytest.mark.integration
def test_a_trigger_email_is_sent_exactly_once_when_the_worker_dies_mid_send(
    real_store, celery_worker_factory, settings
):
    """The worker dies (SIGKILL) while the server holds the trigger email's DATA: a new
    worker and the sweep send it after the lease, with the same Message-ID, once."""
    gate = GateSMTP(accept=0)
    port = free_port()
    controller = Controller(gate, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        lease = 3
        settings.CAMPAIGNS_SEND_LEASE_SECONDS = lease
        env = {"EMAIL_URL": f"smtp://127.0.0.1:{port}", "CAMPAIGNS_SEND_LEASE_SECONDS": str(lease)}
        worker = celery_worker_factory(**env)
        campaign = start(
            make_campaign(
                default_template(), kind=Campaign.Kind.POST_PURCHASE, strategy="trending", exclude_purchased=False
            )
        )
        buyer = customer("buyer", consent=True)
        buy(buyer, real_store.products[:1], days_ago=0)
        wait_for(gate.holding.is_set, timeout=30, what="the email to be in flight")
        worker.kill()
        (row,) = Delivery.objects.filter(campaign=campaign)
        assert row.status == Delivery.Status.SENDING and row.message_id
        gate.release.set()  # the dead sender's DATA is refused: it never reached the mailbox
        celery_worker_factory(**env)
        last = [0.0]

        def sent() -> bool:
            if time.monotonic() - last[0] > lease:
                campaigns_tick_task.delay()  # what the scheduler does every few minutes
                last[0] = time.monotonic()
            return Delivery.objects.filter(pk=row.pk, status=Delivery.Status.SENT).exists()

        wait_for(sent, timeout=60, interval=0.5, what="the reclaimed email to be sent")
        time.sleep(2)
        assert [m["Message-ID"] for m in gate.accepted] == [row.message_id]
        assert [m["To"] for m in gate.accepted] == [buyer.email]
        row.refresh_from_db()
        assert row.recovered
        assert Delivery.objects.filter(campaign=campaign).count() == 1
    finally:
        controller.stop()


def test_cart_add_is_the_abandoned_cart_event(store, template):
    """The cart add's reaction finds the cart once it has been idle for the delay."""
    (user,) = make_customers(1)
    campaign = start(make_campaign(template, kind=Campaign.Kind.ABANDONED_CART, trigger_delay_hours=1))
    cart_add(cart=cart_get_or_create(user=user), product=store.products[0])
    scope = {"kinds": [Campaign.Kind.ABANDONED_CART], "user_ids": [user.pk]}
    (reaction,) = triggers.triggers_react(**scope)
    assert (reaction.created, reaction.look_again_in) == (0, 3600.0), "not idle yet: look again in an hour"
    Cart.objects.filter(user=user).update(updated_at=timezone.now() - timedelta(hours=1, seconds=1))
    (reaction,) = triggers.triggers_react(**scope, look_again=False)
    assert (reaction.created, reaction.look_again_in) == (1, None)
    assert triggers.due_send_ranges(campaign_id=campaign.pk) == [(Delivery.objects.get().pk,) * 2]


def test_a_broker_outage_never_fails_the_stores_event(
    store, template, django_capture_on_commit_callbacks, caplog, monkeypatch
):
    """The store's request goes on (one fast-failing attempt, then none for a few
    seconds); the evaluation is left to the periodic sweep."""
    a, b = make_customers(2)
    campaign = start(make_campaign(template, kind=Campaign.Kind.POST_PURCHASE))
    monkeypatch.setattr(tasks, "_publish_retry_at", 0.0)
    monkeypatch.setattr(app.conf, "broker_url", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with caplog.at_level("WARNING", logger="campaigns.tasks"):
        for user in (a, b):
            with django_capture_on_commit_callbacks(execute=True):
                buy(user, store.products[:1], days_ago=0)
    assert caplog.text.count("the periodic sweep will find the events") == 1, "the second one did not even try"
    assert tick.campaigns_tick().triggered == 2  # the safety net
    assert {d.user for d in Delivery.objects.filter(campaign=campaign)} == {a, b}


def test_product_changes_are_listed_in_admin(store, staff_client):
    product = store.products[0]
    upsert(product.sku, price="1.00")
    page = staff_client.get("/admin/campaigns/productchange/")
    assert page.status_code == 200
    assert "Price drop" in page.content.decode() and product.name in page.content.decode()
    assert staff_client.get("/admin/campaigns/productchange/add/").status_code == 403


def test_new_triggers_keep_the_frequency_cap(store, template, settings):
    settings.CAMPAIGNS_FREQUENCY_CAP = 2
    capped, free = make_customers(2)
    product = store.products[6]
    for user in (capped, free):
        did(user, product, V, hours_ago=1)
    other = start(make_campaign(template, kind=Campaign.Kind.POST_PURCHASE, name="Earlier emails"))
    for _ in range(2):
        sent_delivery(other, capped, days_ago=1, trigger_key=f"order:{_}")
    campaign = start(make_campaign(template, kind=Campaign.Kind.PRICE_DROP))
    upsert(product.sku, price="9.99")
    assert triggers_evaluate(campaign=campaign) == 2
    send_all(campaign)
    rows = {d.user_id: d for d in Delivery.objects.filter(campaign=campaign)}
    assert rows[capped.pk].status == Delivery.Status.SKIPPED
    assert rows[capped.pk].skip_reason == Delivery.SkipReason.FREQUENCY_CAP
    assert rows[free.pk].status == Delivery.Status.SENT


def test_a_price_given_as_text_to_a_products_save_is_compared_as_the_stored_price(store, template):
    """A script or form that saves a product with price="15.00" (a string, as Django
    accepts it) records the drop like any other, instead of failing the save."""
    product = store.products[6]  # 20.00
    product.price = "15.00"
    product.save()
    drop = ProductChange.objects.get(product=product, kind=ProductChange.Kind.PRICE_DROP)
    assert (drop.price_before, drop.price_after) == (Decimal("20.00"), Decimal("15.00"))
