"""Every generative action answers on every door (intent, micro request, HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend_services.generative.service import service
from backend_services.generative.settings import GenerativeSettings
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from tests.claims import signed_runner
from tests.services.doors import AGENT, DOORS, USER, ask_door, assert_all_ok

EXPERTS = Path(__file__).parent / "experts.yml"
CALLS = [
    ("summarize", {"text": "The VPN fails. It says UDP is blocked. Please help."}, USER),
    ("draft_reply", {"text": "My VPN keeps disconnecting."}, AGENT),
    ("marketing_copy", {"product": "Frontdoor"}, AGENT),
    ("expert_ask", {"expert": "helpdesk", "question": "When are invoices sent?"}, USER),
    ("expert_list", {}, USER),
]


@pytest.fixture
async def runner(bus: Bus) -> AsyncIterator[ServiceRunner]:
    settings = GenerativeSettings(retriever="tfidf", experts_file=EXPERTS, llm_provider="none")
    r = signed_runner(service, bus, settings=settings, instance="gen-doors")
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def test_every_action_on_every_door(bus: Bus, runner: ServiceRunner) -> None:
    assert {a for a, _, _ in CALLS} == set(service.handlers)
    for door in DOORS:
        await assert_all_ok(door, bus, runner, CALLS)
        ask = await ask_door(door, bus, runner, "expert_ask", CALLS[3][1], USER)
        assert ask.data and ask.data["sources"][0]["source"] == "billing.txt", door
        denied = await ask_door(door, bus, runner, "marketing_copy", {"product": "x"}, USER)
        assert denied.status == "denied", door
        invalid = await ask_door(door, bus, runner, "expert_ask", {"expert": "helpdesk"}, USER)
        assert invalid.status == "invalid", door
