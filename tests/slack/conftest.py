"""Fixtures of the Slack tests: a fake Slack Web API, and the real gateway with Slack attached.

Requests into the gateway are signed like Slack signs them; the bus (nats-server), the turn
pipeline, the reply router, Bolt and uvicorn are real. The dialogue is a small rule-based
stand-in (the dialogue engine has its own tests) so these tests can assert exact replies.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bots.slack import SlackChannel, SlackSettings, attach_slack
from bots.web.app import create_gateway_app
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Button
from tests.bots.conftest import LiveServer, make_settings
from tests.claims import TEST_ISSUER
from tests.slack.fake_slack import FakeSlack, event_body, sign

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
SUPPORT = "CSUPPORT1"


@dataclass
class Turn:
    """The fields of ``skills.dialogue.UserTurn`` the pipeline fills in."""

    text: str
    conversation: Conversation
    actor: Actor
    bot: str
    id: uuid.UUID | None = None


@dataclass
class Said:
    text: str
    buttons: list[Button] = field(default_factory=list)
    image: str | None = None


@dataclass
class Outcome:
    messages: list[Said] = field(default_factory=list)
    intents: list[Envelope] = field(default_factory=list)
    parse: Any = None
    handoff: bool = False


class RulesDialogue:
    """'human' hands off, 'priority?' offers buttons, anything else is echoed with the bot name."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []

    async def handle(self, turn: Turn) -> Outcome:
        self.turns.append(turn)
        if turn.text == "human":
            return Outcome([Said("Let me find a person for you.")], handoff=True)
        if turn.text == "priority?":
            buttons = [Button(title=t.title(), payload=t) for t in ("low", "high", "urgent")]
            return Outcome([Said("Which **priority**?", buttons=buttons)])
        return Outcome([Said(f"{turn.bot} echo: {turn.text}")])


def slack_settings(fake: FakeSlack, **extra: str) -> SlackSettings:
    env = {
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": fake.api_url,
        "FRONTDOOR_SUPPORT_CHANNEL": SUPPORT,
        "FRONTDOOR_SLACK_CHANNEL_BOTS": "CSUPBOT:support",
        "FRONTDOOR_SLACK_RATE_LIMIT_RETRIES": "2",
    }
    env.update(extra)
    return SlackSettings(**env)  # type: ignore[arg-type]


@dataclass
class SlackGateway:
    """A live gateway with Slack attached, and helpers to talk to it like Slack does."""

    live: LiveServer
    channel: SlackChannel
    dialogue: RulesDialogue
    fake: FakeSlack
    http: httpx.AsyncClient

    @property
    def events_url(self) -> str:
        return f"{self.live.url}/slack/events"

    async def post_signed(
        self,
        body: bytes,
        content_type: str,
        *,
        secret: str = SECRET,
        timestamp: int | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"Content-Type": content_type, **sign(secret, body, timestamp)}
        headers.update(extra_headers or {})
        return await self.http.post(self.events_url, content=body, headers=headers)

    async def send_event(
        self, event: dict[str, Any], event_id: str | None = None, **kw: Any
    ) -> httpx.Response:
        body = json.dumps(event_body(event, event_id)).encode()
        return await self.post_signed(body, "application/json", **kw)

    async def send_command(self, text: str, channel: str = "CCMD1", **kw: Any) -> httpx.Response:
        form = {
            "token": "legacy",
            "team_id": "T0001",
            "channel_id": channel,
            "user_id": "U1",
            "user_name": "ana",
            "command": "/frontdoor",
            "text": text,
            "response_url": self.fake.response_url(),
            "trigger_id": uuid.uuid4().hex,
        }
        return await self.post_signed(
            urlencode(form).encode(), "application/x-www-form-urlencoded", **kw
        )

    async def send_action(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post_signed(body, "application/x-www-form-urlencoded")


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@contextlib.asynccontextmanager
async def running_gateway(
    bus: Bus, fake: FakeSlack, *, socket_mode: bool = False, workspace: bool = True, **env: str
) -> AsyncIterator[SlackGateway]:
    """A live gateway with Slack attached (``env`` overrides the Slack settings; ``workspace``
    False closes the agent workspace)."""
    dialogue = RulesDialogue()
    app = create_gateway_app(
        bus,
        dialogue,
        issuer=TEST_ISSUER,
        settings=make_settings(rate_limit=1000, agent_workspace=workspace),
        turn_factory=Turn,
    )
    channel = attach_slack(app, slack_settings(fake, **env), socket_mode=socket_mode)
    assert channel is not None
    live = LiveServer(app)
    await live.start()
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            yield SlackGateway(live, channel, dialogue, fake, http)
    finally:
        await live.stop()


@pytest.fixture
async def slack_gateway(bus: Bus, fake_slack: FakeSlack) -> AsyncIterator[SlackGateway]:
    async with running_gateway(bus, fake_slack) as gateway:
        yield gateway
