"""First-run set-up of the demo store: import the bundled real dataset when the
database is empty, make sure a staff login exists, and queue the first training."""

from __future__ import annotations

import os
import secrets

from django.core.management import call_command
from django.core.management.base import BaseCommand

from shop.models import Product, User


class Command(BaseCommand):
    help = "Seed an empty database with the Online Retail demo store and train first models."

    def handle(self, *args, **options):
        if Product.objects.exists():
            self.stdout.write("Catalogue present: not importing the demo data again.")
        else:
            self.stdout.write("Empty database: importing the Online Retail demo store ...")
            call_command("import_online_retail")
        email = os.environ.get("AFFINITY_ADMIN_EMAIL", "admin@affinity.example")
        if not User.objects.filter(is_staff=True).exists():
            password = os.environ.get("AFFINITY_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            User.objects.create_superuser(email=email, password=password)
            self.stdout.write(self.style.SUCCESS(f"Staff login created: {email} / {password}"))
        call_command("train", "--if-none", "--queue")
