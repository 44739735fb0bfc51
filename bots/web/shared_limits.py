"""Rate limits every gateway replica counts together: ``limits``' storage over NATS KV.

``SharedWindowStorage`` is a ``limits.aio.storage.Storage`` with the *sliding window counter*
(``SlidingWindowCounterSupport``) over ``events.counters.SharedCounters`` (KV bucket
``fd_limits``): a caller whose requests a load balancer spreads over several gateways is
refused after its limit, not after N times it. The estimate weighs the previous fixed window by
how much of it still overlaps the last ``seconds`` (see ``events.counters``), where the memory
storage counts a moving window exactly.

``rate_limits_for(settings, bus)`` picks the storage from ``FRONTDOOR_RATE_LIMIT_STORAGE``: with
``nats`` the shared counters, and the memory limits as fallback while NATS KV fails or is slower
than ``FRONTDOOR_RATE_LIMIT_TIMEOUT_SECONDS`` (a NATS hiccup never refuses users; each replica
counts on its own meanwhile).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from limits.aio.storage import SlidingWindowCounterSupport, Storage

from bots.web.ratelimit import RateLimits
from bots.web.settings import WebSettings
from events.bus import Bus
from events.counters import CountersUnavailable, SharedCounters


class SharedWindowStorage(Storage, SlidingWindowCounterSupport):
    """``limits``' async storage over shared counters: the sliding window counter only.

    ``open_counters`` makes the counters on first use (again after a failure), so a gateway
    starts while NATS KV is away and shares its limits once it answers.
    """

    STORAGE_SCHEME = ["frontdoor+nats-kv"]

    def __init__(self, open_counters: Callable[[], Awaitable[SharedCounters]]) -> None:
        super().__init__()
        self._open_counters = open_counters
        self._counters: SharedCounters | None = None
        self._opening = asyncio.Lock()
        #: wall-clock seconds, as the counters' windows
        self.clock: Callable[[], float] = time.time

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return CountersUnavailable

    async def counters(self) -> SharedCounters:
        """The shared counters (opened on first use)."""
        if self._counters is None:
            async with self._opening:
                if self._counters is None:
                    self._counters = await self._open_counters()
                    self.clock = self._counters.clock
        return self._counters

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        counters = await self.counters()
        allowed, _ = await counters.acquire(key, limit, expiry, amount)
        return allowed

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        counts = await (await self.counters()).count(key, expiry)
        left = (1.0 - counts.elapsed) * expiry  # of the current window
        return counts.previous, left, counts.current, left + expiry

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        await (await self.counters()).clear(key)

    async def check(self) -> bool:
        await self.counters()
        return True

    async def clear(self, key: str) -> None:
        await (await self.counters()).clear(key)

    async def reset(self) -> int | None:
        return None  # the bucket is shared: never emptied by one replica

    # Fixed-window counters are not shared: the gateway counts only sliding windows here.
    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("SharedWindowStorage counts sliding windows only")

    async def get(self, key: str) -> int:
        raise NotImplementedError("SharedWindowStorage counts sliding windows only")

    async def get_expiry(self, key: str) -> float:
        raise NotImplementedError("SharedWindowStorage counts sliding windows only")


def rate_limits_for(settings: WebSettings, bus: Bus) -> RateLimits:
    """The gateway's limits as ``settings`` say: in memory, or shared over ``bus`` with the
    memory limits as fallback."""
    memory = RateLimits(max_keys=settings.rate_limit_max_keys)
    if settings.rate_limit_storage == "memory":
        return memory
    timeout = settings.rate_limit_timeout_seconds

    async def open_counters() -> SharedCounters:
        return await SharedCounters.open(bus, timeout=timeout)

    return RateLimits(SharedWindowStorage(open_counters), fallback=memory)
