"""Seeding for ``frontdoor bench workspace``: the agent, the tickets, the waiting hand-offs.

The agent (roles agent and admin, a password, an API key) is made with the ``frontdoor users``
CLI in the stack's data directory before the stack starts, as an operator would. Tickets are
created through the gateway's HTTP door to management (``POST /services/management/
ticket_create`` with the API key), many in flight; waiting hand-offs are guest conversations
saying "I want to talk to a human" (the ``human_handoff`` intent), over REST or, for the ones
the agent will answer, over a WebSocket that stays open.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from frontdoor.bench_e2e import BENCH_ENV, BenchError, session_token

AGENT = "benchagent"
PASSWORD = "bench-workspace-password-1"
HANDOFF_TEXT = "I want to talk to a human"
PRIORITIES = ("low", "normal", "high", "urgent")
_KEY = re.compile(r"fdk_[A-Za-z0-9_\-]+")


def progress(text: str) -> None:
    """One line of progress on stderr."""
    print(f"[bench workspace] {text}", file=sys.stderr, flush=True)


def _users_cli(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "FRONTDOOR_DATA_DIR": str(data_dir), "COLUMNS": "400"}
    env["PYTHONPATH"] = BENCH_ENV["PYTHONPATH"]
    done = subprocess.run(
        [sys.executable, "-m", "frontdoor.cli", "users", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise BenchError(f"frontdoor users {args[0]} failed: {done.stdout}{done.stderr}")
    return done.stdout


def prepare_agent(data_dir: Path) -> str:
    """Create the bench agent (agent + admin, a password) in ``data_dir``; its new API key."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _users_cli(
        data_dir,
        "create",
        AGENT,
        "--roles",
        "agent,admin",
        "--email",
        "benchagent@example.com",
        "--name",
        "Bench Agent",
    )
    _users_cli(data_dir, "set-password", AGENT, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    out = _users_cli(data_dir, "api-key", AGENT, "--name", "bench")
    match = _KEY.search(out)
    if not match:
        raise BenchError(f"no API key in the answer of `frontdoor users api-key`: {out}")
    return match.group(0)


async def _many(
    count: int, in_flight: int, what: str, one: Callable[[int], Awaitable[None]]
) -> None:
    """Run ``one(i)`` for ``i < count``, ``in_flight`` at a time, with progress."""
    next_i = 0
    done = 0
    step = max(1, count // 10)
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal next_i, done
        while next_i < count:
            i = next_i
            next_i += 1
            await one(i)
            done += 1
            if done % step == 0 or done == count:
                rate = done / (time.perf_counter() - started)
                progress(f"{what}: {done}/{count} ({rate:.0f}/s)")

    await asyncio.gather(*(worker() for _ in range(min(in_flight, count))))


async def seed_tickets(
    client: aiohttp.ClientSession, api_key: str, count: int, in_flight: int = 50
) -> None:
    """Create ``count`` tickets through the gateway's HTTP door to management."""
    headers = {"Authorization": f"Bearer {api_key}"}

    async def one(i: int) -> None:
        body = {
            "subject": f"Bench ticket {i}: VPN drops on floor {i % 7}",
            "description": "Seeded by frontdoor bench workspace.",
            "requester_email": f"requester{i % 500}@example.com",
            "priority": PRIORITIES[i % len(PRIORITIES)],
        }
        for attempt in range(3):
            async with client.post(
                "/services/management/ticket_create", json=body, headers=headers
            ) as r:
                if r.status == 200:
                    return
                text = await r.text()
            if attempt == 2:
                raise BenchError(f"ticket_create answered HTTP {r.status}: {text[:300]}")
            await asyncio.sleep(0.5)

    await _many(count, in_flight, "tickets", one)


async def rest_handoff(client: aiohttp.ClientSession) -> None:
    """A new REST guest asks for a human (the hand-off starts)."""
    headers = {"Authorization": f"Bearer {await session_token(client)}"}
    body = {"message": HANDOFF_TEXT, "metadata": {"bot": "support"}}
    async with client.post("/webhooks/rest/webhook", json=body, headers=headers) as r:
        if r.status != 200:
            raise BenchError(f"hand-off turn answered HTTP {r.status}: {await r.text()}")
        await r.read()


async def seed_rest_handoffs(
    client: aiohttp.ClientSession, count: int, in_flight: int = 50
) -> None:
    """``count`` REST guests waiting for a person."""

    async def one(_: int) -> None:
        await rest_handoff(client)

    await _many(count, in_flight, "waiting REST conversations", one)


@dataclass
class Guest:
    """A widget user on a WebSocket, waiting for a person; a reader notes when each expected
    text arrives (``pending``: text -> future of the arrival time)."""

    sender: str
    ws: aiohttp.ClientWebSocketResponse
    pending: dict[str, asyncio.Future[float]]
    reader: asyncio.Task[None] | None = None
    frames: int = field(default=0)

    async def read(self) -> None:
        """Follow the socket: resolve the future of every expected reply text."""
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            self.frames += 1
            if frame.get("type") == "reply":
                future = self.pending.get(str(frame.get("text", "")))
                if future is not None and not future.done():
                    future.set_result(time.perf_counter())


async def ws_guest(
    client: aiohttp.ClientSession, pending: dict[str, asyncio.Future[float]]
) -> Guest:
    """A new widget guest who asks for a human and keeps the socket open."""
    token = await session_token(client)
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "auth", "token": token})
    hello = await ws.receive_json(timeout=30)
    if hello.get("type") != "hello":
        raise BenchError(f"the widget socket answered {hello!r}")
    guest = Guest(str(hello["sender"]), ws, pending)
    await ws.send_json(
        {"type": "message", "text": HANDOFF_TEXT, "bot": "support", "client_id": "handoff"}
    )
    async with asyncio.timeout(30):  # until the bot's turn is over
        while True:
            frame = await ws.receive_json()
            if frame.get("type") == "typing" and not frame.get("active"):
                break
            if frame.get("type") == "error":
                raise BenchError(f"the widget socket answered {frame!r}")
    guest.reader = asyncio.create_task(guest.read())
    return guest


async def seed_ws_guests(
    client: aiohttp.ClientSession, count: int, pending: dict[str, asyncio.Future[float]]
) -> list[Guest]:
    """``count`` widget guests waiting for a person, sockets open."""
    guests: list[Guest] = []

    async def one(_: int) -> None:
        guests.append(await ws_guest(client, pending))

    await _many(count, 25, "waiting widget conversations", one)
    return guests


async def close_guests(guests: list[Guest]) -> None:
    """Close the guests' sockets and stop their readers."""
    for guest in guests:
        await guest.ws.close()
        if guest.reader is not None:
            guest.reader.cancel()
    await asyncio.gather(*(g.reader for g in guests if g.reader), return_exceptions=True)
