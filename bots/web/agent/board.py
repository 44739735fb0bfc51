"""The hand-off board: every conversation handed to a person, kept current from the bus.

One ordered read of the hand-off events (``handoff.>``) from the start of ``FD_EVENTS`` builds
the board (waiting, claimed, ended); then it follows new ones, and the ticket events, and hands
each change to the open inbox streams in bus order. An inbox opens from memory (a snapshot at a
bus position, then the changes after it), however many conversations wait.

What the user is told about their hand-off is not said here (a board is per replica and does
not speak for what happened while it was down): ``bots.web.agent.notices`` does that.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bots.handoff import (
    HANDOFF_CLAIMED,
    HANDOFF_ENDED,
    HANDOFF_FILTER,
    HANDOFF_STARTED,
    HANDOFF_USER_MESSAGE,
    conversation_key,
)
from bots.tasks import cancel_and_wait
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.subjects import events_filter

log = logging.getLogger("frontdoor.agent.board")

TICKETS_FILTER = events_filter(envelope_type="ticket.>")


def conversation_ref(conversation: Conversation) -> str:
    """An opaque, URL-safe name of a conversation (channel, id, thread)."""
    raw = "\x1f".join(conversation_key(conversation)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class HandedOff:
    """One conversation handed to a person, as the board knows it."""

    ref: str
    conversation: Conversation
    user: Actor
    started_id: uuid.UUID
    started_seq: int
    started_at: datetime
    text: str
    state: Literal["waiting", "claimed", "ended"] = "waiting"
    agent: str | None = None
    agent_name: str | None = None
    outcome: str | None = None
    last_seq: int = 0
    last_at: datetime | None = None
    tickets: list[int] = field(default_factory=list)

    def out(self) -> dict[str, Any]:
        """The JSON the workspace shows."""
        conv = self.conversation
        return {
            "ref": self.ref,
            "channel": conv.channel,
            "conversation": conv.id,
            "thread": conv.thread,
            "bot": conv.bot,
            "user": self.user.name or _visitor(self.user.id),
            "user_id": self.user.id,
            "text": self.text,
            "state": self.state,
            "agent": self.agent,
            "agent_name": self.agent_name,
            "outcome": self.outcome,
            "started_at": self.started_at.isoformat(),
            "started_seq": self.started_seq,
            "last_seq": self.last_seq,
            "last_at": (self.last_at or self.started_at).isoformat(),
        }


def _visitor(actor_id: str) -> str:
    """A short label for a guest nobody named (``guest:w-26a7...`` -> ``Visitor 26a77391``)."""
    if actor_id.startswith("guest:w-"):
        return f"Visitor {actor_id[8:16]}"
    return actor_id


class HandoffBoard:
    """The hand-offs (bounded: the oldest ended ones are forgotten first) and their watchers."""

    def __init__(self, bus: Bus, *, memory: int = 50_000, queue_size: int = 10_000) -> None:
        self._bus = bus
        self._memory = memory
        self._queue_size = queue_size
        self._items: OrderedDict[str, HandedOff] = OrderedDict()
        self._watchers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.position = 0
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- reading --------------------------------------------------------------------------------

    def get(self, ref: str) -> HandedOff | None:
        """The hand-off of conversation ``ref``."""
        return self._items.get(ref)

    def waiting(self) -> list[HandedOff]:
        """Conversations a person owns now (waiting or claimed), oldest first."""
        return [item for item in self._items.values() if item.state != "ended"]

    def watch(self) -> tuple[dict[str, Any], asyncio.Queue[dict[str, Any] | None]]:
        """A snapshot (at ``position``) and a queue of every later change, in bus order. The
        queue gets ``None`` when it overflowed (the reader should start again)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self._queue_size)
        self._watchers.add(queue)
        snapshot = {"seq": self.position, "conversations": [i.out() for i in self.waiting()]}
        return snapshot, queue

    def unwatch(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Stop handing changes to ``queue``."""
        self._watchers.discard(queue)

    def _broadcast(self, change: dict[str, Any]) -> None:
        for queue in list(self._watchers):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                self._watchers.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    # -- following the bus ----------------------------------------------------------------------

    async def start(self) -> None:
        """Replay the hand-offs, then follow them and the ticket events."""
        self._tasks = [
            asyncio.create_task(self._follow_handoffs(), name="agent-board"),
            asyncio.create_task(self._follow_tickets(), name="agent-board-tickets"),
        ]

    async def stop(self) -> None:
        """Stop following the bus."""
        for task in self._tasks:
            await cancel_and_wait(task)
        for queue in list(self._watchers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def _follow_handoffs(self) -> None:
        try:
            last = 0
            async for seq, env in self._bus.tail(HANDOFF_FILTER, 1, stop_at_end=True):
                self._apply(seq, env)
                last = seq
            self.position = max(self.position, last)
            self.ready.set()
            async for seq, env in self._bus.tail(HANDOFF_FILTER, last + 1):
                change = self._apply(seq, env)
                if change is not None:
                    self._broadcast(change)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the hand-off board stopped following the bus")

    async def _follow_tickets(self) -> None:
        try:
            async for seq, env in self._bus.tail(TICKETS_FILTER, None):
                number = env.payload.get("ticket", env.payload.get("number"))
                ref = conversation_ref(env.conversation)
                item = self._items.get(ref)
                if item is not None and isinstance(number, int) and number not in item.tickets:
                    item.tickets.append(number)
                self._broadcast(
                    {"kind": "ticket", "seq": seq, "type": env.type, "ticket": number, "ref": ref}
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the hand-off board stopped following ticket events")

    def _apply(self, seq: int, env: Envelope) -> dict[str, Any] | None:
        self.position = seq
        ref = conversation_ref(env.conversation)
        item = self._items.get(ref)
        if env.type == HANDOFF_STARTED:
            if item is not None and item.state != "ended":
                return None  # asked again while a person owns it
            item = HandedOff(
                ref=ref,
                conversation=env.conversation,
                user=env.actor,
                started_id=env.id,
                started_seq=seq,
                started_at=env.occurred_at,
                text=str(env.payload.get("text", "")),
                last_seq=seq,
                last_at=env.occurred_at,
            )
            self._items[ref] = item
            self._items.move_to_end(ref)
            self._forget_old()
        elif item is None:
            return None
        elif env.type == HANDOFF_CLAIMED and item.state != "ended":
            item.state = "claimed"
            item.agent = str(env.payload.get("agent") or "") or None
            item.agent_name = str(env.payload.get("name") or "") or None
        elif env.type == HANDOFF_ENDED:
            item.state = "ended"
            item.outcome = str(env.payload.get("outcome") or "handback")
        elif env.type == HANDOFF_USER_MESSAGE:
            pass
        else:
            item.last_seq, item.last_at = seq, env.occurred_at
            return {"kind": "activity", "seq": seq, "type": env.type, "ref": ref}
        item.last_seq, item.last_at = seq, env.occurred_at
        return {"kind": "handoff", "seq": seq, "type": env.type, "conversation": item.out()}

    def _forget_old(self) -> None:
        while len(self._items) > self._memory:
            ended = next((k for k, v in self._items.items() if v.state == "ended"), None)
            self._items.pop(ended if ended is not None else next(iter(self._items)))
