"""Metric answers computed from the views for a window: numbers, a sentence and chart data.

Each function is pure (views + window -> ``MetricAnswer``); the service gathers them
concurrently and renders charts from ``series``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from backend_services.analysis.periods import Window
from backend_services.analysis.views import AnalysisViews

Metric = Literal[
    "conversations",
    "tickets_opened",
    "open_tickets",
    "top_intents",
    "fallback_rate",
    "containment",
    "csat",
    "reply_latency",
    "first_response",
    "resolution_time",
    "sla_breaches",
]

PRIORITY_ORDER = ("urgent", "high", "normal", "low")


class MetricAnswer(BaseModel):
    """One metric for one window."""

    metric: str
    period: str
    value: float | None = Field(description="The headline number (None: no data)")
    unit: str = ""
    text: str
    data: dict[str, Any] = Field(default_factory=dict)
    series_title: str = ""
    series: list[tuple[str, float]] = Field(
        default_factory=list, description="(label, value) pairs to chart"
    )


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def duration_text(seconds: float) -> str:
    """``42 s``, ``5m 3s``, ``2h 5m``, ``3d 4h``."""
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    minutes, sec = divmod(s, 60)
    if minutes < 60:
        return f"{minutes}m {sec}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def _days(window: Window, stamps: Iterable[datetime]) -> list[str]:
    """The day labels a per-day series covers (the window, or the data's span for ``all``)."""
    stamps = list(stamps)
    if window.period == "all":
        if not stamps:
            return []
        first, last = min(stamps).date(), max(stamps).date()
    else:
        first, last = window.start.date(), (window.end - timedelta(seconds=1)).date()
    span = min((last - first).days, 92)
    start = last - timedelta(days=span)
    return [(start + timedelta(days=i)).isoformat() for i in range(span + 1)]


def _per_day(window: Window, counts: dict[datetime, int]) -> list[tuple[str, float]]:
    inside = {h: n for h, n in counts.items() if h in window}
    per_day: Counter[str] = Counter()
    for hour, n in inside.items():
        per_day[hour.date().isoformat()] += n
    return [(d, float(per_day.get(d, 0))) for d in _days(window, inside)]


def _total(window: Window, counts: dict[datetime, int]) -> int:
    """The sum of the hourly ``counts`` inside ``window``."""
    return sum(n for h, n in counts.items() if h in window)


def conversations(views: AnalysisViews, window: Window) -> MetricAnswer:
    """Conversations started and messages received in the window."""
    started = _total(window, views.conversations_started)
    messages = _total(window, views.messages)
    return MetricAnswer(
        metric="conversations",
        period=window.period,
        value=float(started),
        text=(
            f"{_plural(started, 'conversation')} started {window.label}, "
            f"with {_plural(messages, 'message')} received."
        ),
        data={"conversations": started, "messages": messages},
        series_title="Messages per day",
        series=_per_day(window, views.messages),
    )


def tickets_opened(views: AnalysisViews, window: Window) -> MetricAnswer:
    """Tickets created in the window, by priority."""
    by_priority: Counter[str] = Counter()
    per_hour: dict[datetime, int] = {}
    for hour, priorities in views.tickets_created.items():
        if hour in window and (n := sum(priorities.values())):
            by_priority.update(priorities)
            per_hour[hour] = n
    opened = sum(per_hour.values())
    detail = ", ".join(f"{by_priority[p]} {p}" for p in _priorities(by_priority))
    verb = "was" if opened == 1 else "were"
    text = f"{_plural(opened, 'ticket')} {verb} opened {window.label}"
    return MetricAnswer(
        metric="tickets_opened",
        period=window.period,
        value=float(opened),
        text=f"{text} ({detail})." if opened else f"{text}.",
        data={"opened": opened, "by_priority": dict(+by_priority)},
        series_title="Tickets opened per day",
        series=_per_day(window, per_hour),
    )


def _priorities(counter: Counter[str]) -> list[str]:
    known = [p for p in PRIORITY_ORDER if counter.get(p)]
    return known + sorted(p for p in counter if p not in PRIORITY_ORDER and counter[p])


def open_tickets(views: AnalysisViews, window: Window) -> MetricAnswer:
    """Tickets open right now, by priority (the window does not apply)."""
    open_now = +views.open_by_priority
    total = sum(open_now.values())
    detail = ", ".join(f"{open_now[p]} {p}" for p in _priorities(open_now))
    verb = "is" if total == 1 else "are"
    return MetricAnswer(
        metric="open_tickets",
        period="now",
        value=float(total),
        text=f"{_plural(total, 'ticket')} {verb} open now" + (f": {detail}." if total else "."),
        data={"open": total, "by_priority": dict(open_now)},
        series_title="Open tickets by priority",
        series=[(p, float(open_now[p])) for p in _priorities(open_now)],
    )


def top_intents(views: AnalysisViews, window: Window, top: int = 5) -> MetricAnswer:
    """The most frequent detected intents."""
    counts: Counter[str] = Counter()
    for hour, per_intent in views.intents.items():
        if hour in window:
            counts.update(per_intent)
    total = sum(counts.values())
    ranked = counts.most_common(top)
    if not ranked:
        text = f"No intents were detected {window.label}."
    else:
        parts = ", ".join(f"{name} ({n}, {n / total:.0%})" for name, n in ranked)
        text = f"Top intents {window.label}: {parts} — of {_plural(total, 'detected intent')}."
    return MetricAnswer(
        metric="top_intents",
        period=window.period,
        value=float(total),
        text=text,
        data={"total": total, "top": [{"intent": k, "count": v} for k, v in ranked]},
        series_title="Top intents",
        series=[(k, float(v)) for k, v in ranked],
    )


def fallback_rate(views: AnalysisViews, window: Window) -> MetricAnswer:
    """Share of detected intents that were a fallback (not understood)."""
    detected = sum(n for h, n in views.detections.items() if h in window)
    fallbacks = sum(n for h, n in views.fallbacks.items() if h in window)
    rate = fallbacks / detected if detected else None
    text = (
        f"The fallback rate {window.label} is {rate:.1%} ({fallbacks} of "
        f"{_plural(detected, 'message')} not understood)."
        if rate is not None
        else f"No messages were understood or misunderstood {window.label}: no fallback rate yet."
    )
    daily_total = dict(_per_day(window, views.detections))
    daily_fb = dict(_per_day(window, views.fallbacks))
    return MetricAnswer(
        metric="fallback_rate",
        period=window.period,
        value=rate,
        unit="ratio",
        text=text,
        data={"detected": detected, "fallbacks": fallbacks},
        series_title="Fallback rate per day (%)",
        series=[(d, 100.0 * daily_fb.get(d, 0) / n) for d, n in daily_total.items() if n],
    )


def containment(views: AnalysisViews, window: Window) -> MetricAnswer:
    """Share of conversations (started in the window) that never needed a human."""
    total = _total(window, views.conversations_started)
    handed = _total(window, views.handed_off_started)
    rate = (total - handed) / total if total else None
    text = (
        f"Containment {window.label} is {rate:.1%}: {total - handed} of "
        f"{_plural(total, 'conversation')} resolved without a human."
        if rate is not None
        else f"No conversations started {window.label}: no containment yet."
    )
    return MetricAnswer(
        metric="containment",
        period=window.period,
        value=rate,
        unit="ratio",
        text=text,
        data={"conversations": total, "handed_off": handed, "contained": total - handed},
        series_title="Conversations",
        series=[("contained", float(total - handed)), ("handed off", float(handed))],
    )


def csat(views: AnalysisViews, window: Window) -> MetricAnswer:
    """Average customer satisfaction (1-5) of ratings given in the window."""
    scores = [s for at, s in views.csat if at in window]
    dist = Counter(scores)
    if not scores:
        return MetricAnswer(
            metric="csat",
            period=window.period,
            value=None,
            text=f"No CSAT ratings were given {window.label}.",
            data={"ratings": 0},
        )
    mean = sum(scores) / len(scores)
    satisfied = sum(1 for s in scores if s >= 4) / len(scores)
    return MetricAnswer(
        metric="csat",
        period=window.period,
        value=round(mean, 2),
        unit="score",
        text=(
            f"CSAT {window.label} is {mean:.2f} / 5 from {_plural(len(scores), 'rating')} "
            f"({satisfied:.0%} satisfied)."
        ),
        data={"ratings": len(scores), "mean": mean, "satisfied": satisfied, "by_score": dict(dist)},
        series_title="CSAT ratings",
        series=[(str(s), float(dist.get(s, 0))) for s in range(1, 6)],
    )


def _percentiles(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(arr.mean())}


def _histogram(values: Sequence[float] | np.ndarray, bins: int = 10) -> list[tuple[str, float]]:
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    return [(f"{edges[i]:.2g}-{edges[i + 1]:.2g}", float(c)) for i, c in enumerate(counts.tolist())]


def reply_latency(views: AnalysisViews, window: Window) -> MetricAnswer:
    """Time from a user's message to the first reply of the same turn: percentiles."""
    inside = [np.frombuffer(v, dtype=float) for h, v in views.latencies.items() if h in window]
    values = np.concatenate(inside) if inside else np.empty(0)
    if not values.size:
        return MetricAnswer(
            metric="reply_latency",
            period=window.period,
            value=None,
            text=f"No replies were measured {window.label}.",
            data={"replies": 0},
        )
    p = _percentiles(values)
    return MetricAnswer(
        metric="reply_latency",
        period=window.period,
        value=p["p50"],
        unit="seconds",
        text=(
            f"Reply latency {window.label}: p50 {duration_text(p['p50'])}, p90 "
            f"{duration_text(p['p90'])}, p99 {duration_text(p['p99'])} over "
            f"{_plural(len(values), 'reply', 'replies')}."
        ),
        data={"replies": len(values), **p},
        series_title="Reply latency (s)",
        series=_histogram(values),
    )


def _ticket_durations(
    views: AnalysisViews,
    window: Window,
    metric: str,
    what: str,
    measure: Callable[[Any], float | None],
) -> MetricAnswer:
    created = [t for t in views.tickets.values() if t.created_at and t.created_at in window]
    values = [v for t in created if (v := measure(t)) is not None]
    waiting = len(created) - len(values)
    if not values:
        return MetricAnswer(
            metric=metric,
            period=window.period,
            value=None,
            text=(
                f"No ticket opened {window.label} has had a {what} yet"
                f" ({_plural(len(created), 'ticket')} opened)."
            ),
            data={"tickets": len(created), "measured": 0, "waiting": waiting},
        )
    p = _percentiles(values)
    return MetricAnswer(
        metric=metric,
        period=window.period,
        value=p["p50"],
        unit="seconds",
        text=(
            f"Median time to {what} for tickets opened {window.label}: "
            f"{duration_text(p['p50'])} (mean {duration_text(p['mean'])}, p90 "
            f"{duration_text(p['p90'])}) over {_plural(len(values), 'ticket')}; "
            f"{waiting} still waiting."
        ),
        data={"tickets": len(created), "measured": len(values), "waiting": waiting, **p},
        series_title=f"Time to {what} (s)",
        series=_histogram(values),
    )


def first_response(views: AnalysisViews, window: Window) -> MetricAnswer:
    """Time from ticket creation to the first public staff comment."""
    return _ticket_durations(
        views, window, "first_response", "first response", lambda t: t.first_response_seconds()
    )


def resolution_time(views: AnalysisViews, window: Window) -> MetricAnswer:
    """Time from ticket creation to its first solve or close."""
    return _ticket_durations(
        views, window, "resolution_time", "resolution", lambda t: t.resolution_seconds()
    )


def sla_breaches(views: AnalysisViews, window: Window) -> MetricAnswer:
    """SLA breaches detected in the window, by kind."""
    inside = [(at, n, k) for at, n, k in views.sla_breaches if at in window]
    kinds = Counter(k for _, _, k in inside)
    detail = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
    verb = "was" if len(inside) == 1 else "were"
    text = f"{_plural(len(inside), 'SLA breach', 'SLA breaches')} {verb} detected {window.label}"
    per_hour: Counter[datetime] = Counter()
    for at, _, _ in inside:
        per_hour[at.replace(minute=0, second=0, microsecond=0)] += 1
    return MetricAnswer(
        metric="sla_breaches",
        period=window.period,
        value=float(len(inside)),
        text=f"{text} ({detail})." if inside else f"{text}.",
        data={
            "breaches": len(inside),
            "by_kind": dict(kinds),
            "tickets": len({n for _, n, _ in inside}),
        },
        series_title="SLA breaches per day",
        series=_per_day(window, per_hour),
    )


CALCULATORS: dict[str, Callable[..., MetricAnswer]] = {
    "conversations": conversations,
    "tickets_opened": tickets_opened,
    "open_tickets": open_tickets,
    "top_intents": top_intents,
    "fallback_rate": fallback_rate,
    "containment": containment,
    "csat": csat,
    "reply_latency": reply_latency,
    "first_response": first_response,
    "resolution_time": resolution_time,
    "sla_breaches": sla_breaches,
}


def compute(metric: str, views: AnalysisViews, window: Window, top: int = 5) -> MetricAnswer:
    """The answer of ``metric`` for ``window``."""
    if metric == "top_intents":
        return top_intents(views, window, top)
    return CALCULATORS[metric](views, window)
