"""THE bounds of an event's time, for every way an event comes in.

Pure (no Django): the API parser, the file importers and `shop.services.interactions`
all call `occurred_at_problem`. An event dated before `EVENTS_EARLIEST` or more than
a small skew after "now" is refused at the edge: one such row (year 1, say) used to
be stored and then broke training, admin pages, the API and the privacy export
(converting it to local time overflows). The database enforces the lower bound too
(constraint ``interaction_occurred_at_min``); PostgreSQL cannot check "now" in a
constraint, so the upper bound is checked here only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Fixed: the database constraint (migration shop.0005) holds the same value.
EVENTS_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
# Fixed, and far beyond any real event: the database refuses it (constraint
# interaction_occurred_at_max, migration shop.0008). The edge's bound is much nearer
# ("now" plus a skew); readers skip rows past that (Interaction.objects.settled()).
EVENTS_IMPOSSIBLE = datetime(2100, 1, 1, tzinfo=UTC)
# Default of settings.INTERACTION_MAX_FUTURE (clock skew of the clients).
DEFAULT_MAX_FUTURE = timedelta(minutes=5)


def occurred_at_problem(
    at: datetime, *, now: datetime, max_future: timedelta = DEFAULT_MAX_FUTURE
) -> tuple[str, str] | None:
    """``(code, message)``: why ``at`` (timezone-aware) cannot be an event's time, or
    None when it can."""
    if at < EVENTS_EARLIEST:
        return "too_early", f"is before {EVENTS_EARLIEST:%Y-%m-%d} UTC"
    if at > now + max_future:
        return "future", "is in the future"
    return None
