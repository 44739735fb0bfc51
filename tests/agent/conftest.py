"""The agent workspace's stack: real nats-server, management service and gateway (uvicorn),
with an agent ``alice`` and a plain user ``uma`` who both have passwords."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from backend_services import registry
from bots.web.app import create_gateway_app
from events.bus import Bus
from events.envelope import Actor
from events.micro import ServiceClient
from events.payloads import Reply
from tests.bots.conftest import LiveServer, make_settings
from tests.claims import TEST_ISSUER, signed_runner

ADMIN = Actor(id="slack:UADMIN", name="Ada Admin", roles=("admin", "user"))
PASSWORD = "correct horse battery"


async def as_admin(bus: Bus, action: str, payload: dict[str, Any]) -> Reply:
    """Call management as an admin (a signed request)."""
    reply = await ServiceClient(bus, TEST_ISSUER).call("management", action, payload, ADMIN)
    assert reply.status == "ok", reply
    return reply


@dataclass
class AgentStack:
    bus: Bus
    live: LiveServer

    @property
    def app(self) -> FastAPI:
        return self.live.app

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.live.url, timeout=20.0, **kwargs)


async def make_people(bus: Bus) -> None:
    """``alice`` (agent) and ``uma`` (no staff role), both with ``PASSWORD``."""
    await as_admin(
        bus,
        "user_create",
        {
            "handle": "alice",
            "name": "Alice Agent",
            "email": "alice@example.com",
            "roles": ["agent"],
        },
    )
    await as_admin(bus, "user_create", {"handle": "uma", "email": "uma@example.com"})
    for handle in ("alice", "uma"):
        await as_admin(bus, "user_set_password", {"user": handle, "password": PASSWORD})


@contextlib.asynccontextmanager
async def agent_stack(
    bus: Bus, dialogue: Any, tmp_path: Path, **settings: Any
) -> AsyncIterator[AgentStack]:
    """Management and a gateway with the workspace, roles resolved (set ``FRONTDOOR_DATA_DIR``
    to ``tmp_path`` first: management's SQLite file goes there)."""
    management = signed_runner(registry.load_service("management"), bus)
    await management.start()
    await make_people(bus)
    app = create_gateway_app(
        bus,
        dialogue,
        issuer=TEST_ISSUER,
        settings=make_settings(resolve_roles=True, **settings),
    )
    live = LiveServer(app)
    await live.start()
    try:
        yield AgentStack(bus, live)
    finally:
        await live.stop()
        await management.stop(grace=1.0)


async def sign_in(client: httpx.AsyncClient, user: str = "alice") -> str:
    """Sign ``user`` in; return the CSRF token."""
    answer = await client.post("/agent/api/session", json={"user": user, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["csrf_token"])
