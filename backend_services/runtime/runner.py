"""Serving a ``Service``: its intent consumer, its micro endpoints, its lifecycle events.

Intent door: each intent is handled, answered with a ``reply`` on FD_EVENTS (same correlation
and conversation, id derived from the intent id so a redelivery never answers twice) and then
acknowledged. A handler that raises, or runs longer than ``handler_timeout_seconds``, is retried
with back-off within the consumer's bound; after the last delivery the intent is dead-lettered
and the user gets a failure reply with a short reference, never silence (``events.dead``).

Trust: before any handler runs, both doors verify the envelope's signed claim (``events.claims``)
and replace the envelope's actor with the one the claim proves. A missing, forged, expired or
misaddressed claim is refused with a ``denied`` reply and a ``security.claim_rejected`` event.

Why the ack does not wait for the server's confirmation (``Delivery.ack``, not ``ack_sync``):
the ack is sent only after JetStream acknowledged storing the reply, so the answer is never lost.
If the ack itself is lost (connection drop, server restart), the intent is redelivered after
``ack_wait``, the handler runs again and its reply, published under the same deterministic id
inside the duplicate window, is dropped by the bus: the user is still answered exactly once.
That is also exactly what happens when an ``ack_sync`` confirmation is lost, and a failed
``ack_sync`` could only be logged, so waiting for it bought nothing but a network round trip
per intent with the worker slot held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from typing import Any

import structlog
from pydantic import ValidationError

from backend_services.runtime.context import Clock, ServiceContext, utc_now
from backend_services.runtime.invoke import Outcome, invoke
from backend_services.runtime.service import HandlerSpec, Service
from events import subjects
from events.bus import Bus, Delivery, Worker
from events.claims import (
    ClaimError,
    ClaimVerifier,
    VerifiedClaims,
    system_actor,
    unverified_conversation,
)
from events.dead import failure_reference, give_up, reply_id
from events.envelope import SYSTEM_ACTOR, Conversation, Envelope
from events.micro import (
    CLAIM_HEADER,
    MicroEndpoint,
    MicroResponse,
    MicroService,
    start_micro_service,
)
from events.payloads import (
    CLAIM_REJECTED,
    Reply,
    SecurityRefusal,
    ServiceState,
    ServiceStateName,
)

log = structlog.get_logger("frontdoor.runtime")
_std_log = logging.getLogger("frontdoor.runtime")

_STATUS_CODES = {"invalid": 400, "denied": 403, "error": 500}


class ServiceRunner:
    """Runs one instance of a service on the bus. Several instances share the work."""

    def __init__(
        self,
        service: Service,
        bus: Bus,
        *,
        verifier: ClaimVerifier,
        settings: Any = None,
        instance: str | None = None,
        concurrency: int = 16,
        clock: Clock = utc_now,
    ) -> None:
        if verifier.audience != service.name:
            raise ValueError(
                f"the claim verifier is for {verifier.audience!r}, not {service.name!r}"
            )
        self.service = service
        self.bus = bus
        self.verifier = verifier
        self.concurrency = concurrency
        self.instance = instance or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self.context = ServiceContext(
            service=service.name, instance=self.instance, bus=bus, settings=settings, clock=clock
        )
        self._worker: Worker | None = None
        self._micro: MicroService | None = None
        self._started = False

    @property
    def running(self) -> bool:
        """Started and not stopped: taking intents and requests."""
        return self._started

    # -- lifecycle --------------------------------------------------------------------------

    async def _announce(self, state: ServiceStateName) -> None:
        env = Envelope.new(
            f"service.{state}",
            ServiceState(
                service=self.service.name,
                instance=self.instance,
                state=state,
                version=self.service.version,
                endpoints=sorted(self.service.handlers),
            ),
            conversation=Conversation(channel="system", id=self.service.name),
            actor=SYSTEM_ACTOR,
        )
        await self.bus.publish(env)

    async def start(self) -> None:
        """Run startup hooks, then serve the intent consumer and the micro endpoints."""
        await self._announce("started")
        for hook in self.service.startup_hooks:
            await hook(self.context)
        self._micro = await start_micro_service(
            self.bus,
            self.service.name,
            self.service.version,
            self.service.description or self.service.name,
            [
                MicroEndpoint(name=action, handler=self._micro_handler(action))
                for action in sorted(self.service.handlers)
            ],
        )
        self._worker = await self.bus.work(
            self.service.name, self._on_delivery, concurrency=self.concurrency
        )
        self._started = True
        await self._announce("ready")
        log.info("service ready", service=self.service.name, instance=self.instance)

    async def stop(self, grace: float = 10.0) -> None:
        """Announce stopping, stop taking work, let in-flight intents finish, run hooks."""
        if not self._started:
            return
        self._started = False
        try:
            await self._announce("stopping")
        except Exception as exc:  # the bus may already be gone; stopping must go on
            log.warning("could not announce stopping", error=repr(exc))
        if self._micro:
            await self._micro.stop()
        if self._worker:
            await self._worker.stop(grace)
        for hook in self.service.shutdown_hooks:
            await hook(self.context)

    # -- intent door ---------------------------------------------------------------------------

    async def _on_delivery(self, delivery: Delivery) -> None:
        intent = delivery.envelope
        if intent is None:
            # Not even an envelope: nobody to answer. Log and drop it for good.
            log.error("malformed intent dropped", error=delivery.error, seq=delivery.stream_seq)
            await delivery.term()
            return
        parsed = subjects.parse_intent_type(intent.type)
        action = parsed[1] if parsed else ""
        try:
            claims = self.verify(intent)
        except ClaimError as exc:
            await self._refuse(intent, action, "intent", exc)
            await delivery.term()
            return
        intent = intent.model_copy(update={"actor": claims.actor})
        spec = self.service.public_handlers().get(action)
        if spec is None:
            await self._answer(
                intent,
                Reply(
                    text=f"The {self.service.name} service has no action '{action}'.",
                    status="invalid",
                    service=self.service.name,
                    action=action,
                ),
            )
            await delivery.term()
            return
        keepalive = _KeepAlive(delivery, self.bus.limits.ack_wait_seconds / 3)
        try:
            async with asyncio.timeout(self.bus.limits.handler_timeout_seconds):
                outcome = await invoke(spec, self.context, intent, verified_email=claims.email)
        except Exception as exc:
            keepalive.cancel()
            await self._on_handler_failure(delivery, intent, action, exc)
            return
        keepalive.cancel()
        await self._answer(intent, outcome.reply)
        await delivery.ack()

    async def _answer(self, intent: Envelope, reply: Reply) -> None:
        await self.bus.publish(
            intent.follow("reply", reply, actor=SYSTEM_ACTOR, id=reply_id(intent))
        )

    def verify(self, envelope: Envelope) -> VerifiedClaims:
        """The claims of ``envelope``'s signed claim, bound to its conversation (or
        ``ClaimError``)."""
        claims = self.verifier.verify(envelope.claim)
        conversation = envelope.conversation
        if not claims.allows(conversation.channel, conversation.id):
            raise ClaimError("wrong_conversation", "the claim is for another conversation")
        return claims

    async def _refuse(self, envelope: Envelope, action: str, door: str, exc: ClaimError) -> Reply:
        """Answer an untrusted claim with ``denied`` and record a security event."""
        log.warning(
            "claim refused",
            service=self.service.name,
            action=action,
            door=door,
            reason=exc.reason,
            claimed_actor=envelope.actor.id[:64],
        )
        reply = Reply(
            text=_refusal_text(exc),
            status="denied",
            service=self.service.name,
            action=action,
        )
        refusal = envelope.follow(
            CLAIM_REJECTED,
            SecurityRefusal(
                service=self.service.name,
                action=action[:64] or "?",
                door="intent" if door == "intent" else "request",
                reason=exc.reason,
                claimed_actor=envelope.actor.id[:256],
            ),
            actor=system_actor(self.service.name),
            id=uuid.uuid5(envelope.id, "claim-rejected"),
        )
        try:
            if door == "intent":
                await self._answer(envelope, reply)
            await self.bus.publish(refusal)
        except Exception as publish_error:  # the refusal stands even if the bus is gone
            log.warning("could not publish a claim refusal", error=repr(publish_error))
        return reply

    async def _on_handler_failure(
        self, delivery: Delivery, intent: Envelope, action: str, exc: Exception
    ) -> None:
        reference = failure_reference(intent)
        _std_log.error(
            "handler %s.%s failed (delivery %s/%s, reference %s, correlation %s)",
            self.service.name,
            action,
            delivery.num_delivered,
            delivery.max_deliver,
            reference,
            intent.correlation_id,
            exc_info=exc,
        )
        if not delivery.is_last_delivery:
            backoff = self.bus.limits.backoff_seconds
            delay = backoff[min(delivery.num_delivered - 1, len(backoff) - 1)] if backoff else 1.0
            await delivery.nak(delay=delay)
            return
        await give_up(
            self.bus,
            intent,
            reason="timeout" if isinstance(exc, TimeoutError) else "handler_failed",
            deliveries=delivery.num_delivered,
            error=type(exc).__name__,
        )
        await delivery.term()

    # -- request/reply (micro) door ----------------------------------------------------------

    def _micro_handler(self, action: str):  # type: ignore[no-untyped-def]
        spec = self.service.handlers[action]

        async def handle(data: bytes, headers: dict[str, str]) -> MicroResponse:
            try:
                envelope = envelope_from_request(self.service.name, action, data, headers)
            except ValueError as exc:
                reply = Reply(
                    text=f"Bad request: {exc}",
                    status="invalid",
                    service=self.service.name,
                    action=action,
                )
                return _micro_answer(reply)
            try:
                claims = self.verify(envelope)
            except ClaimError as exc:
                return _micro_answer(await self._refuse(envelope, action, "request", exc))
            return await self._serve_request(spec, envelope, claims)

        return handle

    async def _serve_request(
        self, spec: HandlerSpec, envelope: Envelope, claims: VerifiedClaims
    ) -> MicroResponse:
        envelope = envelope.model_copy(update={"actor": claims.actor})
        try:
            outcome: Outcome = await invoke(
                spec, self.context, envelope, verified_email=claims.email, door="request"
            )
        except Exception as exc:
            reference = failure_reference(envelope)
            _std_log.error(
                "handler %s.%s failed on request/reply (reference %s, correlation %s)",
                self.service.name,
                spec.action,
                reference,
                envelope.correlation_id,
                exc_info=exc,
            )
            reply = Reply(
                text=f"Internal error, reference {reference}.",
                status="error",
                service=self.service.name,
                action=spec.action,
                reference=reference,
            )
            return _micro_answer(reply)
        return _micro_answer(outcome.reply)


def _micro_answer(reply: Reply) -> MicroResponse:
    """A reply as a micro response (an error response for invalid, denied and error)."""
    code = _STATUS_CODES.get(reply.status)
    return MicroResponse(reply.model_dump_json().encode(), code, reply.text if code else "")


def _refusal_text(exc: ClaimError) -> str:
    if exc.reason == "expired":
        return (
            "Sorry, that request waited too long to be handled and has expired. "
            "Please send it again."
        )
    return "Sorry, that request could not be verified, so it was refused."


class _KeepAlive:
    """Sends in-progress acks every ``interval`` s while a handler runs, so JetStream does not
    redeliver a slow (but alive) handler's intent; a timer, not a task, on the hot path."""

    def __init__(self, delivery: Delivery, interval: float) -> None:
        self._delivery = delivery
        self._interval = max(interval, 0.2)
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(self._interval, self._beat)
        self._tasks: set[asyncio.Task[None]] = set()

    def _beat(self) -> None:
        task = self._loop.create_task(self._delivery.in_progress())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._handle = self._loop.call_later(self._interval, self._beat)

    def cancel(self) -> None:
        """Stop beating (the handler finished)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def envelope_from_request(
    service: str, action: str, data: bytes, headers: dict[str, str]
) -> Envelope:
    """Turn a micro request into an intent envelope (its claim is checked by the caller).

    The body is either a whole envelope (its ``claim`` set), or the bare payload with the claim
    in the ``Fd-Claim`` header. Nothing else identifies the caller.
    """
    try:
        body = json.loads(data or b"{}")
    except (ValueError, RecursionError) as exc:
        raise ValueError("body is not JSON") from exc
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    if {"type", "payload", "conversation", "actor"} <= body.keys():
        try:
            envelope = Envelope.model_validate(body)
        except ValidationError as exc:
            raise ValueError(f"invalid envelope: {exc.errors()[0]['msg']}") from exc
        if envelope.type != subjects.intent_type(service, action):
            raise ValueError(f"the envelope's type is not intent.{service}.{action}")
        return envelope
    claim = headers.get(CLAIM_HEADER) or None
    return Envelope.new(
        subjects.intent_type(service, action),
        body,
        conversation=_claimed_conversation(claim),
        actor=system_actor("unverified"),
        claim=claim,
    )


def _claimed_conversation(claim: str | None) -> Conversation:
    """The conversation a (not yet verified) claim names, else a fresh ``api`` one; the claim's
    check then holds the envelope to it."""
    bound = unverified_conversation(claim) if claim else None
    if bound is not None:
        with contextlib.suppress(ValueError):
            return Conversation(channel=bound[0], id=bound[1])  # type: ignore[arg-type]
    return Conversation(channel="api", id=f"micro-{uuid.uuid4().hex}")


async def start_all(runners: list[ServiceRunner]) -> None:
    """Start several runners concurrently."""
    await asyncio.gather(*(r.start() for r in runners))


async def stop_all(runners: list[ServiceRunner], grace: float = 10.0) -> None:
    """Stop several runners concurrently."""
    await asyncio.gather(*(r.stop(grace) for r in runners), return_exceptions=True)
