"""Named periods (``today``, ``this_week``, ...) as half-open UTC windows ``[start, end)``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["today", "yesterday", "this_week", "last_week", "this_month", "last_month", "all"]

_LABELS: dict[str, str] = {
    "today": "today",
    "yesterday": "yesterday",
    "this_week": "this week",
    "last_week": "last week",
    "this_month": "this month",
    "last_month": "last month",
    "all": "in total",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """A half-open time window and how to say it in a sentence."""

    period: str
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        """``this week``, ``in total``, ..."""
        return _LABELS[self.period]

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end


def window(period: Period, now: datetime) -> Window:
    """The window of ``period`` around ``now`` (weeks start on Monday, UTC)."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    if period == "today":
        return Window(period, day, day + timedelta(days=1))
    if period == "yesterday":
        return Window(period, day - timedelta(days=1), day)
    if period == "this_week":
        return Window(period, week, week + timedelta(days=7))
    if period == "last_week":
        return Window(period, week - timedelta(days=7), week)
    if period == "this_month":
        nxt = (month + timedelta(days=32)).replace(day=1)
        return Window(period, month, nxt)
    if period == "last_month":
        prev = (month - timedelta(days=1)).replace(day=1)
        return Window(period, prev, month)
    return Window("all", _EPOCH, max(now, day) + timedelta(days=1))
