"""Templates: validation on save, a safe context, both parts, headers, signed links."""

from __future__ import annotations

import re
from email import message_from_bytes

import pytest
from django.core import mail
from django.template import Context, Template
from django.utils.safestring import SafeData

from campaigns import sending, tokens
from campaigns.models import Delivery, EmailTemplate
from campaigns.rendering import (
    email_compile,
    email_render,
    message_build,
    message_id_make,
    sample_context,
    template_errors,
)

from .conftest import default_template, launch, make_campaign, make_customers

HTML_OK = "<p>Hi {{ greeting_name }}</p><a href='{{ unsubscribe_url }}'>Unsubscribe</a>"
TEXT_OK = "Hi {{ greeting_name }}\nUnsubscribe: {{ unsubscribe_url }}"


def test_syntax_errors_name_the_field_and_the_line():
    errors = template_errors(
        subject="Hi", html_body="<p>\n{% for p in products %}\n<b>{{ p.name }}</b>", text_body=TEXT_OK
    )
    assert list(errors) == ["html_body"]
    assert "line 2" in errors["html_body"][0] and "endfor" in errors["html_body"][0]
    errors = template_errors(
        subject="Hi {% if %}", html_body=HTML_OK, text_body="{{ p|nosuchfilter }} {{ unsubscribe_url }}"
    )
    assert set(errors) == {"subject", "text_body"}
    assert "nosuchfilter" in errors["text_body"][0]


@pytest.mark.parametrize(
    "source", ['{% include "base.html" %}', '{% extends "base.html" %}', "{% debug %}", "{% load static %}"]
)
def test_tags_that_reach_outside_the_email_are_refused(source):
    errors = template_errors(html_body=source + HTML_OK)
    assert "html_body" in errors


def test_bodies_must_carry_the_unsubscribe_link_and_subject_is_one_line():
    errors = template_errors(subject="Hello\nthere", html_body="<p>Hi</p>", text_body="Hi")
    assert errors["subject"] == ["the subject is one line"]
    assert "unsubscribe_url" in errors["html_body"][0] and "unsubscribe_url" in errors["text_body"][0]
    assert template_errors(subject="{{ nothing }}", html_body=HTML_OK, text_body=TEXT_OK) == {
        "subject": ["renders to an empty subject"]
    }


def test_the_context_is_plain_values_and_html_is_escaped():
    compiled = email_compile(
        subject="{{ customer.first_name }}",
        html_body="{{ customer.first_name }}|{{ customer.password }}|{{ customer.pk }}|{{ unsubscribe_url }}",
        text_body="{{ customer.first_name }}",
    )
    context = sample_context()
    context["customer"]["first_name"] = "<script>x</script>"
    rendered = email_render(compiled, context)
    assert rendered.subject == "<script>x</script>" and rendered.text == "<script>x</script>"
    assert rendered.html.startswith("&lt;script&gt;x&lt;/script&gt;|||")


def test_rendered_parts_are_plain_text_a_page_escapes():
    """A rendered part is never marked safe: a page that shows it (a preview, an
    iframe's srcdoc) escapes it, so a customer's name cannot become markup there."""
    compiled = email_compile(
        subject="{{ customer.first_name }}",
        html_body='<p class="x">{{ customer.first_name }}</p>{{ unsubscribe_url }}',
        text_body="{{ customer.first_name }} {{ unsubscribe_url }}",
    )
    context = sample_context()
    context["customer"]["first_name"] = "<img src=x onerror=alert(1)>"
    rendered = email_render(compiled, context)
    for part in (rendered.subject, rendered.text, rendered.html):
        assert not isinstance(part, SafeData)
    shown = Template("{{ part }}").render(Context({"part": rendered.text}))
    assert "<img" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown


def test_the_open_pixel_goes_before_the_end_of_body():
    compiled = email_compile(subject="s", html_body="<html><body>hi {{ unsubscribe_url }}</body></html>", text_body="t")
    html = email_render(compiled, sample_context(), open_pixel_url="https://shop.example.com/c/o/x.gif").html
    assert re.search(r'<img src="https://shop.example.com/c/o/x.gif"[^>]*></body></html>$', html)


def test_message_is_multipart_with_one_click_unsubscribe_headers(settings):
    settings.CAMPAIGNS_UNSUBSCRIBE_MAILTO = "unsubscribe@shop.example.com"
    compiled = email_compile(subject="Hi", html_body=HTML_OK, text_body=TEXT_OK)
    rendered = email_render(compiled, sample_context())
    mid = message_id_make(7)
    msg = message_build(
        to="ada@example.com",
        rendered=rendered,
        message_id=mid,
        unsubscribe_url="https://shop.example.com/c/u/tok/",
        delivery_id=7,
    )
    parsed = message_from_bytes(msg.message().as_bytes())
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.get_payload()] == ["text/plain", "text/html"]
    assert parsed["Message-ID"] == mid and mid.endswith("@affinity.example>")
    assert " ".join(parsed["List-Unsubscribe"].split()) == (
        "<mailto:unsubscribe@shop.example.com?subject=unsubscribe-7>, <https://shop.example.com/c/u/tok/>"
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_sent_email_has_signed_links_absolute_images_and_a_visible_unsubscribe(store, template):
    (user,) = make_customers(1)
    store.products[0].image_url = "https://cdn.example.com/candle.jpg"
    store.products[0].save()
    campaign = launch(make_campaign(template, n_products=12, exclude_purchased=False, strategy="trending"))
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    (message,) = mail.outbox
    delivery = Delivery.objects.get()
    html = message.alternatives[0][0]
    # Every product link is a signed click link of this delivery and that product.
    clicks = re.findall(
        r'href="https://shop\.example\.com/c/k/([^/"]+)/\?utm_source=affinity&amp;utm_medium=email&amp;', html
    )
    targets = {tokens.read_click_token(t).product_id for t in clicks}
    assert targets - {None} == {p["id"] for p in delivery.products}
    assert {tokens.read_click_token(t).delivery_id for t in clicks} == {delivery.pk}
    assert None in targets  # the "visit the shop" link is tracked too (a path on this site)
    # Images are absolute: the product's own, or the store's generated placeholder.
    images = set(re.findall(r'<img src="([^"]+)" width="112"', html))
    assert "https://cdn.example.com/candle.jpg" in images
    assert all(i.startswith("https://") for i in images)
    assert any(re.match(r"https://shop\.example\.com/img/p/\d+\.png$", i) for i in images)
    # A visible unsubscribe link in both parts, the same as the header's.
    unsubscribe = tokens.unsubscribe_url(delivery.pk)
    assert unsubscribe in html and unsubscribe in message.body
    assert f"<{unsubscribe}>" in message.extra_headers["List-Unsubscribe"]
    assert f"Hello {user.first_name}" in message.body


def test_a_broken_template_saved_behind_validation_pauses_the_campaign(store, template):
    make_customers(2)
    campaign = launch(make_campaign(template))
    EmailTemplate.objects.filter(pk=template.pk).update(html_body="{% for %}")
    stats = sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    campaign.refresh_from_db()
    assert stats.sent == 0 and campaign.status == "paused" and "template" in campaign.status_note
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 2


def test_default_template_file_is_valid(db):
    default_template(name="again")
