"""What a forgotten customer leaves behind in the campaigns app."""

from __future__ import annotations

from shop.models import User

from .models import Delivery, OutboxMessage


def user_forget_campaign_data(*, user_id: int) -> None:
    """Listener of ``shop.signals.user_forgotten``: deliveries keep their counts for
    the reports but lose the address and the products shown; outbox copies go."""
    email = User.objects.filter(pk=user_id).values_list("email", flat=True).first()
    Delivery.objects.filter(user_id=user_id).update(email="", products=[], context={})
    if email:
        OutboxMessage.objects.filter(to=[email]).delete()
