"""SLA targets and breaches, timed with a fake clock."""

from __future__ import annotations

from pathlib import Path

from backend_services.management.core import STATE_KEY
from backend_services.management.service import service
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from tests.claims import signed_runner
from tests.services.management.conftest import (
    AGENT,
    USER,
    FakeClock,
    ask,
    events_of,
    make_settings,
)


async def test_sla_breaches_with_fake_clock(
    bus: Bus, db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(
        db_url,
        tmp_path,
        management_sla_first_response_minutes={"high": 30},
        management_sla_resolution_minutes={"high": 120},
    )
    runner = signed_runner(service, bus, settings=settings, clock=clock, instance="sla")
    await runner.start()
    try:
        checker = runner.context.state[STATE_KEY].checker
        opened_at = clock.now
        high = (
            await ask(
                bus,
                "ticket_create",
                {"subject": "Down", "requester_email": "u@example.com", "priority": "high"},
                USER,
            )
        ).data
        assert high["first_response_due_at"].startswith("2026-01-05T09:30:00")
        assert high["resolution_due_at"].startswith("2026-01-05T11:00:00")
        # Defaults for the priorities the settings did not override (normal: 4 h / 24 h).
        normal = (
            await ask(
                bus,
                "ticket_create",
                {"subject": "Slow", "requester_email": "u@example.com"},
                USER,
            )
        ).data
        assert normal["first_response_due_at"].startswith("2026-01-05T13:00:00")

        clock.advance(minutes=29)
        assert await checker.run_once() == []
        clock.advance(minutes=2)  # 31 minutes without an agent's reply
        breaches = await checker.run_once()
        assert [(b.ticket, b.kind) for b in breaches] == [(high["number"], "first_response")]
        assert breaches[0].due_at == opened_at.replace(minute=30)
        assert await checker.run_once() == []  # reported once only

        # An agent's public reply stops the first-response clock of the normal ticket.
        await ask(bus, "ticket_comment", {"ticket": normal["number"], "body": "On it"}, AGENT)
        clock.advance(hours=5)  # 09:00 + 5h31: past normal's first response (13:00)
        assert [(b.ticket, b.kind) for b in await checker.run_once()] == [
            (high["number"], "resolution")
        ]
        # Solving ends the resolution clock: no breach for normal (due tomorrow 09:00) later.
        await ask(bus, "ticket_update", {"ticket": normal["number"], "status": "solved"}, AGENT)
        clock.advance(days=2)
        assert await checker.run_once() == []

        events = await events_of(bus, "ticket.sla_breached")
        assert [(e.payload["ticket"], e.payload["kind"]) for e in events] == [
            (high["number"], "first_response"),
            (high["number"], "resolution"),
        ]
        got = await ask(bus, "ticket_get", {"ticket": high["number"]}, AGENT)
        assert got.data["first_response_breached"] and got.data["resolution_breached"]
    finally:
        await runner.stop(grace=2)


async def test_priority_change_moves_due_times(bus: Bus, runner: ServiceRunner) -> None:
    created = (
        await ask(
            bus,
            "ticket_create",
            {"subject": "Mail", "requester_email": "u@example.com", "priority": "low"},
            USER,
        )
    ).data
    assert created["first_response_due_at"].startswith("2026-01-05T17:00:00")  # low: 8 h
    updated = await ask(bus, "ticket_update", {"ticket": 1, "priority": "urgent"}, AGENT)
    assert updated.data["first_response_due_at"].startswith("2026-01-05T09:15:00")
    hist = await ask(bus, "ticket_history", {"ticket": 1}, AGENT)
    assert hist.data["entries"][-1]["changes"] == {"priority": ["low", "urgent"]}


async def test_periodic_checker_reports_on_its_own(
    bus: Bus, sqlite_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    import asyncio

    settings = make_settings(sqlite_url, tmp_path, management_sla_check_seconds=0.05)
    runner = signed_runner(service, bus, settings=settings, clock=clock, instance="periodic")
    await runner.start()
    try:
        await ask(
            bus,
            "ticket_create",
            {"subject": "Fire", "requester_email": "u@example.com", "priority": "urgent"},
            USER,
        )
        clock.advance(minutes=16)  # urgent: first response within 15 minutes
        async with asyncio.timeout(10):
            while not (events := await events_of(bus, "ticket.sla_breached")):
                await asyncio.sleep(0.05)
        assert [(e.payload["ticket"], e.payload["kind"]) for e in events] == [(1, "first_response")]
        assert events[0].conversation.channel == "system"
    finally:
        await runner.stop(grace=2)
