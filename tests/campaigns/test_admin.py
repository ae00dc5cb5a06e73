"""Staff tools in admin: pages render, live segment preview, template preview and
test send, campaign actions, live status, report, outbox."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from django.core import mail
from django.urls import reverse
from django.utils.html import escape

from campaigns import lifecycle, sending
from campaigns.admin import CampaignForm, EmailTemplateForm, SegmentForm, VariantForm
from campaigns.charts import progress_percent
from campaigns.models import Campaign, EmailTemplate, OutboxMessage, Segment, Suppression

from .conftest import launch, make_campaign, make_customers, make_segment


def test_changelists_and_add_pages_render(staff_client, store, template):
    make_campaign(template)
    for model in (
        "segment",
        "emailtemplate",
        "campaign",
        "delivery",
        "suppression",
        "trackingevent",
        "conversion",
        "outboxmessage",
    ):
        assert staff_client.get(reverse(f"admin:campaigns_{model}_changelist")).status_code == 200, model
    for model in ("segment", "emailtemplate", "campaign", "suppression"):
        assert staff_client.get(reverse(f"admin:campaigns_{model}_add")).status_code == 200, model


def test_segment_live_preview_counts_and_reports_errors(staff_client, store):
    make_customers(7)
    url = reverse("admin:campaigns_segment_preview")
    response = staff_client.post(url, json.dumps({"rules": {"rule": "consent"}}), content_type="application/json")
    assert response.status_code == 200
    data = response.json()
    assert data["count"] == 7 and len(data["sample"]) == 7
    bad = staff_client.post(
        url, json.dumps({"rules": {"all": [{"rule": "bought_within", "days": -1}]}}), content_type="application/json"
    )
    assert bad.status_code == 200 and "all[0].days" in bad.json()["errors"][0]
    assert staff_client.post(url, "not json", content_type="application/json").status_code == 400
    assert staff_client.get(url).status_code == 405


def test_segment_form_refuses_invalid_rules_and_shows_the_count(staff_client, store):
    make_customers(3)
    response = staff_client.post(
        reverse("admin:campaigns_segment_add"), {"name": "Broken", "description": "", "rules": '{"rule": "country"}'}
    )
    assert response.status_code == 200 and b"in: must be a non-empty list" in response.content
    response = staff_client.post(
        reverse("admin:campaigns_segment_add"), {"name": "All", "description": "", "rules": '{"rule": "consent"}'}
    )
    assert response.status_code == 302
    segment = Segment.objects.get(name="All")
    page = staff_client.get(reverse("admin:campaigns_segment_change", args=[segment.pk]))
    assert b"segment-preview" in page.content and b"campaigns/segment_preview.js" in page.content
    assert b"Members now" not in page.content  # the live count is the one member figure
    assert b"campaigns/segment_builder.js" in page.content and b'id="segment-builder-schema"' in page.content


def test_template_syntax_is_validated_on_save(staff_client, db):
    response = staff_client.post(
        reverse("admin:campaigns_emailtemplate_add"),
        {
            "name": "Broken",
            "subject": "Hi",
            "html_body": "{% for p in products %}{{ unsubscribe_url }}",
            "text_body": "{{ unsubscribe_url }}",
        },
    )
    assert response.status_code == 200
    assert b"Unclosed tag on line 1" in response.content
    assert not EmailTemplate.objects.filter(name="Broken").exists()


def test_template_preview_for_a_customer_and_test_send_to_staff(staff_client, staff_user, store, template):
    (customer,) = make_customers(1)
    url = reverse("admin:campaigns_emailtemplate_preview", args=[template.pk])
    page = staff_client.get(url, {"customer": customer.email})
    assert page.status_code == 200
    assert b'class="email-frame" sandbox="allow-same-origin allow-popups' in page.content
    assert customer.first_name.encode() in page.content
    assert staff_client.get(url, {"customer": "nobody@example.com"}).status_code == 200
    send = reverse("admin:campaigns_emailtemplate_test_send", args=[template.pk])
    staff_client.post(send, {"customer": customer.email, "to": staff_user.email})
    (message,) = mail.outbox
    assert message.subject.startswith("[TEST] ") and message.to == [staff_user.email]
    staff_client.post(send, {"customer": customer.email, "to": customer.email})
    assert len(mail.outbox) == 1, "test emails only go to staff"


@pytest.mark.parametrize("first_name", ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"])
@pytest.mark.parametrize("model", ["emailtemplate", "campaign"])
def test_preview_shows_a_customers_markup_only_escaped(staff_client, store, template, model, first_name):
    """Stored XSS: a customer's name with markup is text on the preview page (the plain
    text part escaped, the HTML part only inside the sandboxed iframe's srcdoc)."""
    (customer,) = make_customers(1, first_name=first_name)
    template.text_body = "Hi {{ customer.first_name }}\n{{ unsubscribe_url }}"
    template.html_body = '<p class="hi">Hi {{ customer.first_name }}</p><a href="{{ unsubscribe_url }}">x</a>'
    template.save()
    obj = template if model == "emailtemplate" else make_campaign(template)
    page = staff_client.get(reverse(f"admin:campaigns_{model}_preview", args=[obj.pk]), {"customer": customer.email})
    html = page.content.decode()
    assert page.status_code == 200
    assert first_name not in html
    assert f"Hi {escape(first_name)}" in html  # the text part, escaped once
    ((sandbox, srcdoc),) = re.findall(r'<iframe class="email-frame" sandbox="([^"]*)" [^>]*srcdoc="([^"]*)"', html)
    assert "allow-scripts" not in sandbox  # the email's HTML runs no code
    assert "<" not in srcdoc and '"' not in srcdoc  # the HTML part stays inside the attribute
    assert unescape(srcdoc).startswith('<base target="_blank"><p class="hi">Hi ' + escape(first_name))


def test_campaign_actions_status_and_report(staff_client, store, template):
    make_customers(4)
    campaign = make_campaign(template, holdout_percent=20)
    changelist = reverse("admin:campaigns_campaign_changelist")
    response = staff_client.post(changelist, {"action": "send_or_schedule", "_selected_action": [campaign.pk]})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    refused = staff_client.post(changelist, {"action": "resume", "_selected_action": [campaign.pk]}, follow=True)
    assert b"a scheduled campaign cannot be resumed" in refused.content
    lifecycle.campaign_launch(campaign_id=campaign.pk)
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    status = staff_client.get(reverse("admin:campaigns_campaign_status", args=[campaign.pk])).json()
    assert status["audience"] == 4 and status["sent"] + status["withheld"] == 4 and status["percent"] == 100.0
    page = staff_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert page.status_code == 200 and b"campaign-status" in page.content
    report = staff_client.get(reverse("admin:campaigns_campaign_report", args=[campaign.pk]))
    assert report.status_code == 200 and b"Uplift" in report.content
    html = report.content.decode()
    assert '<canvas data-chart="chart-funnel"' in html and '<script id="chart-funnel" type="application/json">' in html
    assert "vendor/chartjs/4.6.2/chart.umd.min.js" in html and "admin/js/affinity-charts.js" in html
    assert "<circle" not in html and "<rect" not in html  # the old SVG charts are gone
    funnel = report.context["chart"]
    assert [d["label"] for d in funnel["datasets"]] == [g.label for g in report.context["report"].groups]
    assert sum(d["data"][0] for d in funnel["datasets"]) == 4  # the audience, split across variant and holdout
    listing = staff_client.get(changelist).content.decode()
    campaign.refresh_from_db()
    pct = progress_percent(min(campaign.sent_count, campaign.audience_size), campaign.audience_size)
    assert f'<progress class="campaign-progress" value="{pct}" max="100"' in listing and "<rect" not in listing
    preview = staff_client.get(reverse("admin:campaigns_campaign_preview", args=[campaign.pk]))
    assert preview.status_code == 200


def test_pause_and_cancel_from_the_changelist(staff_client, store, template):
    make_customers(2)
    campaign = launch(make_campaign(template))
    changelist = reverse("admin:campaigns_campaign_changelist")
    staff_client.post(changelist, {"action": "pause", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    staff_client.post(changelist, {"action": "cancel", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED


def test_manual_suppression_is_stored_lower_case(staff_client, db):
    staff_client.post(
        reverse("admin:campaigns_suppression_add"), {"email": "Someone@Example.com", "reason": "manual", "note": ""}
    )
    assert Suppression.objects.get().email == "someone@example.com"


def test_outbox_message_is_shown_in_a_sandboxed_frame(staff_client, store, template, settings):
    settings.EMAIL_BACKEND = "campaigns.outbox.OutboxEmailBackend"
    make_customers(1)
    campaign = launch(make_campaign(template))
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    message = OutboxMessage.objects.get()
    page = staff_client.get(reverse("admin:campaigns_outboxmessage_change", args=[message.pk]))
    assert page.status_code == 200
    assert b'<iframe class="email-frame" sandbox="allow-same-origin allow-popups' in page.content
    assert b"&lt;html" in page.content
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in page.content


def test_segment_admin_needs_staff(client, db):
    make_segment()
    response = client.post(reverse("admin:campaigns_segment_preview"), "{}", content_type="application/json")
    assert response.status_code == 302  # to the login page


def test_the_forms_show_the_services_checks_on_their_fields(db):
    ok = "<p>{{ unsubscribe_url }}</p>"
    form = EmailTemplateForm(data={"name": "broken", "subject": "Hi", "html_body": "{% if %}", "text_body": ok})
    assert not form.is_valid() and list(form.errors) == ["html_body"]
    assert EmailTemplateForm(data={"name": "fine", "subject": "Hi", "html_body": ok, "text_body": ok}).is_valid()
    template = EmailTemplate.objects.create(name="t", subject="Hi", html_body=ok, text_body=ok)
    form = CampaignForm(
        data={
            "name": "c",
            "kind": "win_back",
            "template": template.pk,
            "strategy": "no-such",
            "n_products": 6,
            "exclude_recently_sent_days": 0,
            "trigger_delay_hours": 0,
            "holdout_percent": 0,
            "seed": 1,
            "attribution_window_days": 5,
            "max_error_rate": 0.2,
        }
    )
    assert not form.is_valid() and set(form.errors) == {"inactive_days", "strategy"}, form.errors
    for bad in ("Shop <shop@example.com>\nBcc: everyone@example.net", "Shop <nope>", "a@example.com, b@example.com"):
        form = CampaignForm(data={**form.data, "kind": "one_off", "strategy": "auto", "from_email": bad})
        assert not form.is_valid() and "from_email" in form.errors, (bad, form.errors)
    form = VariantForm(data={"name": "B", "weight": 1, "subject": "{% if %}", "strategy": "no-such"})
    assert not form.is_valid() and set(form.errors) == {"subject", "strategy"}
    assert SegmentForm(data={"name": "s", "description": "", "rules": '{"rule": "country"}'}).errors["rules"]
