"""Fixtures of the front-door tests: a scripted dialogue, a small real service, a live gateway.

The dialogue here is a test double with fixed rules (the real engine is tested in its own area
and end to end in test_e2e.py); the bus, the service runtime, uvicorn and the sockets are real.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from backend_services.runtime import Service, ServiceRunner
from bots.ticket_updates import SmtpSettings
from bots.web.app import create_gateway_app, uvicorn_limits
from bots.web.settings import WebSettings
from events.bus import Bus
from events.embedded import free_port
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Button
from tests.claims import TEST_ISSUER, signed_runner


@dataclass
class SimpleTurn:
    """Same fields as ``skills.dialogue.UserTurn``."""

    text: str
    conversation: Conversation
    actor: Actor
    bot: str
    id: uuid.UUID


@dataclass
class Message:
    text: str
    buttons: list[Button] = field(default_factory=list)
    image: str | None = None


@dataclass
class Outcome:
    messages: list[Message] = field(default_factory=list)
    intents: list[Envelope] = field(default_factory=list)
    parse: Any = None
    handoff: bool = False
    already_done: bool = False


class ScriptedDialogue:
    """Fixed rules: 'ticket X' -> intent echo.ticket_create; 'slow N' -> echo.slow; etc.

    Like the real engine, a turn it answered before is not run again (``already_done``)."""

    def __init__(self) -> None:
        self.turns: list[SimpleTurn] = []

    async def handle(self, turn: SimpleTurn) -> Outcome:
        if any(t.id == turn.id for t in self.turns):
            return Outcome(already_done=True)
        self.turns.append(turn)
        text = turn.text
        if text.startswith("ticket "):
            intent = Envelope.new(
                "intent.echo.ticket_create",
                {"subject": text[7:]},
                conversation=turn.conversation,
                actor=turn.actor,
            )
            return Outcome([Message("Opening a ticket…")], [intent])
        if m := re.match(r"slow (\d+(?:\.\d+)?)", text):
            intent = Envelope.new(
                "intent.echo.slow",
                {"seconds": float(m.group(1))},
                conversation=turn.conversation,
                actor=turn.actor,
            )
            return Outcome([], [intent])
        if text == "human":
            return Outcome([Message("Connecting you to a human.")], handoff=True)
        if text == "boom":
            raise RuntimeError("dialogue exploded")
        if text.startswith("count "):
            n = int(text[6:])
            return Outcome([Message(f"{turn.bot} {i}") for i in range(n)])
        if text == "buttons":
            return Outcome(
                [
                    Message(
                        "Pick one",
                        buttons=[Button(title="High", payload="high")],
                        image="https://x/y.png",
                    )
                ]
            )
        return Outcome([Message(f"echo: {text}")])


class TicketIn(BaseModel):
    subject: str


class TicketOut(BaseModel):
    number: int
    subject: str

    def reply_text(self) -> str:
        return f"Ticket #{self.number} created: {self.subject}"


class SlowIn(BaseModel):
    seconds: float


class SlowOut(BaseModel):
    seconds: float

    def reply_text(self) -> str:
        return f"Done after {self.seconds:g} s"


def echo_service() -> Service:
    svc = Service("echo", version="0.0.1", description="test service")
    numbers = itertools.count(1)

    @svc.handler("ticket_create", summary="open a ticket")
    async def ticket_create(payload: TicketIn, ctx: Any) -> TicketOut:
        return TicketOut(number=next(numbers), subject=payload.subject)

    @svc.handler("slow", summary="answer late")
    async def slow(payload: SlowIn, ctx: Any) -> SlowOut:
        await asyncio.sleep(payload.seconds)
        return SlowOut(seconds=payload.seconds)

    return svc


def server_config(app: FastAPI, port: int) -> uvicorn.Config:
    """uvicorn's configuration as ``frontdoor.wiring.serve_http`` sets it: no forwarded headers
    believed by uvicorn (the gateway decides, ``FRONTDOOR_TRUSTED_PROXIES``), and WebSocket
    frames no larger than the gateway's body limit."""
    return uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **uvicorn_limits(app)
    )


class LiveServer:
    """uvicorn serving an app on a free port, in this event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = free_port()
        self.server = uvicorn.Server(server_config(app, self.port))
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(200):
            if self.server.started:
                return
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.02)
        raise RuntimeError("uvicorn did not start")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task:
            await asyncio.wait_for(self.task, 15)


def make_settings(**overrides: Any) -> WebSettings:
    base: dict[str, Any] = {
        "session_secret": "test-secret-0123456789",
        "rest_turn_timeout": 5.0,
        "slow_turn_seconds": 5.0,
        "resolve_roles": False,
    }
    base.update(overrides)
    return WebSettings(**base)


@pytest.fixture
async def echo_runner(bus: Bus) -> AsyncIterator[ServiceRunner]:
    runner = signed_runner(echo_service(), bus)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop(grace=1.0)


async def start_gateway(
    bus: Bus, dialogue: Any, *, smtp: SmtpSettings | None = None, **settings: Any
) -> LiveServer:
    app = create_gateway_app(
        bus,
        dialogue,
        issuer=TEST_ISSUER,
        settings=make_settings(**settings),
        turn_factory=SimpleTurn,
        smtp=smtp,
    )
    live = LiveServer(app)
    await live.start()
    return live


@pytest.fixture
async def gateway(bus: Bus, echo_runner: ServiceRunner) -> AsyncIterator[LiveServer]:
    live = await start_gateway(bus, ScriptedDialogue())
    try:
        yield live
    finally:
        await live.stop()
