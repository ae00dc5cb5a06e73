"""Management commands: send a campaign in-process with progress; run the tick."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from campaigns.models import Campaign

from .conftest import make_campaign, make_customers


def test_campaign_send_in_process(store, template):
    make_customers(12)
    campaign = make_campaign(template)
    out = StringIO()
    call_command("campaign_send", str(campaign.pk), stdout=out, stderr=StringIO())
    assert len(mail.outbox) == 12
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    assert "sent 12" in out.getvalue()
    with pytest.raises(CommandError, match="a completed campaign cannot be sent"):
        call_command("campaign_send", str(campaign.pk), stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="no campaign"):
        call_command("campaign_send", "999999", stdout=StringIO(), stderr=StringIO())


def test_campaigns_tick_reports_what_it_did(db):
    out = StringIO()
    call_command("campaigns_tick", stdout=out)
    assert "launched 0" in out.getvalue()
