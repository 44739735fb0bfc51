"""Calling a service on each of its three doors from a test: intent, micro request, HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from fastapi import Request

from backend_services.runtime import DoorCaller, ServiceRunner, create_http_app
from events import subjects
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.micro import ServiceClient, micro_subject
from events.payloads import Reply
from frontdoor.doors import signed_call
from tests.claims import TEST_ISSUER, signed

USER = Actor(id="slack:U-user", name="Uma User", roles=("user",))
AGENT = Actor(id="slack:U-agent", name="Ada Agent", roles=("agent",))
ADMIN = Actor(id="slack:U-admin", name="Al Admin", roles=("admin",))


def intent(service: str, action: str, payload: dict[str, Any], actor: Actor) -> Envelope:
    """An intent envelope in a fresh web conversation, signed as the gateway would."""
    return signed(
        Envelope.new(
            subjects.intent_type(service, action),
            payload,
            conversation=Conversation(channel="web", id=f"test-{uuid.uuid4().hex[:12]}"),
            actor=actor,
        )
    )


async def reply_to(bus: Bus, env: Envelope, timeout: float = 15.0) -> tuple[int, Reply]:
    """Wait for the ``reply`` that answers ``env`` on the bus; return its sequence and payload."""
    conv = env.conversation
    flt = subjects.events_filter(
        channel=conv.channel, conversation_id=conv.id, envelope_type="reply"
    )

    async def first() -> tuple[int, Reply]:
        async for seq, event in bus.tail(flt, from_seq=1):
            if event.correlation_id == env.correlation_id:
                return seq, event.payload_as(Reply)
        raise AssertionError("tail ended")

    return await asyncio.wait_for(first(), timeout)


async def ask_intent(
    bus: Bus, service: str, action: str, payload: dict[str, Any], actor: Actor
) -> Reply:
    """Publish an intent and wait for its reply on the bus (the chat door)."""
    env = intent(service, action, payload, actor)
    await bus.publish(env)
    return (await reply_to(bus, env))[1]


async def ask_micro(
    bus: Bus, service: str, action: str, payload: dict[str, Any], actor: Actor
) -> Reply:
    """A NATS request to ``fd.svc.<service>.<action>`` with a whole envelope as body."""
    env = intent(service, action, payload, actor)
    raw = await bus.request(micro_subject(service, action), env.to_bytes(), timeout=15.0)
    return Reply.model_validate(json.loads(raw))


async def header_actor(request: Request) -> DoorCaller:
    """Test actor resolver (the gateway checks credentials): ``X-Actor`` and ``X-Roles``."""
    roles = tuple(r for r in request.headers.get("x-roles", "").split(",") if r)
    return DoorCaller(Actor(id=request.headers.get("x-actor", "guest:anonymous"), roles=roles))


def door_call(bus: Bus) -> Any:
    """The HTTP door's remote call, as the gateway makes it (signed with the test key)."""
    return signed_call(ServiceClient(bus, TEST_ISSUER, timeout=15.0), timeout=15.0)


def http_client(bus: Bus, *runners: ServiceRunner, app: Any = None) -> httpx.AsyncClient:
    """An httpx client on the services' HTTP doors (in process, no socket; the doors call the
    runners over NATS with signed claims)."""
    app = app or create_http_app([r.service for r in runners], door_call(bus), header_actor)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


def http_headers(actor: Actor) -> dict[str, str]:
    """Headers ``header_actor`` turns back into ``actor``."""
    return {"x-actor": actor.id, "x-roles": ",".join(actor.roles)}


async def events_of(bus: Bus, envelope_type: str) -> list[Envelope]:
    """Every event of one type on the bus so far (in bus order)."""
    out: list[Envelope] = []
    async for _seq, event in bus.tail(subjects.ALL_EVENTS, from_seq=1, stop_at_end=True):
        if event.type == envelope_type:
            out.append(event)
    return out


DOORS = ("intent", "micro", "http")


async def ask_door(
    door: str,
    bus: Bus,
    runner: ServiceRunner,
    action: str,
    payload: dict[str, Any],
    actor: Actor,
) -> Reply:
    """Call ``action`` of ``runner``'s service on ``door``; HTTP answers are turned into a Reply."""
    service = runner.service.name
    if door == "intent":
        return await ask_intent(bus, service, action, payload, actor)
    if door == "micro":
        return await ask_micro(bus, service, action, payload, actor)
    async with http_client(bus, runner) as client:
        response = await client.post(
            f"/services/{service}/{action}", json=payload, headers=http_headers(actor)
        )
    body = response.json()
    if response.status_code == 200:
        return Reply(text="", status="ok", service=service, action=action, data=body)
    status = {403: "denied", 422: "invalid", 409: "invalid"}.get(response.status_code, "error")
    detail = body.get("detail")
    return Reply(text=detail if isinstance(detail, str) else str(detail), status=status)


async def assert_all_ok(
    door: str, bus: Bus, runner: ServiceRunner, calls: list[tuple[str, dict[str, Any], Actor]]
) -> None:
    """Each ``(action, payload, actor)`` of ``calls`` answers ``ok`` with data on ``door``."""
    for action, payload, actor in calls:
        reply = await ask_door(door, bus, runner, action, payload, actor)
        assert reply.status == "ok", (door, action, reply.text)
        assert reply.data is not None
