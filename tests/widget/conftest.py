"""Fixtures of the widget tests: the real stack (NATS, management service, NLU + dialogue,
gateway under uvicorn) and headless Chromium (Debian's, through Playwright)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from backend_services import registry
from bots.slack import SlackSettings, attach_slack
from bots.web.app import create_gateway_app
from events.bus import Bus
from tests.bots.conftest import LiveServer, make_settings, server_config
from tests.claims import TEST_ISSUER, signed_runner

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


class PortServer(LiveServer):
    """``LiveServer`` on a chosen port (to bring a gateway back where the widget expects it)."""

    def __init__(self, app: FastAPI, port: int) -> None:
        super().__init__(app)
        self.port = port
        self.server = uvicorn.Server(server_config(app, port))


def _nlu() -> Any:
    """The built-in NLU engine trained on the shipped data (without embeddings: one second)."""
    from skills.data import NLU_FILE
    from skills.nlu.builtin.config import BuiltinConfig
    from skills.nlu.builtin.engine import BuiltinEngine
    from skills.nlu.rasa_data import load_training_data

    data = load_training_data([NLU_FILE])
    return BuiltinEngine.train(data, BuiltinConfig(use_embeddings=False, cv_folds=0))


@pytest.fixture(scope="module")
def nlu() -> Any:
    return _nlu()


@dataclass
class Stack:
    bus: Bus
    dialogue: Any
    live: LiveServer

    def new_app(self) -> FastAPI:
        """Another gateway app on the same bus and dialogue (a restarted front door)."""
        return create_gateway_app(
            self.bus, self.dialogue, issuer=TEST_ISSUER, settings=make_settings()
        )


@contextlib.asynccontextmanager
async def running_stack(
    bus: Bus, nlu: Any, slack: SlackSettings | None = None
) -> AsyncIterator[Stack]:
    """Management service (data in ``FRONTDOOR_DATA_DIR``), dialogue engine (NLU + KV state)
    and the gateway under uvicorn; with ``slack``, the Slack channel attached too."""
    from skills.dialogue import DialogueEngine, KVConversationStore, SkillRegistry

    management = signed_runner(registry.load_service("management"), bus)
    await management.start()
    dialogue = DialogueEngine(nlu, await KVConversationStore.open(bus), SkillRegistry.load())
    app = create_gateway_app(bus, dialogue, issuer=TEST_ISSUER, settings=make_settings())
    if slack is not None:
        assert attach_slack(app, slack) is not None
    live = LiveServer(app)
    await live.start()
    try:
        yield Stack(bus, dialogue, live)
    finally:
        await live.stop()
        await management.stop(grace=1.0)


@pytest.fixture
async def stack(
    bus: Bus, nlu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    monkeypatch.setenv("FRONTDOOR_DATA_DIR", str(tmp_path))  # the services' SQLite files
    async with running_stack(bus, nlu) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"no chromium at {CHROMIUM} (Debian package 'chromium')")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
