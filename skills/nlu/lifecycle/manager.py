"""Keep the current NLU model loaded and switch to newly published versions without a restart.

``ModelManager`` is itself an ``NLUEngine``: ``await manager.parse(text)`` uses whatever model is
current. A switch loads the new model completely (in a thread) and then swaps one reference, so
parses already running finish on the model they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from events.memory import freeze_long_lived
from skills.nlu.errors import NLUEngineUnavailable
from skills.nlu.lifecycle.artifacts import load_engine
from skills.nlu.lifecycle.registry import ModelRegistry
from skills.nlu.types import ParseResult

log = logging.getLogger(__name__)

#: Called after every switch with (old version or None, new version).
SwitchListener = Callable[[str | None, str], None]


class ModelManager:
    """Loads ``registry.latest()`` on start and follows it (``registry.watch()``)."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        loader: Callable[[Path], Any] = load_engine,
    ) -> None:
        self.registry = registry
        self._loader = loader
        self._engine: Any = None
        self._switch_lock = asyncio.Lock()
        self._watch_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._listeners: list[SwitchListener] = []
        self.last_error: str | None = None

    # -- NLUEngine ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Name of the current engine (``builtin`` before any model is loaded)."""
        return getattr(self._engine, "name", "builtin")

    @property
    def version(self) -> str:
        """Version of the current model (``none`` before any model is loaded)."""
        return getattr(self._engine, "version", None) or "none"

    @property
    def engine(self) -> Any:
        """The current engine (raises ``NLUEngineUnavailable`` before any model is loaded)."""
        engine = self._engine
        if engine is None:
            raise NLUEngineUnavailable(
                "no NLU model loaded yet: train one (`frontdoor train`) and publish it"
            )
        return engine

    async def parse(self, text: str) -> ParseResult:
        """Parse with the current model (taken once, so a concurrent switch cannot affect it)."""
        return await self.engine.parse(text)

    # -- lifecycle ---------------------------------------------------------------------------

    def on_switch(self, listener: SwitchListener) -> None:
        """Register a callback run after each switch."""
        self._listeners.append(listener)

    async def start(self, *, require_model: bool = False, follow: bool = True) -> None:
        """Load the current version (if any) and, with ``follow``, watch for new ones."""
        current = await self.registry.latest()
        if current is not None:
            await self.switch_to(current)
        elif require_model:
            raise NLUEngineUnavailable("no NLU model has been published yet")
        if follow and self._watch_task is None:
            self._watch_task = asyncio.create_task(self._follow(), name="nlu-model-follow")

    async def switch_to(self, version: str) -> None:
        """Fetch, load and activate ``version`` (no-op when it is already current)."""
        async with self._switch_lock:
            if self._engine is not None and self.version == version:
                return
            path = await self.registry.fetch(version)
            engine = await asyncio.to_thread(self._loader, path)
            old = None if self._engine is None else self.version
            self._engine = engine  # the atomic swap
            self.last_error = None
            log.info("NLU model switched from %s to %s", old, version)
            freeze_long_lived(f"loading NLU model {version}")
        for listener in self._listeners:
            listener(old, version)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_version(self, version: str, timeout: float = 30.0) -> None:
        """Wait until ``version`` is the current model (raises ``TimeoutError``)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(
                lambda: self._engine is not None and self.version == version
            )

    async def _follow(self) -> None:
        while True:
            try:
                async for version in self.registry.watch():
                    if version is None or version == self.version:
                        continue
                    try:
                        await self.switch_to(version)
                    except Exception as exc:  # keep serving the old model
                        self.last_error = f"cannot switch to {version}: {exc}"
                        log.error("NLU model %s", self.last_error)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"model watch failed: {exc}"
                log.warning("NLU %s; retrying", self.last_error)
                await asyncio.sleep(1.0)

    async def aclose(self) -> None:
        """Stop following the registry."""
        task, self._watch_task = self._watch_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
