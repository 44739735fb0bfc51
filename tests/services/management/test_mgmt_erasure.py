"""``user_erase``: a person's tickets, comments and user record go; the audit event holds
counts only; only admins may; the last admin stays."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from typer.testing import CliRunner

from backend_services.runtime import ServiceRunner
from bots.handoff import conversation_key as handoff_key
from bots.seen import kv_key
from bots.slack.handoff_mirror import HandoffThread
from bots.ticket_updates.conversations import TicketConversations
from bots.transcripts import read_transcript
from events.bus import Bus
from events.embedded import EmbeddedNats
from events.envelope import Actor, Conversation, Envelope
from events.kv import VersionedKV
from events.payloads import Reply
from events.subjects import (
    ALL_EVENTS,
    CONVERSATIONS_BUCKET,
    HANDOFFS_BUCKET,
    TICKET_CONVERSATIONS_BUCKET,
)
from frontdoor import cli
from skills.dialogue.state import conversation_key
from tests.claims import TEST_KEY
from tests.services.management.conftest import ADMIN, AGENT, OTHER, USER, ask, events_of
from tests.services.management.test_mgmt_tickets import make_agent


async def _ticket(bus: Bus, subject: str, email: str, actor=USER) -> int:
    reply = await ask(bus, "ticket_create", {"subject": subject, "requester_email": email}, actor)
    assert reply.status == "ok", reply
    return int(reply.data["number"])


async def test_erasing_a_user_removes_their_tickets_comments_and_record(
    bus: Bus, runner: ServiceRunner
) -> None:
    await make_agent(bus)
    uma = await ask(
        bus,
        "user_create",
        {
            "handle": "uma",
            "email": "uma@example.com",
            "name": "Uma User",
            "identities": ["slack:UUSER"],
        },
        ADMIN,
    )
    assert uma.status == "ok", uma
    mine = await _ticket(bus, "my laptop is slow", "uma@example.com")
    other = await _ticket(bus, "printer jam", "otto@example.com", AGENT)
    # a ticket an agent opened for her (requester by e-mail) is hers too
    for_her = await _ticket(bus, "shared printer", "uma@example.com", AGENT)
    said = await ask(bus, "ticket_comment", {"ticket": for_her, "body": "Uma here"}, USER)
    assert said.status == "ok", said
    agent_note = await ask(bus, "ticket_comment", {"ticket": mine, "body": "on it"}, AGENT)
    assert agent_note.status == "ok"

    start = await bus.last_sequence()
    denied = await ask(bus, "user_erase", {"person": "uma"}, AGENT)
    assert denied.status == "denied"
    denied = await ask(bus, "user_erase", {"person": "uma", "dry_run": True}, USER)
    assert denied.status == "denied"
    planned = await ask(bus, "user_erase", {"person": "uma", "dry_run": True}, ADMIN)
    assert planned.status == "ok", planned
    assert planned.data["dry_run"] and planned.data["ticket_numbers"] == sorted([mine, for_her])
    assert (await ask(bus, "user_get", {"user": "uma"}, ADMIN)).status == "ok"  # nothing changed
    erased = await ask(
        bus,
        "user_erase",
        {"person": "slack:UUSER", "conversations": 2, "events": 9, "reference": "req-42"},
        ADMIN,
    )
    assert erased.status == "ok", erased
    assert "2 ticket(s)" in erased.text and "req-42" in erased.text

    for number in (mine, for_her):
        gone = await ask(bus, "ticket_get", {"ticket": number}, ADMIN)
        assert gone.status == "invalid" and f"#{number}" in gone.text
    kept = await ask(bus, "ticket_get", {"ticket": other}, ADMIN)
    assert kept.status == "ok"
    assert not [c for c in kept.data["comments"] if "Uma here" in c["body"]]
    no_user = await ask(bus, "user_get", {"user": "uma"}, ADMIN)
    assert no_user.status == "invalid" and "no user" in no_user.text

    audits = await events_of(bus, "privacy.erased", start + 1)
    assert len(audits) == 1
    counts = audits[0].payload
    assert counts == {
        "what": "user",
        "reference": "req-42",
        "tickets": 2,
        "comments": 0,  # her comment was on her own ticket
        "anonymised": 0,
        "user_record": True,
        "conversations": 2,
        "events": 9,
    }
    assert audits[0].actor.id == ADMIN.id  # who erased
    assert "uma" not in json.dumps(audits[0].payload).lower()
    roles = await events_of(bus, "user.roles_changed", start + 1)
    assert [e.payload["new_roles"] for e in roles] == [[]]  # gateways forget cached roles

    again = await ask(bus, "user_erase", {"person": "uma"}, ADMIN)
    assert again.status != "ok"


async def test_a_requester_known_only_by_email_is_erased(bus: Bus, runner: ServiceRunner) -> None:
    first = await _ticket(bus, "VPN drops", "guest@example.org")
    await _ticket(bus, "unrelated", "someone@example.org")
    erased = await ask(bus, "user_erase", {"person": "Guest@Example.org"}, ADMIN)
    assert erased.status == "ok", erased
    assert "a requester, 1 ticket(s)" in erased.text
    gone = await ask(bus, "ticket_get", {"ticket": first}, ADMIN)
    assert gone.status == "invalid" and f"#{first}" in gone.text
    unknown = await ask(bus, "user_erase", {"person": "nobody-handle"}, ADMIN)
    assert unknown.status != "ok"


async def test_the_last_admin_cannot_be_erased(bus: Bus, runner: ServiceRunner) -> None:
    refused = await ask(bus, "user_erase", {"person": "slack:UADMIN"}, ADMIN)
    assert refused.status != "ok"
    assert "last active admin" in refused.text


async def test_erasing_an_agent_removes_their_comments_but_not_the_tickets(
    bus: Bus, runner: ServiceRunner
) -> None:
    await make_agent(bus)
    ticket = await _ticket(bus, "VPN drops", "uma@example.com")
    said = await ask(bus, "ticket_comment", {"ticket": ticket, "body": "Andy on it"}, AGENT)
    assert said.status == "ok", said
    assigned = await ask(bus, "ticket_assign", {"ticket": ticket, "assignee": "andy"}, AGENT)
    assert assigned.status == "ok", assigned
    erased = await ask(bus, "user_erase", {"person": "andy"}, ADMIN)
    assert erased.status == "ok", erased
    assert "0 ticket(s) and 1 other comment(s)" in erased.text
    assert erased.data["anonymised"] >= 1
    kept = await ask(bus, "ticket_get", {"ticket": ticket}, ADMIN)
    assert kept.status == "ok"
    assert not [c for c in kept.data["comments"] if "Andy" in c["body"]]
    assert kept.data.get("assignee") is None
    history = await ask(bus, "ticket_history", {"ticket": ticket}, ADMIN)
    assert history.status == "ok", history
    assert "andy" not in json.dumps(history.data).lower()
    assert "UAGENT" not in json.dumps(history.data)


async def test_a_guest_is_erased_by_their_actor_id(bus: Bus, runner: ServiceRunner) -> None:
    guest = Actor(id="guest:w-123", name="Visitor", roles=("guest",))
    theirs = await _ticket(bus, "cannot log in", "visitor@example.org", guest)
    other = await _ticket(bus, "unrelated", "someone@example.org")
    planned = await ask(bus, "user_erase", {"person": guest.id, "dry_run": True}, ADMIN)
    assert planned.status == "ok", planned
    assert planned.data["what"] == "guest" and planned.data["ticket_numbers"] == [theirs]
    erased = await ask(bus, "user_erase", {"person": guest.id}, ADMIN)
    assert erased.status == "ok", erased
    assert "a guest, 1 ticket(s)" in erased.text
    assert (await ask(bus, "ticket_get", {"ticket": theirs}, ADMIN)).status == "invalid"
    assert (await ask(bus, "ticket_get", {"ticket": other}, ADMIN)).status == "ok"
    nothing = await ask(bus, "user_erase", {"person": "guest:w-never-seen"}, ADMIN)
    assert nothing.status == "ok" and "0 ticket(s)" in nothing.text


def _cli(*args: str, answer: str | None = None) -> tuple[int, str, str]:
    cli.register_commands()
    result = CliRunner().invoke(cli.app, list(args), input=answer)
    return result.exit_code, result.stdout, result.stderr


async def _turn(bus: Bus, conversation: Conversation, actor: Actor, said: str) -> None:
    received = Envelope.new(
        "message.received", {"text": said}, conversation=conversation, actor=actor
    )
    await bus.publish(received)
    await bus.publish(received.follow("reply", Reply(text=f"You said: {said}")))


async def test_frontdoor_exports_and_erases_a_user_everywhere(
    bus: Bus,
    nats_server: EmbeddedNats,
    sqlite_runner: ServiceRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for handle, identity in (("uma", "slack:UUSER"), ("otto", "slack:UOTHER")):
        made = await ask(
            bus,
            "user_create",
            {
                "handle": handle,
                "email": f"{handle}@example.com",
                "name": handle.title(),
                "identities": [identity],
            },
            ADMIN,
        )
        assert made.status == "ok", made
    hers = await _ticket(bus, "my laptop is slow", "uma@example.com")
    said = await ask(bus, "ticket_comment", {"ticket": hers, "body": "still slow"}, USER)
    assert said.status == "ok", said
    his = await _ticket(bus, "printer jam", "otto@example.com", OTHER)
    dm, otto_dm = Conversation(channel="slack", id="D1"), Conversation(channel="slack", id="D2")
    await _turn(bus, dm, USER, "I am Uma, call me on 555")
    await _turn(bus, otto_dm, OTHER, "I am Otto")
    states = await VersionedKV.open(bus, CONVERSATIONS_BUCKET)
    handoffs = await VersionedKV.open(bus, HANDOFFS_BUCKET)
    notices = await VersionedKV.open(bus, TICKET_CONVERSATIONS_BUCKET)
    for conversation in (dm, otto_dm):
        await states.put(conversation_key(conversation), b'{"slots": {"phone": "555"}}')
    thread = HandoffThread(
        conversation=dm,
        user=USER,
        slack_channel="CSUPPORT",
        thread_ts="1.2",
        started_id=uuid.uuid4(),
    )
    handoff_keys = ["conv." + kv_key(*handoff_key(dm)), "thread." + kv_key("CSUPPORT", "1.2")]
    for key in handoff_keys:
        await handoffs.put(key, thread.model_dump_json().encode())
    for number in (hers, his):
        await notices.put(TicketConversations.key(number), b"{}")
    # the operator's claims are signed with the gateway's key (here: the test key)
    monkeypatch.setenv("FRONTDOOR_CLAIMS_SIGNING_KEY", TEST_KEY.to_pem().decode())
    url = ("--nats-url", nats_server.url)

    code, out, err = await asyncio.to_thread(_cli, "transcript", "user", "uma", *url)
    assert code == 0, err
    export = json.loads(out)
    assert export["profile"]["handle"] == "uma"
    assert [t["number"] for t in export["tickets"]] == [hers]
    assert "still slow" in json.dumps(export["tickets"])
    assert [c["conversation"]["id"] for c in export["conversations"]] == ["D1"]
    assert [e["kind"] for e in export["conversations"][0]["entries"]] == ["user", "bot"]
    assert "otto" not in out.lower() and "printer" not in out
    code, text, err = await asyncio.to_thread(
        _cli, "transcript", "user", "slack:UUSER", "--format", "text", *url
    )
    assert code == 0, err
    assert "Tickets (1)" in text and "I am Uma" in text and "Otto" not in text
    code, _out, err = await asyncio.to_thread(_cli, "transcript", "user", "nobody", *url)
    assert code == 1 and "there is no user 'nobody'" in err

    code, out, err = await asyncio.to_thread(_cli, "erase", "user", "uma", *url, answer="n\n")
    assert code == 1 and "nothing erased" in err
    assert "1 ticket(s)" in err and "1 conversation(s)" in err  # what would go, shown first
    assert (await ask(bus, "user_get", {"user": "uma"}, ADMIN)).status == "ok"

    start = await bus.last_sequence()
    code, out, err = await asyncio.to_thread(_cli, "erase", "user", "uma", "--yes", *url)
    assert code == 0, err
    assert "1 ticket(s)" in out and "erased 1 conversation(s) (2 events)" in out
    assert "marketing: not running" in out

    assert (await ask(bus, "user_get", {"user": "uma"}, ADMIN)).status == "invalid"
    assert (await ask(bus, "ticket_get", {"ticket": hers}, ADMIN)).status == "invalid"
    assert (await ask(bus, "ticket_get", {"ticket": his}, ADMIN)).status == "ok"
    assert await read_transcript(bus, dm) == []
    assert len(await read_transcript(bus, otto_dm)) == 2
    assert await states.get(conversation_key(dm)) is None
    assert await states.get(conversation_key(otto_dm)) is not None
    assert [await handoffs.get(key) for key in handoff_keys] == [None, None]
    assert await notices.get(TicketConversations.key(hers)) is None
    assert await notices.get(TicketConversations.key(his)) is not None

    audits = await events_of(bus, "privacy.erased", start + 1)
    assert len(audits) == 1
    assert audits[0].payload["conversations"] == 1 and audits[0].payload["events"] == 2
    assert audits[0].payload["tickets"] == 1 and audits[0].payload["user_record"] is True
    leaked = json.dumps(audits[0].model_dump(mode="json")).lower()
    assert "uma" not in leaked and "uuser" not in leaked and "555" not in leaked
    # the answers the operator read (her profile, her ticket) are not left on the bus
    everything = [env async for _s, env in bus.tail(ALL_EVENTS, 1, stop_at_end=True)]
    assert not [e for e in everything if e.conversation.id.startswith("cli-") and e.type == "reply"]
    assert not [e for e in everything if "I am Uma" in json.dumps(e.payload)]

    code, _out, err = await asyncio.to_thread(_cli, "erase", "user", "uma", "--yes", *url)
    assert code == 1 and "there is no user 'uma'" in err
