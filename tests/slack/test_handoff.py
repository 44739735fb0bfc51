"""Human hand-off: a web (or Slack) conversation mirrored to a support-channel thread, both ways."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from bots.slack import attach_slack
from bots.web.app import create_gateway_app
from events.bus import Bus
from events.envelope import Conversation
from events.subjects import events_filter
from tests.bots.conftest import LiveServer, make_settings
from tests.bots.web_clients import ws_session
from tests.claims import TEST_ISSUER
from tests.slack.conftest import SUPPORT, RulesDialogue, SlackGateway, Turn, running_gateway
from tests.slack.fake_slack import FakeSlack


async def _frames_until(
    ws: ClientConnection, text_part: str, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Read frames until a reply whose text contains ``text_part``; return the replies read."""
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no reply containing {text_part!r}; got {replies}")
        frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        if frame["type"] == "reply":
            replies.append(frame)
            if text_part in frame["text"]:
                return replies


async def _owned(slack_gateway: SlackGateway, conversation: Conversation, want: bool) -> None:
    registry = slack_gateway.live.app.state.gateway.handoff
    for _ in range(200):
        if registry.is_owned(conversation) == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"hand-off ownership of {conversation} never became {want}")


async def test_web_conversation_handed_to_slack_and_back(slack_gateway: SlackGateway) -> None:
    gw, fake = slack_gateway, slack_gateway.fake
    session = (await gw.http.post(f"{gw.live.url}/api/session", json={})).json()
    sender = session["sender"]
    async with ws_session(gw.live.ws_url, session["token"]) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        await ws.send(json.dumps({"type": "message", "text": "hello", "bot": "support"}))
        await _frames_until(ws, "support echo: hello")
        await ws.send(json.dumps({"type": "message", "text": "human", "bot": "support"}))
        replies = await _frames_until(ws, "a person will answer here")
        assert "Let me find a person for you." in [r["text"] for r in replies]

        # The agents see a summary of the conversation in the support channel.
        [root] = await fake.wait_for(channel=SUPPORT)
        root_ts = root.response["ts"]
        summary = json.dumps(root.args["blocks"])
        assert "hello" in summary and "support echo: hello" in summary and "human" in summary
        assert sender in summary
        assert {
            e["action_id"]
            for b in root.args["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
        } == {"fd_handoff:claim", "fd_handoff:handback", "fd_handoff:close"}

        # User -> thread, and the bot stays silent.
        conversation = Conversation(channel="web", id=sender)
        await _owned(gw, conversation, True)
        await ws.send(
            json.dumps({"type": "message", "text": "my <b>VPN</b> drops", "bot": "support"})
        )
        [mirrored] = await fake.wait_for(channel=SUPPORT, thread_ts=root_ts)
        assert mirrored.args["text"].endswith("my &lt;b&gt;VPN&lt;/b&gt; drops")
        assert "my <b>VPN</b> drops" not in [t.text for t in gw.dialogue.turns]

        # Agent (thread) -> user's web conversation.
        said = {
            "type": "message",
            "user": "UAGENT1",
            "text": "Hi, I'm Ana. Try *reconnecting* via <https://vpn.example.com|the portal>",
            "ts": "1800000100.000001",
            "thread_ts": root_ts,
            "channel": SUPPORT,
            "channel_type": "channel",
        }
        assert (await gw.send_event(said)).status_code == 200
        [agent] = (await _frames_until(ws, "Hi, I'm Ana"))[-1:]
        assert agent["text"] == (
            "Hi, I'm Ana. Try **reconnecting** via [the portal](https://vpn.example.com)"
        )
        assert agent["service"] == "handoff"
        # The agent's words follow the edge's text rule too (no NUL, no bidi override).
        dirty = dict(said, text="Also\x00 check\u202e the cable", ts="1800000100.000002")
        assert (await gw.send_event(dirty)).status_code == 200
        [cleaned] = (await _frames_until(ws, "the cable"))[-1:]
        assert cleaned["text"] == "Also check the cable"

        # The agent claims it in the thread: the same handoff.claimed the workspace publishes.
        claim = dict(said, text="!claim", ts="1800000100.000003")
        assert (await gw.send_event(claim)).status_code == 200
        claims = await fake.wait_for(channel=SUPPORT, thread_ts=root_ts, count=2)
        assert claims[-1].args["text"] == ":raising_hand: Claimed by <@UAGENT1>."
        claimed = [
            env.payload
            async for _s, env in gw.live.app.state.gateway.bus.tail(
                events_filter(
                    channel="web", conversation_id=sender, envelope_type="handoff.claimed"
                ),
                1,
                stop_at_end=True,
            )
        ]
        assert [c["agent"] for c in claimed] == ["slack:UAGENT1"]

        # The agent hands back: the user is told, the thread notes it, the bot answers again.
        back = dict(said, text="!handback", ts="1800000101.000001")
        await gw.send_event(back)
        frames = await _frames_until(ws, "You're back with the bot")
        assert "!claim" not in [f.get("text") for f in frames]  # a command, not words
        notes = await fake.wait_for(channel=SUPPORT, thread_ts=root_ts, count=3)
        assert "handed back to the bot by <@UAGENT1>" in notes[-1].args["text"]
        await _owned(gw, conversation, False)
        await ws.send(json.dumps({"type": "message", "text": "thanks", "bot": "support"}))
        await _frames_until(ws, "support echo: thanks")
    assert [t.text for t in gw.dialogue.turns] == ["hello", "human", "thanks"]


async def test_slack_dm_hand_off_closed_with_the_button(slack_gateway: SlackGateway) -> None:
    gw, fake = slack_gateway, slack_gateway.fake
    dm = {"type": "message", "user": "U7", "text": "human", "ts": "1700000010.000001"}
    dm |= {"channel": "DUSER7", "channel_type": "im"}
    await gw.send_event(dm)
    [root] = await fake.wait_for(channel=SUPPORT)
    await fake.wait_for(channel="DUSER7", count=2)  # "Let me find..." and "passed to support"
    await _owned(gw, Conversation(channel="slack", id="DUSER7"), True)

    question = {"type": "message", "user": "U7", "text": "are you there?", "ts": "1700000011.1"}
    question |= {"channel": "DUSER7", "channel_type": "im"}
    await gw.send_event(question)
    [mirrored] = await fake.wait_for(channel=SUPPORT, thread_ts=root.response["ts"])
    assert mirrored.args["text"].endswith("are you there?")

    [block] = [b for b in root.args["blocks"] if b["type"] == "actions"]

    def pressed(value: str, action_ts: str) -> dict[str, Any]:
        button = next(e for e in block["elements"] if e["value"] == value)
        return {
            "type": "block_actions",
            "user": {"id": "UAGENT2", "username": "bo"},
            "team": {"id": "T0001"},
            "container": {
                "type": "message",
                "message_ts": root.response["ts"],
                "channel_id": SUPPORT,
            },
            "channel": {"id": SUPPORT},
            "message": {"ts": root.response["ts"], "text": root.args["text"]},
            "trigger_id": "9.9.9",
            "actions": [
                {
                    "action_id": button["action_id"],
                    "value": value,
                    "type": "button",
                    "block_id": block["block_id"],
                    "action_ts": action_ts,
                }
            ],
        }

    # Claim with the button: the thread says who took it.
    assert (await gw.send_action(pressed("claim", "1800000150.1"))).status_code == 200
    thread = await fake.wait_for(channel=SUPPORT, thread_ts=root.response["ts"], count=2)
    assert thread[-1].args["text"] == ":raising_hand: Claimed by <@UAGENT2>."

    close = next(e for e in block["elements"] if e["value"] == "close")
    payload = {
        "type": "block_actions",
        "user": {"id": "UAGENT2", "username": "bo"},
        "team": {"id": "T0001"},
        "container": {"type": "message", "message_ts": root.response["ts"], "channel_id": SUPPORT},
        "channel": {"id": SUPPORT},
        "message": {
            "ts": root.response["ts"],
            "text": root.args["text"],
            "blocks": root.args["blocks"],
        },
        "trigger_id": "9.9.9",
        "actions": [
            {
                "action_id": close["action_id"],
                "value": "close",
                "type": "button",
                "block_id": block["block_id"],
                "action_ts": "1800000200.1",
            }
        ],
    }
    assert (await gw.send_action(payload)).status_code == 200
    calls = await fake.wait_for(channel="DUSER7", count=4)
    assert "closed this conversation" in calls[-2].args["text"]
    assert "How would you rate" in calls[-1].args["text"]  # with buttons 1-5 (``/rate N``)
    await _owned(gw, Conversation(channel="slack", id="DUSER7"), False)

    # An agent message after the end is not delivered; the agent is told so (ephemeral).
    late = {"type": "message", "user": "UAGENT2", "text": "one more thing", "ts": "1800000300.1"}
    late |= {"thread_ts": root.response["ts"], "channel": SUPPORT}
    await gw.send_event(late)
    await fake.wait_for("chat.postEphemeral", user="UAGENT2")
    assert not [c for c in fake.posted(channel="DUSER7") if "one more thing" in c.args["text"]]


async def test_without_a_support_channel_the_user_is_told(bus: Bus, fake_slack: FakeSlack) -> None:
    # Only without the agent workspace: with it, agents answer there (tests/agent).
    async with running_gateway(
        bus, fake_slack, workspace=False, FRONTDOOR_SUPPORT_CHANNEL=""
    ) as gw:
        dm = {"type": "message", "user": "U8", "text": "human", "ts": "1700000020.1"}
        dm |= {"channel": "DUSER8", "channel_type": "im"}
        await gw.send_event(dm)
        calls = await fake_slack.wait_for(channel="DUSER8", count=2)
        assert "no human agent can be reached" in calls[-1].args["text"]
        await _owned(gw, Conversation(channel="slack", id="DUSER8"), False)
        again = dict(dm, text="hello?", ts="1700000021.1")
        await gw.send_event(again)
        calls = await fake_slack.wait_for(channel="DUSER8", count=3)
        assert calls[-1].args["text"] == "chatbot echo: hello?"  # the bot still answers


async def test_without_slack_a_hand_off_never_silences_the_bot(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "FRONTDOOR_SUPPORT_CHANNEL"):
        monkeypatch.delenv(name, raising=False)
    dialogue = RulesDialogue()
    app = create_gateway_app(
        bus,
        dialogue,
        issuer=TEST_ISSUER,
        settings=make_settings(agent_workspace=False),  # with it, agents answer there
        turn_factory=Turn,
    )
    assert attach_slack(app) is None
    live = LiveServer(app)
    await live.start()
    try:
        async with httpx.AsyncClient() as http:
            session = (await http.post(f"{live.url}/api/session", json={})).json()
        async with ws_session(live.ws_url, session["token"]) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            await ws.send(json.dumps({"type": "message", "text": "human", "bot": "support"}))
            await _frames_until(ws, "no human agent can be reached")
            await ws.send(json.dumps({"type": "message", "text": "hello", "bot": "support"}))
            await _frames_until(ws, "support echo: hello")
        assert [t.text for t in dialogue.turns] == ["human", "hello"]
    finally:
        await live.stop()


async def test_workspace_claims_notes_and_answers_show_in_the_thread(
    slack_gateway: SlackGateway,
) -> None:
    """Both surfaces agree: what agents do in the workspace (/agent) appears in the thread, and
    the widget gets the workspace's answer like a Slack agent's, with the typing signal."""
    from bots.handoff import (
        HANDOFF_AGENT_REPLIED,
        HANDOFF_CLAIMED,
        HANDOFF_NOTE,
        HandoffAgentReplied,
        HandoffClaimed,
        HandoffNote,
    )
    from events.envelope import Actor, Envelope
    from events.payloads import Reply
    from events.subjects import typing_subject

    gw, fake = slack_gateway, slack_gateway.fake
    bus = gw.live.app.state.gateway.bus
    session = (await gw.http.post(f"{gw.live.url}/api/session", json={})).json()
    sender = session["sender"]
    async with ws_session(gw.live.ws_url, session["token"]) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        await ws.send(json.dumps({"type": "message", "text": "human", "bot": "support"}))
        await _frames_until(ws, "a person will answer here")
        [root] = await fake.wait_for(channel=SUPPORT)
        thread = root.response["ts"]
        conv = Conversation(channel="web", id=sender, bot="support")
        alice = Actor(id="user:alice", name="Alice Agent", roles=("agent", "user"))
        reply = Envelope.new(
            "reply",
            Reply(
                text="On it!", service="handoff", action="agent_message", data={"agent": "Alice"}
            ),
            conversation=conv,
            actor=alice,
        )
        for env in [
            Envelope.new(
                HANDOFF_CLAIMED,
                HandoffClaimed(agent="user:alice", name="Alice Agent"),
                conversation=conv,
                actor=alice,
            ),
            Envelope.new(
                HANDOFF_NOTE,
                HandoffNote(text="VIP", author="user:alice", name="Alice Agent"),
                conversation=conv,
                actor=alice,
            ),
            reply,
            Envelope.new(
                HANDOFF_AGENT_REPLIED,
                HandoffAgentReplied(
                    text="On it!", agent="user:alice", name="Alice Agent", reply_id=reply.id
                ),
                conversation=conv,
                actor=alice,
            ),
        ]:
            await bus.publish(env)
        posted = await fake.wait_for(channel=SUPPORT, thread_ts=thread, count=3)
        texts = [c.args["text"] for c in posted]
        assert "Claimed by *Alice Agent*" in texts[0]
        assert "Private note from Alice Agent" in texts[1] and "VIP" in texts[1]
        assert texts[2] == "*Alice Agent (agent workspace):* On it!"
        frames = await _frames_until(ws, "On it!")
        assert [f["service"] for f in frames if f.get("text") == "On it!"] == ["handoff"]
        assert not [f for f in frames if "VIP" in str(f.get("text"))]
        await bus.publish_core(
            typing_subject("web", sender, "agent"), b'{"active": true, "who": "agent"}'
        )
        seen_typing = False
        async with asyncio.timeout(5):
            while not seen_typing:
                frame = json.loads(await ws.recv())
                seen_typing = frame["type"] == "typing" and frame.get("who") == "agent"
