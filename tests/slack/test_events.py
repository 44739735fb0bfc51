"""Signed Slack requests into the real Bolt app mounted on the live gateway (uvicorn, real NATS)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from events.bus import Bus
from events.subjects import ALL_EVENTS
from tests.slack.conftest import SECRET, SlackGateway, running_gateway
from tests.slack.fake_slack import BOT_ID, BOT_USER, FakeSlack


async def _count(bus: Bus, envelope_type: str, channel: str = "slack") -> int:
    """How many ``envelope_type`` events of ``channel`` the bus holds."""
    if await bus.last_sequence() == 0:
        return 0
    return len(
        [
            env
            async for _seq, env in bus.tail(ALL_EVENTS, 1, stop_at_end=True)
            if env.type == envelope_type and env.conversation.channel == channel
        ]
    )


async def test_url_verification_challenge(slack_gateway: SlackGateway) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV"}).encode()
    response = await slack_gateway.post_signed(body, "application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV"}


async def test_bad_missing_and_stale_signatures_are_rejected(
    slack_gateway: SlackGateway, bus: Bus
) -> None:
    event = {"type": "app_mention", "user": "U1", "text": f"<@{BOT_USER}> hi", "ts": "1.1"}
    event["channel"] = "CBAD1"
    wrong = await slack_gateway.send_event(event, secret="not-the-secret")
    stale = await slack_gateway.send_event(event, timestamp=int(time.time()) - 600)
    missing = await slack_gateway.http.post(
        slack_gateway.events_url, content=b'{"type":"event_callback"}'
    )
    assert [wrong.status_code, stale.status_code, missing.status_code] == [401, 401, 401]
    await asyncio.sleep(0.5)  # nothing may have been processed in the background either
    assert slack_gateway.dialogue.turns == []
    assert not slack_gateway.fake.posted(channel="CBAD1")
    assert await _count(bus, "message.received") == 0


async def test_mention_is_answered_in_its_thread(slack_gateway: SlackGateway) -> None:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@{BOT_USER}> what can you do?",
        "ts": "1700000000.000100",
        "channel": "CGEN1",
        "channel_type": "channel",
    }
    response = await slack_gateway.send_event(event)
    assert response.status_code == 200
    [call] = await slack_gateway.fake.wait_for(channel="CGEN1")
    assert call.args["thread_ts"] == "1700000000.000100"
    assert call.args["text"] == "chatbot echo: what can you do?"
    assert call.token == slack_gateway.channel.config.bot_token.get_secret_value()
    [turn] = slack_gateway.dialogue.turns
    assert turn.conversation.channel == "slack"
    assert turn.conversation.id == "CGEN1"
    assert turn.conversation.thread == "1700000000.000100"
    assert turn.actor.id == "slack:U1"  # namespaced: Slack proved it


async def test_channel_mapping_picks_the_bot(slack_gateway: SlackGateway) -> None:
    event = {"type": "app_mention", "user": "U1", "text": f"<@{BOT_USER}> hello"}
    event |= {"ts": "1700000001.000100", "channel": "CSUPBOT", "thread_ts": "1700000000.9"}
    await slack_gateway.send_event(event)
    [call] = await slack_gateway.fake.wait_for(channel="CSUPBOT")
    assert call.args["text"] == "support echo: hello"
    assert call.args["thread_ts"] == "1700000000.9"  # a mention inside a thread stays there


async def test_retries_and_the_mention_message_pair_are_processed_once(
    slack_gateway: SlackGateway, bus: Bus
) -> None:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@{BOT_USER}> once please",
        "ts": "1700000002.000200",
        "channel": "CRETRY",
    }
    first = await slack_gateway.send_event(event, event_id="Ev0RETRY01")
    await slack_gateway.fake.wait_for(channel="CRETRY")
    retry = await slack_gateway.send_event(
        event,
        event_id="Ev0RETRY01",
        extra_headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    # The same message also arrives as a `message` event with its own event id.
    as_message = dict(event, type="message", channel_type="channel")
    twin = await slack_gateway.send_event(as_message, event_id="Ev0RETRY02")
    assert [first.status_code, retry.status_code, twin.status_code] == [200, 200, 200]
    await asyncio.sleep(1.0)
    assert len(slack_gateway.fake.posted(channel="CRETRY")) == 1
    assert len(slack_gateway.dialogue.turns) == 1
    assert await _count(bus, "message.received") == 1


async def test_message_event_before_app_mention_is_still_answered_once(
    slack_gateway: SlackGateway,
) -> None:
    event = {"type": "message", "user": "U1", "text": f"<@{BOT_USER}> message first"}
    event |= {"ts": "1700000002.000900", "channel": "CORDER", "channel_type": "channel"}
    await slack_gateway.send_event(event)
    await slack_gateway.send_event(dict(event, type="app_mention"))
    [call] = await slack_gateway.fake.wait_for(channel="CORDER")
    assert call.args["text"] == "chatbot echo: message first"
    assert call.args["thread_ts"] == "1700000002.000900"
    # Plain channel chatter (no mention) is not for the bot.
    chatter = {"type": "message", "user": "U1", "text": "lunch?", "ts": "1700000002.000901"}
    await slack_gateway.send_event(chatter | {"channel": "CORDER", "channel_type": "channel"})
    await asyncio.sleep(0.5)
    assert len(slack_gateway.fake.posted(channel="CORDER")) == 1
    assert [t.text for t in slack_gateway.dialogue.turns] == ["message first"]


async def test_own_and_bot_messages_are_ignored(slack_gateway: SlackGateway, bus: Bus) -> None:
    own = {"type": "message", "user": BOT_USER, "text": "my own words", "ts": "1.000001"}
    own |= {"channel": "DBOT1", "channel_type": "im"}
    bot = {"type": "message", "subtype": "bot_message", "bot_id": BOT_ID, "text": "beep"}
    bot |= {"ts": "1.000002", "channel": "DBOT1", "channel_type": "im"}
    other_bot = {"type": "message", "bot_id": "BOTHER", "user": "U9", "text": "hi", "ts": "1.3"}
    other_bot |= {"channel": "DBOT1", "channel_type": "im"}
    for event in (own, bot, other_bot):
        assert (await slack_gateway.send_event(event)).status_code == 200
    # A person's DM after them is answered, so the ones before were really skipped.
    person = {"type": "message", "user": "U2", "text": "hello bot", "ts": "1.000004"}
    person |= {"channel": "DBOT1", "channel_type": "im"}
    await slack_gateway.send_event(person)
    [call] = await slack_gateway.fake.wait_for(channel="DBOT1")
    assert call.args["text"] == "chatbot echo: hello bot"
    assert call.args.get("thread_ts") is None  # direct messages are answered in the DM itself
    assert [t.text for t in slack_gateway.dialogue.turns] == ["hello bot"]


async def test_follow_ups_in_a_thread_need_no_mention(slack_gateway: SlackGateway) -> None:
    """After a mention, the thread is followed: its next messages are for the bot (unless they
    address someone else); other threads and plain channel chatter are not."""
    root = "1700000100.000100"
    mention = {"type": "app_mention", "user": "U1", "text": f"<@{BOT_USER}> open a ticket"}
    mention |= {"ts": root, "channel": "CFOL1", "channel_type": "channel"}
    await slack_gateway.send_event(mention)
    await slack_gateway.fake.wait_for(channel="CFOL1")

    def message(ts: str, text: str, thread_ts: str | None = root) -> dict[str, object]:
        event = {"type": "message", "user": "U1", "text": text, "ts": ts, "channel": "CFOL1"}
        event |= {"channel_type": "channel"} | ({"thread_ts": thread_ts} if thread_ts else {})
        return event

    for event in (
        message("1700000101.000100", "<@U0OTHER> can you check this?"),  # for a colleague
        message("1700000102.000100", "chatter in another thread", thread_ts="1700000000.5"),
        message("1700000103.000100", "chatter in the channel", thread_ts=None),
        message("1700000104.000100", "the VPN drops every 5 minutes"),  # the follow-up
    ):
        assert (await slack_gateway.send_event(event)).status_code == 200
    await slack_gateway.fake.wait_for(channel="CFOL1", count=2)
    await asyncio.sleep(0.5)  # time for a wrongly taken message to be answered too
    calls = slack_gateway.fake.posted(channel="CFOL1")
    assert [c.args["text"] for c in calls] == [
        "chatbot echo: open a ticket",
        "chatbot echo: the VPN drops every 5 minutes",
    ]
    assert all(c.args["thread_ts"] == root for c in calls)
    turns = slack_gateway.dialogue.turns
    assert [t.text for t in turns] == ["open a ticket", "the VPN drops every 5 minutes"]
    assert {(t.conversation.id, t.conversation.thread) for t in turns} == {("CFOL1", root)}


async def test_thread_following_can_be_turned_off(bus: Bus, fake_slack: FakeSlack) -> None:
    """With ``FRONTDOOR_SLACK_THREAD_FOLLOW_SECONDS=0`` every message needs a mention."""
    async with running_gateway(bus, fake_slack, FRONTDOOR_SLACK_THREAD_FOLLOW_SECONDS="0") as gw:
        assert gw.channel.threads is None
        root = "1700000200.000100"
        mention = {"type": "app_mention", "user": "U1", "text": f"<@{BOT_USER}> hello"}
        mention |= {"ts": root, "channel": "COFF1", "channel_type": "channel"}
        await gw.send_event(mention)
        await gw.fake.wait_for(channel="COFF1")
        follow_up = {"type": "message", "user": "U1", "text": "and another thing"}
        follow_up |= {"ts": "1700000201.000100", "thread_ts": root, "channel": "COFF1"}
        await gw.send_event(follow_up | {"channel_type": "channel"})
        await asyncio.sleep(0.5)  # time for it to be (wrongly) answered
        assert [c.args["text"] for c in gw.fake.posted(channel="COFF1")] == ["chatbot echo: hello"]
        assert [t.text for t in gw.dialogue.turns] == ["hello"]


async def test_slash_command_is_acked_and_answered(slack_gateway: SlackGateway) -> None:
    response = await slack_gateway.send_command("which services are up?")
    assert response.status_code == 200
    assert response.json()["response_type"] == "in_channel"  # the command stays visible
    [call] = await slack_gateway.fake.wait_for(channel="CCMD1")
    assert call.args["text"] == "chatbot echo: which services are up?"

    usage = await slack_gateway.send_command("   ")
    assert usage.status_code == 200
    assert "/frontdoor" in usage.text  # an ephemeral usage hint, and no turn
    assert [t.text for t in slack_gateway.dialogue.turns] == ["which services are up?"]


async def test_slash_command_where_the_bot_is_not_a_member_uses_the_response_url(
    slack_gateway: SlackGateway,
) -> None:
    await slack_gateway.send_command("hello from afar", channel="CNOTMEMBER")
    [call] = await slack_gateway.fake.wait_for("response_url")
    assert call.args["text"] == "chatbot echo: hello from afar"
    assert call.args["response_type"] == "in_channel"


async def test_quick_reply_buttons_send_their_payload(slack_gateway: SlackGateway) -> None:
    event = {"type": "app_mention", "user": "U1", "text": f"<@{BOT_USER}> priority?"}
    event |= {"ts": "1700000003.000300", "channel": "CBTN1"}
    await slack_gateway.send_event(event)
    [call] = await slack_gateway.fake.wait_for(channel="CBTN1")
    actions = [b for b in call.args["blocks"] if b["type"] == "actions"]
    [block] = actions
    assert [(e["text"]["text"], e["value"]) for e in block["elements"]] == [
        ("Low", "low"),
        ("High", "high"),
        ("Urgent", "urgent"),
    ]
    assert call.args["blocks"][0]["text"]["text"] == "Which *priority*?"  # mrkdwn bold
    posted_ts = "1800000000.000001"
    pressed = block["elements"][1]
    payload = {
        "type": "block_actions",
        "user": {"id": "U1", "username": "ana", "team_id": "T0001"},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "container": {"type": "message", "message_ts": posted_ts, "channel_id": "CBTN1"},
        "channel": {"id": "CBTN1", "name": "buttons"},
        "message": {
            "type": "message",
            "ts": posted_ts,
            "thread_ts": "1700000003.000300",
            "text": call.args["text"],
            "blocks": call.args["blocks"],
        },
        "trigger_id": "1.2.3",
        "response_url": slack_gateway.fake.response_url("action"),
        "actions": [
            {
                "type": "button",
                "action_id": pressed["action_id"],
                "block_id": block["block_id"],
                "text": pressed["text"],
                "value": pressed["value"],
                "action_ts": "1700000004.111",
            }
        ],
    }
    response = await slack_gateway.send_action(payload)
    assert response.status_code == 200
    second = await slack_gateway.send_action(payload)  # a double click
    assert second.status_code == 200
    calls = await slack_gateway.fake.wait_for(channel="CBTN1", count=2)
    answer = calls[1]
    assert answer.args["text"] == "chatbot echo: high"
    assert answer.args["thread_ts"] == "1700000003.000300"
    [update] = slack_gateway.fake.posted("chat.update", channel="CBTN1")
    assert update.args["ts"] == posted_ts
    assert not [b for b in update.args["blocks"] if b["type"] == "actions"]
    assert "chose *High*" in json.dumps(update.args["blocks"])
    await asyncio.sleep(0.5)
    assert [t.text for t in slack_gateway.dialogue.turns] == ["priority?", "high"]


async def test_rate_limited_post_waits_for_retry_after(slack_gateway: SlackGateway) -> None:
    fake = slack_gateway.fake
    fake.fail_next["chat.postMessage"] = [
        (429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"})
    ]
    event = {"type": "app_mention", "user": "U1", "text": f"<@{BOT_USER}> slow down"}
    event |= {"ts": "1700000005.000500", "channel": "CRATE1"}
    await slack_gateway.send_event(event)
    [ok] = await fake.wait_for(channel="CRATE1")
    limited = [c for c in fake.calls if c.method == "chat.postMessage" and c.status == 429]
    assert len(limited) == 1 and limited[0].args["channel"] == "CRATE1"
    assert ok.at - limited[0].at >= 1.0  # waited at least the Retry-After it was given
    assert ok.args["text"] == "chatbot echo: slow down"


async def test_secrets_never_reach_the_logs(
    slack_gateway: SlackGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await slack_gateway.send_event({"type": "app_mention", "user": "U1", "text": "x"}, secret="bad")
    event = {"type": "app_mention", "user": "U1", "text": f"<@{BOT_USER}> log me"}
    event |= {"ts": "1700000006.000600", "channel": "CLOG1"}
    await slack_gateway.send_event(event)
    await slack_gateway.fake.wait_for(channel="CLOG1")
    assert "rejected a Slack request" in caplog.text
    assert SECRET not in caplog.text
    assert slack_gateway.channel.config.bot_token.get_secret_value() not in caplog.text
