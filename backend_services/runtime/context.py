"""What handlers and hooks get: the bus, the actor, shared state, a clock, ``emit``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel

from events.bus import Bus
from events.envelope import Actor, Envelope

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock (aware UTC)."""
    return datetime.now(UTC)


@dataclass
class ServiceContext:
    """Per-runner context for start/stop hooks: the bus, settings and the shared ``state``."""

    service: str
    instance: str
    bus: Bus
    settings: Any = None
    clock: Clock = utc_now
    state: dict[str, Any] = field(default_factory=dict)

    def now(self) -> datetime:
        """The current time from the injectable clock."""
        return self.clock()


@dataclass
class HandlerContext:
    """Per-call context of a handler."""

    service: ServiceContext
    envelope: Envelope
    action: str
    #: the caller's email when the claim proved it (a signed site token, a registered user)
    verified_email: str | None = None
    #: how the call came: a chat ``intent`` (its reply is kept on the bus) or a ``request``
    door: Literal["intent", "request"] = "intent"
    _emitted: int = 0

    @property
    def actor(self) -> Actor:
        """Who asked, as the verified claim says (the envelope's actor is replaced by it)."""
        return self.envelope.actor

    @property
    def correlation_id(self) -> uuid.UUID:
        """The user turn this call belongs to."""
        return self.envelope.correlation_id

    @property
    def bus(self) -> Bus:
        """The bus."""
        return self.service.bus

    @property
    def state(self) -> dict[str, Any]:
        """The service's shared state (filled by startup hooks)."""
        return self.service.state

    @property
    def log(self) -> Any:
        """A logger bound to the service, action and correlation id."""
        return structlog.get_logger("frontdoor.service").bind(
            service=self.service.service,
            action=self.action,
            correlation_id=str(self.correlation_id),
        )

    def now(self) -> datetime:
        """The current time from the injectable clock."""
        return self.service.now()

    def event(self, number: int, type: str, payload: BaseModel | dict[str, Any]) -> Envelope:
        """The ``number``-th (from 1) domain event of this intent, not published: its id is
        derived from the intent id, the number and the type (what ``emit`` publishes)."""
        event_id = uuid.uuid5(self.envelope.id, f"emit:{number}:{type}")
        return self.envelope.follow(type, payload, id=event_id)

    async def emit(self, type: str, payload: BaseModel | dict[str, Any]) -> int:
        """Publish a domain event following the intent; return its bus sequence.

        The event id is derived from the intent id and the emit order, so a redelivered intent
        that emits again produces the same ids and the bus stores each event once.
        """
        self._emitted += 1
        return await self.bus.publish(self.event(self._emitted, type, payload))
