"""Human hand-off: which conversations a human currently owns (the bot stays silent there).

The state is event-sourced from ``FD_EVENTS`` so every front-door replica agrees:

- ``handoff.started`` (``HandoffStarted``): the user asked for a human (published by the turn
  pipeline); the Slack side mirrors the conversation to the agents.
- ``handoff.user_message`` (``HandoffUserMessage``): a user message while a human owns the
  conversation (the bot does not answer it; the Slack side mirrors it to the agent).
- ``handoff.ended`` (``HandoffEnded``): the human gave the conversation back to the bot
  (published by whoever ends it, e.g. the Slack side).
- ``handoff.claimed`` (``HandoffClaimed``): an agent took (or was given) the conversation in the
  agent workspace; the Slack thread shows it too.
- ``handoff.note`` (``HandoffNote``): a private note between agents; no user channel ever
  delivers it (they deliver ``reply`` envelopes only).
- ``handoff.agent_replied`` (``HandoffAgentReplied``): an agent answered from the workspace, so
  the Slack thread shows the answer too (the answer itself is the ``reply`` next to it).
- ``conversation.rated`` (``ConversationRated``): the user rated a closed hand-off (1-5).

The human's own answers are ordinary ``reply`` envelopes on the user's conversation, marked
``service="handoff"`` (the widget shows them as "Support agent").
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import OrderedDict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bots.tasks import cancel_and_wait
from events.bus import Bus
from events.envelope import Conversation, Envelope
from events.payloads import Button, Reply
from events.subjects import EVENT_PREFIX

log = logging.getLogger("frontdoor.handoff")

HANDOFF_STARTED = "handoff.started"
HANDOFF_ENDED = "handoff.ended"
HANDOFF_USER_MESSAGE = "handoff.user_message"
HANDOFF_CLAIMED = "handoff.claimed"
HANDOFF_NOTE = "handoff.note"
HANDOFF_AGENT_REPLIED = "handoff.agent_replied"
CONVERSATION_RATED = "conversation.rated"
#: What a rating button sends back (``/rate 4``): the pipeline takes it, the dialogue never.
RATE_COMMAND = "/rate"
_RATE = re.compile(r"^/rate\s+([1-5])$")
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
    #: the ticket the user's rating goes to (``ticket_csat``), when the agent solved one
    ticket: int | None = None


class HandoffClaimed(BaseModel):
    """``handoff.claimed``: an agent owns the conversation now (``by``: who assigned it)."""

    model_config = ConfigDict(extra="ignore")

    agent: str = Field(description="The agent's actor id, e.g. user:alice")
    name: str | None = None
    by: str | None = Field(default=None, description="Who assigned it, when not the agent")


class HandoffNote(BaseModel):
    """``handoff.note``: a private note between agents (never shown to the user)."""

    model_config = ConfigDict(extra="ignore")

    text: str
    author: str
    name: str | None = None


class HandoffAgentReplied(BaseModel):
    """``handoff.agent_replied``: an agent's answer from the workspace (for the Slack thread)."""

    model_config = ConfigDict(extra="ignore")

    text: str
    agent: str
    name: str | None = None
    reply_id: uuid.UUID


class ConversationRated(BaseModel):
    """``conversation.rated``: the user's 1-5 rating of a closed hand-off."""

    model_config = ConfigDict(extra="ignore")

    score: int = Field(ge=1, le=5)
    agent: str | None = None
    ticket: int | None = None


def conversation_key(conversation: Conversation) -> tuple[str, str, str]:
    """The identity of a conversation for hand-off purposes (channel, id, thread).

    The thread is part of it: a hand-off in one Slack thread must not silence the bot in the
    other threads of the same channel.
    """
    return conversation.channel, conversation.id, conversation.thread or ""


class HandoffRegistry:
    """In-memory view of the conversations a human owns, kept current from the bus.

    ``available`` is False when no human channel is configured (no Slack support channel, no
    agent workspace): then nobody could ever hand a conversation back, so no conversation is
    ever owned. It also remembers the conversations whose hand-off was just closed: their next
    ``/rate N`` is the user's rating.
    """

    def __init__(self, bus: Bus, *, available: bool = True, rating_memory: int = 10_000) -> None:
        self._bus = bus
        self.available = available
        self._owned: set[tuple[str, str, str]] = set()
        #: closed hand-offs awaiting a rating: key -> the ``handoff.ended`` envelope
        self._to_rate: OrderedDict[tuple[str, str, str], Envelope] = OrderedDict()
        self._rating_memory = rating_memory
        self._task: asyncio.Task[None] | None = None

    def rating_of(self, conversation: Conversation, text: str) -> tuple[int, Envelope] | None:
        """``(score, the handoff.ended it rates)`` when ``text`` rates a closed hand-off of
        ``conversation`` (once: the request is forgotten)."""
        match = _RATE.match(text.strip())
        if match is None:
            return None
        ended = self._to_rate.pop(conversation_key(conversation), None)
        return (int(match.group(1)), ended) if ended is not None else None

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
                self._apply(env)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hand-off registry stopped following the bus")

    def _apply(self, env: Envelope) -> None:
        key = conversation_key(env.conversation)
        if env.type == HANDOFF_STARTED:
            self.mark(env.conversation, True)
            self._to_rate.pop(key, None)
        elif env.type == HANDOFF_ENDED:
            self.mark(env.conversation, False)
            if env.payload.get("outcome") == "closed":
                self._to_rate[key] = env
                self._to_rate.move_to_end(key)
                if len(self._to_rate) > self._rating_memory:
                    self._to_rate.popitem(last=False)


#: What the user is told when a hand-off cannot reach anyone.
UNAVAILABLE_TEXT = (
    "Sorry, no human agent can be reached from here right now. I'm still here to help."
)


NOTIFIED_TEXT = "I've passed this conversation to our support team: a person will answer here."
CLOSED_TEXT = "The support agent closed this conversation. Thanks for your patience!"
HANDBACK_TEXT = "You're back with the bot. How else can I help?"
RATE_TEXT = "How would you rate the help you got? (1 = poor, 5 = great)"
RATED_TEXT = "Thanks for your rating!"


def _notice(cause: Envelope, text: str, tag: str, buttons: list[Button] | None = None) -> Envelope:
    """The bot telling the user about the hand-off (not the agent speaking). The id derives
    from the cause, so whichever side tells (Slack mirror, workspace) the user hears it once."""
    return cause.follow(
        "reply",
        Reply(text=text, action=f"handoff_{tag}", buttons=buttons or []),
        id=uuid.uuid5(cause.id, f"handoff:{tag}"),
    )


def started_notices(started: Envelope) -> list[Envelope]:
    """What the user is told when a person will take the conversation."""
    return [_notice(started, NOTIFIED_TEXT, "notified")]


def ended_notices(ended: Envelope) -> list[Envelope]:
    """What the user is told when the hand-off ends: back with the bot, or closed and asked
    for a rating (buttons ``1``..``5`` sending ``/rate N``)."""
    outcome = ended.payload.get("outcome")
    if outcome == "unavailable":
        return []
    if outcome != "closed":
        return [_notice(ended, HANDBACK_TEXT, "ended")]
    buttons = [Button(title=str(n), payload=f"{RATE_COMMAND} {n}") for n in range(1, 6)]
    return [_notice(ended, CLOSED_TEXT, "ended"), _notice(ended, RATE_TEXT, "rate", buttons)]


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
