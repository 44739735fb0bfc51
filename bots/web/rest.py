"""The Rasa-compatible REST channel: ``POST /webhooks/rest/webhook`` and late-reply polling.

Every call needs a credential (``Authorization: Bearer``, see ``bots.web.auth``); it decides
who speaks and which conversation it is. With a session token the conversation is the
session's (``sender`` may be left out, or must equal it). With an API key or a site user token
the caller's ``sender`` names one of *its own* conversations (``<actor>/<sender>``): nobody can
reach another caller's conversation by choosing a sender.

One call = one turn: the answer lists that turn's replies in bus order (the bot's immediate
messages plus the service's answer when an intent was sent), waiting up to
``rest_turn_timeout``. Replies that come later are kept per conversation and returned first by
the next call, or by ``GET /webhooks/rest/pending``.

With several gateways every replica reads every reply. Each reply is handed out once: the call
that waits for it claims it before returning it, and late replies (kept by every replica) are
claimed when a later call or poll takes them (claims in the KV bucket ``fd_delivered``, shared
by the replicas). A retried call (same idempotency key) may claim its own turn's replies again:
they are read back from the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bots.identity import Principal
from bots.personas import UnknownBot
from bots.seen import SeenSet
from bots.tracking import ObservedReply, TurnTracker
from bots.turns import IncomingMessage, TurnPipeline
from bots.web.errors import answers
from bots.web.guard import authenticated
from bots.web.limits import MessageTooLong, check_length
from bots.web.text import EdgeText
from events.envelope import Actor, Envelope
from events.payloads import Reply
from events.subjects import events_filter

if TYPE_CHECKING:
    from bots.web.app import Gateway

SENDER_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
WORKING_TEXT = "Still working on it — I'll follow up."


class RestMetadata(BaseModel):
    """The metadata the REST channel takes (other keys are ignored, never stored)."""

    model_config = ConfigDict(extra="ignore")

    bot: EdgeText | None = Field(default=None, max_length=64, description="Which bot answers")
    message_id: EdgeText | int | None = Field(
        default=None,
        description="Your id of this message (1-128 characters): a retry with the same id is "
        "processed once",
    )
    name: EdgeText | None = Field(
        default=None,
        max_length=256,
        description="A display name, used only when the credential carries none",
    )

    @field_validator("message_id")
    @classmethod
    def _message_id(cls, value: str | int | None) -> str | None:
        if value is None:
            return None
        text = str(value)
        if not 1 <= len(text) <= 128:
            raise ValueError("message_id must have 1 to 128 characters")
        return text


class RestMessage(BaseModel):
    """Rasa REST channel input."""

    model_config = ConfigDict(extra="ignore")

    sender: str | None = Field(
        default=None,
        pattern=SENDER_PATTERN,
        description="Which of the caller's conversations (a session's own, when left out)",
    )
    message: EdgeText = Field(description="What the user said")
    metadata: RestMetadata | None = Field(
        default=None, description="`bot` picks the bot; `message_id` makes retries safe"
    )


class RestButton(BaseModel):
    """A quick-reply button."""

    title: str
    payload: str


class RestReply(BaseModel):
    """Rasa REST channel output item."""

    recipient_id: str
    text: str
    buttons: list[RestButton] | None = None
    image: str | None = None


def to_rest(sender: str, reply: Reply) -> RestReply:
    """A reply as a Rasa REST output item."""
    buttons = [RestButton(title=b.title, payload=b.payload) for b in reply.buttons]
    return RestReply(
        recipient_id=sender, text=reply.text, buttons=buttons or None, image=reply.image
    )


def rest_json(sender: str, replies: list[Reply], headers: dict[str, str] | None = None) -> Response:
    """The answer of a REST call: ``RestReply`` items (``None`` fields left out) as JSON.

    Built directly rather than through FastAPI's ``response_model`` validation, which would
    re-validate what these typed replies already guarantee, on every turn (the route still
    declares the model for the OpenAPI docs).
    """
    items: list[dict[str, Any]] = []
    for reply in replies:
        item: dict[str, Any] = {"recipient_id": sender, "text": reply.text}
        if reply.buttons:
            item["buttons"] = [{"title": b.title, "payload": b.payload} for b in reply.buttons]
        if reply.image is not None:
            item["image"] = reply.image
        items.append(item)
    return JSONResponse(items, headers=headers)


class RestChannel:
    """The ``rest`` channel adapter: feeds waiting turns, keeps late replies per conversation."""

    def __init__(
        self,
        pending_max: int = 200,
        max_senders: int = 50_000,
        *,
        pending_ttl: float = 24 * 3600.0,
    ) -> None:
        self.tracker = TurnTracker()
        self._pending_max = pending_max
        # Bounded and expiring: late replies nobody fetches go after ``pending_ttl`` (or, when
        # ``max_senders`` conversations hold some, the least recently used conversation's).
        self._pending: TTLCache[str, deque[ObservedReply]] = TTLCache(max_senders, pending_ttl)
        #: who handed out which reply, shared by every replica (set at start; None: one replica)
        self.claims: SeenSet | None = None

    async def deliver(self, item: ObservedReply) -> None:
        """Router callback: a reply of a ``rest`` conversation, in bus order."""
        if self.tracker.observe(item) is not None or item.reply.status == "working":
            return  # the waiting call returns it; a working note is only its own call's
        sender = item.envelope.conversation.id
        queue = self._pending.get(sender)
        if queue is None:
            queue = self._pending[sender] = deque(maxlen=self._pending_max)
        queue.append(item)

    async def take_pending(self, sender: str) -> list[ObservedReply]:
        """Remove and return the late replies of ``sender`` that no call handed out yet."""
        queue = self._pending.pop(sender, None)
        if not queue:
            return []
        return await self._claimed(list(queue), None)

    async def _claimed(
        self, items: list[ObservedReply], turn: uuid.UUID | None
    ) -> list[ObservedReply]:
        """The ``items`` this call may hand out: claimed now, or (``turn``: a retried call of
        that turn) claimed by the same turn's call before."""
        if self.claims is None or not items:
            return items
        claims = self.claims
        won = await asyncio.gather(
            *(
                claims.claim("rest", item.envelope.id.hex)
                if turn is None
                else claims.claim_as(turn.hex, "rest", item.envelope.id.hex)
                for item in items
            )
        )
        return [item for item, mine in zip(items, won, strict=True) if mine]

    async def run_turn(
        self, pipeline: TurnPipeline, msg: IncomingMessage, timeout: float
    ) -> tuple[list[Reply], bool]:
        """Run a turn and collect its replies; ``(replies, duplicate)``."""
        cid = msg.envelope_id
        turn = self.tracker.begin(cid)
        try:
            result = await pipeline.handle(msg)
            if result.duplicate:
                return [], True
            if result.replayed and result.received_seq is not None:
                # It ran before (this is a retry): its replies may be on the bus already.
                await self._read_back(pipeline, msg, result.received_seq)
            turn.expect(result.reply_ids, result.intent_ids)
            if not turn.complete:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await turn.done.wait()
        finally:
            self.tracker.end(cid)
        seen = [item for item in turn.replies if item.reply.status != "working"]
        replies = [item.reply for item in await self._claimed(seen, cid)]
        if not turn.complete:
            working = Envelope.new(
                "reply",
                Reply(text=WORKING_TEXT, status="working"),
                conversation=msg.conversation,
                actor=turn.replies[0].envelope.actor if turn.replies else _actor_of(msg),
                correlation_id=cid,
                causation_id=cid,
                id=uuid.uuid5(cid, "working"),
            )
            await pipeline.bus.publish(working)
            replies.append(working.payload_as(Reply))
        return replies, False

    async def _read_back(self, pipeline: TurnPipeline, msg: IncomingMessage, since: int) -> None:
        """Feed the turn the replies of its conversation stored since its message."""
        flt = events_filter(
            channel=msg.channel, conversation_id=msg.conversation_id, envelope_type="reply"
        )
        async for seq, env in pipeline.bus.tail(flt, since, stop_at_end=True):
            if env.correlation_id != msg.envelope_id:
                continue
            with contextlib.suppress(ValueError):
                self.tracker.observe(ObservedReply(seq, env, env.payload_as(Reply)))


def _actor_of(msg: IncomingMessage) -> Actor:
    return Actor(id=msg.user_id, name=msg.user_name, roles=())


def conversation_of(principal: Principal, sender: str | None) -> str:
    """The REST conversation id of ``principal``'s ``sender`` (403 for a session's foreign one)."""
    if principal.kind in ("guest", "site") and principal.scope.startswith("w-"):
        if sender is not None and sender != principal.scope:
            raise HTTPException(
                status_code=403,
                detail="This session's conversation is its own sender: leave 'sender' out, "
                "or send the session's.",
            )
        return principal.scope
    return f"{principal.scope}/{sender or 'default'}"


async def _message_caller(request: Request) -> Principal:
    """The webhook's caller: address admitted, credential checked, one message counted."""
    return await authenticated(request.app.state.gateway, request)


async def _polling_caller(request: Request) -> Principal:
    """The poller of late replies: as ``_message_caller``, counted as a poll."""
    gateway: Gateway = request.app.state.gateway
    return await authenticated(gateway, request, gateway.guard.polls)


def rest_router() -> APIRouter:
    """Routes of the REST channel (the gateway is ``request.app.state.gateway``)."""
    router = APIRouter(tags=["rest channel"])

    @router.post(
        "/webhooks/rest/webhook",
        response_model=list[RestReply],
        response_model_exclude_none=True,
        summary="Send a message; get this turn's replies (Rasa REST channel)",
        responses=answers(401, 403, 413, 422, 429, 500, 503),
    )
    async def webhook(
        body: RestMessage,
        request: Request,
        principal: Principal = Depends(_message_caller),
        idempotency_key: EdgeText | None = Header(default=None, min_length=1, max_length=128),
    ) -> Response:
        gateway: Gateway = request.app.state.gateway
        conversation = conversation_of(principal, body.sender)
        recipient = body.sender or conversation
        metadata = body.metadata or RestMetadata()
        text = body.message.strip()
        if not text:
            raise HTTPException(status_code=422, detail="message is empty")
        try:
            check_length(text, gateway.settings.max_message_chars)
        except MessageTooLong as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        try:
            bot = gateway.bots.get(metadata.bot)
        except UnknownBot as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        message_id = metadata.message_id or idempotency_key
        msg = IncomingMessage(
            channel="rest",
            conversation_id=conversation,
            text=text,
            user_id=principal.actor.id,
            bot=bot.name,
            message_id=str(message_id) if message_id else uuid.uuid4().hex,
            # a verified name wins over the one the caller sends
            user_name=principal.actor.name or metadata.name or None,
            user_email=principal.email,
        )
        replies, duplicate = await gateway.rest.run_turn(
            gateway.pipeline, msg, gateway.settings.rest_turn_timeout
        )
        # Late replies of earlier turns come first, then this turn's, then what arrived for
        # this turn after it was complete (e.g. a hand-off notice); taken only now, so a failed
        # turn loses none.
        late = await gateway.rest.take_pending(conversation)
        earlier = [i.reply for i in late if i.envelope.correlation_id != msg.envelope_id]
        after = [i.reply for i in late if i.envelope.correlation_id == msg.envelope_id]
        headers = {"X-Frontdoor-Duplicate": "1"} if duplicate else None
        return rest_json(recipient, [*earlier, *replies, *after], headers)

    @router.get(
        "/webhooks/rest/pending",
        response_model=list[RestReply],
        response_model_exclude_none=True,
        summary="Late replies of one of the caller's conversations (each returned once)",
        responses=answers(401, 403, 422, 429, 500),
    )
    async def pending(
        request: Request,
        principal: Principal = Depends(_polling_caller),
        sender: str | None = Query(default=None, pattern=SENDER_PATTERN),
    ) -> list[RestReply]:
        gateway: Gateway = request.app.state.gateway
        conversation = conversation_of(principal, sender)
        recipient = sender or conversation
        return [
            to_rest(recipient, item.reply) for item in await gateway.rest.take_pending(conversation)
        ]

    return router
