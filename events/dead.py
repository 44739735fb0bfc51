"""Dead letters: intents that ran out of deliveries, kept for an operator, never silently lost.

An intent is given up on when its handler failed on every delivery (the service's runtime
answers the user and dead-letters it), or when JetStream stopped redelivering it because every
delivery ended without an answer (a process that crash-loops on it, a handler that hangs): then
``ExhaustedIntents`` (run by the gateway) hears JetStream's ``MAX_DELIVERIES`` advisory, answers
the user with the same failure reply the runtime would have sent, and dead-letters it.

Dead letters are the intent's envelope, unchanged, on ``fd.dead.<service>.<action>`` (stream
``FD_DEAD``), with why and how often it was tried in headers. ``frontdoor dead list`` shows them
and ``frontdoor dead replay`` publishes them again (with a fresh claim signed by the operator's
key and a new id, so the service runs it once more). Every id is derived from the intent's, so
the runtime and the watcher, or two gateways, never answer nor dead-letter it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js.errors import NotFoundError

from events import subjects
from events.bus import Bus
from events.claims import system_actor
from events.envelope import SYSTEM_ACTOR, Envelope
from events.payloads import IntentFailed, Reply

log = logging.getLogger("frontdoor.dead")

HEADER_REASON = "Fd-Dead-Reason"
HEADER_DELIVERIES = "Fd-Deliveries"
HEADER_ERROR = "Fd-Error"
#: JetStream's advisory when a consumer stops redelivering a message.
MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{subjects.INTENT_STREAM}.*"


def reply_id(intent: Envelope) -> uuid.UUID:
    """The id of the reply to ``intent`` (deterministic: a second answer is dropped)."""
    return uuid.uuid5(intent.id, "reply")


def failure_reference(intent: Envelope) -> str:
    """A short id the user can quote; the same for every delivery of one intent."""
    return uuid.uuid5(intent.id, "failure").hex[:8]


def failure_reply(intent: Envelope, service: str, action: str) -> Reply:
    """What the user is told when their intent is given up on."""
    reference = failure_reference(intent)
    return Reply(
        text=(
            f"Sorry, something went wrong while handling that ({service} "
            f"{action.replace('_', ' ')}). Please try again later; if it keeps "
            f"happening, quote reference {reference}."
        ),
        status="error",
        service=service,
        action=action,
        reference=reference,
    )


async def give_up(bus: Bus, intent: Envelope, *, reason: str, deliveries: int, error: str) -> None:
    """Dead-letter ``intent``, record ``intent.failed`` and answer the user (all idempotent;
    the answer last, so whoever sees it finds the record)."""
    target = subjects.parse_intent_type(intent.type) or ("?", "?")
    service, action = target
    await dead_letter(bus, intent, reason=reason, deliveries=deliveries, error=error)
    await bus.publish(
        intent.follow(
            "intent.failed",
            IntentFailed(
                service=service,
                action=action,
                reference=failure_reference(intent),
                deliveries=deliveries,
                error=error[:200],
            ),
            actor=system_actor(service),
            id=uuid.uuid5(intent.id, "failed"),
        )
    )
    await bus.publish(
        intent.follow(
            "reply",
            failure_reply(intent, service, action),
            actor=SYSTEM_ACTOR,
            id=reply_id(intent),
        )
    )


async def dead_letter(
    bus: Bus, intent: Envelope, *, reason: str, deliveries: int, error: str
) -> int:
    """Keep ``intent`` on ``FD_DEAD``; return its sequence there."""
    target = subjects.parse_intent_type(intent.type) or ("unknown", "unknown")
    return await bus.publish_raw(
        subjects.dead_subject(*target),
        intent.to_bytes(),
        {
            "Nats-Msg-Id": str(uuid.uuid5(intent.id, "dead")),
            HEADER_REASON: reason,
            HEADER_DELIVERIES: str(deliveries),
            HEADER_ERROR: error[:200],
        },
    )


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: the intent, why and when it was given up on."""

    seq: int
    intent: Envelope
    service: str
    action: str
    reason: str
    deliveries: int
    error: str
    dead_at: datetime


async def list_dead(bus: Bus, service: str | None = None) -> list[DeadLetter]:
    """Every dead letter (of ``service``), oldest first."""
    state = (await bus.js.stream_info(subjects.DEAD_STREAM)).state
    out: list[DeadLetter] = []
    if not state.messages:
        return out
    for seq in range(int(state.first_seq), int(state.last_seq) + 1):
        letter = await get_dead(bus, seq)
        if letter is not None and (service is None or letter.service == service):
            out.append(letter)
    return out


async def get_dead(bus: Bus, seq: int) -> DeadLetter | None:
    """The dead letter at ``seq``, or ``None`` (removed, or not a dead letter)."""
    try:
        raw = await bus.js.get_msg(subjects.DEAD_STREAM, seq)
    except NotFoundError:
        return None
    try:
        intent = Envelope.from_bytes(raw.data or b"")
    except ValueError:
        return None
    headers = raw.headers or {}
    service, action = subjects.parse_intent_type(intent.type) or ("?", "?")
    return DeadLetter(
        seq=seq,
        intent=intent,
        service=service,
        action=action,
        reason=str(headers.get(HEADER_REASON, "")),
        deliveries=int(headers.get(HEADER_DELIVERIES, "0") or 0),
        error=str(headers.get(HEADER_ERROR, "")),
        dead_at=raw.time or datetime.now(UTC),
    )


async def remove_dead(bus: Bus, seq: int) -> None:
    """Delete the dead letter at ``seq`` (after a replay)."""
    with contextlib.suppress(NotFoundError):
        await bus.js.delete_msg(subjects.DEAD_STREAM, seq)


class ExhaustedIntents:
    """Gives up on intents JetStream stopped redelivering without anyone answering them.

    Listens to the ``MAX_DELIVERIES`` advisories of every service consumer; each names the
    intent's stream sequence, which is read, answered (``give_up``) and removed from the work
    queue. Any number of gateways may run it: every step is idempotent.
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._sub: object | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Subscribe to the advisories."""
        self._sub = await self._bus.subscribe_core(MAX_DELIVERIES_ADVISORY, self._on_advisory)

    async def stop(self) -> None:
        """Unsubscribe and let running hand-overs finish."""
        unsubscribe = getattr(self._sub, "unsubscribe", None)
        if unsubscribe is not None:
            with contextlib.suppress(Exception):
                await unsubscribe()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    async def _on_advisory(self, data: bytes) -> None:
        try:
            advisory = json.loads(data)
            seq = int(advisory["stream_seq"])
            deliveries = int(advisory.get("deliveries", 0))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable MAX_DELIVERIES advisory ignored")
            return
        task = asyncio.create_task(self._handle_logged(seq, deliveries))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_logged(self, seq: int, deliveries: int) -> None:
        try:
            await self.handle(seq, deliveries)
        except Exception:
            log.exception("could not give up on the intent at FD_INTENTS sequence %s", seq)

    async def handle(self, seq: int, deliveries: int) -> bool:
        """Give up on the intent at ``seq`` of ``FD_INTENTS``; False when it is gone already."""
        try:
            raw = await self._bus.js.get_msg(subjects.INTENT_STREAM, seq)
        except NotFoundError:
            return False
        try:
            intent = Envelope.from_bytes(raw.data or b"")
        except ValueError:
            log.error("malformed intent at FD_INTENTS sequence %s removed", seq)
            await self._delete(seq)
            return False
        log.error(
            "intent %s (%s) ran out of deliveries without an answer; the user is told and it "
            "is dead-lettered",
            intent.id,
            intent.type,
        )
        await give_up(
            self._bus,
            intent,
            reason="max_deliveries",
            deliveries=deliveries,
            error="no answer after every delivery (the service crashed or hung)",
        )
        await self._delete(seq)
        return True

    async def _delete(self, seq: int) -> None:
        with contextlib.suppress(NotFoundError):
            await self._bus.js.delete_msg(subjects.INTENT_STREAM, seq)
