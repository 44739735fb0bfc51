"""``frontdoor transcript`` and ``frontdoor erase`` as the ``cli`` NATS user, on a real
nats-server with the compartments' permissions."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import nats
import pytest
from nats.js.errors import APIError
from typer.testing import CliRunner

from bots.handoff import conversation_key as handoff_key
from bots.seen import kv_key
from bots.slack.handoff_mirror import HandoffThread
from bots.transcripts import read_transcript
from events.bus import Bus
from events.embedded import EmbeddedNats
from events.envelope import Actor, Conversation, Envelope
from events.kv import VersionedKV
from events.payloads import Reply
from events.subjects import (
    ALL_EVENTS,
    CONVERSATIONS_BUCKET,
    DEAD_STREAM,
    HANDOFFS_BUCKET,
    INTENT_STREAM,
    TICKET_CONVERSATIONS_BUCKET,
)
from frontdoor import cli
from skills.dialogue.state import conversation_key

ALICE = Actor(id="guest:w-alice", name="Alice", roles=("guest",))
BOB = Actor(id="guest:w-bob", name="Bob", roles=("guest",))


async def _turn(bus: Bus, conversation: Conversation, actor: Actor, said: str, answer: str) -> None:
    received = Envelope.new(
        "message.received", {"text": said}, conversation=conversation, actor=actor
    )
    await bus.publish(received)
    await bus.publish(received.follow("reply", Reply(text=answer)))


def _cli(*args: str) -> tuple[int, str]:
    cli.register_commands()
    result = CliRunner().invoke(cli.app, list(args))
    return result.exit_code, result.output


async def _events(bus: Bus, conversation: Conversation) -> list[Envelope]:
    return [
        env async for _s, env in bus.tail(f"fd.event.rest.{conversation.id}.>", 1, stop_at_end=True)
    ]


@pytest.fixture
async def gateway(secured_server: EmbeddedNats) -> Bus:
    bus = await Bus.connect(secured_server.url_for("gateway"))  # creates the streams
    yield bus
    await bus.close()


async def test_a_transcript_is_exported_in_bus_order_as_json_and_text(
    secured_server: EmbeddedNats, gateway: Bus
) -> None:
    first = Conversation(channel="rest", id="alice-1")
    await _turn(gateway, first, ALICE, "my VPN drops", "Sorry to hear that.")
    await _turn(gateway, first, ALICE, "open a ticket", "Ticket #3 is open.")
    url = secured_server.url_for("cli")

    code, out = await asyncio.to_thread(
        _cli, "transcript", "show", "rest", "alice-1", "--format", "json", "--nats-url", url
    )
    assert code == 0, out
    body = json.loads(out[out.index("{") :])
    entries = body["conversations"][0]["entries"]
    assert [(e["kind"], e["text"]) for e in entries] == [
        ("user", "my VPN drops"),
        ("bot", "Sorry to hear that."),
        ("user", "open a ticket"),
        ("bot", "Ticket #3 is open."),
    ]
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)

    code, out = await asyncio.to_thread(
        _cli, "transcript", "show", "rest", "alice-1", "--nats-url", url
    )
    assert code == 0, out
    assert "Transcript of the rest conversation alice-1" in out
    assert out.index("Alice: my VPN drops") < out.index("(bot): Ticket #3 is open.")


async def test_erasing_an_actor_removes_their_conversations_state_and_leaves_an_audit_event(
    secured_server: EmbeddedNats, gateway: Bus
) -> None:
    mine = [Conversation(channel="rest", id="alice-1"), Conversation(channel="rest", id="alice-2")]
    theirs = Conversation(channel="rest", id="bob-1")
    for conversation in mine:
        await _turn(gateway, conversation, ALICE, "alice@example.com is my mail", "Noted.")
    await _turn(gateway, theirs, BOB, "hello", "Hi Bob.")
    states = await VersionedKV.open(gateway, CONVERSATIONS_BUCKET)
    for conversation in [*mine, theirs]:
        await states.put(conversation_key(conversation), b'{"slots": {"email": "x"}}')
    handoffs = await VersionedKV.open(gateway, HANDOFFS_BUCKET)
    mirrored = HandoffThread(
        conversation=mine[0], user=ALICE, slack_channel="CS", thread_ts="9.1", started_id=uuid4()
    )
    handoff_keys = ["conv." + kv_key(*handoff_key(mine[0])), "thread." + kv_key("CS", "9.1")]
    for key in handoff_keys:
        await handoffs.put(key, mirrored.model_dump_json().encode())
    url = secured_server.url_for("cli")

    code, out = await asyncio.to_thread(
        _cli, "transcript", "actor", ALICE.id, "--format", "json", "--nats-url", url
    )
    assert code == 0, out
    exported = json.loads(out[out.index("{") :])["conversations"]
    assert sorted(c["conversation"]["id"] for c in exported) == ["alice-1", "alice-2"]

    code, out = await asyncio.to_thread(
        _cli, "erase", "actor", ALICE.id, "--yes", "--nats-url", url
    )
    assert code == 0, out
    assert "erased 2 conversation(s) (4 events)" in out

    for conversation in mine:
        assert await _events(gateway, conversation) == []
        assert await read_transcript(gateway, conversation) == []
        assert await states.get(conversation_key(conversation)) is None
    assert [e.type for e in await _events(gateway, theirs)] == ["message.received", "reply"]
    assert await states.get(conversation_key(theirs)) is not None
    assert [await handoffs.get(key) for key in handoff_keys] == [None, None]

    audits = [
        env
        async for _s, env in gateway.tail(ALL_EVENTS, 1, stop_at_end=True)
        if env.type == "privacy.erased"
    ]
    assert len(audits) == 1
    assert audits[0].payload["conversations"] == 2 and audits[0].payload["events"] == 4
    assert "alice" not in json.dumps(audits[0].payload).lower()  # no personal data

    code, out = await asyncio.to_thread(
        _cli, "erase", "actor", ALICE.id, "--yes", "--nats-url", url
    )
    assert code == 0 and "nothing to erase" in out


async def test_erasing_asks_first_and_a_no_erases_nothing(
    secured_server: EmbeddedNats, gateway: Bus
) -> None:
    conversation = Conversation(channel="rest", id="alice-1")
    await _turn(gateway, conversation, ALICE, "hi", "Hello!")
    url = secured_server.url_for("cli")

    def refuse() -> tuple[int, str]:
        cli.register_commands()
        result = CliRunner().invoke(
            cli.app, ["erase", "conversation", "rest", "alice-1", "--nats-url", url], input="n\n"
        )
        return result.exit_code, result.output

    code, out = await asyncio.to_thread(refuse)
    assert code == 1 and "nothing erased" in out
    assert len(await _events(gateway, conversation)) == 2


async def test_the_cli_user_may_purge_only_the_event_stream(secured_server: EmbeddedNats) -> None:
    gateway = await Bus.connect(secured_server.url_for("gateway"))
    notices = await VersionedKV.open(gateway, TICKET_CONVERSATIONS_BUCKET)
    await notices.put("ticket.7", b"{}")
    await gateway.close()
    nc = await nats.connect(secured_server.url_for("cli"), inbox_prefix=b"_INBOX.cli")
    try:
        js = nc.jsm()
        assert await js.purge_stream("FD_EVENTS", subject="fd.event.rest.nobody.>")
        for stream in (INTENT_STREAM, DEAD_STREAM):
            with pytest.raises((APIError, nats.errors.TimeoutError, nats.errors.Error)):
                await js.purge_stream(stream)
    finally:
        await nc.close()
    cli_bus = await Bus.connect(secured_server.url_for("cli"), ensure=False)
    try:  # erasure forgets where an erased ticket was opened
        await (await VersionedKV.open(cli_bus, TICKET_CONVERSATIONS_BUCKET)).purge("ticket.7")
    finally:
        await cli_bus.close()
    for user in ("gateway", "management", "analysis"):
        nc = await nats.connect(
            secured_server.url_for(user), inbox_prefix=f"_INBOX.{user}".encode()
        )
        try:
            with pytest.raises((APIError, nats.errors.TimeoutError, nats.errors.Error)):
                await nc.jsm().purge_stream("FD_EVENTS", subject="fd.event.rest.nobody.>")
        finally:
            await nc.close()
