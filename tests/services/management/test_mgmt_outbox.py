"""The outbox: a ticket's events survive a publish that fails right after the commit."""

from __future__ import annotations

from sqlalchemy import select

from backend_services.management.core import STATE_KEY
from backend_services.management.tables import ProcessedRequest
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from events.errors import PublishTimeout
from events.micro import ServiceClient
from tests.claims import TEST_ISSUER
from tests.services.management.conftest import USER, FakeClock, events_of


async def test_events_lost_after_the_commit_are_published_by_the_relay(
    bus: Bus, sqlite_runner: ServiceRunner, clock: FakeClock
) -> None:
    st = sqlite_runner.context.state[STATE_KEY]
    publish = bus.publish
    failed: list[str] = []

    async def failing_publish(env):  # type: ignore[no-untyped-def]
        if env.type == "ticket.created" and not failed:
            failed.append(str(env.id))
            raise PublishTimeout("NATS did not answer in time")
        return await publish(env)

    bus.publish = failing_publish  # type: ignore[method-assign]
    try:
        # The HTTP/request door: no redelivery would ever publish the events again.
        reply = await ServiceClient(bus, TEST_ISSUER, timeout=15).call(
            "management",
            "ticket_create",
            {"subject": "Outbox", "requester_email": "uma@example.com"},
            USER,
            conversation=("api", "outbox-test"),
        )
    finally:
        bus.publish = publish  # type: ignore[method-assign]
    assert reply.status == "error" and failed  # the caller heard of the failure...
    assert await events_of(bus, "ticket.created") == []
    async with st.db.session() as s:
        [row] = list(await s.scalars(select(ProcessedRequest)))
    assert row.published_at is None  # ...but the change and its events were committed

    clock.advance(seconds=10)  # past the relay's grace period
    assert await st.relay.run_once() == 1
    created = await events_of(bus, "ticket.created")
    assert [str(e.id) for e in created] == failed  # the same event, with its own id
    assert created[0].payload["subject"] == "Outbox"
    assert await st.relay.run_once() == 0  # marked: never again
    async with st.db.session() as s:
        [row] = list(await s.scalars(select(ProcessedRequest)))
    assert row.published_at is not None


async def test_published_changes_are_marked_without_a_relay_publish(
    bus: Bus, sqlite_runner: ServiceRunner, clock: FakeClock
) -> None:
    st = sqlite_runner.context.state[STATE_KEY]
    reply = await ServiceClient(bus, TEST_ISSUER, timeout=15).call(
        "management",
        "ticket_create",
        {"subject": "Fine", "requester_email": "uma@example.com"},
        USER,
        conversation=("api", "outbox-ok"),
    )
    assert reply.status == "ok"
    clock.advance(seconds=10)
    assert await st.relay.run_once() == 0
    assert len(await events_of(bus, "ticket.created")) == 1
    async with st.db.session() as s:
        rows = list(await s.scalars(select(ProcessedRequest)))
    assert rows and all(r.published_at is not None for r in rows)
