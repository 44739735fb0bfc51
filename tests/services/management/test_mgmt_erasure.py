"""``user_erase``: a person's tickets, comments and user record go; the audit event holds
counts only; only admins may; the last admin stays."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from backend_services.runtime import ServiceRunner
from events.bus import Bus
from events.embedded import EmbeddedNats
from events.envelope import Actor, Conversation, Envelope
from events.subjects import events_filter
from frontdoor import cli
from tests.claims import TEST_KEY
from tests.services.management.conftest import ADMIN, AGENT, USER, ask, events_of
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


async def test_frontdoor_erase_person_erases_the_records_and_the_conversations(
    bus: Bus,
    nats_server: EmbeddedNats,
    sqlite_runner: ServiceRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    uma = await ask(
        bus,
        "user_create",
        {"handle": "uma", "email": "uma@example.com", "identities": ["slack:UUSER"]},
        ADMIN,
    )
    assert uma.status == "ok", uma
    ticket = await _ticket(bus, "my laptop is slow", "uma@example.com")
    dm = Conversation(channel="slack", id="D1")
    said = Envelope.new("message.received", {"text": "I am Uma"}, conversation=dm, actor=USER)
    await bus.publish(said)
    # the operator's claims are signed with the gateway's key (here: the test key)
    monkeypatch.setenv("FRONTDOOR_CLAIMS_SIGNING_KEY", TEST_KEY.to_pem().decode())

    def run() -> tuple[int, str]:
        cli.register_commands()
        args = ["erase", "person", "uma", "--yes", "--nats-url", nats_server.url]
        result = CliRunner().invoke(cli.app, args)
        return result.exit_code, result.output

    code, out = await asyncio.to_thread(run)
    assert code == 0, out
    assert "1 ticket(s)" in out and "Erased 1 conversation(s) (1 events)" in out
    gone = await ask(bus, "ticket_get", {"ticket": ticket}, ADMIN)
    assert gone.status == "invalid"
    dm_events = events_filter(channel="slack", conversation_id="D1")
    assert [e async for e in bus.tail(dm_events, 1, stop_at_end=True)] == []
