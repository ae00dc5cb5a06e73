"""The marketer's admin without a browser: the segment builder's schema (read from
campaigns.segments, so new rules appear), its working examples, the empty start of a
new segment, the product picker, the send confirmation's audience and truthful
messages, previews as a member of the segment, and the demo's example data."""

from __future__ import annotations

import re
from datetime import timedelta

from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from campaigns import segment_builder, segments
from campaigns.models import Campaign, EmailTemplate, OutboxMessage, Segment, Suppression
from campaigns.segments import rules_preview, rules_validate
from recommendations.models import Experiment
from shop.models import Order, User

from .conftest import buy, make_campaign, make_customers, make_segment


def test_the_builder_offers_every_rule_of_segments_with_an_input_per_parameter(db, store, monkeypatch):
    schema = segment_builder.builder_schema(segment_id=None, product_url="/p/")
    assert [r["name"] for r in schema["rules"]] == list(segments.RULE_NAMES)
    by_name = {r["name"]: r for r in schema["rules"]}
    kinds = {r["name"]: {i["name"]: i["kind"] for i in r["inputs"]} for r in schema["rules"]}
    assert kinds["bought_category"] == {"category": "category", "days": "int"}
    assert kinds["interested_in"]["include_activity"] == "bool"
    assert kinds["rfm"] == {"recency": "scores", "frequency": "scores", "monetary": "scores"}
    assert kinds["segment"] == {"id": "segment"} and kinds["lookalike"]["seed"] == "seed"
    assert by_name["bought_category"]["label"] == "Bought in category"
    assert {"value": "candles", "id": store.candles.pk, "label": "Home › Candles"} in schema["categories"]
    # a rule added to campaigns.segments (as other slices do) appears without edits here
    monkeypatch.setattr(segments, "RULE_NAMES", (*segments.RULE_NAMES, "likes_product"))
    monkeypatch.setitem(segments._PARAMS, "likes_product", ("product", "top", "mood"))
    monkeypatch.setitem(segments.PARAM_CHOICES, "mood", [("hot", "Hot"), ("cold", "Cold")])
    schema = segment_builder.builder_schema(segment_id=None, product_url="/p/")
    new = next(r for r in schema["rules"] if r["name"] == "likes_product")
    assert new["label"] == "Likes product"
    assert [(i["name"], i["kind"]) for i in new["inputs"]] == [
        ("product", "product"),
        ("top", "int"),
        ("mood", "choice"),
    ]
    assert new["inputs"][2]["choices"] == [{"value": "hot", "label": "Hot"}, {"value": "cold", "label": "Cold"}]


def test_the_examples_validate_and_find_customers_in_an_old_history(db, store):
    """An imported history (orders years old): the examples reach back to it, so each
    one that needs orders still finds its customers."""
    joined = {"date_joined": timezone.now() - timedelta(days=900)}
    buyers = make_customers(4, **joined)
    for i, user in enumerate(buyers):
        buy(user, store.in_category(store.candles)[:1], days_ago=700 + i)
    lapsed = make_customers(2, prefix="old", **joined)
    for user in lapsed:
        buy(user, store.in_category(store.kitchen)[:1], days_ago=850)
    examples = segment_builder.examples_build()
    labels = [e["label"] for e in examples]
    assert len(examples) == 5, labels
    assert segment_builder.examples() == examples  # the cached copy
    for example in examples:
        rules_validate(example["rules"])
    counts = {e["label"]: rules_preview(e["rules"]).count for e in examples}
    assert counts["Bought Candles in the last 90 days of orders (791 days back)"] == 4, counts
    assert counts["Lapsed: no order in the last 60 days of orders (761 days back)"] == 2, counts
    assert counts["Joined in the last 30 days of sign-ups (931 days back)"] == 6, counts
    # a live store keeps the plain windows
    Order.objects.update(placed_at=timezone.now() - timedelta(days=2))
    assert "Bought Candles in the last 90 days" in [e["label"] for e in segment_builder.examples_build()]


def test_a_new_segment_starts_empty_and_the_one_member_figure_is_live(staff_client, store):
    page = staff_client.get(reverse("admin:campaigns_segment_add"))
    html = page.content.decode()
    assert page.status_code == 200
    (rules,) = re.findall(r"<textarea[^>]*data-segment-rules[^>]*>([^<]*)</textarea>", html)
    assert rules.strip() == ""  # not "null"
    assert 'class="errorlist' not in html
    assert "Members now" not in html and "segment_builder.js" in html
    assert "home-decor" not in html  # the help's examples come from this store
    empty = staff_client.post(reverse("admin:campaigns_segment_add"), {"name": "Nobody", "rules": ""})
    assert b"Add at least one condition" in empty.content and not Segment.objects.exists()


def test_the_product_picker_finds_products_by_name_sku_or_id(staff_client, store):
    url = reverse("admin:campaigns_segment_products")
    found = staff_client.get(url, {"q": "kettle"}).json()["results"]
    assert [r["label"] for r in found][:2] == ["Kettle 0 (KIT0)", "Kettle 1 (KIT1)"] and len(found) == 6
    assert staff_client.get(url, {"q": "can3"}).json()["results"][0]["label"] == "Candle 3 (CAN3)"
    kettle = store.in_category(store.kitchen)[0]
    assert staff_client.get(url, {"ids": str(kettle.pk)}).json()["results"] == [
        {"value": kettle.pk, "label": "Kettle 0 (KIT0)"}
    ]
    assert staff_client.get(url).json()["results"] == []


def test_the_send_confirmation_states_the_audience_and_the_message_tells_the_truth(staff_client, store, template):
    make_customers(5, country="France")
    make_customers(2, prefix="no", country="France", marketing_consent=False)
    (gone,) = make_customers(1, prefix="gone", country="France")
    Suppression.objects.create(email=gone.email, reason=Suppression.Reason.BOUNCED)
    segment = make_segment({"rule": "country", "in": ["France"]}, name="France")
    campaign = make_campaign(template, segment, holdout_percent=20)
    url = reverse("admin:campaigns_campaign_send", args=[campaign.pk])
    page = staff_client.get(url)
    audience = page.context["audience"]
    assert audience == {
        "in_segment": 8,
        "no_consent": 2,
        "suppressed": 1,
        "audience": 5,
        "held_out": 1,
        "emails": 4,
    }
    assert b"Send now to 4 customers" in page.content and b"held out (20%" in page.content
    change = staff_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert url.encode() in change.content and b"Send\xe2\x80\xa6" in change.content
    done = staff_client.post(url, follow=True)
    assert [str(m) for m in done.context["messages"]] == ["Sending “Spring picks” now: its progress shows below."]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED and campaign.scheduled_at <= timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)  # the worker took it
    again = staff_client.post(url, follow=True)
    assert [str(m) for m in again.context["messages"]] == ["Not sent: a running campaign cannot be scheduled"]
    assert b"it cannot be sent or scheduled again" in staff_client.get(url).content

    later = make_campaign(template, segment, name="Later", scheduled_at=timezone.now() + timedelta(days=2))
    page = staff_client.get(reverse("admin:campaigns_campaign_send", args=[later.pk]))
    assert b"Schedule for " in page.content
    done = staff_client.post(reverse("admin:campaigns_campaign_send", args=[later.pk]), follow=True)
    (message,) = [str(m) for m in done.context["messages"]]
    assert message.startswith("“Later” is scheduled for ") and "Sending" not in message
    # the list's action says the same
    third = make_campaign(template, segment, name="Third")
    listing = staff_client.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "send_or_schedule", "_selected_action": [third.pk]},
        follow=True,
    )
    assert [str(m) for m in listing.context["messages"]] == ["Sending “Third” now: its progress shows below."]


def test_a_campaign_preview_shows_a_member_of_its_segment(staff_client, staff_user, store, template):
    outsiders = make_customers(3, prefix="uk", country="United Kingdom")
    buy(outsiders[0], store.in_category(store.kitchen)[:1])  # the store-wide default would pick them
    members = make_customers(2, prefix="fr", country="France")
    segment = make_segment({"rule": "country", "in": ["France"]}, name="France")
    campaign = make_campaign(template, segment)
    page = staff_client.get(reverse("admin:campaigns_campaign_preview", args=[campaign.pk]))
    assert page.context["customer_query"] == members[0].email
    assert "a member of the segment “France” who would get this email" in page.content.decode()
    staff_client.post(
        reverse("admin:campaigns_campaign_test_send", args=[campaign.pk]),
        {"customer": members[0].email, "to": staff_user.email},
    )
    (message,) = mail.outbox
    assert message.to == [staff_user.email] and message.subject.startswith("[TEST] ")


def test_the_demo_examples_fill_every_marketing_page_once(db, store, settings):
    settings.EMAIL_BACKEND = "campaigns.outbox.OutboxEmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert EmailTemplate.objects.filter(name="Recommended for you").exists()  # from migration 0002
    for user in make_customers(6):
        buy(user, store.in_category(store.candles)[:2], days_ago=3)
    call_command("demo_examples")
    assert Segment.objects.filter(name__startswith="Example: ").count() >= 4
    for segment in Segment.objects.all():
        rules_validate(segment.rules, segment_id=segment.pk)
    assert EmailTemplate.objects.count() == 2
    campaign = Campaign.objects.get(name="Example: picks for our VIPs")
    assert campaign.status == Campaign.Status.COMPLETED
    assert campaign.sent_count >= 1 and OutboxMessage.objects.count() == campaign.sent_count
    experiment = Experiment.objects.get(key="example-personal-vs-trending")
    assert experiment.is_active and experiment.variants.count() == 2
    counts = (
        Segment.objects.count(),
        EmailTemplate.objects.count(),
        Campaign.objects.count(),
        OutboxMessage.objects.count(),
    )
    call_command("demo_examples")  # again: nothing new
    assert counts == (
        Segment.objects.count(),
        EmailTemplate.objects.count(),
        Campaign.objects.count(),
        OutboxMessage.objects.count(),
    )


def test_the_demo_campaign_stays_a_draft_with_a_real_email_server(db, store, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert EmailTemplate.objects.filter(name="Recommended for you").exists()  # from migration 0002
    for user in make_customers(2):
        buy(user, store.in_category(store.candles)[:1], days_ago=3)
    call_command("demo_examples")
    assert Campaign.objects.get().status == Campaign.Status.DRAFT
    assert User.objects.filter(is_staff=False).count() == 2
