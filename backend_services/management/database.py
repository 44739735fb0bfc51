"""The management database: an async engine, sessions, and Alembic migrations run at start-up.

SQLite (``sqlite+aiosqlite:///path``) by default, PostgreSQL (``postgresql+asyncpg://...``) by URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncSession,
    async_sessionmaker,
)

from backend_services.runtime.sql import create_engine

__all__ = ["Database", "alembic_config", "create_engine"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Our own version table, so the service can share a database with other services.
VERSION_TABLE = "mgmt_alembic_version"
#: Key of the PostgreSQL advisory lock that serialises concurrent start-ups' migrations.
_MIGRATION_LOCK = 0x6D676D74  # "mgmt"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our migrations (and at ``connection`` when given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


class Database:
    """The engine and a session factory. ``await migrate()`` brings the schema to ``head``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time and makes the others poll with sleeps (busy timeout):
        # under concurrency that sleeping is most of a write's latency. Our own write
        # transactions queue here instead and run back to back; other processes (the CLI,
        # another instance) still meet the busy timeout. PostgreSQL needs no such queue.
        self._write_lock = asyncio.Lock() if self.engine.dialect.name == "sqlite" else None
        # At most as many sessions at once as the pool keeps connections: beyond that the pool
        # would open an "overflow" connection per session and close it after (for aiosqlite a
        # new thread, a connect and the pragmas each time), which under load cost more than
        # the queries themselves. Waiting a moment for a pooled connection is cheaper.
        size = getattr(self.engine.sync_engine.pool, "size", None)
        self._slots = asyncio.Semaphore(size()) if callable(size) and size() > 0 else None

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads: ``async with db.session() as s: ...`` (writes: ``write_session``
        or ``async with db.session() as s, s.begin(): ...``)."""
        async with self._slots or nullcontext(), self.sessions() as s:
            yield s

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction, committed on success (one writer at a time on
        SQLite within this process; concurrent on PostgreSQL)."""
        async with self._write_lock or nullcontext(), self.session() as s, s.begin():
            yield s

    async def migrate(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` (serialised across instances on PG)."""

        def upgrade(sync_conn: Connection) -> None:
            command.upgrade(alembic_config(sync_conn), revision)

        async with self.engine.begin() as conn:
            if self.backend == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            await conn.run_sync(upgrade)

    async def current_revision(self) -> str | None:
        """The schema revision the database is at (``None`` before the first migration)."""

        def read(sync_conn: Connection) -> str | None:
            ctx = MigrationContext.configure(sync_conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()

        async with self.engine.connect() as conn:
            return await conn.run_sync(read)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def head_revision() -> str:
    """The newest revision of our migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
