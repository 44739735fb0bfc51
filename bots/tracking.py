"""Turn tracking: which replies belong to a turn, and when the turn is complete.

A turn is complete when every immediate bot message it published (known ids) and a final
(non-``working``) answer to every intent it sent (replies caused by the intent id) have been
seen. Replies may be observed before the expectation is known (the bus can be faster than the
code that publishes), so both orders are handled.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from events.envelope import Envelope
from events.payloads import Reply


@dataclass
class ObservedReply:
    """A reply as seen on the bus."""

    seq: int
    envelope: Envelope
    reply: Reply


@dataclass
class TrackedTurn:
    """The replies of one turn seen so far, and what is still awaited."""

    correlation_id: uuid.UUID
    replies: list[ObservedReply] = field(default_factory=list)
    expected: bool = False
    pending_replies: set[uuid.UUID] = field(default_factory=set)
    pending_intents: set[uuid.UUID] = field(default_factory=set)
    seen_ids: set[uuid.UUID] = field(default_factory=set)
    answered_causes: set[uuid.UUID] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def complete(self) -> bool:
        """True once everything expected has been seen."""
        return self.done.is_set()

    def add(self, item: ObservedReply) -> None:
        """Record a reply of this turn."""
        env = item.envelope
        if env.id in self.seen_ids:
            return
        self.seen_ids.add(env.id)
        self.replies.append(item)
        if item.reply.status != "working" and env.causation_id is not None:
            self.answered_causes.add(env.causation_id)
        self.pending_replies.discard(env.id)
        if env.causation_id is not None and item.reply.status != "working":
            self.pending_intents.discard(env.causation_id)
        self._check()

    def expect(self, reply_ids: Iterable[uuid.UUID], intent_ids: Iterable[uuid.UUID]) -> None:
        """Say what the turn published; completes at once if all of it was already seen."""
        self.pending_replies = set(reply_ids) - self.seen_ids
        self.pending_intents = set(intent_ids) - self.answered_causes
        self.expected = True
        self._check()

    def _check(self) -> None:
        if self.expected and not self.pending_replies and not self.pending_intents:
            self.done.set()


class TurnTracker:
    """The turns a channel is waiting on, by correlation id."""

    def __init__(self) -> None:
        self._turns: dict[uuid.UUID, TrackedTurn] = {}

    def begin(self, correlation_id: uuid.UUID) -> TrackedTurn:
        """Start collecting the replies of a turn (call before publishing anything)."""
        turn = self._turns.get(correlation_id)
        if turn is None:
            turn = self._turns[correlation_id] = TrackedTurn(correlation_id)
        return turn

    def get(self, correlation_id: uuid.UUID) -> TrackedTurn | None:
        """The tracked turn, if any."""
        return self._turns.get(correlation_id)

    def observe(self, item: ObservedReply) -> TrackedTurn | None:
        """Give a reply to its turn; ``None`` when nobody tracks that turn."""
        turn = self._turns.get(item.envelope.correlation_id)
        if turn is not None:
            turn.add(item)
        return turn

    def end(self, correlation_id: uuid.UUID) -> TrackedTurn | None:
        """Stop tracking a turn."""
        return self._turns.pop(correlation_id, None)

    def __len__(self) -> int:
        return len(self._turns)
