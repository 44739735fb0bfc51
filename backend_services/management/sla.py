"""The SLA checker: finds missed first-response/resolution targets, emits ``ticket.sla_breached``.

Runs every ``FRONTDOOR_MANAGEMENT_SLA_CHECK_SECONDS`` on every instance; a breach is claimed by
a conditional UPDATE, so it is reported once however many instances run. The time comes from
the service's injectable clock (tests use a fake one and call ``run_once``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from backend_services.management import tickets_repo as repo
from backend_services.management.database import Database
from backend_services.management.domain_events import TicketSlaBreached
from events.bus import Bus
from events.envelope import SYSTEM_ACTOR, Conversation, Envelope

log = logging.getLogger("frontdoor.management.sla")

#: Namespace of the deterministic ids of SLA events (one event per ticket, target and due time).
SLA_NAMESPACE = uuid.UUID("9b0f3c1e-2d7a-4c8e-9f61-5a1d7e3b2c40")
#: Domain events without a conversation go to this system conversation.
SYSTEM_CONVERSATION = Conversation(channel="system", id="management")


def system_event(type_: str, payload: dict, event_id: uuid.UUID) -> Envelope:
    """An event of the management service not caused by an intent."""
    return Envelope.new(
        type_, payload, conversation=SYSTEM_CONVERSATION, actor=SYSTEM_ACTOR, id=event_id
    )


class SlaChecker:
    """Checks SLA targets with ``run_once``; ``start`` runs it periodically."""

    def __init__(
        self, db: Database, bus: Bus, clock: Callable[[], datetime], interval: float
    ) -> None:
        self.db = db
        self.bus = bus
        self.clock = clock
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> list[TicketSlaBreached]:
        """Claim and announce every breach up to now; forget old processed request ids."""
        now = self.clock()
        reported: list[TicketSlaBreached] = []
        async with self.db.write_session() as s:
            for ticket, kind, due_at in await repo.claim_breaches(s, now):
                payload = TicketSlaBreached.model_validate(
                    {
                        **await repo.snapshot(s, ticket),
                        "kind": kind,
                        "due_at": due_at,
                        "detected_at": now,
                    }
                )
                event_id = uuid.uuid5(SLA_NAMESPACE, f"{ticket.id}:{kind}:{due_at.isoformat()}")
                # Published before the commit: a failed commit re-claims and re-publishes the
                # same id next round (the bus keeps one); a failed publish rolls the claim back.
                await self.bus.publish(
                    system_event("ticket.sla_breached", payload.model_dump(mode="json"), event_id)
                )
                reported.append(payload)
            await repo.prune_processed(s, now - repo.PROCESSED_RETENTION)
        return reported

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                breaches = await self.run_once()
                if breaches:
                    log.info("SLA breaches reported: %s", len(breaches))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SLA check failed; trying again in %ss", self.interval)

    def start(self) -> None:
        """Run periodically in the background."""
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="mgmt-sla-checker")

    async def stop(self) -> None:
        """Stop the background loop."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
