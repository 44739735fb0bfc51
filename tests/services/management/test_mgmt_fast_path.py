"""The cheap ticket path keeps its guarantees: answers equal a fresh read, every change is in
the history, a redelivered intent applies once, concurrent writers all commit."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from backend_services.management.core import STATE_KEY
from backend_services.management.tables import ProcessedRequest, TicketHistory
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from events.envelope import Actor
from tests.services.management.conftest import ADMIN, AGENT, OTHER, USER, ask, events_of
from tests.services.management.test_mgmt_doors import api_envelope, micro
from tests.services.management.test_mgmt_tickets import VPN, count_tickets, make_agent


async def _count(runner: ServiceRunner, model: type) -> int:
    st = runner.context.state[STATE_KEY]
    async with st.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_create_answer_equals_a_fresh_read(bus: Bus, runner: ServiceRunner) -> None:
    """ticket_create answers without reading the ticket back: the same data as ticket_get."""
    payload = {**VPN, "tags": ["vpn", "network", "vpn"], "description": "Since Monday"}
    created = await ask(bus, "ticket_create", payload, USER)
    assert created.status == "ok", created
    assert created.data["tags"] == ["network", "vpn"]
    assert created.data["assignee"] is None and created.data["comments"] == []
    got = await ask(bus, "ticket_get", {"ticket": created.data["number"]}, USER)
    assert got.status == "ok", got
    assert {k: v for k, v in created.data.items() if k != "message"} == {
        k: v for k, v in got.data.items() if k != "message"
    }
    # The change, its history row and its idempotency record were all committed.
    assert await _count(runner, TicketHistory) == 1
    assert await _count(runner, ProcessedRequest) == 1
    (event,) = await events_of(bus, "ticket.created")
    assert event.payload["tags"] == ["network", "vpn"]


async def test_get_shows_assignee_tags_and_the_right_comments(
    bus: Bus, runner: ServiceRunner
) -> None:
    await make_agent(bus)
    number = (await ask(bus, "ticket_create", VPN, USER)).data["number"]
    bare = await ask(bus, "ticket_get", {"ticket": number}, AGENT)
    assert bare.data["tags"] == [] and bare.data["comments"] == []
    await ask(bus, "ticket_assign", {"ticket": number, "assignee": "me"}, AGENT)
    await ask(bus, "ticket_tag", {"ticket": number, "add": ["vpn", "b-net", "a:x"]}, AGENT)
    await ask(bus, "ticket_comment", {"ticket": number, "body": "one"}, USER)
    await ask(bus, "ticket_comment", {"ticket": number, "body": "note", "public": False}, AGENT)
    await ask(bus, "ticket_comment", {"ticket": number, "body": "three"}, AGENT)
    mine = await ask(bus, "ticket_get", {"ticket": number}, USER)
    staff = await ask(bus, "ticket_get", {"ticket": number}, AGENT)
    for view in (mine, staff):
        assert view.status == "ok", view
        assert view.data["assignee"] == "andy"
        assert view.data["tags"] == ["a:x", "b-net", "vpn"]
    assert [c["body"] for c in mine.data["comments"]] == ["one", "three"]
    assert [c["body"] for c in staff.data["comments"]] == ["one", "note", "three"]
    assert (await ask(bus, "ticket_get", {"ticket": 99}, USER)).status == "invalid"
    assert (await ask(bus, "ticket_get", {"ticket": number}, OTHER)).status == "denied"


async def test_requester_by_email_can_read_a_ticket_someone_else_opened(
    bus: Bus, runner: ServiceRunner
) -> None:
    """Not the opener: the caller's registered user is looked up (their email owns it)."""
    number = (await ask(bus, "ticket_create", VPN, AGENT)).data["number"]  # for uma@
    denied = await ask(bus, "ticket_get", {"ticket": number}, USER)
    assert denied.status == "denied"
    await ask(
        bus,
        "user_create",
        {"handle": "uma", "email": "uma@example.com", "identities": ["slack:UUSER"]},
        ADMIN,
    )
    assert (await ask(bus, "ticket_get", {"ticket": number}, USER)).status == "ok"
    assert (await ask(bus, "ticket_history", {"ticket": number}, USER)).status == "ok"


async def test_redelivered_close_is_answered_from_its_record(
    bus: Bus, runner: ServiceRunner
) -> None:
    """The second delivery's change would refuse ("already closed"): it answers ok, once."""
    number = (await micro(bus, "ticket_create", api_envelope("ticket_create", VPN, USER))).data[
        "number"
    ]
    env = api_envelope("ticket_close", {"ticket": number, "comment": "fixed"}, USER)
    first = await micro(bus, "ticket_close", env)
    second = await micro(bus, "ticket_close", env)
    assert first.status == second.status == "ok", (first, second)
    assert first.data["status"] == second.data["status"] == "closed"
    history = await ask(bus, "ticket_history", {"ticket": number}, AGENT)
    assert [e["action"] for e in history.data["entries"]].count("closed") == 1
    assert len(await events_of(bus, "ticket.closed")) == 1
    # A different intent is a new request: now really refused.
    again = await micro(bus, "ticket_close", api_envelope("ticket_close", {"ticket": number}, USER))
    assert again.status == "invalid"


async def test_concurrent_creates_all_commit_with_distinct_numbers(
    bus: Bus, runner: ServiceRunner
) -> None:
    actors = [Actor(id=f"UC{i}", name=f"C {i}", roles=("user",)) for i in range(24)]
    replies = await asyncio.gather(
        *(ask(bus, "ticket_create", {**VPN, "tags": [f"t{i}"]}, a) for i, a in enumerate(actors))
    )
    assert all(r.status == "ok" for r in replies), [r for r in replies if r.status != "ok"]
    assert sorted(r.data["number"] for r in replies) == list(range(1, 25))
    assert await count_tickets(runner) == 24
    assert await _count(runner, TicketHistory) == 24
    assert len(await events_of(bus, "ticket.created")) == 24
