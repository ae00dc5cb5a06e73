"""The fast serialisation of campaign emails says what Django's would say."""

from __future__ import annotations

import email
from email import policy

import pytest
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import BadHeaderError

from campaigns.mime import CampaignEmail, PreparedMessage

LONG_URL = "https://shop.example.com/c/u/" + "t" * 90 + "/"
CASES = [
    ("Hello Ada", "Hi Ada\nUnsubscribe: x\n", "<p>Hi</p>", "ada@example.com"),
    ("Café — picks for Zoë", "Hello Zoë\n.dot line\nFrom here\r\nwindows\rmac\n", "<p>é</p>", "Zoë <zoe@example.com>"),
    ("Long lines", "short\n" + "y" * 1500 + "\n", "<p>" + "x" * 1200 + "é</p>", "long@example.com"),
    ("x" * 120 + " with a very long subject that needs folding", "t", "<b>h</b>", "a@b.example"),
    ("ASCII", "tab\tand trailing space \n", "", "bob@example.com"),
    ("Names", "t", "<p>h</p>", "J. Smith <j.smith@example.com>"),
    ("Names", "t", "<p>h</p>", "O'Brien-Smith <ob@example.com>"),
    ("Names", "t", "<p>h</p>", '"Smith, John" <js@example.com>'),
]


def build(cls, subject, text, html, to, extra=None):
    headers = {
        "Message-ID": "<1.2@affinity.example>",
        "Date": "Sat, 28 Nov 2026 16:08:56 -0000",
        "List-Unsubscribe": f"<mailto:u@shop.example.com?subject=unsubscribe-1>, <{LONG_URL}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Affinity-Delivery": "1",
        **(extra or {}),
    }
    msg = cls(
        subject=subject, body=text, from_email="Affinity Store <store@affinity.example>", to=[to], headers=headers
    )
    msg.attach_alternative(html, "text/html")
    return msg


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


@pytest.mark.parametrize(("subject", "text", "html", "to"), CASES)
def test_same_message_as_django(subject, text, html, to):
    ours = build(CampaignEmail, subject, text, html, to).message()
    assert isinstance(ours, PreparedMessage)
    raw = ours.as_bytes(linesep="\r\n")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    theirs = parse(build(EmailMultiAlternatives, subject, text, html, to).message().as_bytes(linesep="\r\n"))
    mine = parse(raw)
    for name in (
        "Subject",
        "From",
        "To",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "X-Affinity-Delivery",
        "MIME-Version",
    ):
        assert str(mine[name]).strip() == str(theirs[name]).strip(), name
    assert mine.get_content_type() == "multipart/alternative"
    for kind in ("plain", "html"):
        a, b = mine.get_body((kind,)), theirs.get_body((kind,))
        assert a.get_content() == b.get_content(), kind
        assert a["Content-Transfer-Encoding"] == b["Content-Transfer-Encoding"], kind
        assert a.get_content_charset() == "utf-8"


def test_headers_for_the_outbox_and_newlines_refused():
    msg = build(CampaignEmail, "Hi", "t", "<p>h</p>", "a@b.example").message()
    assert msg["Message-ID"] == "<1.2@affinity.example>" and "List-Unsubscribe-Post" in dict(msg.items())
    assert msg.as_bytes().count(b"\r\n") == 0
    with pytest.raises(BadHeaderError):
        build(CampaignEmail, "Hi\nBcc: victim@example.com", "t", "<p>h</p>", "a@b.example").message()


def test_other_shapes_fall_back_to_django():
    msg = build(CampaignEmail, "Hi", "t", "<p>h</p>", "a@b.example")
    msg.attach("note.txt", "hello", "text/plain")
    assert not isinstance(msg.message(), PreparedMessage)
