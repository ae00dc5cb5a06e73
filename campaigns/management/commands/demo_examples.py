"""Example marketing data for the demo store, so every admin page has something to
show and learn from: a few segments (the segment builder's working examples), a second
email template, a campaign sent to a small VIP list with its report, and a running
A/B experiment of the store's recommendations. Idempotent: what exists (by name) is
kept; quick: the example campaign goes to at most 40 customers.

The campaign is sent only when emails stay inside Affinity (the outbox backend, or
Django's test backend); with a real email server configured it stays a draft."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from campaigns import services
from campaigns.models import Campaign, EmailTemplate, Segment
from campaigns.segment_builder import examples_build
from recommendations import services as recommendations
from recommendations.models import Experiment, ExperimentVariant
from shop.models import User

DESCRIPTION = "Example made by bootstrap_demo: open it to see how it is built."
SECOND_TEMPLATE = "We miss you (example)"
VIP_SEGMENT = "Example: VIP list (40 recent buyers)"
CAMPAIGN = "Example: picks for our VIPs"
EXPERIMENT_KEY = "example-personal-vs-trending"
SAFE_BACKENDS = ("campaigns.outbox.OutboxEmailBackend", "django.core.mail.backends.locmem.EmailBackend")


class Command(BaseCommand):
    help = "Create example segments, templates, a sent campaign and a running experiment (idempotent)."

    def handle(self, *args, **options):
        base = EmailTemplate.objects.order_by("pk").first()
        if base is None:
            self.stdout.write("No email template to start from: no marketing examples made.")
            return
        made = self.segments() + self.templates(base)
        vip = self.vip_segment()
        if vip is not None:
            made += self.campaign(vip, base)
        made += self.experiment()
        self.stdout.write(
            self.style.SUCCESS(f"Marketing examples: {made} made" if made else "Marketing examples: present.")
        )

    def segments(self) -> int:
        made = 0
        for example in examples_build():
            name = f"Example: {example['label']}"[:200]
            _, created = Segment.objects.get_or_create(
                name=name, defaults={"description": DESCRIPTION, "rules": example["rules"]}
            )
            made += created
        return made

    def templates(self, base: EmailTemplate) -> int:
        _, created = EmailTemplate.objects.get_or_create(
            name=SECOND_TEMPLATE,
            defaults={
                "subject": "{{ greeting_name }}, it has been a while: new picks for you",
                "html_body": base.html_body,
                "text_body": base.text_body,
            },
        )
        return int(created)

    def vip_segment(self) -> Segment | None:
        segment = Segment.objects.filter(name=VIP_SEGMENT).first()
        if segment is not None:
            return segment
        ids = list(
            User.objects.filter(is_staff=False, is_active=True, marketing_consent=True, orders__isnull=False)
            .order_by("-orders__placed_at", "pk")
            .values_list("pk", flat=True)
            .distinct()[:200]
        )
        ids = list(dict.fromkeys(ids))[:40]
        if not ids:
            self.stdout.write("No customer with consent and orders: no example campaign.")
            return None
        return Segment.objects.create(
            name=VIP_SEGMENT,
            description=DESCRIPTION + " A fixed list of customers: the rule 'Chosen customers'.",
            rules={"all": [{"rule": "users", "ids": ids}]},
        )

    def campaign(self, segment: Segment, template: EmailTemplate) -> int:
        if Campaign.objects.filter(name=CAMPAIGN).exists():
            return 0
        campaign = services.campaign_create(
            name=CAMPAIGN, template=template, segment=segment, holdout_percent=10, strategy="auto"
        )
        if settings.EMAIL_BACKEND not in SAFE_BACKENDS:
            self.stdout.write(
                f"Example campaign {campaign.pk} left as a draft: EMAIL_BACKEND is {settings.EMAIL_BACKEND} "
                "(examples are sent only to the outbox)."
            )
            return 1
        call_command("campaign_send", campaign.pk, stdout=self.stdout, stderr=self.stderr)
        return 1

    def experiment(self) -> int:
        if Experiment.objects.filter(key=EXPERIMENT_KEY).exists():
            return 0
        if Experiment.objects.filter(is_active=True, context="home").exists():
            self.stdout.write("An experiment already runs on the home page: no example experiment.")
            return 0
        with transaction.atomic():
            experiment = Experiment.objects.create(
                name="Example: personal picks vs trending on the home page",
                key=EXPERIMENT_KEY,
                context="home",
                description=DESCRIPTION + " Half the shoppers see the model's picks, half what is trending.",
            )
            ExperimentVariant.objects.create(experiment=experiment, name="personal", strategy="auto")
            ExperimentVariant.objects.create(experiment=experiment, name="trending", strategy="trending")
        try:
            recommendations.experiment_start(experiment=experiment)
        except ValueError as exc:
            self.stdout.write(f"Example experiment not started: {exc}")
        return 1
