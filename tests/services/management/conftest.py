"""Fixtures of the management tests: a database per backend, a fake clock, a started service."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from backend_services.management.service import service
from backend_services.management.settings import ManagementSettings
from backend_services.runtime import ServiceRunner
from events import subjects
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply
from tests.claims import signed, signed_runner
from tests.conftest import POSTGRES_URL, postgres_reachable

ADMIN = Actor(id="slack:UADMIN", name="Ada Admin", roles=("admin", "user"))
AGENT = Actor(id="slack:UAGENT", name="Andy Agent", roles=("agent", "user"))
USER = Actor(id="slack:UUSER", name="Uma User", roles=("user",))
OTHER = Actor(id="slack:UOTHER", name="Otto Other", roles=("user",))


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _fresh_postgres(base_url: str) -> tuple[str, Any]:
    """Create a private database on the server of ``base_url``; return its URL and a dropper."""
    name = f"mgmt_test_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))

    async def drop() -> None:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database: SQLite file, or a private PostgreSQL database (skips when none)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'management.db'}"
        return
    reason = await postgres_reachable()
    if reason:
        pytest.skip(reason)
    url, drop = await _fresh_postgres(POSTGRES_URL)
    try:
        yield url
    finally:
        await drop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file (for tests that need not run on both backends)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'management.db'}"


def make_settings(url: str, tmp_path: Path, **extra: Any) -> ManagementSettings:
    """Settings for a test (explicit values, nothing from the environment that matters)."""
    values: dict[str, Any] = {
        "management_database_url": url,
        "data_dir": tmp_path,
        "admin_identities": "slack:UADMIN",
        "management_sla_check_seconds": 0,
    }
    values.update(extra)
    return ManagementSettings(**values)


@pytest.fixture
async def runner(
    bus: Bus, db_url: str, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[ServiceRunner]:
    """The management service on each database backend, on the test's bus, with a fake clock."""
    started = signed_runner(
        service, bus, settings=make_settings(db_url, tmp_path), clock=clock, instance="t1"
    )
    await started.start()
    try:
        yield started
    finally:
        await started.stop(grace=2)


async def ask(
    bus: Bus,
    action: str,
    payload: dict[str, Any],
    actor: Actor,
    *,
    channel: str = "slack",
    intent_id: uuid.UUID | None = None,
) -> Reply:
    """Publish an intent and return the service's reply from the bus (by correlation id)."""
    conv = Conversation(channel=channel, id=f"C{uuid.uuid4().hex[:8]}.{uuid.uuid4().hex[:4]}")
    intent = signed(
        Envelope.new(
            subjects.intent_type("management", action),
            payload,
            conversation=conv,
            actor=actor,
            id=intent_id,
        )
    )
    start = await bus.last_sequence()
    await bus.publish(intent)
    return await wait_reply(bus, intent, start)


async def wait_reply(bus: Bus, intent: Envelope, after_seq: int, timeout: float = 20) -> Reply:
    """The reply correlated with ``intent``."""
    flt = subjects.events_filter(
        channel=intent.conversation.channel,
        conversation_id=intent.conversation.id,
        envelope_type="reply",
    )
    async with asyncio.timeout(timeout):
        async for _, env in bus.tail(flt, from_seq=after_seq + 1):
            if env.correlation_id == intent.correlation_id:
                return env.payload_as(Reply)
    raise AssertionError("no reply")


async def events_of(bus: Bus, event_type: str, from_seq: int = 1) -> list[Envelope]:
    """Every event of ``event_type`` currently on the bus."""
    last = await bus.last_sequence()
    found: list[Envelope] = []
    if last < from_seq:
        return found
    async with asyncio.timeout(20):
        async for seq, env in bus.tail(subjects.ALL_EVENTS, from_seq=from_seq):
            if env.type == event_type:
                found.append(env)
            if seq >= last:
                break
    return found


@pytest.fixture
async def sqlite_runner(
    bus: Bus, sqlite_url: str, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[ServiceRunner]:
    """The management service on SQLite only (for tests where the database does not matter)."""
    started = signed_runner(
        service, bus, settings=make_settings(sqlite_url, tmp_path), clock=clock, instance="t1"
    )
    await started.start()
    try:
        yield started
    finally:
        await started.stop(grace=2)
