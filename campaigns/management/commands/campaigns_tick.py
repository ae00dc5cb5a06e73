"""Run the campaigns' periodic work once (what the scheduler runs every 2 minutes):
launch due campaigns, evaluate triggers, pick up stalled sending, complete finished
campaigns, attribute orders. For cron-style deployments without celery beat."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from campaigns import tasks


class Command(BaseCommand):
    help = "Launch due campaigns, evaluate triggers, resume stalled sending, attribute orders (once)."

    def handle(self, *args, **options):
        result = tasks.campaigns_tick_task()  # the periodic task's work, in this process
        self.stdout.write(
            f"launched {result['launched']}, new triggered deliveries {result['triggered']}, "
            f"resumed {result['resumed']}, completed {result['completed']}, attributed orders {result['attributed']}"
        )
