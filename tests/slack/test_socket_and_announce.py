"""Socket Mode (over a local WebSocket standing in for Slack's) and marketing announcements."""

from __future__ import annotations

import asyncio
import uuid

from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from tests.slack.conftest import SlackGateway, running_gateway
from tests.slack.fake_slack import BOT_USER, FakeSlack, event_body

APP_TOKEN = "xapp-1-A0001-1234-abcdef"


async def test_socket_mode_receives_acks_and_answers(bus: Bus, fake_slack: FakeSlack) -> None:
    env = {"SLACK_APP_TOKEN": APP_TOKEN, "SLACK_SIGNING_SECRET": ""}
    async with running_gateway(bus, fake_slack, socket_mode=True, **env) as gw:
        [opened] = await fake_slack.wait_for("apps.connections.open")
        assert opened.token == APP_TOKEN
        # No HTTP endpoint in Socket Mode.
        assert (await gw.http.post(gw.events_url, content=b"{}")).status_code in (404, 405)
        event = {"type": "app_mention", "user": "U1", "text": f"<@{BOT_USER}> over the socket"}
        event |= {"ts": "1700000030.000100", "channel": "CSOCK1"}
        await fake_slack.socket_envelopes.put(
            {
                "envelope_id": "env-1",
                "type": "events_api",
                "accepts_response_payload": False,
                "retry_attempt": 0,
                "retry_reason": "",
                "payload": event_body(event),
            }
        )
        await fake_slack.wait_socket_ack("env-1")
        [call] = await fake_slack.wait_for(channel="CSOCK1")
        assert call.args["text"] == "chatbot echo: over the socket"
        assert call.args["thread_ts"] == "1700000030.000100"


async def test_campaign_announcements_are_posted_once(
    slack_gateway: SlackGateway, bus: Bus
) -> None:
    announced = Envelope.new(
        "campaign.announced",
        {
            "campaign_id": 7,
            "campaign": "Spring sale",
            "channel": "#general",
            "text": "**Spring sale** starts today: [details](https://shop.example/spring)",
            "announced_by": "Mia",
        },
        conversation=Conversation(channel="slack", id="#general"),
        actor=Actor(id="U5", name="Mia", roles=("agent",)),
    )
    await bus.publish(announced)
    [call] = await slack_gateway.fake.wait_for(channel="#general")
    assert call.args["text"] == (
        "*Spring sale* starts today: <https://shop.example/spring|details>"
    )
    assert "Campaign Spring sale (announced by Mia)" in str(call.args["blocks"])
    # Published again with the same id (a retry): not stored again, not posted again.
    await bus.publish(announced)
    # A second announcement (a new id) is a new post, after the first one.
    await bus.publish(announced.model_copy(update={"id": uuid.uuid4()}))
    calls = await slack_gateway.fake.wait_for(channel="#general", count=2)
    await asyncio.sleep(0.5)
    assert len(slack_gateway.fake.posted(channel="#general")) == len(calls) == 2
    assert slack_gateway.channel.announcements is not None
    assert slack_gateway.channel.announcements.relay.position == await bus.last_sequence()
