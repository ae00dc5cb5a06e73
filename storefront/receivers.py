"""A visitor who logs in (or signs up, which logs in) claims the shared and tagged
visits of their session: sign-ups and later orders are credited to the sharer."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from campaigns.social import visits_claim

from .middleware import SESSION_SHARES, SESSION_TAGGED


@receiver(user_logged_in, dispatch_uid="storefront.visits_claim")
def on_login(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    if session is None:
        return
    shares, tagged = session.get(SESSION_SHARES, []), session.get(SESSION_TAGGED, [])
    if shares or tagged:
        visits_claim(user=user, share_visit_ids=list(shares), tagged_visit_ids=list(tagged))
