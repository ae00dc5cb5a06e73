"""First-run set-up of the demo store: import the bundled real dataset when the
database is empty, make sure a staff login exists, add the marketing examples
(`demo_examples`) and queue the first training."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from shop.models import Product, User

STAFF_LOGIN_FILE = "staff-login.txt"


def staff_login_write(*, email: str, password: str) -> Path:
    """The first staff login, in a file under var/ that only the owner can read: the
    line printed at set-up scrolls away, and `runstore` prints it again once started."""
    path = Path(settings.VAR_DIR) / STAFF_LOGIN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{email} / {password}\n")
    path.chmod(0o600)  # also when the file existed with wider rights
    return path


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
            path = staff_login_write(email=email, password=password)
            self.stdout.write(self.style.SUCCESS(f"Staff login created: {email} / {password} (kept in {path})"))
        # Example segments, templates, a sent campaign and a running experiment
        # (campaigns' command, by name: shop imports no upper layer).
        call_command("demo_examples")
        call_command("train", "--if-none", "--queue")
        # customers' predictions (churn risk, expected purchases, value) for their admin pages
        call_command("predict_customers", "--if-none", "--queue")
