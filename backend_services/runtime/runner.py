"""Serving a ``Service``: its intent consumer, its micro endpoints, its lifecycle events.

Intent door: each intent is handled, answered with a ``reply`` on FD_EVENTS (same correlation
and conversation, id derived from the intent id so a redelivery never answers twice) and then
acknowledged. A handler that raises is retried with back-off within the consumer's bound; after
the last delivery the user gets a failure reply with a short reference, never silence.

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
import json
import logging
import socket
import uuid
from typing import Any

import structlog
from pydantic import ValidationError

from backend_services.runtime.context import Clock, ServiceContext, utc_now
from backend_services.runtime.invoke import failure_reference, invoke
from backend_services.runtime.service import Service
from events import subjects
from events.bus import Bus, Delivery, Worker
from events.envelope import SYSTEM_ACTOR, Actor, Conversation, Envelope
from events.micro import MicroEndpoint, MicroResponse, MicroService, start_micro_service
from events.payloads import IntentFailed, Reply, ServiceState, ServiceStateName

log = structlog.get_logger("frontdoor.runtime")
_std_log = logging.getLogger("frontdoor.runtime")

_STATUS_CODES = {"invalid": 400, "denied": 403, "error": 500}


def reply_id(intent: Envelope) -> uuid.UUID:
    """The id of the reply to ``intent`` (deterministic: redeliveries dedupe on the bus)."""
    return uuid.uuid5(intent.id, "reply")


class ServiceRunner:
    """Runs one instance of a service on the bus. Several instances share the work."""

    def __init__(
        self,
        service: Service,
        bus: Bus,
        *,
        settings: Any = None,
        instance: str | None = None,
        concurrency: int = 16,
        clock: Clock = utc_now,
    ) -> None:
        self.service = service
        self.bus = bus
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
        spec = self.service.handlers.get(action)
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
            outcome = await invoke(spec, self.context, intent)
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
        await self._answer(
            intent,
            Reply(
                text=(
                    f"Sorry, something went wrong while handling that ({self.service.name} "
                    f"{action.replace('_', ' ')}). Please try again later; if it keeps "
                    f"happening, quote reference {reference}."
                ),
                status="error",
                service=self.service.name,
                action=action,
                reference=reference,
            ),
        )
        await self.bus.publish(
            intent.follow(
                "intent.failed",
                IntentFailed(
                    service=self.service.name,
                    action=action,
                    reference=reference,
                    deliveries=delivery.num_delivered,
                    error=type(exc).__name__,
                ),
                actor=SYSTEM_ACTOR,
                id=uuid.uuid5(intent.id, "failed"),
            )
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
                return MicroResponse(reply.model_dump_json().encode(), 400, str(exc))
            try:
                outcome = await invoke(spec, self.context, envelope)
            except Exception as exc:
                reference = failure_reference(envelope)
                _std_log.error(
                    "handler %s.%s failed on request/reply (reference %s, correlation %s)",
                    self.service.name,
                    action,
                    reference,
                    envelope.correlation_id,
                    exc_info=exc,
                )
                reply = Reply(
                    text=f"Internal error, reference {reference}.",
                    status="error",
                    service=self.service.name,
                    action=action,
                    reference=reference,
                )
                return MicroResponse(reply.model_dump_json().encode(), 500, reply.text)
            body = outcome.reply.model_dump_json().encode()
            code = _STATUS_CODES.get(outcome.reply.status)
            return MicroResponse(body, code, outcome.reply.text if code else "")

        return handle


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
    """Turn a micro request into an intent envelope.

    The body is either a whole envelope, or the bare payload with the actor in the ``Fd-Actor``
    header (JSON); without it the caller is an anonymous ``user``.
    """
    try:
        body = json.loads(data or b"{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON ({exc.msg})") from exc
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    if {"type", "payload", "conversation", "actor"} <= body.keys():
        try:
            return Envelope.model_validate(body)
        except ValidationError as exc:
            raise ValueError(f"invalid envelope: {exc.errors()[0]['msg']}") from exc
    actor = Actor(id="anonymous", roles=("user",))
    if raw_actor := headers.get("Fd-Actor"):
        try:
            actor = Actor.model_validate_json(raw_actor)
        except ValidationError as exc:
            raise ValueError("Fd-Actor header is not a valid actor") from exc
    return Envelope.new(
        subjects.intent_type(service, action),
        body,
        conversation=Conversation(channel="api", id=f"micro-{uuid.uuid4().hex}"),
        actor=actor,
    )


async def start_all(runners: list[ServiceRunner]) -> None:
    """Start several runners concurrently."""
    await asyncio.gather(*(r.start() for r in runners))


async def stop_all(runners: list[ServiceRunner], grace: float = 10.0) -> None:
    """Stop several runners concurrently."""
    await asyncio.gather(*(r.stop(grace) for r in runners), return_exceptions=True)
