"""Which services are up: a registry fed by ``service.*`` events, checked against ``$SRV``.

The registry tails the ``service.started/ready/stopping/stopped`` events of FD_EVENTS (from the
start of the stream, so it knows services that announced themselves before management started)
and, when asked, pings every micro service with ``$SRV.STATS`` for liveness and error counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend_services.management.core import service, state_of
from backend_services.runtime import HandlerContext
from events import subjects
from events.bus import Bus
from events.envelope import Envelope
from events.micro import discover
from events.payloads import ServiceState

log = logging.getLogger("frontdoor.management.ops")


@dataclass
class InstanceSeen:
    """The last state event of one service instance."""

    service: str
    instance: str
    state: str
    version: str
    endpoints: list[str]
    at: datetime
    seq: int


class ServiceRegistry:
    """Service instances as announced on the bus (``apply`` each ``service.*`` event)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.instances: dict[tuple[str, str], InstanceSeen] = {}
        self.last_seq = 0
        #: service -> intents given up on after their last delivery (``intent.failed``)
        self.failed: dict[str, int] = {}
        self.last_failed_seq = 0
        self._tasks: list[asyncio.Task[None]] = []

    def apply(self, seq: int, env: Envelope) -> None:
        """Record one ``service.*`` event (older or repeated sequences are ignored)."""
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        try:
            state = env.payload_as(ServiceState)
        except ValidationError:
            return
        key = (state.service, state.instance)
        self.instances[key] = InstanceSeen(
            service=state.service,
            instance=state.instance,
            state=state.state,
            version=state.version,
            endpoints=list(state.endpoints),
            at=env.occurred_at,
            seq=seq,
        )

    def apply_failure(self, seq: int, env: Envelope) -> None:
        """Count one ``intent.failed`` event against its service."""
        if seq <= self.last_failed_seq:
            return
        self.last_failed_seq = seq
        name = env.payload.get("service")
        if isinstance(name, str) and name:
            self.failed[name] = self.failed.get(name, 0) + 1

    async def _follow(self, envelope_type: str) -> None:
        flt = subjects.events_filter(envelope_type=envelope_type)
        failures = envelope_type == "intent.failed"
        while True:
            start = (self.last_failed_seq if failures else self.last_seq) + 1
            try:
                async for seq, env in self.bus.tail(flt, from_seq=start):
                    (self.apply_failure if failures else self.apply)(seq, env)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep following; resume after the last sequence seen
                log.warning("service registry: tail of %s failed (%r)", envelope_type, exc)
                await asyncio.sleep(1.0)

    def start(self) -> None:
        """Follow the bus in the background."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._follow(kind), name=f"mgmt-registry-{kind}")
                for kind in ("service.>", "intent.failed")
            ]

    async def stop(self) -> None:
        """Stop following."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def status(self, now: datetime, only: str | None = None) -> ServicesStatus:
        """Every known service, combining announcements with a live ``$SRV.STATS`` round."""
        try:
            stats = await discover(self.bus, "STATS")
        except Exception as exc:
            log.warning("$SRV.STATS failed: %r", exc)
            stats = []
        live: dict[str, list[dict[str, Any]]] = {}
        for answer in stats:
            if isinstance(answer, dict) and answer.get("name"):
                live.setdefault(str(answer["name"]), []).append(answer)
        announced: dict[str, list[InstanceSeen]] = {}
        for seen in self.instances.values():
            announced.setdefault(seen.service, []).append(seen)
        names = sorted(set(live) | set(announced))
        if only:
            names = [n for n in names if n == only]
        return ServicesStatus(
            services=[
                _combine(n, announced.get(n, []), live.get(n, []), self.failed.get(n, 0), now)
                for n in names
            ],
            checked_at=now,
        )


def _combine(
    name: str, seen: list[InstanceSeen], live: list[dict[str, Any]], failed: int, now: datetime
) -> ServiceStatus:
    requests = errors = 0
    last_error: str | None = None
    for answer in live:
        for endpoint in answer.get("endpoints") or []:
            requests += int(endpoint.get("num_requests") or 0)
            errors += int(endpoint.get("num_errors") or 0)
            if endpoint.get("last_error"):
                last_error = str(endpoint["last_error"])
    latest = max(seen, key=lambda s: s.seq) if seen else None
    running = [s for s in seen if s.state in ("started", "ready")]
    if live:
        state = "up"
    elif running:
        state = "not_answering"  # announced itself but does not answer $SRV: crashed/hung?
    else:
        state = "down"
    version = (live[0].get("version") if live else None) or (latest.version if latest else "")
    return ServiceStatus(
        name=name,
        state=state,
        last_event=latest.state if latest else None,
        last_seen=now if live else (latest.at if latest else None),
        version=str(version),
        instances=len(live),
        announced_instances=len(running),
        endpoints=sorted(latest.endpoints) if latest else [],
        requests=requests,
        errors=errors,
        failed_intents=failed,
        last_error=last_error,
    )


class ServicesStatusQuery(BaseModel):
    """Optionally one service only."""

    model_config = ConfigDict(extra="ignore")

    service: str | None = Field(default=None, max_length=64)


class ServiceStatus(BaseModel):
    """One service: ``up`` (answers ``$SRV``), ``not_answering`` (announced, silent) or ``down``."""

    name: str
    state: str
    last_event: str | None
    last_seen: datetime | None
    version: str
    instances: int = Field(description="Instances answering $SRV right now")
    announced_instances: int = Field(description="Instances whose last event is started/ready")
    endpoints: list[str]
    requests: int = Field(description="Requests on its $SRV endpoints (all live instances)")
    errors: int = Field(description="Errors counted by $SRV.STATS")
    failed_intents: int = Field(
        default=0, description="Intents given up on after the last delivery (intent.failed)"
    )
    last_error: str | None = None


class ServicesStatus(BaseModel):
    """The answer to "which services are up?"."""

    services: list[ServiceStatus]
    checked_at: datetime

    def reply_text(self) -> str:
        """``Services up: management, marketing. Not answering: analysis. Down: generative.``"""
        if not self.services:
            return "No services have announced themselves yet."
        parts = []
        groups = (("up", "Services up"), ("not_answering", "Not answering"), ("down", "Down"))
        for state, title in groups:
            names = [s.name for s in self.services if s.state == state]
            if names:
                parts.append(f"{title}: {', '.join(names)}.")
        with_errors = [
            f"{s.name} ({s.errors + s.failed_intents})"
            for s in self.services
            if s.errors + s.failed_intents
        ]
        if with_errors:
            parts.append(f"Errors: {', '.join(with_errors)}.")
        return " ".join(parts)


# Anyone, even an actor whose roles were not resolved: it reveals no personal data.
@service.handler("services_status", roles=None, summary="Which services are up?")
async def services_status(payload: ServicesStatusQuery, ctx: HandlerContext) -> ServicesStatus:
    """State, last seen, version, instance and error counts of every service."""
    st = state_of(ctx)
    if st.registry is None:
        registry = ServiceRegistry(ctx.bus)  # ops following disabled: $SRV only
        return await registry.status(ctx.now(), payload.service)
    return await st.registry.status(ctx.now(), payload.service)
