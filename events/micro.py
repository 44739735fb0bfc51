"""NATS micro services (``$SRV.PING/INFO/STATS`` discovery) behind a small typed wrapper.

A request handler gets the raw request bytes and headers and returns ``MicroResponse``; errors
are sent with the micro protocol's ``Nats-Service-Error``/``-Code`` headers.

An endpoint runs its handler only for a real request: a message published on the endpoint's own
subject with an inbox to answer to. A JetStream push consumer can deliver stored events to any
subject, even one its creator may not publish to; such a delivery keeps the stored subject
(``fd.event...``) and carries a ``$JS.ACK`` reply, so it is dropped here, never handled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service, ServiceConfig

from events import subjects
from events.bus import Bus
from events.claims import ClaimIssuer
from events.envelope import Actor
from events.payloads import Reply

MICRO_SUBJECT_PREFIX = subjects.SERVICE_PREFIX

log = logging.getLogger("frontdoor.micro")


@dataclass(frozen=True)
class MicroResponse:
    """An answer to a micro request: ``error_code`` set means an error response."""

    data: bytes
    error_code: int | None = None
    error: str = ""


MicroHandler = Callable[[bytes, dict[str, str]], Awaitable[MicroResponse]]


@dataclass
class MicroEndpoint:
    """One endpoint: served on ``fd.svc.<service>.<name>``."""

    name: str
    handler: MicroHandler
    metadata: dict[str, str] = field(default_factory=dict)


def micro_subject(service: str, action: str) -> str:
    """The request/reply subject of a service action."""
    return f"{MICRO_SUBJECT_PREFIX}.{service}.{action}"


class MicroService:
    """A running micro service; ``stop()`` unsubscribes its endpoints."""

    def __init__(self, service: Service) -> None:
        self._service = service

    @property
    def id(self) -> str:
        """The instance id the micro protocol assigned."""
        return str(self._service.id)

    async def stop(self) -> None:
        """Stop answering requests."""
        await self._service.stop()


async def start_micro_service(
    bus: Bus,
    name: str,
    version: str,
    description: str,
    endpoints: list[MicroEndpoint],
    metadata: dict[str, str] | None = None,
) -> MicroService:
    """Register ``endpoints`` as the micro service ``name`` (queue group ``name``)."""
    service = await add_service(
        bus.nc,
        ServiceConfig(
            name=name,
            version=version,
            description=description,
            metadata=metadata or {},
            queue_group=f"svc_{name}",
        ),
    )

    def wrap(handler: MicroHandler, subject: str) -> Callable[[Request], Awaitable[None]]:
        async def serve(request: Request) -> None:
            if not is_request(request, subject):
                log.warning(
                    "dropped a message on %s that is not a request (subject %s)",
                    subject,
                    request.subject,
                )
                return
            try:
                response = await handler(request.data, dict(request.headers or {}))
            except Exception as exc:  # the handler should answer errors itself; last resort
                await request.respond_error("500", f"internal error: {type(exc).__name__}")
                return
            if response.error_code is not None:
                await request.respond_error(
                    str(response.error_code), response.error, data=response.data
                )
            else:
                await request.respond(response.data)

        return serve

    for endpoint in endpoints:
        await service.add_endpoint(
            EndpointConfig(
                name=endpoint.name,
                subject=micro_subject(name, endpoint.name),
                handler=wrap(endpoint.handler, micro_subject(name, endpoint.name)),
                metadata=endpoint.metadata or None,
            )
        )
    return MicroService(service)


def is_request(request: Request, subject: str) -> bool:
    """True for a request sent to ``subject`` with an inbox to answer to (not, e.g., a stored
    event that a JetStream consumer delivered to the endpoint)."""
    msg = getattr(request, "_msg", None)
    reply = str(getattr(msg, "reply", "") or "")
    return request.subject == subject and reply.startswith("_INBOX.")


async def discover(bus: Bus, verb: str = "PING", service: str | None = None) -> list[dict]:
    """Ask ``$SRV.<verb>[.<service>]`` and return every instance's answer (parsed JSON)."""
    subject = f"$SRV.{verb}" + (f".{service}" if service else "")
    answers: list[dict] = []
    for raw in await bus.gather_replies(subject, wait=0.5):
        try:
            answer = json.loads(raw)
        except ValueError:
            continue  # e.g. the empty "no responders" status when no service runs at all
        if isinstance(answer, dict):
            answers.append(answer)
    return answers


#: Header of a request that carries the bare payload: the caller's signed claim.
CLAIM_HEADER = "Fd-Claim"


class ServiceClient:
    """Calls services' request/reply doors with a claim signed for the actor (gateway, CLI).

    ``call`` answers the service's ``Reply``; when nobody answers in time it raises
    ``BusUnavailable``.
    """

    def __init__(self, bus: Bus, issuer: ClaimIssuer, *, timeout: float = 5.0) -> None:
        self._bus = bus
        self._issuer = issuer
        self.timeout = timeout

    async def call(
        self,
        service: str,
        action: str,
        payload: dict[str, Any],
        actor: Actor,
        *,
        conversation: tuple[str, str] | None = None,
        email: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send ``payload`` to ``fd.svc.<service>.<action>`` as ``actor`` (from
        ``conversation``, ``(channel, id)``); return the service's reply."""
        claim = self._issuer.issue(actor, service, conversation=conversation, email=email)
        raw = await self._bus.request(
            micro_subject(service, action),
            json.dumps(payload).encode(),
            timeout if timeout is not None else self.timeout,
            headers={CLAIM_HEADER: claim},
        )
        return Reply.model_validate_json(raw)
