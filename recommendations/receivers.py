"""Signal receivers of the recommendations app (connected in ``apps.ready``)."""

from __future__ import annotations

from . import services


def on_user_forgotten(sender, user_id: int, **kwargs) -> None:
    """``shop.signals.user_forgotten``: drop what was derived from the customer."""
    services.user_data_forget(user_id=user_id)
