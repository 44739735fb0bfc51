"""Keeps the views up to date: replays ``FD_EVENTS`` from sequence 1, then follows it.

Handlers that must see every event published before their question (``catch_up``) wait for a
sequence. Waiters are kept in a heap by sequence, so an applied event wakes only the waiters it
satisfies (not every waiter on every event), and concurrent ``catch_up`` calls share one
"last sequence" request when they can do so without missing an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
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
        # (sequence, tie-breaker, future) of every waiter, smallest sequence first
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tie = itertools.count()
        # a "last sequence" request not sent yet, which later callers may still join
        self._next_last_seq: asyncio.Future[int] | None = None

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
            if self._waiters:
                self._wake()

    def _wake(self) -> None:
        """Resolve the waiters whose sequence the views have reached."""
        reached = self.views.last_seq
        waiters = self._waiters
        while waiters and waiters[0][0] <= reached:
            fut = heapq.heappop(waiters)[2]
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until the views include sequence ``seq``; False when ``timeout`` passed first."""
        if self.views.last_seq >= seq:
            return True
        if timeout <= 0:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (seq, next(self._tie), fut))
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            return self.views.last_seq >= seq
        finally:
            if not fut.done() or fut.cancelled():  # timed out / cancelled: drop its entry
                fut.cancel()
                self._waiters = [w for w in self._waiters if w[2] is not fut]
                heapq.heapify(self._waiters)
        return True

    async def catch_up(self, timeout: float) -> bool:
        """Wait until the views include every event published before this call."""
        return await self.wait_for(await self._last_sequence(), timeout)

    async def _last_sequence(self) -> int:
        """The stream's last sequence, asked after this call began.

        Callers that arrive before the shared request is sent join it (its answer is at least
        the last sequence at their call); later callers get the next request.
        """
        pending = self._next_last_seq
        if pending is None:
            pending = self._next_last_seq = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._ask_last_sequence, pending)
        return await asyncio.shield(pending)

    def _ask_last_sequence(self, fut: asyncio.Future[int]) -> None:
        self._next_last_seq = None  # from now on, new callers need a newer answer
        task = asyncio.ensure_future(self.bus.last_sequence())

        def done(t: asyncio.Task[int]) -> None:
            if fut.done():
                return
            if t.cancelled():
                fut.cancel()
            elif (exc := t.exception()) is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(t.result())

        task.add_done_callback(done)
