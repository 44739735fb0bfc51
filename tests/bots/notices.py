"""Helpers of the ticket-notice tests: a dialogue that opens real management tickets, agents'
actions on the management service, and the notices found on the bus."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from backend_services.management.service import service
from backend_services.runtime import ServiceRunner
from events import subjects
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply
from tests.bots.conftest import Message, Outcome, SimpleTurn
from tests.claims import signed_runner
from tests.services.management.conftest import AGENT, ask, make_settings

REQUESTER_EMAIL = "requester@example.com"


class TicketDialogue:
    """'ticket X' opens a management ticket with subject X; anything else is echoed."""

    async def handle(self, turn: SimpleTurn) -> Outcome:
        if turn.text.startswith("ticket "):
            intent = Envelope.new(
                subjects.intent_type("management", "ticket_create"),
                {"subject": turn.text[7:], "requester_email": REQUESTER_EMAIL},
                conversation=turn.conversation,
                actor=turn.actor,
            )
            return Outcome([Message("Opening a ticket…")], [intent])
        return Outcome([Message(f"echo: {turn.text}")])


@asynccontextmanager
async def management(bus: Bus, data_dir: Path) -> AsyncIterator[ServiceRunner]:
    """The real management service on SQLite in ``data_dir``."""
    settings = make_settings(f"sqlite+aiosqlite:///{data_dir / 'management.db'}", data_dir)
    runner = signed_runner(service, bus, settings=settings, instance="notice-tests")
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop(grace=2)


async def act(bus: Bus, action: str, actor: Actor = AGENT, **payload: Any) -> Reply:
    """``action`` on management as ``actor`` (an agent by default), from the agent's own chat."""
    reply = await ask(bus, action, payload, actor)
    assert reply.status == "ok", reply
    return reply


async def notices(bus: Bus, conversation: Conversation) -> list[tuple[int, str]]:
    """``(seq, text)`` of every ticket notice in ``conversation`` so far, in bus order."""
    last = await bus.last_sequence()
    flt = subjects.events_filter(
        channel=conversation.channel, conversation_id=conversation.id, envelope_type="reply"
    )
    found: list[tuple[int, str]] = []
    async with asyncio.timeout(20):
        async for seq, env in bus.tail(flt, 1, stop_at_end=True):
            reply = env.payload_as(Reply)
            if reply.action == "ticket_notice":
                found.append((seq, reply.text))
            if seq >= last:
                break
    return found


async def wait_notices(
    bus: Bus, conversation: Conversation, count: int, timeout: float = 20.0
) -> list[str]:
    """The texts of the first ``count`` notices of ``conversation`` (waits for them)."""
    async with asyncio.timeout(timeout):
        while True:
            found = await notices(bus, conversation)
            if len(found) >= count:
                return [text for _, text in found]
            await asyncio.sleep(0.1)


async def settle(seconds: float = 1.0) -> None:
    """Give a wrongly sent notice the time to show up."""
    await asyncio.sleep(seconds)


def guest_actor(sender: str) -> Actor:
    """The actor of a widget/REST guest (what the gateway proves for its session)."""
    return Actor(id=f"guest:{sender}", roles=("guest",))


def new_id() -> str:
    return uuid.uuid4().hex[:8]
