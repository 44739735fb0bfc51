"""services_status: services from service.* events on the bus plus live $SRV discovery."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service, ServiceRunner
from events.bus import Bus
from events.envelope import SYSTEM_ACTOR, Conversation, Envelope
from events.micro import ServiceClient
from events.payloads import ServiceState
from tests.claims import TEST_ISSUER, signed, signed_runner
from tests.services.management.conftest import AGENT, USER, ask, wait_reply


class Ping(BaseModel):
    text: str = "hi"


class Pong(BaseModel):
    text: str


def marketing_service() -> Service:
    svc = Service("marketing", version="0.3.0", description="test double of marketing")

    @svc.handler("campaign_get", roles={"user"})
    async def campaign_get(payload: Ping, ctx: HandlerContext) -> Pong:
        return Pong(text=payload.text)

    return svc


async def announce(bus: Bus, name: str, state: str, instance: str) -> None:
    await bus.publish(
        Envelope.new(
            f"service.{state}",
            ServiceState(service=name, instance=instance, state=state, version="9.9.9"),  # type: ignore[arg-type]
            conversation=Conversation(channel="system", id=name),
            actor=SYSTEM_ACTOR,
        )
    )


async def test_services_status_lists_announced_and_live_services(
    bus: Bus, sqlite_runner: ServiceRunner
) -> None:
    marketing = signed_runner(marketing_service(), bus, instance="m1")
    await marketing.start()
    try:
        # A service that announced ready but does not answer $SRV, and one that stopped.
        await announce(bus, "analysis", "ready", "a1")
        await announce(bus, "generative", "ready", "g1")
        await announce(bus, "generative", "stopping", "g1")

        async with asyncio.timeout(15):
            while True:
                reply = await ask(bus, "services_status", {}, USER)
                assert reply.status == "ok", reply
                names = {s["name"] for s in reply.data["services"]}
                if {"analysis", "generative"} <= names:
                    break
                await asyncio.sleep(0.1)
        by_name = {s["name"]: s for s in reply.data["services"]}
        assert by_name["management"]["state"] == "up"
        assert by_name["management"]["instances"] == 1
        assert "ticket_create" in by_name["management"]["endpoints"]
        assert by_name["marketing"]["state"] == "up"
        assert by_name["marketing"]["version"] == "0.3.0"
        assert by_name["marketing"]["last_event"] == "ready"
        assert by_name["analysis"]["state"] == "not_answering"
        assert by_name["analysis"]["announced_instances"] == 1
        assert by_name["generative"]["state"] == "down"
        assert by_name["generative"]["last_event"] == "stopping"
        assert reply.text.startswith("Services up: management, marketing.")
        assert "Not answering: analysis." in reply.text and "Down: generative." in reply.text

        only = await ask(bus, "services_status", {"service": "marketing"}, AGENT)
        assert [s["name"] for s in only.data["services"]] == ["marketing"]
    finally:
        await marketing.stop(grace=1)


async def test_services_status_counts_requests_and_failed_intents(
    bus: Bus, sqlite_runner: ServiceRunner
) -> None:
    svc = marketing_service()

    @svc.handler("broken", roles=None)
    async def broken(payload: Ping, ctx: HandlerContext) -> Pong:
        raise RuntimeError("always fails")

    marketing = signed_runner(svc, bus, instance="m2")
    await marketing.start()
    try:
        answered = await ServiceClient(bus, TEST_ISSUER).call(
            "marketing", "campaign_get", {"text": "x"}, USER, conversation=("api", "ops")
        )
        assert answered.status == "ok"
        conv = Conversation(channel="web", id="ops-test")
        intent = signed(Envelope.new("intent.marketing.broken", {}, conversation=conv, actor=USER))
        start = await bus.last_sequence()
        await bus.publish(intent)
        failure = await wait_reply(bus, intent, start)
        assert failure.status == "error"  # after every delivery failed
        async with asyncio.timeout(15):
            while True:
                reply = await ask(bus, "services_status", {"service": "marketing"}, USER)
                status = reply.data["services"][0]
                if status["failed_intents"]:
                    break
                await asyncio.sleep(0.1)
        assert status["failed_intents"] == 1
        assert status["requests"] >= 1
        assert "Errors: marketing (1)" in reply.text
    finally:
        await marketing.stop(grace=1)
