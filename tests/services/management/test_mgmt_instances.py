"""Several management instances: refused on SQLite (one process only), shared on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend_services.management.service import service
from events.bus import Bus
from events.errors import StartupRefused
from events.micro import discover
from tests.claims import signed_runner
from tests.services.management.conftest import (
    USER,
    FakeClock,
    _fresh_postgres,
    ask,
    make_settings,
)


async def test_a_second_instance_on_sqlite_is_refused_with_the_reason(
    bus: Bus, tmp_path: Path, clock: FakeClock
) -> None:
    first = signed_runner(
        service,
        bus,
        settings=make_settings(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", tmp_path),
        clock=clock,
        instance="a",
    )
    await first.start()
    try:
        second = signed_runner(
            service,
            bus,
            settings=make_settings(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", tmp_path),
            clock=clock,
            instance="b",
        )
        with pytest.raises(StartupRefused, match="PostgreSQL"):
            await second.start()
        assert len(await discover(bus, "PING", "management")) == 1
    finally:
        await first.stop(grace=1)


async def test_instances_on_postgresql_share_the_work(
    bus: Bus, tmp_path: Path, clock: FakeClock, postgres_url: str
) -> None:
    url, drop = await _fresh_postgres(postgres_url)
    runners = [
        signed_runner(
            service, bus, settings=make_settings(url, tmp_path), clock=clock, instance=name
        )
        for name in ("p1", "p2")
    ]
    try:
        for runner in runners:
            await runner.start()
        assert len(await discover(bus, "PING", "management")) == 2
        replies = await asyncio.gather(
            *(
                ask(bus, "ticket_create", {"subject": f"T{i}", "requester_email": "u@x.io"}, USER)
                for i in range(12)
            )
        )
        assert all(r.status == "ok" for r in replies), [r.text for r in replies]
        numbers = sorted(r.data["number"] for r in replies if r.data)
        assert numbers == list(range(1, 13))
    finally:
        for runner in runners:
            await runner.stop(grace=1)
        await drop()
