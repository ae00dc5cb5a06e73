"""Staff actions' checks: segments, campaigns and variants are validated by the
services that create them (and the admin forms, through the same checks)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from campaigns import services
from campaigns.models import Campaign

from .conftest import make_campaign, make_segment


def test_segment_cycles_are_refused(store):
    a = make_segment({"rule": "consent"}, name="a")
    b = make_segment({"rule": "segment", "id": a.pk}, name="b")
    errors = services.segment_errors(rules={"rule": "segment", "id": b.pk}, segment_id=a.pk)
    assert list(errors) == ["rules"] and "cycle" in str(errors["rules"])
    assert "cycle" in str(services.segment_errors(rules={"rule": "segment", "id": a.pk}, segment_id=a.pk))
    assert services.segment_errors(rules={"rule": "segment", "id": a.pk}, segment_id=b.pk) == {}


def test_campaign_create_names_every_bad_field_once(store, template):
    with pytest.raises(ValidationError) as info:
        make_campaign(
            template,
            kind=Campaign.Kind.WIN_BACK,
            strategy="no-such-strategy",
            n_products=99,
            variants=[{"name": "A", "subject": "Hi {% if %}"}, {"name": "B", "strategy": "nope"}],
        )
    errors = info.value.message_dict
    assert set(errors) == {"inactive_days", "strategy", "n_products"}, errors
    with pytest.raises(ValidationError) as info:
        make_campaign(template, variants=[{"name": "A", "subject": "Hi {% if %}"}, {"name": "B", "strategy": "nope"}])
    assert set(info.value.message_dict) == {"variants[0]", "variants[1]"}
    assert info.value.message_dict["variants[0]"][0].startswith("subject: ")
    with pytest.raises(ValidationError) as info:
        services.campaign_create(name="No segment", template=template)
    # the constraint (a one-off campaign has a segment) is not reported a second time
    assert info.value.message_dict == {"segment": ["A one-off campaign needs a segment."]}
    with pytest.raises(ValidationError) as info:
        make_campaign(template, kind=Campaign.Kind.ABANDONED_CART)
    assert set(info.value.message_dict) == {"trigger_delay_hours"}
    assert not Campaign.objects.exists()


BAD_FROM = [
    "Shop <shop@example.com>\r\nBcc: everyone@example.net",
    "shop@example.com\nBcc: everyone@example.net",
    "Shop\r <shop@example.com>",
    "Shop <shop@example.com>\u2028Bcc: x@example.net",
    "shop@example.com, everyone@example.net",
    "Shop <not an address>",
    "Shop",
    "<>",
]


@pytest.mark.parametrize("from_email", BAD_FROM)
def test_from_email_is_one_valid_address_on_one_line(store, template, from_email):
    with pytest.raises(ValidationError) as info:
        make_campaign(template, from_email=from_email)
    assert list(info.value.message_dict) == ["from_email"], info.value.message_dict
    assert not Campaign.objects.exists()


@pytest.mark.parametrize(
    "from_email", ["", "shop@example.com", "Affinity Store <store@affinity.example>", '"Shop, Inc." <a@b.example>']
)
def test_from_email_accepts_an_address_or_name_and_address(store, template, from_email):
    assert make_campaign(template, from_email=from_email).from_email == from_email
