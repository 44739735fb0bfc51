"""Several marketing instances need PostgreSQL: a second one on SQLite refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_services.marketing.service import service
from backend_services.marketing.settings import MarketingSettings
from events.bus import Bus
from events.errors import StartupRefused
from events.micro import discover
from tests.claims import signed_runner


def _settings(db: Path) -> MarketingSettings:
    return MarketingSettings(database_url=f"sqlite+aiosqlite:///{db}")


async def test_a_second_instance_on_sqlite_is_refused_with_the_reason(
    bus: Bus, tmp_path: Path
) -> None:
    first = signed_runner(service, bus, settings=_settings(tmp_path / "a.db"), instance="a")
    await first.start()
    try:
        second = signed_runner(service, bus, settings=_settings(tmp_path / "b.db"), instance="b")
        with pytest.raises(StartupRefused, match=r"MARKETING_DATABASE_URL.*PostgreSQL"):
            await second.start()
        assert len(await discover(bus, "PING", "marketing")) == 1
    finally:
        await first.stop(grace=1)
