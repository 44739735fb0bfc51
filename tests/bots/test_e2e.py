"""End to end, all real: REST -> NLU -> dialogue -> intent on NATS -> services -> reply on the
bus -> the user; and the shipped scenarios through the conversation runner."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bots.web.app import create_gateway_app
from events.bus import Bus
from events.subjects import events_filter
from frontdoor.cli_test_conversations import format_report, run_files
from frontdoor.keys import ClaimKeySettings, claim_issuer
from frontdoor.wiring import Stack, start_services

from .conftest import LiveServer, make_settings
from .web_clients import guest_client

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "conversations.yml"
SERVICES = ["management", "analysis", "marketing"]


@pytest.fixture(scope="session")
def trained_nlu() -> Any:
    """The built-in NLU trained on the shipped data (once per session)."""
    from skills.data import NLU_FILE
    from skills.nlu.builtin.engine import BuiltinEngine
    from skills.nlu.rasa_data import load_training_data

    return BuiltinEngine.train(load_training_data([NLU_FILE]))


@pytest.fixture
async def full_stack(
    bus: Bus, trained_nlu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    from skills.dialogue import DialogueEngine, KVConversationStore, SkillRegistry

    data_dir = tmp_path / "data"
    monkeypatch.setenv("FRONTDOOR_DATA_DIR", str(data_dir))
    stack = Stack(bus=bus)
    await start_services(stack, SERVICES, data_dir)
    engine = DialogueEngine(
        nlu=trained_nlu, store=await KVConversationStore.open(bus), skills=SkillRegistry.load()
    )
    app = create_gateway_app(
        bus,
        engine,
        issuer=claim_issuer(ClaimKeySettings(), data_dir),
        settings=make_settings(rest_turn_timeout=10.0, resolve_roles=True),
    )
    live = LiveServer(app)
    await live.start()
    try:
        yield live
    finally:
        await live.stop()
        for runner in reversed(stack.runners):
            await runner.stop(grace=2.0)


@pytest.mark.timeout(300)
async def test_ticket_form_over_rest_creates_ticket_through_management(
    full_stack: LiveServer, bus: Bus
) -> None:
    async def say(client: httpx.AsyncClient, text: str) -> str:
        r = await client.post(
            "/webhooks/rest/webhook",
            json={"message": text, "metadata": {"bot": "support"}},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return "\n".join(m["text"] for m in r.json())

    async with guest_client(full_stack.url) as guest:
        client, sender = guest.client, guest.sender
        assert re.search(r"(?i)subject|title|summar", await say(client, "I need to open a ticket"))
        await say(client, "VPN drops every ten minutes")
        await say(client, "The VPN client disconnects and I lose my SSH sessions.")
        assert re.search(r"(?i)priority", await say(client, "ana@example.com"))
        answer = await say(client, "high")
    match = re.search(r"#(\d+)", answer)
    assert match, answer
    # the answer came from the management service, over the bus, after an intent on NATS
    kinds = []
    async for _seq, env in bus.tail(
        events_filter(channel="rest", conversation_id=sender), 1, stop_at_end=True
    ):
        kinds.append((env.type, env.payload.get("service")))
    assert any(kind == "ticket.created" for kind, _service in kinds), kinds
    assert ("reply", "management") in kinds


@pytest.mark.timeout(300)
async def test_shipped_scenarios_pass_through_the_runner(full_stack: LiveServer) -> None:
    results = await run_files(full_stack.url, [SCENARIOS], timeout=30)
    report = format_report(results)
    assert all(r.passed for r in results), report
    assert report.endswith(f"{len(results)} passed, 0 failed")
