"""The headless intents API: ``POST /api/intents/{service}/{action}`` -> the service's ``Reply``.

For programs rather than people: the JSON body is the action's input payload; the gateway wraps
it in an intent envelope (conversation ``api/<uuid>``) with a claim it signs for the caller,
publishes it on ``fd.intent.<service>.<action>`` and waits for the reply on the bus.

The caller needs an API key (``Authorization: Bearer fdk_...``; a session or site user token
works too), unless anonymous access is switched on (``FRONTDOOR_API_ANONYMOUS``): then a caller
without a credential is the shared guest ``guest:anonymous``, who owns nothing.

Replies are collected by one shared ordered reader of ``fd.event.api.*.reply`` (started before
the first publish, from the sequence the stream had then), resolving a future per correlation id.
Status codes: 200 ok, 401 no or a bad credential, 403 denied, 422 invalid input (or invalid
JSON), 429 too many calls, 500 the handler failed, 404 unknown service/action (internal actions
are unknown here), 504 no reply in time (the intent stays queued; the body gives its
correlation id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bots.identity import Principal
from bots.web.auth import bearer_token
from bots.web.errors import answers
from bots.web.guard import authenticated
from bots.web.jsonbody import JsonTooDeep, parse_json
from bots.web.text import BadText, clean_json, printable
from events import subjects
from events.bus import Bus
from events.claims import GUEST_ROLE
from events.envelope import Actor, Conversation, Envelope
from events.errors import BusError
from events.payloads import Reply

if TYPE_CHECKING:
    from bots.web.app import Gateway

log = logging.getLogger("frontdoor.intents_api")

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_ACTION = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_HTTP_STATUS = {"ok": 200, "working": 202, "invalid": 422, "denied": 403, "error": 500}

#: The one actor every anonymous caller shares (only with anonymous access switched on).
ANONYMOUS = Principal(
    actor=Actor(id="guest:anonymous", roles=(GUEST_ROLE,)), kind="anonymous", scope="anonymous"
)


async def api_principal(request: Request, *, allow_anonymous: bool) -> Principal:
    """The caller of an API request: a credential's principal, or (opt-in) the anonymous one
    (counted per client address); its address and its call are counted (``bots.web.guard``)."""
    gateway: Gateway = request.app.state.gateway
    if bearer_token(request) is None and allow_anonymous:
        address = await gateway.guard.admit(request.scope)
        await gateway.guard.caller_hit(ANONYMOUS, address)
        return ANONYMOUS
    return await authenticated(gateway, request)


class ReplyWaiter:
    """One ordered reader of API replies, shared by every request (keyed by correlation id)."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._waiting: dict[uuid.UUID, asyncio.Future[Envelope]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start reading (idempotent). Replies stored after this call are never missed."""
        async with self._lock:
            if self._task is not None and not self._task.done():
                return
            start_seq = await self._bus.last_sequence() + 1
            self._task = asyncio.create_task(self._run(start_seq), name="intents-api-replies")

    async def _run(self, start_seq: int) -> None:
        filter_subject = subjects.events_filter(channel="api", envelope_type="reply")
        async for _, env in self._bus.tail(filter_subject, from_seq=start_seq):
            fut = self._waiting.pop(env.correlation_id, None)
            if fut is not None and not fut.done():
                fut.set_result(env)

    def expect(self, correlation_id: uuid.UUID) -> asyncio.Future[Envelope]:
        """A future resolved with the reply of ``correlation_id`` (register BEFORE publishing)."""
        fut: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = fut
        return fut

    def forget(self, correlation_id: uuid.UUID) -> None:
        """Stop waiting for ``correlation_id`` (timed out or failed)."""
        self._waiting.pop(correlation_id, None)

    async def stop(self) -> None:
        """Stop reading; pending requests get a 504."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


class IntentAnswer(BaseModel):
    """The service's reply to the intent, and the intent's correlation id."""

    correlation_id: str
    reply: Reply


def _error(
    status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, **extra}, headers=headers)


def intents_router(
    bus: Bus,
    *,
    known_actions: Mapping[str, set[str]],
    allow_anonymous: bool = False,
    timeout: float = 30.0,
    waiter: ReplyWaiter | None = None,
) -> APIRouter:
    """The router; ``known_actions`` (service -> public actions) turns other names into 404s.

    The app that mounts it must be the gateway's (``app.state.gateway``): it authenticates the
    caller and signs the claims.

    The router's ``waiter`` (``router.reply_waiter``) starts on the first request; the app that
    mounts it may ``await router.reply_waiter.start()`` at start-up and ``stop()`` at shutdown.
    """
    waiter = waiter or ReplyWaiter(bus)
    router = APIRouter(prefix="/api", tags=["intents"])
    router.reply_waiter = waiter  # type: ignore[attr-defined]

    @router.post(
        "/intents/{service}/{action}",
        summary="Send an intent to a service and get its reply",
        response_model=IntentAnswer,
        responses={
            202: {"model": IntentAnswer, "description": "Still working; the answer follows"},
            403: {"model": IntentAnswer, "description": "The caller lacks a role the action needs"},
            **answers(401, 404, 413, 422, 429),
            500: {"model": IntentAnswer, "description": "The handler failed; quote the reference"},
            **answers(503, 504),
        },
    )
    async def send_intent(service: str, action: str, request: Request) -> JSONResponse:
        """Publish ``intent.<service>.<action>`` with the JSON body as payload; return the reply."""
        principal = await api_principal(request, allow_anonymous=allow_anonymous)
        gateway: Gateway = request.app.state.gateway
        if not _NAME.match(service):
            return _error(404, f"Unknown service '{service[:64]}'.")
        if service not in known_actions:
            known = ", ".join(sorted(known_actions)) or "none"
            return _error(404, f"Unknown service '{service}'. Known services: {known}.")
        if not _ACTION.match(action) or action not in known_actions[service]:
            return _error(404, f"The {service} service has no action '{action[:64]}'.")
        raw = await request.body()
        try:
            body = parse_json(raw, gateway.settings.max_json_depth) if raw.strip() else {}
        except JsonTooDeep as exc:
            return _error(422, f"The body is not accepted: {exc}.")
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            return _error(422, f"The body is not valid JSON: {printable(exc)}.")
        if not isinstance(body, dict):
            return _error(422, "The body must be a JSON object (the action's input).")
        try:
            body = clean_json(body)
        except BadText as exc:
            return _error(422, f"The body is not accepted: {exc}.")
        conversation = Conversation(channel="api", id=uuid.uuid4().hex)
        intent = Envelope.new(
            subjects.intent_type(service, action),
            body,
            conversation=conversation,
            actor=principal.actor,
            claim=gateway.issuer.issue(
                principal.actor,
                service,
                conversation=(conversation.channel, conversation.id),
                email=principal.email,
            ),
        )
        await waiter.start()
        answered = waiter.expect(intent.correlation_id)
        try:
            await bus.publish(intent)
            reply_env = await asyncio.wait_for(answered, timeout)
        except TimeoutError:
            waiter.forget(intent.correlation_id)
            return _error(
                504,
                f"No reply from the {service} service within {timeout:g}s. The intent is queued "
                f"and will still be handled; quote correlation id {intent.correlation_id}.",
                correlation_id=str(intent.correlation_id),
            )
        except BusError as exc:
            waiter.forget(intent.correlation_id)
            log.warning("intent %s not published: %s", intent.correlation_id, exc)
            return _error(
                503,
                "The message bus is not available right now; please retry.",
                correlation_id=str(intent.correlation_id),
            )
        reply = reply_env.payload_as(Reply)
        return JSONResponse(
            status_code=_HTTP_STATUS.get(reply.status, 200),
            content={
                "correlation_id": str(intent.correlation_id),
                "reply": reply.model_dump(mode="json"),
            },
        )

    return router
