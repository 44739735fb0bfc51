"""Every analysis action answers on every door (intent, micro request, HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from backend_services.analysis.service import service
from backend_services.analysis.settings import AnalysisSettings
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from tests.claims import signed_runner
from tests.services.doors import ADMIN, AGENT, DOORS, USER, ask_door, assert_all_ok

CALLS = [
    ("metrics_query", {"metric": "tickets_opened", "period": "today"}, USER),
    ("metrics_dashboard", {"period": "all"}, USER),
    ("metrics_chart", {"metric": "conversations", "period": "this_week"}, USER),
    ("views_status", {}, AGENT),
    ("views_rebuild", {}, ADMIN),
]


@pytest.fixture
async def runner(bus: Bus) -> AsyncIterator[ServiceRunner]:
    r = signed_runner(service, bus, settings=AnalysisSettings(), instance="an-doors")
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def test_every_action_on_every_door(bus: Bus, runner: ServiceRunner) -> None:
    assert {a for a, _, _ in CALLS} == set(service.handlers)
    for door in DOORS:
        await assert_all_ok(door, bus, runner, CALLS)
        opened = await ask_door(door, bus, runner, "metrics_query", CALLS[0][1], USER)
        assert opened.data and opened.data["answers"][0]["value"] == 0
        chart = await ask_door(door, bus, runner, "metrics_chart", CALLS[2][1], USER)
        assert chart.data and chart.data["image"].startswith("/services/analysis/charts/")
        denied = await ask_door(door, bus, runner, "views_status", {}, USER)
        assert denied.status == "denied", door
