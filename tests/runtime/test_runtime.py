"""The shared service runtime on a real nats-server: the three doors and failure handling."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from pydantic import BaseModel, Field

from backend_services.runtime import (
    HandlerContext,
    HandlerError,
    Service,
    create_http_app,
)
from events import subjects
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.micro import ServiceClient, discover, micro_subject
from events.payloads import Reply
from tests.claims import TEST_ISSUER, signed, signed_runner
from tests.services.doors import door_call, header_actor, http_headers

USER = Actor(id="site:u1", roles=("user",))
AGENT = Actor(id="site:a1", roles=("agent",))


class Echo(BaseModel):
    text: str = Field(min_length=1)


class Echoed(BaseModel):
    text: str

    def reply_text(self) -> str:
        return f"echo: {self.text}"


def make_service(calls: dict[str, int]) -> Service:
    svc = Service("echo", description="test service")

    @svc.handler("say", roles={"user", "agent"})
    async def say(payload: Echo, ctx: HandlerContext) -> Echoed:
        await ctx.emit("echo.said", {"text": payload.text})
        return Echoed(text=payload.text)

    @svc.handler("agent_only", roles={"agent"})
    async def agent_only(payload: Echo, ctx: HandlerContext) -> Echoed:
        return Echoed(text=payload.text)

    @svc.handler("flaky")
    async def flaky(payload: Echo, ctx: HandlerContext) -> Echoed:
        calls[payload.text] = calls.get(payload.text, 0) + 1
        if calls[payload.text] == 1:
            raise RuntimeError("first delivery fails")
        return Echoed(text=payload.text)

    @svc.handler("broken")
    async def broken(payload: Echo, ctx: HandlerContext) -> Echoed:
        calls["broken"] = calls.get("broken", 0) + 1
        raise RuntimeError("always fails")

    @svc.handler("refuse")
    async def refuse(payload: Echo, ctx: HandlerContext) -> Echoed:
        raise HandlerError("You cannot do that now.")

    return svc


async def ask(bus: Bus, action: str, payload: dict, actor: Actor = USER) -> tuple[Envelope, Reply]:
    """Publish an intent and wait for its reply on the bus."""
    conv = Conversation(channel="web", id=f"t.{uuid.uuid4().hex}")
    intent = signed(Envelope.new(f"intent.echo.{action}", payload, conversation=conv, actor=actor))
    start = await bus.last_sequence()
    await bus.publish(intent)
    flt = subjects.events_filter(channel="web", conversation_id=conv.id, envelope_type="reply")
    async with asyncio.timeout(15):
        async for _, env in bus.tail(flt, from_seq=start + 1):
            if env.correlation_id == intent.correlation_id:
                return env, env.payload_as(Reply)
    raise AssertionError("no reply")


async def test_intent_door_ok_invalid_denied_and_domain_error(bus: Bus) -> None:
    calls: dict[str, int] = {}
    runner = signed_runner(make_service(calls), bus)
    await runner.start()
    try:
        env, reply = await ask(bus, "say", {"text": "hello"})
        assert reply.status == "ok" and reply.text == "echo: hello"
        assert reply.data == {"text": "hello"}
        assert env.causation_id is not None

        _, reply = await ask(bus, "say", {"text": ""})
        assert reply.status == "invalid" and "text" in reply.text
        assert reply.errors and reply.errors[0]["loc"] == ["text"]

        _, reply = await ask(bus, "agent_only", {"text": "x"})
        assert reply.status == "denied" and "agent" in reply.text
        _, reply = await ask(bus, "agent_only", {"text": "x"}, actor=AGENT)
        assert reply.status == "ok"

        _, reply = await ask(bus, "refuse", {"text": "x"})
        assert reply.status == "invalid" and reply.text == "You cannot do that now."

        _, reply = await ask(bus, "nope", {"text": "x"})
        assert reply.status == "invalid" and "no action 'nope'" in reply.text

        # the domain event followed the intent on the bus
        events = [e async for _, e in bus.tail(subjects.ALL_EVENTS, from_seq=1, stop_at_end=True)]
        assert any(e.type == "echo.said" for e in events)
        states = [e.type for e in events if e.type.startswith("service.")]
        assert states[:2] == ["service.started", "service.ready"]
    finally:
        await runner.stop()


async def test_retry_then_success_and_failure_reply_after_bound(bus: Bus) -> None:
    calls: dict[str, int] = {}
    runner = signed_runner(make_service(calls), bus)
    await runner.start()
    try:
        _, reply = await ask(bus, "flaky", {"text": "once"})
        assert reply.status == "ok" and calls["once"] == 2

        _, reply = await ask(bus, "broken", {"text": "x"})
        assert reply.status == "error" and reply.reference and len(reply.reference) == 8
        assert reply.reference in reply.text
        assert calls["broken"] == bus.limits.max_deliver
        await asyncio.sleep(0.5)
        assert calls["broken"] == bus.limits.max_deliver  # not redelivered after the bound
    finally:
        await runner.stop()


async def test_micro_door_and_discovery(bus: Bus) -> None:
    runner = signed_runner(make_service({}), bus)
    await runner.start()
    try:
        client = ServiceClient(bus, TEST_ISSUER)
        said = await client.call("echo", "say", {"text": "hi"}, USER, conversation=("api", "m1"))
        assert said.text == "echo: hi"
        empty = await client.call("echo", "say", {}, USER, conversation=("api", "m1"))
        assert empty.status == "invalid"
        raw = await bus.request(micro_subject("echo", "say"), json.dumps({"text": "hi"}).encode())
        assert Reply.model_validate_json(raw).status == "denied"  # no claim, no call
        pings = await discover(bus, "PING", "echo")
        assert [p["name"] for p in pings] == ["echo"]
        info = (await discover(bus, "INFO", "echo"))[0]
        assert {e["name"] for e in info["endpoints"]} >= {"say", "flaky"}
    finally:
        await runner.stop()


async def test_http_door(bus: Bus) -> None:
    runner = signed_runner(make_service({}), bus)
    await runner.start()
    app = create_http_app([runner.service], door_call(bus), header_actor)
    transport = httpx.ASGITransport(app=app)
    headers = http_headers(USER)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ok = await client.post("/services/echo/say", json={"text": "hi"}, headers=headers)
            assert ok.status_code == 200 and ok.json() == {"text": "hi"}
            bad = await client.post("/services/echo/say", json={"text": ""}, headers=headers)
            assert bad.status_code == 422
            denied = await client.post(
                "/services/echo/agent_only", json={"text": "x"}, headers=headers
            )
            assert denied.status_code == 403 and "agent" in denied.json()["detail"]
            refused = await client.post(
                "/services/echo/refuse", json={"text": "x"}, headers=headers
            )
            assert refused.status_code == 409
            spec = (await client.get("/openapi.json")).json()
            assert "/services/echo/say" in spec["paths"]
            answers = spec["paths"]["/services/echo/say"]["post"]["responses"]
            assert {"200", "401", "403", "409", "422", "429", "500", "503"} <= set(answers)
    finally:
        await runner.stop()


async def test_slow_handler_is_not_redelivered_while_it_runs(nats_server) -> None:
    """A handler slower than ack_wait keeps its intent with in-progress acks: it runs once."""
    from events.streams import BusLimits

    limits = BusLimits(max_deliver=3, backoff_seconds=(0.1, 0.2), ack_wait_seconds=1.0)
    slow_bus = await Bus.connect(nats_server.url, limits=limits, publish_timeout=20.0)
    calls: list[str] = []
    svc = Service("echo")

    @svc.handler("slow")
    async def slow(payload: Echo, ctx: HandlerContext) -> Echoed:
        calls.append(payload.text)
        await asyncio.sleep(2.5)
        return Echoed(text=payload.text)

    runner = signed_runner(svc, slow_bus)
    await runner.start()
    try:
        _, reply = await ask(slow_bus, "slow", {"text": "zzz"})
        assert reply.status == "ok"
        await asyncio.sleep(1.5)  # past another ack_wait: nothing comes back
        assert calls == ["zzz"]
    finally:
        await runner.stop()
        await slow_bus.close()
