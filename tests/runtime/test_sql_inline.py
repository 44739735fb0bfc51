"""SQLite engines run their calls in the loop's thread, and wait for foreign locks off it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from backend_services.runtime.sql import InlineSQLiteConnection, create_engine


async def test_sqlite_calls_run_in_the_loop_thread(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    seen: list[int] = []
    try:
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, InlineSQLiteConnection)
            raw.driver_connection._conn.create_function(
                "whoami", 0, lambda: seen.append(threading.get_ident()) or 1
            )
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
            assert (await conn.execute(text("SELECT whoami()"))).scalar() == 1
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("SELECT v FROM t"))).scalar() == "a"
    finally:
        await engine.dispose()
    assert seen == [threading.get_ident()]


async def test_a_lock_held_elsewhere_is_waited_for_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))

    # another process's writer (here: another connection) holds the write lock for 0.5 s
    other = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (v) VALUES ('other')")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    release.start()
    start = time.perf_counter()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('ours')"))
        waited = time.perf_counter() - start
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
    finally:
        ticking.cancel()
        release.join()
        other.close()
        await engine.dispose()
    assert rows == ["other", "ours"]  # we waited for the lock instead of failing
    assert waited >= 0.4
    assert ticks >= 20  # and the loop kept running meanwhile


async def test_other_sqlite_errors_are_raised_as_they_are(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            with pytest.raises(OperationalError, match="no such table"):
                await conn.execute(text("SELECT * FROM missing"))
    finally:
        await engine.dispose()
