"""The running counts of the analysis views answer exactly what counting every item would.

Random event streams (turns and their replies, up to hours later; conversations started, handed
off before or after their first message; tickets created, re-prioritised, solved, reopened and
closed; out of time order) are folded into the views; each headline metric must equal a
brute-force count over the per-item views or the events.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from backend_services.analysis.metrics import compute
from backend_services.analysis.periods import window
from backend_services.analysis.views import AnalysisViews
from events.envelope import Envelope
from tests.services.analysis.test_analysis import ev

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
PERIODS = ("today", "yesterday", "this_week", "last_week", "this_month", "last_month", "all")
PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("open", "pending", "solved", "open", "closed")


def random_stream(rng: random.Random, size: int) -> list[Envelope]:
    """``size`` events spread over the 40 days before ``NOW``, in a shuffled-ish order."""
    events: list[Envelope] = []
    messages: list[Envelope] = []
    tickets = 0
    for _ in range(size):
        when = NOW - timedelta(minutes=rng.randrange(40 * 24 * 60))
        conv = f"c{rng.randrange(size // 3 + 1)}"
        roll = rng.random()
        if roll < 0.25:
            messages.append(ev("message.received", {"text": "hi"}, when, conv))
            events.append(messages[-1])
        elif roll < 0.35 and messages:  # a reply (sometimes a second one) to an earlier turn
            turn = rng.choice(messages)
            later = turn.occurred_at + timedelta(seconds=rng.uniform(0.0, 6 * 3600.0))
            events.append(ev("reply", {"text": "ok"}, later, conv, correlation=turn.correlation_id))
        elif roll < 0.45:
            kind = rng.choice(["handoff.requested", "handoff.started", "ticket.escalated"])
            events.append(ev(kind, {"ticket": rng.randrange(1, tickets + 2)}, when, conv))
        elif roll < 0.65:
            tickets += 1
            payload = {"ticket": tickets, "priority": rng.choice(PRIORITIES), "status": "open"}
            events.append(ev("ticket.created", payload, when, conv))
        else:
            number = rng.randrange(1, tickets + 2)  # sometimes a ticket never created
            kind = rng.choice(["ticket.status_changed", "ticket.closed", "ticket.commented"])
            payload: dict[str, object] = {"ticket": number}
            if rng.random() < 0.5:
                payload["priority"] = rng.choice(PRIORITIES)
            if kind == "ticket.status_changed":
                payload["new_status"] = rng.choice(STATUSES)
            events.append(ev(kind, payload, when, conv))
    return events


def reply_latencies(stream: list[Envelope], period: str) -> list[float]:
    """Seconds from each turn's message to its first reply, for replies in the period."""
    win = window(period, NOW)  # type: ignore[arg-type]
    started: dict[uuid.UUID, datetime] = {}
    values: list[float] = []
    for env in stream:
        if env.type == "message.received":
            started.setdefault(env.correlation_id, env.occurred_at)
        elif env.type == "reply" and (at := started.pop(env.correlation_id, None)) is not None:
            if env.occurred_at in win:
                values.append(max((env.occurred_at - at).total_seconds(), 0.0))
    return values


def brute_force(views: AnalysisViews, period: str) -> dict[str, object]:
    """The headline numbers counted item by item."""
    win = window(period, NOW)  # type: ignore[arg-type]
    started = [k for k, at in views.conversation_start.items() if at in win]
    opened = [t for t in views.tickets.values() if t.created_at and t.created_at in win]
    return {
        "conversations": len(started),
        "handed_off": sum(1 for k in started if k in views.handed_off),
        "opened": len(opened),
        "by_priority": dict(Counter(t.priority for t in opened)),
        "open_now": dict(Counter(t.priority for t in views.tickets.values() if t.is_open)),
    }


@pytest.mark.parametrize("seed", range(8))
def test_running_counts_equal_counting_every_item(seed: int) -> None:
    rng = random.Random(seed)
    views = AnalysisViews()
    stream = random_stream(rng, 600)
    for seq, env in enumerate(stream, start=1):
        views.apply(seq, env)
    assert views.tickets and views.handed_off and views.latencies  # all of it exercised
    for period in PERIODS:
        expected = brute_force(views, period)
        win = window(period, NOW)  # type: ignore[arg-type]
        conversations = compute("conversations", views, win).data
        contained = compute("containment", views, win).data
        opened = compute("tickets_opened", views, win).data
        open_now = compute("open_tickets", views, win).data
        assert conversations["conversations"] == expected["conversations"], period
        assert contained["conversations"] == expected["conversations"], period
        assert contained["handed_off"] == expected["handed_off"], period
        assert opened["opened"] == expected["opened"], period
        assert opened["by_priority"] == expected["by_priority"], period
        assert open_now["by_priority"] == expected["open_now"]
        latencies = reply_latencies(stream, period)
        latency = compute("reply_latency", views, win).data
        assert latency["replies"] == len(latencies), period
        if latencies:
            assert latency["p50"] == pytest.approx(float(np.percentile(latencies, 50)))
            assert latency["p99"] == pytest.approx(float(np.percentile(latencies, 99)))


def test_ticket_series_counts_each_ticket_once_per_creation_day() -> None:
    views = AnalysisViews()
    created = NOW - timedelta(days=1, hours=3)
    stream = [
        ev("ticket.created", {"ticket": 7, "priority": "low"}, created, "c"),
        ev("ticket.status_changed", {"ticket": 7, "priority": "urgent"}, NOW, "c"),
        ev("ticket.closed", {"ticket": 7}, NOW, "c"),
    ]
    for seq, env in enumerate(stream, start=1):
        views.apply(seq, env)
    answer = compute("tickets_opened", views, window("this_week", NOW))
    assert answer.data == {"opened": 1, "by_priority": {"urgent": 1}}
    assert dict(answer.series)[created.date().isoformat()] == 1.0
    assert sum(v for _, v in answer.series) == 1.0
    assert compute("open_tickets", views, window("today", NOW)).value == 0.0
