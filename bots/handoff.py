"""Human hand-off: which conversations a human currently owns (the bot stays silent there).

The state is event-sourced from ``FD_EVENTS`` so every front-door replica agrees:

- ``handoff.started`` (``HandoffStarted``): the user asked for a human (published by the turn
  pipeline); the Slack side mirrors the conversation to the agents.
- ``handoff.user_message`` (``HandoffUserMessage``): a user message while a human owns the
  conversation (the bot does not answer it; the Slack side mirrors it to the agent).
- ``handoff.ended`` (``HandoffEnded``): the human gave the conversation back to the bot
  (published by whoever ends it, e.g. the Slack side).

The human's own answers are ordinary ``reply`` envelopes on the user's conversation.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bots.tasks import cancel_and_wait
from events.bus import Bus
from events.envelope import Conversation, Envelope
from events.payloads import Reply
from events.subjects import EVENT_PREFIX

log = logging.getLogger("frontdoor.handoff")

HANDOFF_STARTED = "handoff.started"
HANDOFF_ENDED = "handoff.ended"
HANDOFF_USER_MESSAGE = "handoff.user_message"
#: Filter over every hand-off event of every conversation.
HANDOFF_FILTER = f"{EVENT_PREFIX}.*.*.handoff.>"


class HandoffStarted(BaseModel):
    """``handoff.started``: the user asked for a human."""

    model_config = ConfigDict(extra="ignore")

    bot: str | None = None
    text: str = Field(default="", description="The user's message that asked for a human")
    reason: str = "user asked for a human"


class HandoffUserMessage(BaseModel):
    """``handoff.user_message``: what the user said while a human owns the conversation."""

    model_config = ConfigDict(extra="ignore")

    text: str
    channel_message_id: str | None = None


class HandoffEnded(BaseModel):
    """``handoff.ended``: the human handed the conversation back to the bot (or closed it)."""

    model_config = ConfigDict(extra="ignore")

    by: str | None = None
    outcome: Literal["handback", "closed", "unavailable"] = "handback"


def conversation_key(conversation: Conversation) -> tuple[str, str, str]:
    """The identity of a conversation for hand-off purposes (channel, id, thread).

    The thread is part of it: a hand-off in one Slack thread must not silence the bot in the
    other threads of the same channel.
    """
    return conversation.channel, conversation.id, conversation.thread or ""


class HandoffRegistry:
    """In-memory view of the conversations a human owns, kept current from the bus.

    ``available`` is False when no human channel is configured (no Slack support channel):
    then nobody could ever hand a conversation back, so no conversation is ever owned.
    """

    def __init__(self, bus: Bus, *, available: bool = True) -> None:
        self._bus = bus
        self.available = available
        self._owned: set[tuple[str, str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    def is_owned(self, conversation: Conversation) -> bool:
        """True while a human owns ``conversation``."""
        return conversation_key(conversation) in self._owned

    def mark(self, conversation: Conversation, owned: bool) -> None:
        """Update the local view right away (the bus event follows)."""
        key = conversation_key(conversation)
        if owned and self.available:
            self._owned.add(key)
        else:
            self._owned.discard(key)

    async def start(self) -> None:
        """Replay every hand-off event from the start of the bus, then follow new ones."""
        self._task = asyncio.create_task(self._follow(), name="handoff-registry")

    async def stop(self) -> None:
        """Stop following the bus."""
        await cancel_and_wait(self._task)

    async def _follow(self) -> None:
        try:
            async for _seq, env in self._bus.tail(HANDOFF_FILTER, 1):
                self._apply(env.type, env.conversation)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hand-off registry stopped following the bus")

    def _apply(self, kind: str, conversation: Conversation) -> None:
        if kind == HANDOFF_STARTED:
            self.mark(conversation, True)
        elif kind == HANDOFF_ENDED:
            self.mark(conversation, False)


#: What the user is told when a hand-off cannot reach anyone.
UNAVAILABLE_TEXT = (
    "Sorry, no human agent can be reached from here right now. I'm still here to help."
)


def unavailable_envelopes(started: Envelope) -> list[Envelope]:
    """The answer to a hand-off nobody can take: a message to the user, then ``handoff.ended``.

    Deterministic ids (from the ``handoff.started`` id), so any replica may publish them.
    """
    note = started.follow(
        "reply",
        Reply(text=UNAVAILABLE_TEXT, action="handoff_unavailable"),
        id=uuid.uuid5(started.id, "handoff:unavailable"),
    )
    ended = started.follow(
        HANDOFF_ENDED,
        HandoffEnded(outcome="unavailable"),
        id=uuid.uuid5(started.id, "handoff.ended:unavailable"),
    )
    return [note, ended]


class HandoffDecliner:
    """Where no human channel is configured: answer each new hand-off request "nobody here"."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow new ``handoff.started`` events."""
        self._task = asyncio.create_task(self._follow(), name="handoff-decliner")

    async def stop(self) -> None:
        """Stop following the bus."""
        await cancel_and_wait(self._task)

    async def _follow(self) -> None:
        subject = f"{EVENT_PREFIX}.*.*.{HANDOFF_STARTED}"
        try:
            async for _seq, env in self._bus.tail(subject, None):
                for answer in unavailable_envelopes(env):
                    await self._bus.publish(answer)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hand-off decliner stopped following the bus")
