"""The turn pipeline: one channel message in, everything the user will see published on the bus.

channel message -> ``message.received`` (envelope id = uuid5 of channel, conversation and the
channel's message id, so a retried message is stored once and processed once) -> actor roles ->
dialogue -> ``intent.detected``, the bot's immediate messages as ``reply`` envelopes, then the
intents for the services, each with a claim signed for its service and this conversation (the
actor the channel proved, with the roles management gave it). Every reply reaches the user
through the bus, in stream order.

While a human owns the conversation (hand-off) the bot stays silent: the message is forwarded as
``handoff.user_message`` for the Slack side to mirror.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bots.handoff import (
    CONVERSATION_RATED,
    HANDOFF_STARTED,
    HANDOFF_USER_MESSAGE,
    RATED_TEXT,
    ConversationRated,
    HandoffEnded,
    HandoffRegistry,
    HandoffStarted,
    HandoffUserMessage,
)
from bots.roles import RoleResolver
from events.bus import Bus
from events.claims import ClaimIssuer
from events.envelope import Channel, Conversation, Envelope
from events.payloads import Button, IntentDetected, MessageReceived, Reply
from events.subjects import parse_intent_type

log = logging.getLogger("frontdoor.turns")

#: Namespace of deterministic envelope ids derived from channel message ids.
MESSAGE_NAMESPACE = uuid.UUID("6f1c0b7e-3d52-4b8e-9a51-2f4d8f0c9e11")


class Dialogue(Protocol):
    """What the pipeline needs from the dialogue engine (``skills.dialogue.DialogueEngine``)."""

    async def handle(self, turn: Any) -> Any:
        """Handle one user turn; return a ``TurnOutcome``."""
        ...


def message_envelope_id(channel: str, conversation_id: str, message_id: str) -> uuid.UUID:
    """The ``message.received`` envelope id (= the turn's correlation id) of a channel message."""
    return uuid.uuid5(MESSAGE_NAMESPACE, f"{channel}\x1f{conversation_id}\x1f{message_id}")


@dataclass(frozen=True)
class IncomingMessage:
    """A user message as a channel received it."""

    channel: Channel
    conversation_id: str
    text: str
    #: the actor id the channel proved (``slack:U1``, ``guest:w-...``, ``site:42``, ``user:x``)
    user_id: str
    bot: str = "chatbot"
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    user_name: str | None = None
    thread: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: an email the channel verified (a site's signed user token), signed into the claims
    user_email: str | None = None

    @functools.cached_property
    def envelope_id(self) -> uuid.UUID:
        """The turn's correlation id."""
        return message_envelope_id(self.channel, self.conversation_id, self.message_id)

    @property
    def conversation(self) -> Conversation:
        """Where the replies go."""
        return Conversation(
            channel=self.channel, id=self.conversation_id, thread=self.thread, bot=self.bot
        )


@dataclass
class TurnResult:
    """What a turn published (what the channel should wait for)."""

    correlation_id: uuid.UUID
    duplicate: bool = False
    silent: bool = False
    handoff: bool = False
    reply_ids: list[uuid.UUID] = field(default_factory=list)
    intent_ids: list[uuid.UUID] = field(default_factory=list)
    received_seq: int | None = None
    #: the turn had run before (a retry): its recorded outcome was published again
    replayed: bool = False


class _SeenSet:
    """A bounded set of recently processed message ids (LRU).

    Kept as the ids' 128-bit integers: ints are not tracked by the garbage collector, so a full
    set (``seen_size`` entries) adds nothing to the collector's full passes, which stall the
    event loop for as long as they take.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: OrderedDict[int, None] = OrderedDict()

    def add(self, key: uuid.UUID) -> bool:
        """Add ``key``; False if it was already there."""
        number = key.int
        if number in self._ids:
            self._ids.move_to_end(number)
            return False
        self._ids[number] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return isinstance(key, uuid.UUID) and key.int in self._ids

    def discard(self, key: uuid.UUID) -> None:
        self._ids.pop(key.int, None)


def _default_turn_factory() -> Callable[..., Any]:
    from skills.dialogue import UserTurn

    return UserTurn


def reply_from_message(message: Any) -> Reply:
    """A dialogue ``BotMessage`` (text, buttons, image) as a ``Reply`` payload."""
    buttons = [
        b if isinstance(b, Button) else Button.model_validate(b)
        for b in (getattr(message, "buttons", None) or [])
    ]
    return Reply(
        text=str(getattr(message, "text", "") or ""),
        status="ok",
        buttons=buttons,
        image=getattr(message, "image", None),
    )


def _intent_detected(parse: Any) -> IntentDetected | None:
    try:
        intent = parse.intent
        return IntentDetected(
            text=parse.text,
            intent=intent.name,
            confidence=min(max(float(intent.confidence), 0.0), 1.0),
            entities=[
                e.model_dump(mode="json") if hasattr(e, "model_dump") else dict(e)
                for e in parse.entities
            ],
            engine=parse.engine,
            model_version=parse.model_version,
            is_fallback=bool(getattr(parse, "is_fallback", False)),
        )
    except (AttributeError, TypeError, ValueError):
        log.warning("cannot describe the parse result %r as intent.detected", parse)
        return None


async def publish_in_order(bus: Bus, envelopes: Sequence[Envelope]) -> list[int]:
    """Publish several envelopes pipelined, in order, waiting for every ack.

    Sent back-to-back on one connection so they are stored in this order; any that failed is
    re-published with ``Bus.publish`` (idempotent by id).
    """
    if not envelopes:
        return []
    if len(envelopes) == 1:
        return [await bus.publish(envelopes[0])]
    futures: list[asyncio.Future[Any] | None] = []
    for env in envelopes:
        try:
            futures.append(await bus.publish_async(env))
        except Exception:
            futures.append(None)
    seqs: list[int] = []
    for env, fut in zip(envelopes, futures, strict=True):
        seq: int | None = None
        if fut is not None:
            try:
                if not fut.done():
                    async with asyncio.timeout(5.0):  # cheaper than wait_for: no extra task
                        await fut
                seq = int(fut.result().seq)
            except Exception:
                seq = None
        seqs.append(seq if seq is not None else await bus.publish(env))
    return seqs


class TurnPipeline:
    """Runs user turns: the bus, the dialogue and the services in between."""

    def __init__(
        self,
        bus: Bus,
        dialogue: Dialogue,
        *,
        issuer: ClaimIssuer,
        roles: RoleResolver | None = None,
        handoff: HandoffRegistry | None = None,
        turn_factory: Callable[..., Any] | None = None,
        seen_size: int = 100_000,
    ) -> None:
        self.bus = bus
        self.dialogue = dialogue
        self.issuer = issuer
        self.roles = roles or RoleResolver(bus, None, enabled=False)
        self.handoff = handoff or HandoffRegistry(bus)
        self._turn_factory = turn_factory
        self._seen = _SeenSet(seen_size)

    def _make_turn(self, **fields: Any) -> Any:
        if self._turn_factory is None:
            self._turn_factory = _default_turn_factory()
        return self._turn_factory(**fields)

    def already_seen(self, msg: IncomingMessage) -> bool:
        """True when this replica already processed (or is processing) ``msg``."""
        return msg.envelope_id in self._seen

    async def handle(self, msg: IncomingMessage) -> TurnResult:
        """Run one turn; return what it published. A repeated message id is not processed."""
        env_id = msg.envelope_id
        if not self._seen.add(env_id):
            return TurnResult(correlation_id=env_id, duplicate=True)
        try:
            return await self._run(msg, env_id)
        except BaseException:
            self._seen.discard(env_id)  # not processed: a retry may try again
            raise

    async def _run(self, msg: IncomingMessage, env_id: uuid.UUID) -> TurnResult:
        conversation = msg.conversation
        actor = await self.roles.resolve(msg.user_id, msg.user_name)
        received = Envelope.new(
            "message.received",
            MessageReceived(
                text=msg.text, channel_message_id=msg.message_id, metadata=msg.metadata
            ),
            conversation=conversation,
            actor=actor,
            id=env_id,
        )
        # A message stored before is not a turn done: a retry (REST idempotency key, WebSocket
        # client_id, a publish retried inside the bus) runs the turn until its outcome is stored
        # (the dialogue keeps it with the conversation's state and says when it ran already).
        seq, _stored_before = await self.bus.publish_checked(received)
        result = TurnResult(correlation_id=env_id, received_seq=seq)
        rating = self.handoff.rating_of(conversation, msg.text)
        if rating is not None:
            return await self._rate(msg, received, result, *rating)
        if self.handoff.is_owned(conversation):
            await self.bus.publish(
                received.follow(
                    HANDOFF_USER_MESSAGE,
                    HandoffUserMessage(text=msg.text, channel_message_id=msg.message_id),
                    id=uuid.uuid5(env_id, "handoff"),
                )
            )
            result.silent = True
            return result
        try:
            outcome = await self.dialogue.handle(
                self._make_turn(
                    text=msg.text, conversation=conversation, actor=actor, bot=msg.bot, id=env_id
                )
            )
        except Exception:
            reference = uuid.uuid5(env_id, "failure").hex[:8]
            log.exception("dialogue failed (correlation %s, reference %s)", env_id, reference)
            failure = received.follow(
                "reply",
                Reply(
                    text=f"Sorry, something went wrong on my side (reference {reference}).",
                    status="error",
                    reference=reference,
                ),
                id=uuid.uuid5(env_id, "reply:failure"),
            )
            await self.bus.publish(failure)
            result.reply_ids = [failure.id]
            return result
        if getattr(outcome, "already_done", False):
            result.duplicate = True  # it ran, and later turns followed: nothing comes again
            return result
        result.replayed = bool(getattr(outcome, "replayed", False))
        return await self._publish_outcome(msg, received, outcome, result)

    async def _rate(
        self,
        msg: IncomingMessage,
        received: Envelope,
        result: TurnResult,
        score: int,
        ended: Envelope,
    ) -> TurnResult:
        """The user rated a closed hand-off: ``conversation.rated`` (what analysis counts) and,
        when the agent solved a ticket in it, that ticket's ``ticket_csat`` as the user."""
        closed = ended.payload_as(HandoffEnded)
        events: list[Envelope] = [
            received.follow(
                CONVERSATION_RATED,
                ConversationRated(score=score, agent=closed.by, ticket=closed.ticket),
                id=uuid.uuid5(ended.id, "rated"),
            )
        ]
        intents: list[Envelope] = []
        if closed.ticket is not None:
            claim = self.issuer.issue(
                received.actor,
                "management",
                conversation=(received.conversation.channel, received.conversation.id),
                email=msg.user_email,
            )
            intents.append(
                received.follow(
                    "intent.management.ticket_csat",
                    {"ticket": closed.ticket, "score": score},
                    id=uuid.uuid5(received.id, "csat"),
                    claim=claim,
                )
            )
        else:
            thanks = received.follow(
                "reply", Reply(text=RATED_TEXT), id=uuid.uuid5(received.id, "reply:rated")
            )
            events.append(thanks)
            result.reply_ids.append(thanks.id)
        await publish_in_order(self.bus, [*events, *intents])
        result.intent_ids = [i.id for i in intents]
        return result

    async def _publish_outcome(
        self, msg: IncomingMessage, received: Envelope, outcome: Any, result: TurnResult
    ) -> TurnResult:
        env_id = received.id
        events: list[Envelope] = [
            # the dialogue's own conversation events (intent.detected), ids kept (idempotent)
            received.follow(e.type, e.payload, actor=e.actor, id=e.id)
            for e in (getattr(outcome, "events", None) or [])
        ]
        parse = getattr(outcome, "parse", None)
        if parse is not None and not any(e.type == "intent.detected" for e in events):
            detected = _intent_detected(parse)
            if detected is not None:
                events.append(
                    received.follow("intent.detected", detected, id=uuid.uuid5(env_id, "detected"))
                )
        for i, message in enumerate(getattr(outcome, "messages", None) or []):
            reply = received.follow(
                "reply", reply_from_message(message), id=uuid.uuid5(env_id, f"reply:{i}")
            )
            events.append(reply)
            result.reply_ids.append(reply.id)
        if getattr(outcome, "handoff", False):
            result.handoff = True
            self.handoff.mark(received.conversation, True)
            events.append(
                received.follow(
                    HANDOFF_STARTED,
                    HandoffStarted(bot=msg.bot, text=msg.text),
                    id=uuid.uuid5(env_id, "handoff.started"),
                )
            )
        intents: list[Envelope] = []
        for i, intent in enumerate(getattr(outcome, "intents", None) or []):
            # the dialogue derives intent ids from the turn id (idempotent); otherwise derive one
            intent_id = (
                intent.id if intent.correlation_id == env_id else uuid.uuid5(env_id, f"i{i}")
            )
            target = parse_intent_type(intent.type)
            if target is None:
                log.warning("dialogue produced a non-intent envelope %s; dropped", intent.type)
                continue
            # The claim is always the turn's proven actor: the dialogue cannot choose another.
            claim = self.issuer.issue(
                received.actor,
                target[0],
                conversation=(received.conversation.channel, received.conversation.id),
                email=msg.user_email,
            )
            intents.append(received.follow(intent.type, intent.payload, id=intent_id, claim=claim))
        # One pipelined batch, events first: the bot's replies enter FD_EVENTS' (FIFO) ingest
        # before the intents are even sent, so a service's answer, which needs the intent to be
        # stored, fetched and handled first, is always stored after them.
        await publish_in_order(self.bus, [*events, *intents])
        result.intent_ids = [i.id for i in intents]
        return result
