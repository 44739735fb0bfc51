"""Clients of a live gateway as a visitor: a guest session, then REST calls or a WebSocket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import websockets


@dataclass
class Guest:
    """An HTTP client that sends a guest session's token, and that session's conversation."""

    client: httpx.AsyncClient
    sender: str
    token: str


async def new_session(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """``POST /api/session`` (a new guest session unless ``body`` says otherwise)."""
    r = await client.post("/api/session", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


@asynccontextmanager
async def guest_client(base_url: str) -> AsyncIterator[Guest]:
    """A client of ``base_url`` authenticated as a new guest."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        session = await new_session(client)
        client.headers["Authorization"] = f"Bearer {session['token']}"
        yield Guest(client, session["sender"], session["token"])


@asynccontextmanager
async def ws_session(
    ws_url: str, token: str, since: int | None = None
) -> AsyncIterator[websockets.ClientConnection]:
    """A WebSocket authenticated with ``token`` (the first frame), hello not yet read."""
    url = ws_url if since is None else f"{ws_url}?since={since}"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        yield ws


async def close_of(
    ws_url: str, token: str | None = None, *frames: str | bytes
) -> tuple[int | None, str | None, list[Any]]:
    """Open a WebSocket, authenticate with ``token`` (if any), send ``frames``, read until the
    server closes it; ``(close code, close reason, frames received)``."""
    received: list[Any] = []
    async with websockets.connect(ws_url) as ws:
        try:
            if token is not None:
                await ws.send(json.dumps({"type": "auth", "token": token}))
            for frame in frames:
                await ws.send(frame)
            while True:
                received.append(json.loads(await ws.recv()))
        except websockets.ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason, received
