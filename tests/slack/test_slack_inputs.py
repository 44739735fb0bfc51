"""Hostile Slack requests into the real Bolt app on a live gateway: a bad timestamp is a 401
before any signature check; a signed body that is not what Slack sends is a 400, never a 500;
the text of a message is cleaned before it is stored."""

from __future__ import annotations

import json

from events.subjects import events_filter
from tests.slack.conftest import SlackGateway
from tests.slack.fake_slack import BOT_USER, event_body


async def test_a_timestamp_that_is_not_a_number_is_401(slack_gateway: SlackGateway) -> None:
    body = json.dumps(event_body({"type": "app_mention", "user": "U1", "text": "hi"})).encode()
    for stamp in ("abc", "", "1e9", "-5", "9" * 40):
        r = await slack_gateway.http.post(
            slack_gateway.events_url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": "v0=" + "0" * 64,
            },
        )
        assert r.status_code == 401, (stamp, r.status_code, r.text)
        assert "Timestamp" in r.json()["detail"]
    assert slack_gateway.dialogue.turns == []


async def test_signed_bodies_of_the_wrong_shape_are_400(slack_gateway: SlackGateway) -> None:
    event = {"type": "message", "user": "U1", "text": "hi", "channel": "DX1", "ts": "1.5"}
    event["channel_type"] = "im"
    bad: list[bytes] = [
        b"[1, 2]",
        b"null",
        b'"a string"',
        b"42",
        json.dumps({**event_body(event), "event": "a string"}).encode(),
        json.dumps(event_body({**event, "user": 12345})).encode(),
        json.dumps(event_body({**event, "text": ["not", "text"]})).encode(),
        json.dumps({"event": event}).encode(),  # no type
        b'{"type": "event_callback", "event": {"text": "a\\ud800b"}}',
        b"{" * 5000,
    ]
    for body in bad:
        r = await slack_gateway.post_signed(body, "application/json")
        assert r.status_code == 400, (body[:60], r.status_code, r.text)
        assert r.json()["detail"].startswith("not a Slack request body")
    forms = [
        b"payload=%5B1%5D",  # payload=[1]
        b"payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A7%7D",
        b"command=%2Ffrontdoor",  # no user or channel
        b"nothing=here",
    ]
    for body in forms:
        r = await slack_gateway.post_signed(body, "application/x-www-form-urlencoded")
        assert r.status_code == 400, (body, r.status_code, r.text)
    assert slack_gateway.dialogue.turns == []
    # and the channel still works
    good = {**event, "text": "still here", "ts": "1.6"}
    assert (await slack_gateway.send_event(good)).status_code == 200
    await slack_gateway.fake.wait_for(channel="DX1")


async def test_slack_text_is_cleaned_before_it_is_stored(
    slack_gateway: SlackGateway, bus: object
) -> None:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@{BOT_USER}> a\x00b\u202ec\u0065\u0301",
        "ts": "1700000009.000100",
        "channel": "CGEN9",
        "channel_type": "channel",
    }
    assert (await slack_gateway.send_event(event)).status_code == 200
    [call] = await slack_gateway.fake.wait_for(channel="CGEN9")
    assert call.args["text"] == "chatbot echo: abcé"
    stored = [
        env.payload["text"]
        async for _s, env in bus.tail(  # type: ignore[attr-defined]
            events_filter(channel="slack", conversation_id="CGEN9"), 1, stop_at_end=True
        )
        if env.type == "message.received"
    ]
    assert stored == ["abcé"]
