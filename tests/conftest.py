"""Shared fixtures: a real embedded nats-server on a free port and a connected ``Bus``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from events.bus import Bus
from events.credentials import NatsCredentials
from events.embedded import EmbeddedNats
from events.streams import BusLimits

#: Fast redelivery for tests (the production defaults back off for seconds).
TEST_LIMITS = BusLimits(max_deliver=3, backoff_seconds=(0.1, 0.2), ack_wait_seconds=5.0)

POSTGRES_URL = os.environ.get(
    "FRONTDOOR_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A private ``nats-server -js`` with its store under the test's tmp dir."""
    server = EmbeddedNats(tmp_path / "nats")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def secured_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A private nats-server with authentication, as ``frontdoor up`` runs it: one generated
    credential per component, the permissions of ``events.compartments``
    (``secured_server.url_for("marketing")`` carries marketing's credential)."""
    credentials = NatsCredentials.ensure(tmp_path / "nats-credentials")
    server = EmbeddedNats(tmp_path / "secured-nats", credentials=credentials)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    """A ``Bus`` connected to the test's own server, streams ensured."""
    connected = await Bus.connect(nats_server.url, limits=TEST_LIMITS, publish_timeout=20.0)
    try:
        yield connected
    finally:
        await connected.close()


async def postgres_reachable(url: str = POSTGRES_URL) -> str | None:
    """``None`` when PostgreSQL at ``url`` answers, else the reason it does not."""
    try:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine
    except ImportError as exc:  # pragma: no cover
        return f"SQLAlchemy not installed: {exc}"
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {url}: {type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


@pytest.fixture
async def postgres_url() -> str:
    """The test PostgreSQL URL, or skip (with the reason) when none is reachable."""
    reason = await postgres_reachable()
    if reason:
        pytest.skip(reason)
    return POSTGRES_URL
