"""The analysis views: a pure projection of the ``FD_EVENTS`` stream.

``AnalysisViews.apply(seq, envelope)`` folds one event in; nothing else changes the views, so
the same events in the same order always give the same views (``snapshot()`` compares them).
Counts are kept in hourly UTC buckets, which makes every day/week/month period exact; ticket
facts and conversations are kept per item too, reply latencies as compact per-hour arrays
(8 bytes a reply). What the headline questions count (conversations started, of those handed
off, tickets opened by priority, tickets open now) is also kept as running counts updated by
``apply``, so answering them costs the number of hours in the period, not the number of
conversations or tickets ever seen.

Events read (unknown types and fields are ignored):
- ``message.received``: conversation volume, conversation start, reply-latency start.
- ``reply``: the first reply with a turn's correlation id ends its reply latency.
- ``intent.detected``: intent distribution and fallback rate (``is_fallback``).
- ``handoff.*`` and ``ticket.escalated``: the conversation was not contained.
- ``ticket.created|status_changed|commented|closed|csat|sla_breached``: ticket KPIs (payload
  ``ticket`` or ``number``, ``priority``, ``status``/``new_status``, ``by_staff``/``public`` on
  comments, ``score`` on CSAT, ``kind`` on SLA breaches; times are the envelopes' occurred_at).
"""

from __future__ import annotations

from array import array
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.envelope import Envelope

RESOLVED_STATUSES = frozenset({"solved", "resolved", "closed"})
#: Turns waiting for their first reply are kept up to this many (oldest dropped first).
MAX_PENDING_TURNS = 100_000


def hour_of(at: datetime) -> datetime:
    """The UTC hour bucket ``at`` falls in."""
    return at.replace(minute=0, second=0, microsecond=0)


@dataclass
class TicketFacts:
    """What the events told about one ticket."""

    number: str
    priority: str = "normal"
    status: str = "open"
    created_at: datetime | None = None
    requester: str | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """Not solved or closed."""
        return self.status not in RESOLVED_STATUSES

    def first_response_seconds(self) -> float | None:
        """Seconds from creation to the first public staff comment."""
        if self.created_at and self.first_response_at:
            return (self.first_response_at - self.created_at).total_seconds()
        return None

    def resolution_seconds(self) -> float | None:
        """Seconds from creation to the first solve/close."""
        if self.created_at and self.resolved_at:
            return (self.resolved_at - self.created_at).total_seconds()
        return None


def _ticket_number(payload: dict[str, Any]) -> str | None:
    raw = payload.get("ticket", payload.get("number"))
    if raw is None or isinstance(raw, dict | list):
        return None
    return str(raw).lstrip("#")


@dataclass
class AnalysisViews:
    """Every view the analysis service answers from, built by ``apply``."""

    last_seq: int = 0
    events: int = 0
    messages: Counter[datetime] = field(default_factory=Counter)
    conversation_start: dict[str, datetime] = field(default_factory=dict)
    handed_off: set[str] = field(default_factory=set)
    intents: dict[datetime, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    fallbacks: Counter[datetime] = field(default_factory=Counter)
    detections: Counter[datetime] = field(default_factory=Counter)
    pending_turns: OrderedDict[str, datetime] = field(default_factory=OrderedDict)
    #: reply latencies (seconds) by the hour of the reply: 8 bytes each, not a Python object
    latencies: dict[datetime, array[float]] = field(default_factory=dict)
    tickets: dict[str, TicketFacts] = field(default_factory=dict)
    #: conversations started per hour, and of those the ones handed off (at any time)
    conversations_started: Counter[datetime] = field(default_factory=Counter)
    handed_off_started: Counter[datetime] = field(default_factory=Counter)
    #: tickets created per hour by their current priority; tickets open now by priority
    tickets_created: dict[datetime, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    open_by_priority: Counter[str] = field(default_factory=Counter)
    csat: list[tuple[datetime, int]] = field(default_factory=list)
    sla_breaches: list[tuple[datetime, str, str]] = field(default_factory=list)

    def apply(self, seq: int, env: Envelope) -> None:
        """Fold the event at ``seq`` in (events at or below ``last_seq`` are ignored)."""
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        self.events += 1
        kind = env.type
        if kind == "message.received":
            self._message(env)
        elif kind == "reply":
            self._reply(env)
        elif kind == "intent.detected":
            self._intent(env)
        elif kind.startswith("handoff.") or kind == "ticket.escalated":
            self._handed_off(_conv_key(env))
        if kind.startswith("ticket."):
            self._ticket(env)

    # -- conversations ------------------------------------------------------------------------

    def _message(self, env: Envelope) -> None:
        at = env.occurred_at
        self.messages[hour_of(at)] += 1
        conv = _conv_key(env)
        if conv not in self.conversation_start:
            self.conversation_start[conv] = at
            self.conversations_started[hour_of(at)] += 1
            if conv in self.handed_off:
                self.handed_off_started[hour_of(at)] += 1
        key = str(env.correlation_id)
        if key not in self.pending_turns:
            self.pending_turns[key] = at
            if len(self.pending_turns) > MAX_PENDING_TURNS:
                self.pending_turns.popitem(last=False)

    def _handed_off(self, conv: str) -> None:
        if conv in self.handed_off:
            return
        self.handed_off.add(conv)
        if (start := self.conversation_start.get(conv)) is not None:
            self.handed_off_started[hour_of(start)] += 1

    def _reply(self, env: Envelope) -> None:
        started = self.pending_turns.pop(str(env.correlation_id), None)
        if started is not None:
            seconds = max((env.occurred_at - started).total_seconds(), 0.0)
            hour = hour_of(env.occurred_at)
            values = self.latencies.get(hour)
            if values is None:
                values = self.latencies[hour] = array("d")
            values.append(seconds)

    def _intent(self, env: Envelope) -> None:
        hour = hour_of(env.occurred_at)
        name = str(env.payload.get("intent") or "unknown")
        self.detections[hour] += 1
        self.intents[hour][name] += 1
        if env.payload.get("is_fallback"):
            self.fallbacks[hour] += 1

    # -- tickets --------------------------------------------------------------------------------

    def _ticket(self, env: Envelope) -> None:
        payload = env.payload
        number = _ticket_number(payload)
        if number is None:
            return
        at = env.occurred_at
        kind = env.type
        if kind == "ticket.csat":
            score = payload.get("score", payload.get("rating"))
            if isinstance(score, int | float) and 1 <= score <= 5:
                self.csat.append((at, int(score)))
            return
        if kind == "ticket.sla_breached":
            self.sla_breaches.append((at, number, str(payload.get("kind") or "unknown")))
            return
        facts = self.tickets.get(number)
        before: tuple[str, bool] | None = None
        if facts is None:
            if kind != "ticket.created":
                return  # its creation is older than the stream's retention
            facts = self.tickets[number] = TicketFacts(
                number=number, created_at=at, requester=env.actor.id
            )
        else:
            before = (facts.priority, facts.is_open)
        self._update_ticket(facts, env)
        self._recount_ticket(facts, before)

    def _update_ticket(self, facts: TicketFacts, env: Envelope) -> None:
        payload = env.payload
        at = env.occurred_at
        kind = env.type
        if priority := payload.get("priority"):
            facts.priority = str(priority)
        status = payload.get("new_status") or payload.get("status")
        if kind == "ticket.closed":
            status = "closed"
        if status:
            facts.status = str(status)
            if facts.status in RESOLVED_STATUSES and facts.resolved_at is None:
                facts.resolved_at = at
            if facts.status == "closed" and facts.closed_at is None:
                facts.closed_at = at
        if kind == "ticket.commented" and facts.first_response_at is None:
            public = payload.get("public", True)
            staff = payload.get("by_staff")
            if staff is None:
                staff = env.actor.has_any({"agent", "admin"}) or env.actor.id != facts.requester
            if public and staff:
                facts.first_response_at = at

    def _recount_ticket(self, facts: TicketFacts, before: tuple[str, bool] | None) -> None:
        """Move ``facts`` in the running counts from ``before`` (priority, open; ``None``: new)."""
        after = (facts.priority, facts.is_open)
        if before == after or facts.created_at is None:
            return
        created = self.tickets_created[hour_of(facts.created_at)]
        if before is not None:
            _decrement(created, before[0])
            if before[1]:
                _decrement(self.open_by_priority, before[0])
        created[after[0]] += 1
        if after[1]:
            self.open_by_priority[after[0]] += 1

    # -- comparison -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the views hold, as plain sorted data (equal views <=> equal snapshots)."""

        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        return {
            "last_seq": self.last_seq,
            "events": self.events,
            "messages": sorted((iso(h), n) for h, n in self.messages.items()),
            "conversations": sorted((k, iso(v)) for k, v in self.conversation_start.items()),
            "handed_off": sorted(self.handed_off),
            "intents": sorted((iso(h), sorted(c.items())) for h, c in self.intents.items() if c),
            "fallbacks": sorted((iso(h), n) for h, n in self.fallbacks.items()),
            "detections": sorted((iso(h), n) for h, n in self.detections.items()),
            "pending_turns": sorted((k, iso(v)) for k, v in self.pending_turns.items()),
            "latencies": sorted((iso(h), list(v)) for h, v in self.latencies.items()),
            "tickets": sorted(
                (
                    t.number,
                    t.priority,
                    t.status,
                    iso(t.created_at),
                    iso(t.first_response_at),
                    iso(t.resolved_at),
                    iso(t.closed_at),
                )
                for t in self.tickets.values()
            ),
            "conversations_started": sorted(
                (iso(h), n) for h, n in self.conversations_started.items()
            ),
            "handed_off_started": sorted((iso(h), n) for h, n in self.handed_off_started.items()),
            "tickets_created": sorted(
                (iso(h), sorted(c.items())) for h, c in self.tickets_created.items() if c
            ),
            "open_by_priority": sorted(self.open_by_priority.items()),
            "csat": [(iso(at), s) for at, s in self.csat],
            "sla_breaches": [(iso(at), n, k) for at, n, k in self.sla_breaches],
        }


def _conv_key(env: Envelope) -> str:
    return f"{env.conversation.channel}:{env.conversation.id}"


def _decrement(counter: Counter[str], key: str) -> None:
    """One less ``key`` in ``counter``; a key that reaches zero is removed (never listed)."""
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
