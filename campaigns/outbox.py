"""The embedded email backend: messages are stored in the database (`OutboxMessage`)
and read in admin, instead of leaving the machine. Used when EMAIL_URL is unset.

It is *transactional*: a message is stored in the caller's database transaction, so
the campaign sender records "sent" in the same transaction and a crash can neither
lose nor duplicate an email.
"""

from __future__ import annotations

from email.utils import make_msgid

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage
from django.db import transaction
from django.utils import timezone

from .models import OutboxMessage

# Headers kept on the stored message (everything else is in the columns).
_SKIP = {"subject", "from", "to", "cc", "bcc", "reply-to", "content-type", "content-transfer-encoding", "mime-version"}


class OutboxEmailBackend(BaseEmailBackend):
    transactional = True  # see campaigns.sending: send and mark in one transaction

    def send_messages(self, email_messages) -> int:
        rows = []
        now = timezone.now()
        for message in email_messages or ():
            try:
                rows.append(self._row(message, now))
            except Exception:
                if not self.fail_silently:
                    raise
        if not rows:
            return 0
        with transaction.atomic():
            OutboxMessage.objects.bulk_create(rows)
        return len(rows)

    @staticmethod
    def _row(message: EmailMessage, now):
        mime = message.message()  # the same headers a real backend would send
        headers = {k: str(v) for k, v in mime.items() if k.lower() not in _SKIP}
        html = ""
        for content, mimetype in getattr(message, "alternatives", ()) or ():
            if mimetype == "text/html":
                html = content
        if message.content_subtype == "html":
            html, text = message.body, ""
        else:
            text = message.body
        message_id = headers.get("Message-ID") or make_msgid()
        return OutboxMessage(
            message_id=message_id,
            from_email=str(message.from_email),
            to=list(message.to),
            cc=list(message.cc),
            bcc=list(message.bcc),
            subject=str(message.subject),
            headers=headers,
            text=text,
            html=html,
            sent_at=now,
        )
