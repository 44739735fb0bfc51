"""Every marketing action answers on every door (intent, micro request, HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend_services.marketing.service import service
from backend_services.marketing.settings import MarketingSettings
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from tests.claims import signed_runner
from tests.services.doors import ADMIN, AGENT, DOORS, USER, ask_door

FUTURE = (datetime.now(UTC) + timedelta(days=3)).isoformat()


def steps(d: str) -> list[tuple[str, dict, str]]:
    """(action, payload, expected status in data) for door ``d``, in lifecycle order."""
    c = f"Door {d}"
    return [
        ("campaign_create", {"name": c, "message": "m", "slack_channel": "#general"}, "draft"),
        ("campaign_update", {"campaign": c, "message": "m2"}, "draft"),
        ("campaign_schedule", {"campaign": c, "at": FUTURE}, "scheduled"),
        ("campaign_launch", {"campaign": c}, "active"),
        ("campaign_pause", {"campaign": c}, "paused"),
        ("campaign_resume", {"campaign": c}, "active"),
        ("campaign_announce", {"campaign": c}, ""),
        ("campaign_complete", {"campaign": c}, "completed"),
        ("campaign_create", {"name": f"Other {d}", "message": "m"}, "draft"),
        ("campaign_cancel", {"campaign": f"Other {d}"}, "cancelled"),
        ("campaign_status", {"campaign": c}, ""),
        ("campaign_stats", {"campaign": c}, ""),
        (
            "lead_capture",
            {"name": "L", "email": f"l-{d}@ex.com", "consent": True, "campaign": c},
            "new",
        ),
        ("lead_convert", {"email": f"l-{d}@ex.com"}, "converted"),
        (
            "segment_create",
            {"name": f"seg-{d}", "rules": [{"field": "campaign", "op": "eq", "value": c}]},
            "",
        ),
        ("segment_preview", {"name": f"seg-{d}"}, ""),
    ]


@pytest.fixture
async def runner(bus: Bus, tmp_path: Path) -> AsyncIterator[ServiceRunner]:
    settings = MarketingSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db")
    r = signed_runner(service, bus, settings=settings, instance="mk-doors")
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def test_every_action_on_every_door(bus: Bus, runner: ServiceRunner) -> None:
    covered = set()
    for door in DOORS:
        for action, payload, status in steps(door):
            reply = await ask_door(door, bus, runner, action, payload, AGENT)
            assert reply.status == "ok", (door, action, reply.text)
            assert reply.data is not None
            if status:
                assert reply.data["status"] == status, (door, action)
            covered.add(action)
        stats = await ask_door(
            door, bus, runner, "campaign_stats", {"campaign": f"Door {door}"}, AGENT
        )
        assert stats.data and stats.data["campaigns"][0]["converted"] == 1
        assert stats.data["campaigns"][0]["announcements"] == 1
        erase = {"email": f"l-{door}@ex.com"}
        assert (await ask_door(door, bus, runner, "lead_erase", erase, AGENT)).status == "denied"
        erased = await ask_door(door, bus, runner, "lead_erase", erase, ADMIN)
        assert erased.status == "ok" and erased.data == {"leads": 1}, (door, erased.text)
        covered.add("lead_erase")
        denied = await ask_door(door, bus, runner, "campaign_stats", {}, USER)
        assert denied.status == "denied", door
        invalid = await ask_door(door, bus, runner, "lead_capture", {"name": "x"}, USER)
        assert invalid.status == "invalid", door
    assert covered == set(service.handlers)
