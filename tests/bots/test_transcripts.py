"""``bots.transcripts``: a conversation with user, bot and agent turns, a hand-off and a ticket,
read back from a real nats-server in bus order; a person's conversations found by actor."""

from __future__ import annotations

import json

from bots.transcripts import TranscriptEntry, conversations_of, read_transcript, render_text
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply

ALICE = Actor(id="guest:w-alice", name="Alice", roles=("guest",))
BOB = Actor(id="guest:w-bob", name="Bob", roles=("guest",))
AGENT = Actor(id="slack:UAGENT", name="Andy", roles=("agent",))
SYSTEM = Actor(id="system:management", roles=("system",))


async def _conversation_with_everyone(bus: Bus, conversation: Conversation) -> None:
    said = Envelope.new(
        "message.received", {"text": "my VPN drops"}, conversation=conversation, actor=ALICE
    )
    await bus.publish(said)
    await bus.publish(said.follow("reply", Reply(text="Sorry to hear that.", service="nlu")))
    await bus.publish(said.follow("handoff.started", {"reason": "asked"}))
    await bus.publish(
        Envelope.new(
            "ticket.created",
            {"ticket": 7, "subject": "VPN", "status": "new", "priority": "normal"},
            conversation=conversation,
            actor=SYSTEM,
        )
    )
    await bus.publish(
        Envelope.new(
            "handoff.note",
            {"text": "checking the logs", "author": AGENT.id, "name": "Andy"},
            conversation=conversation,
            actor=AGENT,
        )
    )
    await bus.publish(
        Envelope.new(
            "reply",
            Reply(text="Try again now?", service="handoff", data={"agent": "Andy"}),
            conversation=conversation,
            actor=AGENT,
        )
    )
    again = Envelope.new(
        "message.received", {"text": "works, thanks"}, conversation=conversation, actor=ALICE
    )
    await bus.publish(again)
    await bus.publish(again.follow("intent.detected", {"intent": "thanks"}))  # nobody reads it


async def test_user_bot_and_agent_turns_are_read_back_in_bus_order(bus: Bus) -> None:
    mine = Conversation(channel="web", id="w.alice*1")  # needs encoding on the subject
    other = Conversation(channel="web", id="w.alice")
    await _conversation_with_everyone(bus, mine)
    await bus.publish(
        Envelope.new("message.received", {"text": "not mine"}, conversation=other, actor=BOB)
    )

    entries = await read_transcript(bus, mine)
    assert [(e.kind, e.author, e.text) for e in entries] == [
        ("user", "Alice", "my VPN drops"),
        ("bot", "nlu", "Sorry to hear that."),
        ("system", "Alice", "asked for a human"),
        ("system", SYSTEM.id, "ticket #7 created"),
        ("note", "Andy", "checking the logs"),
        ("agent", "Andy", "Try again now?"),
        ("user", "Alice", "works, thanks"),
    ]
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert {e.channel for e in entries} == {"web"}
    assert entries[3].type == "ticket.created" and entries[3].ticket == 7

    # JSON round trip (what the CLI and the workspace export)
    dumped = json.loads(json.dumps([e.model_dump(mode="json") for e in entries]))
    assert [TranscriptEntry.model_validate(d) for d in dumped] == entries

    text = render_text(entries)
    assert text.startswith("Transcript of a web conversation\n")
    order = ["Alice: my VPN drops", "nlu (bot): Sorry", "Andy (agent): Try again", "works"]
    assert [text.index(part) for part in order] == sorted(text.index(part) for part in order)
    assert "[note] Andy: checking the logs" in text
    assert "UTC" in text and "not mine" not in text
    named = render_text(mine, entries)
    assert named.startswith("Transcript of the web conversation w.alice*1\n")

    assert len(await read_transcript(bus, mine, limit=2)) == 2  # the last two
    assert (await read_transcript(bus, mine, limit=2))[-1].text == "works, thanks"
    assert "nothing" in render_text([])


async def test_conversations_of_an_actor_are_found_by_their_messages(bus: Bus) -> None:
    first, second = Conversation(channel="web", id="a1"), Conversation(channel="rest", id="a2")
    theirs = Conversation(channel="web", id="b1")
    for conversation in (first, second, first):
        await bus.publish(
            Envelope.new("message.received", {"text": "hi"}, conversation=conversation, actor=ALICE)
        )
    await bus.publish(
        Envelope.new("message.received", {"text": "hi"}, conversation=theirs, actor=BOB)
    )
    assert await conversations_of(bus, ALICE.id) == [first, second]
    assert await conversations_of(bus, BOB.id) == [theirs]
    assert await conversations_of(bus, "guest:w-nobody") == []
    assert await conversations_of(bus, ALICE.id, limit=1) == [first]
