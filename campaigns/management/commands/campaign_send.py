"""Send a campaign from the command line, with a progress bar.

By default the sending runs in this process (handy without a worker, and the same
code path as the workers: claims, send-time checks, one SMTP connection, exactly
once). With ``--queue`` the work goes to the Celery workers and this command only
follows the progress."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from campaigns import lifecycle, selectors, sending, services, tasks
from campaigns.models import Campaign, Delivery


class Command(BaseCommand):
    help = "Launch a draft or scheduled one-off campaign now and send it, showing progress."

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int)
        parser.add_argument("--queue", action="store_true", help="send through the Celery workers")

    def handle(self, *args, campaign_id: int, queue: bool, **options):
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            raise CommandError(f"no campaign {campaign_id}")
        if campaign.kind != Campaign.Kind.ONE_OFF:
            raise CommandError("triggered campaigns send as their events happen: schedule them instead")
        if campaign.status in (Campaign.Status.PAUSED, *Campaign.FINAL_STATUSES):
            raise CommandError(
                f"a {campaign.get_status_display().lower()} campaign cannot be sent"
                + (" (resume it first)" if campaign.status == Campaign.Status.PAUSED else "")
            )
        try:
            if campaign.status == Campaign.Status.DRAFT:
                services.campaign_schedule(campaign=campaign)
            if not queue:
                tasks.campaign_launch_task(campaign.pk)  # the launch task's work, in this process
        except lifecycle.CampaignStateError as exc:
            raise CommandError(str(exc)) from exc
        campaign.refresh_from_db()
        total = selectors.campaign_progress(campaign=campaign)["audience"]
        with tqdm(total=total, desc=f"campaign {campaign.pk}", unit="email") as bar:
            if queue:
                while True:
                    progress = selectors.campaign_progress(campaign=campaign)
                    bar.total = progress["audience"]
                    bar.update(progress["done"] - bar.n)
                    campaign.refresh_from_db(fields=["status"])
                    if progress["audience"] and progress["done"] >= progress["audience"]:
                        break
                    if campaign.status in (Campaign.Status.PAUSED, *Campaign.FINAL_STATUSES):
                        break
                    time.sleep(2)
            else:
                ids = list(
                    Delivery.objects.filter(campaign=campaign, status__in=Delivery.OPEN_STATUSES)
                    .order_by("pk")
                    .values_list("pk", flat=True)
                )
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    stats = sending.deliveries_send_range(campaign_id=campaign.pk, min_id=chunk[0], max_id=chunk[-1])
                    bar.update(len(chunk))
                    if stats.stopped:
                        self.stderr.write(f"stopped: {stats.stopped}")
                        break
                lifecycle.campaign_complete_if_done(campaign_id=campaign.pk)
        progress = selectors.campaign_progress(campaign=campaign)
        campaign.refresh_from_db()
        self.stdout.write(
            f"campaign {campaign.pk} {campaign.get_status_display().lower()}: sent {progress['sent']}, "
            f"withheld {progress['withheld']}, skipped {progress['skipped']}, failed {progress['failed']}, "
            f"waiting {progress['pending'] + progress['sending']}"
        )
