"""Keeps the views up to date: replays ``FD_EVENTS`` from sequence 1, then follows it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from backend_services.analysis.views import AnalysisViews
from events import subjects
from events.bus import Bus

log = logging.getLogger("frontdoor.analysis")


async def replay(bus: Bus) -> AnalysisViews:
    """Fresh views from every event on the bus up to now (a rebuild; no following)."""
    views = AnalysisViews()
    if await bus.last_sequence() == 0:
        return views
    async for seq, env in bus.tail(subjects.ALL_EVENTS, from_seq=1, stop_at_end=True):
        views.apply(seq, env)
    return views


class ViewFollower:
    """Applies every event of the bus to ``views``, in order, forever (until ``stop``)."""

    def __init__(self, bus: Bus, views: AnalysisViews | None = None) -> None:
        self.bus = bus
        self.views = views or AnalysisViews()
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()

    def start(self) -> None:
        """Start following from the event after ``views.last_seq``."""
        self._task = asyncio.create_task(self._run(), name="analysis-follower")

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        async for seq, env in self.bus.tail(subjects.ALL_EVENTS, from_seq=self.views.last_seq + 1):
            try:
                self.views.apply(seq, env)
            except Exception:  # one odd event must not stop the views
                log.exception("analysis could not apply event %s (%s)", seq, env.type)
                self.views.last_seq = max(self.views.last_seq, seq)
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until the views include sequence ``seq``; False when ``timeout`` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.views.last_seq < seq:
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)
        return True

    async def catch_up(self, timeout: float) -> bool:
        """Wait until the views include every event published before this call."""
        return await self.wait_for(await self.bus.last_sequence(), timeout)
