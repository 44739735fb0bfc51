"""The real management service on the test's bus, and an API key it issued, for the gateway's
tests that need one (the key is checked by management's ``resolve_actor`` on every use)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from backend_services.management.service import service
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from events.micro import ServiceClient
from tests.claims import TEST_ISSUER, signed_runner
from tests.services.management.conftest import ADMIN, make_settings


@dataclass
class Management:
    """A running management service and an admin's API key (``fdk_...``)."""

    runner: ServiceRunner
    api_key: str


@asynccontextmanager
async def management_with_api_key(bus: Bus, data_dir: Path) -> AsyncIterator[Management]:
    """Management on SQLite in ``data_dir``, and an API key of its admin ``slack:UADMIN``
    (issued on the request door, as ``/services/management/api_key_create`` does)."""
    settings = make_settings(f"sqlite+aiosqlite:///{data_dir / 'management.db'}", data_dir)
    runner = signed_runner(service, bus, settings=settings, instance="edge-tests")
    await runner.start()
    try:
        reply = await ServiceClient(bus, TEST_ISSUER).call(
            "management",
            "api_key_create",
            {"user": ADMIN.id, "name": "edge-tests"},
            ADMIN,
            conversation=("api", "edge-tests"),
            timeout=20,
        )
        assert reply.status == "ok" and reply.data, reply
        yield Management(runner, str(reply.data["key"]))
    finally:
        await runner.stop(grace=2)
