"""Ticket behaviour through the intent door: lifecycle, roles, validation, history, idempotency."""

from __future__ import annotations

import uuid

import pytest

from backend_services.management.core import STATE_KEY
from backend_services.management.tables import Ticket
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from events.envelope import Envelope
from tests.services.management.conftest import (
    ADMIN,
    AGENT,
    OTHER,
    USER,
    FakeClock,
    ask,
    events_of,
)

VPN = {"subject": "VPN drops", "requester_email": "uma@example.com", "priority": "high"}


async def make_agent(bus: Bus) -> None:
    reply = await ask(
        bus,
        "user_create",
        {
            "handle": "andy",
            "email": "andy@example.com",
            "roles": ["agent"],
            "identities": ["slack:UAGENT"],
        },
        ADMIN,
    )
    assert reply.status == "ok", reply


async def count_tickets(runner: ServiceRunner) -> int:
    from sqlalchemy import func, select

    st = runner.context.state[STATE_KEY]
    async with st.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Ticket)) or 0)


async def test_lifecycle_valid_and_invalid_transitions(bus: Bus, runner: ServiceRunner) -> None:
    created = await ask(bus, "ticket_create", VPN, USER)
    number = created.data["number"]
    for status in ("pending", "on_hold", "solved"):
        reply = await ask(bus, "ticket_update", {"ticket": number, "status": status}, AGENT)
        assert reply.status == "ok", reply
        assert reply.data["status"] == status
    # solved -> pending is not allowed: a clear domain error, not a retry.
    bad = await ask(bus, "ticket_update", {"ticket": number, "status": "pending"}, AGENT)
    assert bad.status == "invalid"
    assert bad.text == (
        f"Ticket #{number} is solved; it cannot move to pending (allowed: open, closed)."
    )
    closed = await ask(bus, "ticket_close", {"ticket": number}, USER)
    assert closed.status == "ok" and closed.data["status"] == "closed"
    assert closed.text.startswith(f"Closed ticket #{number}.")
    again = await ask(bus, "ticket_close", {"ticket": number}, USER)
    assert again.status == "invalid" and again.text == f"Ticket #{number} is already closed."
    to_hold = await ask(bus, "ticket_update", {"ticket": number, "status": "on_hold"}, AGENT)
    assert to_hold.status == "invalid" and "allowed: open" in to_hold.text
    reopened = await ask(bus, "ticket_reopen", {"ticket": number}, USER)
    assert reopened.status == "ok" and reopened.data["status"] == "open"
    assert reopened.data["closed_at"] is None
    not_again = await ask(bus, "ticket_reopen", {"ticket": number}, USER)
    assert not_again.status == "invalid" and "nothing to reopen" in not_again.text
    missing = await ask(bus, "ticket_get", {"ticket": "#99"}, AGENT)
    assert missing.status == "invalid" and missing.text == "There is no ticket #99."
    changes = await events_of(bus, "ticket.status_changed")
    assert [(e.payload["old_status"], e.payload["new_status"]) for e in changes] == [
        ("open", "pending"),
        ("pending", "on_hold"),
        ("on_hold", "solved"),
        ("solved", "closed"),
        ("closed", "open"),
    ]
    assert len(await events_of(bus, "ticket.closed")) == 1


async def test_roles_and_ownership(bus: Bus, runner: ServiceRunner) -> None:
    number = (await ask(bus, "ticket_create", VPN, USER)).data["number"]
    for action, payload in (
        ("ticket_assign", {"ticket": number, "assignee": "me"}),
        ("ticket_merge", {"ticket": number, "into": 1}),
        ("ticket_update", {"ticket": number, "priority": "low"}),
        ("user_create", {"handle": "eve"}),
    ):
        refused = await ask(bus, action, payload, USER)
        assert refused.status == "denied", (action, refused)
        assert refused.text.startswith(f"Sorry, {action.replace('_', ' ')} needs one of the roles")
    note = await ask(
        bus, "ticket_comment", {"ticket": number, "body": "psst", "public": False}, USER
    )
    assert note.status == "denied" and note.text == "Only agents can add internal notes."
    # Someone else's ticket: neither readable nor closable by another plain user.
    for action in ("ticket_get", "ticket_close", "ticket_comment"):
        reply = await ask(bus, action, {"ticket": number, "body": "hi"}, OTHER)
        assert reply.status == "denied", (action, reply)
        assert f"Ticket #{number} is not yours" in reply.text
    # The other user's search does not show it; the requester's does.
    assert (await ask(bus, "ticket_search", {}, OTHER)).data["total"] == 0
    assert (await ask(bus, "ticket_search", {}, USER)).data["total"] == 1
    # An agent who is a registered agent can take it.
    await make_agent(bus)
    assigned = await ask(bus, "ticket_assign", {"ticket": number, "assignee": "me"}, AGENT)
    assert assigned.status == "ok" and assigned.data["assignee"] == "andy"
    admin_takes = await ask(
        bus, "ticket_assign", {"ticket": number, "assignee": "slack:UADMIN"}, AGENT
    )
    assert admin_takes.status == "ok", admin_takes  # admins may take tickets too
    await ask(bus, "user_create", {"handle": "pat", "email": "pat@example.com"}, ADMIN)
    not_agent = await ask(bus, "ticket_assign", {"ticket": number, "assignee": "pat"}, AGENT)
    assert not_agent.status == "invalid"
    assert not_agent.text == "pat is not an agent, so they cannot take tickets."
    nobody = await ask(bus, "ticket_assign", {"ticket": number, "assignee": "ghost"}, AGENT)
    assert nobody.status == "invalid" and nobody.text == "There is no user 'ghost'."
    assert [e.payload["assignee"] for e in await events_of(bus, "ticket.assigned")] == [
        "andy",
        "slack-uadmin",
    ]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"subject": "x", "requester_email": "not-an-email"}, "requester_email"),
        ({"subject": "x", "requester_email": "a@example.com", "priority": "critical"}, "priority"),
        ({"requester_email": "a@example.com"}, "subject"),
    ],
)
async def test_invalid_input_is_answered_not_retried(
    bus: Bus, runner: ServiceRunner, payload: dict, field: str
) -> None:
    reply = await ask(bus, "ticket_create", payload, USER)
    assert reply.status == "invalid"
    assert [e["loc"] for e in reply.errors] == [[field]]
    assert field in reply.text
    # Nothing was stored and the intent was not redelivered (answered once, no failure event).
    assert await count_tickets(runner) == 0
    assert await events_of(bus, "intent.failed") == []


async def test_requester_email_defaults_to_the_callers(bus: Bus, runner: ServiceRunner) -> None:
    missing = await ask(bus, "ticket_create", {"subject": "No email"}, USER)
    assert missing.status == "invalid"
    assert missing.errors[0]["loc"] == ["requester_email"]
    assert await count_tickets(runner) == 0
    await make_agent(bus)
    own = await ask(bus, "ticket_create", {"subject": "Mine", "priority": "Urgent"}, AGENT)
    assert own.status == "ok" and own.data["requester_email"] == "andy@example.com"
    assert own.data["priority"] == "urgent"


async def test_comments_history_and_first_response(
    bus: Bus, runner: ServiceRunner, clock: FakeClock
) -> None:
    await make_agent(bus)
    number = (await ask(bus, "ticket_create", VPN, USER)).data["number"]
    clock.advance(minutes=5)
    await ask(bus, "ticket_comment", {"ticket": number, "body": "Checking", "public": False}, AGENT)
    clock.advance(minutes=5)
    reply = await ask(bus, "ticket_comment", {"ticket": number, "body": "Try again now"}, AGENT)
    assert reply.data["first_responded_at"] == clock.now.isoformat().replace("+00:00", "Z")
    await ask(bus, "ticket_update", {"ticket": number, "status": "pending"}, AGENT)
    # The requester answers: pending goes back to open; they never see the internal note.
    mine = await ask(bus, "ticket_comment", {"ticket": number, "body": "Still broken"}, USER)
    assert mine.data["status"] == "open"
    assert [c["body"] for c in mine.data["comments"]] == ["Try again now", "Still broken"]
    staff_view = await ask(bus, "ticket_get", {"ticket": number}, AGENT)
    assert [c["public"] for c in staff_view.data["comments"]] == [False, True, True]
    await ask(bus, "ticket_tag", {"ticket": number, "add": ["vpn", "network"]}, AGENT)
    hist = await ask(bus, "ticket_history", {"ticket": number}, USER)
    assert hist.status == "ok"
    entries = hist.data["entries"]
    assert [e["action"] for e in entries] == [
        "created",
        "commented",
        "commented",
        "updated",
        "commented",
        "tagged",
    ]
    assert entries[0]["actor"] == "slack:UUSER" and entries[0]["actor_name"] == "Uma User"
    assert entries[0]["changes"]["priority"] == [None, "high"]
    assert entries[3]["changes"] == {"status": ["open", "pending"]}
    assert entries[3]["actor"] == "slack:UAGENT"
    assert entries[4]["changes"] == {"status": ["pending", "open"]}
    assert entries[5]["changes"] == {"tags": [[], ["network", "vpn"]]}
    assert entries[1]["at"] < entries[2]["at"]
    assert "History of ticket #1" in hist.text
    comments = await events_of(bus, "ticket.commented")
    assert [(e.payload["public"], e.payload["by_staff"]) for e in comments] == [
        (False, True),
        (True, True),
        (True, False),
    ]


async def test_escalate_merge_and_csat(bus: Bus, runner: ServiceRunner) -> None:
    await make_agent(bus)
    first = (await ask(bus, "ticket_create", VPN, USER)).data["number"]
    dup = (
        await ask(
            bus,
            "ticket_create",
            {**VPN, "subject": "VPN again", "tags": ["vpn"], "priority": "normal"},
            USER,
        )
    ).data["number"]
    esc = await ask(bus, "ticket_escalate", {"ticket": first, "reason": "CEO"}, USER)
    assert esc.status == "ok" and esc.data["priority"] == "urgent"
    assert esc.data["escalation_level"] == 1 and "escalated" in esc.data["tags"]
    assert esc.text.startswith(f"Escalated ticket #{first} to a human agent.")
    pick = await ask(bus, "ticket_escalate", {"ticket": first, "to": "andy"}, USER)
    assert pick.status == "denied"
    esc2 = await ask(bus, "ticket_escalate", {"ticket": first, "to": "andy"}, AGENT)
    assert esc2.data["assignee"] == "andy" and esc2.data["priority"] == "urgent"
    escalated = await events_of(bus, "ticket.escalated")
    assert [(e.payload["old_priority"], e.payload["priority"]) for e in escalated] == [
        ("high", "urgent"),
        ("urgent", "urgent"),
    ]
    assert escalated[0].payload["reason"] == "CEO"

    merged = await ask(bus, "ticket_merge", {"ticket": dup, "into": f"#{first}"}, AGENT)
    assert merged.status == "ok" and merged.data["number"] == first
    assert merged.text.startswith(f"Merged ticket #{dup} into #{first}.")
    assert "vpn" in merged.data["tags"]
    assert any(f"Ticket #{dup}" in c["body"] for c in merged.data["comments"])
    source = await ask(bus, "ticket_get", {"ticket": dup}, AGENT)
    assert source.data["status"] == "closed" and source.data["merged_into"] == first
    self_merge = await ask(bus, "ticket_merge", {"ticket": first, "into": first}, AGENT)
    assert self_merge.status == "invalid"
    assert [e.payload["into"] for e in await events_of(bus, "ticket.merged")] == [first]

    early = await ask(bus, "ticket_csat", {"ticket": first, "score": 5}, USER)
    assert early.status == "invalid" and "once it is solved" in early.text
    await ask(bus, "ticket_update", {"ticket": first, "status": "solved"}, AGENT)
    by_agent = await ask(bus, "ticket_csat", {"ticket": first, "score": 5}, AGENT)
    assert by_agent.status == "denied"
    out_of_range = await ask(bus, "ticket_csat", {"ticket": first, "score": 6}, USER)
    assert out_of_range.status == "invalid"
    rated = await ask(bus, "ticket_csat", {"ticket": first, "score": 4, "comment": "ok"}, USER)
    assert rated.status == "ok" and rated.data["csat_score"] == 4
    assert [e.payload["score"] for e in await events_of(bus, "ticket.csat")] == [4]


async def test_search_filters(bus: Bus, runner: ServiceRunner) -> None:
    await make_agent(bus)
    await ask(bus, "ticket_create", VPN, USER)
    await ask(
        bus,
        "ticket_create",
        {
            "subject": "Printer jam",
            "description": "paper stuck",
            "requester_email": "o@x.org",
            "priority": "low",
            "tags": ["printer"],
        },
        OTHER,
    )
    await ask(bus, "ticket_assign", {"ticket": 2, "assignee": "andy"}, AGENT)

    async def numbers(query: dict) -> list[int]:
        reply = await ask(bus, "ticket_search", query, AGENT)
        assert reply.status == "ok", reply
        return [t["number"] for t in reply.data["items"]]

    assert await numbers({"status": "open"}) == [2, 1]
    assert await numbers({"priority": ["high", "urgent"]}) == [1]
    assert await numbers({"assignee": "andy"}) == [2]
    assert await numbers({"assignee": "me"}) == [2]
    assert await numbers({"assignee": "none"}) == [1]
    assert await numbers({"requester": "uma@"}) == [1]
    assert await numbers({"text": "PAPER"}) == [2]
    assert await numbers({"tag": "printer"}) == [2]
    assert await numbers({"status": "closed"}) == []
    listing = await ask(bus, "ticket_search", {"status": ["open"]}, AGENT)
    assert listing.text == "2 tickets: #2 Printer jam (open, low); #1 VPN drops (open, high)."


async def test_redelivered_create_opens_one_ticket(
    bus: Bus, runner: ServiceRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first delivery commits, then fails publishing its event: JetStream redelivers."""
    real_publish = bus.publish
    failures = {"left": 1}

    async def flaky_publish(envelope: Envelope) -> int:
        if envelope.type == "ticket.created" and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("bus hiccup after the commit")
        return await real_publish(envelope)

    monkeypatch.setattr(bus, "publish", flaky_publish)
    intent_id = uuid.uuid4()
    reply = await ask(bus, "ticket_create", VPN, USER, intent_id=intent_id)
    assert failures["left"] == 0  # the first delivery really failed
    assert reply.status == "ok" and reply.data["number"] == 1
    assert await count_tickets(runner) == 1
    assert len(await events_of(bus, "ticket.created")) == 1
    assert len(await events_of(bus, "reply")) == 1


async def test_same_envelope_twice_on_request_door_opens_one_ticket(
    bus: Bus, runner: ServiceRunner
) -> None:
    from tests.services.management.test_mgmt_doors import api_envelope, micro

    env = api_envelope("ticket_create", VPN, USER)
    first = await micro(bus, "ticket_create", env)
    second = await micro(bus, "ticket_create", env)
    assert first.status == second.status == "ok"
    assert first.data["number"] == second.data["number"] == 1
    assert await count_tickets(runner) == 1
    third = await micro(bus, "ticket_create", api_envelope("ticket_create", VPN, USER))
    assert third.data["number"] == 2


@pytest.mark.parametrize(
    ("action", "payload", "field"),
    [
        ("ticket_get", {"ticket": 654208823504164356096}, "ticket"),
        ("ticket_comment", {"ticket": 2**63, "body": "x"}, "ticket"),
        ("ticket_merge", {"ticket": 1, "into": 2**40}, "into"),
        ("ticket_search", {"offset": 2**63}, "offset"),
        ("api_key_revoke", {"key_id": 2**64}, "key_id"),
    ],
)
async def test_numbers_beyond_the_database_are_invalid_not_an_error(
    bus: Bus, runner: ServiceRunner, action: str, payload: dict, field: str
) -> None:
    """A row number no database column holds is the caller's mistake (found by the gateway's
    fuzzing: it was an 'error' reply, a 500 on the HTTP door)."""
    reply = await ask(bus, action, payload, ADMIN)
    assert reply.status == "invalid", reply
    assert [e["loc"] for e in reply.errors] == [[field]]
