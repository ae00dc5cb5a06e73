"""Signals the store sends; other apps listen (shop never imports them)."""

from django.dispatch import Signal

# Sent inside the transaction that deletes a customer, before the row goes:
# kwargs ``user_id``. Listeners must drop anything derived from that customer.
user_forgotten = Signal()
