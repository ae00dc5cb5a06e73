"""Custom-audience files: normalisation and hashing against known vectors (computed
with coreutils' sha256sum, not with the code under test), consenting customers
only, the command, and the admin action behind its own permission."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from campaigns import audiences
from campaigns.models import Segment, Suppression
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# printf '%s' VALUE | sha256sum
SHA256 = {
    "test@example.com": "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b",
    "john.smith@gmail.com": "d0c648bc36f12061bec770df216cea2ab95851b9350fd54b658de53b0407767a",
    "johnsmith@gmail.com": "3586de92bb3636d0885a12eff961429a32e4ebd764b96f50d85d016f9338d586",
    "+442079460958": "f0bf0228144d9fe2bdf1da2d8ca698f17bf1410ee688b075c27062e47b6f0b6d",
    "442079460958": "35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823",
}


@pytest.mark.parametrize(
    "raw, platform, expected",
    [
        ("  Test@Example.COM ", "meta", "test@example.com"),
        ("  Test@Example.COM ", "google", "test@example.com"),
        ("John.Smith@Gmail.com", "meta", "john.smith@gmail.com"),  # Meta: trim and lower-case only
        ("John.Smith@Gmail.com", "google", "johnsmith@gmail.com"),  # Google: no dots before @gmail.com
        ("j.o.h.n@googlemail.com", "google", "john@googlemail.com"),
        ("john.smith+news@example.com", "google", "john.smith+news@example.com"),  # only gmail's dots
        ("not an address", "meta", None),
        ("", "google", None),
    ],
)
def test_email_normalisation(raw, platform, expected):
    assert audiences.email_normalise(raw, platform=platform) == expected


@pytest.mark.parametrize(
    "raw, platform, expected",
    [
        ("+44 20 7946 0958", "meta", "442079460958"),
        ("+44 (20) 7946-0958", "google", "+442079460958"),
        ("0044 20 7946 0958", "google", "+442079460958"),
        ("020 7946 0958", "meta", None),  # no country code: not E.164
        ("+44 20 79", "meta", None),  # too short
        ("+0 123 456 789", "meta", None),
    ],
)
def test_phone_normalisation(raw, platform, expected):
    assert audiences.phone_normalise(raw, platform=platform) == expected


def test_hashes_match_known_vectors():
    for value, digest in SHA256.items():
        assert audiences.sha256_hex(value) == digest
    meta = audiences.sha256_hex(audiences.email_normalise(" John.Smith@GMAIL.com", platform="meta"))
    google = audiences.sha256_hex(audiences.email_normalise(" John.Smith@GMAIL.com", platform="google"))
    assert (meta, google) == (SHA256["john.smith@gmail.com"], SHA256["johnsmith@gmail.com"])
    phone = audiences.phone_normalise("+44 20 7946 0958", platform="google")
    assert audiences.sha256_hex(phone) == SHA256["+442079460958"]


def test_unknown_platform_is_named():
    with pytest.raises(audiences.AudienceError, match="unknown platform 'tiktok': use one of google, meta"):
        audiences.email_normalise("a@b.co", platform="tiktok")


@pytest.fixture
def segment():
    UserFactory(email="Test@Example.com", marketing_consent=True)
    UserFactory(email="john.smith@gmail.com", marketing_consent=True)
    UserFactory(email="no-consent@example.com", marketing_consent=False)
    UserFactory(email="gone@example.com", marketing_consent=True, is_active=False)
    UserFactory(email="unsubscribed@example.com", marketing_consent=True)
    Suppression.objects.create(email="unsubscribed@example.com", reason=Suppression.Reason.UNSUBSCRIBED)
    # consent is part of the export, not only of the rules: this segment ignores it
    return Segment.objects.create(name="Everyone in the UK", rules={"rule": "country", "in": ["United Kingdom"]})


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_file_holds_consenting_customers_only_hashed(segment):
    out = io.StringIO()
    n = audiences.audience_write(segment=segment, platform="meta", out=out)
    rows = _rows(out.getvalue())
    assert rows[0] == ["email"] and n == 2
    assert sorted(r[0] for r in rows[1:]) == sorted([SHA256["test@example.com"], SHA256["john.smith@gmail.com"]])
    assert "@" not in out.getvalue()  # nothing in clear
    out = io.StringIO()
    audiences.audience_write(segment=segment, platform="google", out=out)
    rows = _rows(out.getvalue())
    assert rows[0] == ["Email"]
    assert SHA256["johnsmith@gmail.com"] in {r[0] for r in rows[1:]}


def test_the_command(segment, tmp_path, capsys):
    path = tmp_path / "audience.csv"
    call_command("audience_export", str(segment.pk), "--platform", "google", "--output", str(path))
    assert _rows(path.read_text())[0] == ["Email"] and len(_rows(path.read_text())) == 3
    assert "2 hashed email(s) of consenting customers" in capsys.readouterr().err
    call_command("audience_export", "Everyone in the UK")
    assert capsys.readouterr().out.startswith("email\n")
    with pytest.raises(CommandError, match="no segment with id or name 'nope'"):
        call_command("audience_export", "nope")


def test_the_admin_action_needs_its_own_permission(client, segment):
    staff = UserFactory(email="marketer@example.com", is_staff=True, marketing_consent=False)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_segment", "change_segment"]))
    client.force_login(staff)
    changelist = client.get("/admin/campaigns/segment/")
    assert changelist.status_code == 200 and "export_audience_meta" not in changelist.content.decode()
    post = {"action": "export_audience_meta", "_selected_action": [segment.pk]}
    refused = client.post("/admin/campaigns/segment/", post)
    assert refused.get("Content-Type", "").startswith("text/html")  # no file: the action is not offered
    staff.user_permissions.add(Permission.objects.get(codename="export_audience"))
    client.force_login(staff)
    assert "export_audience_meta" in client.get("/admin/campaigns/segment/").content.decode()
    response = client.post("/admin/campaigns/segment/", post)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audience-meta-everyone-in-the-uk.csv"'
    rows = _rows(response.content.decode())
    assert rows[0] == ["email"] and len(rows) == 3
