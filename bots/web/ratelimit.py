"""Rate limits of the edge: the ``limits`` library over a bounded memory storage, or over
counters every gateway replica shares.

Every limit is a ``Rate`` (``amount`` per ``seconds``) counted per key; the keys are what a
caller cannot choose freely: its client address (``bots.web.clientaddr``) or the actor its
credential proved (``Principal.limit_key``). ``RateLimits.hit`` raises ``RateLimited`` with the
seconds to wait and the limit's name; ``bots.web.guard`` turns that into the one 429 answer (or
the WebSocket's ``rate_limited`` error frame).

Counting lives behind ``limits``' own async storage interface (``limits.aio.storage``). The
in-process one, ``BoundedMemoryStorage``, counts a moving window and keeps at most ``max_keys``
keys in a ``cachetools.TTLCache``: a flood of new keys costs O(1) each (the oldest or expired
key goes), never a scan, and memory stays bounded whatever the callers send. A storage with the
sliding window counter instead (``bots.web.shared_limits``: NATS KV, shared by every replica)
is counted with that strategy; with a ``fallback``, a shared storage that fails or does not
answer in time is not a refusal: this process counts on its own until it answers again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache
from limits import RateLimitItemPerSecond
from limits.aio.storage import MovingWindowSupport, SlidingWindowCounterSupport, Storage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError

from events.errors import BusError, FrontdoorError

log = logging.getLogger("frontdoor.web.limits")

#: Seconds a process counts on its own after the shared storage failed, before asking it again.
OUTAGE_PAUSE_SECONDS = 5.0


class RateLimited(FrontdoorError):
    """Too many requests for one limit; ``retry_after`` (whole seconds) says when to retry."""

    def __init__(self, message: str, retry_after: int, limit: str, short: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        #: which limit refused (``caller``, ``address``, ``sessions``, ``auth_failures``)
        self.limit = limit
        #: the reason in few words (a WebSocket close reason holds 123 bytes)
        self.short = short or message[:120]


@dataclass(frozen=True)
class Rate:
    """``amount`` events per ``seconds`` (a moving window), named for the 429's reason."""

    name: str
    amount: int
    seconds: float
    #: what is counted, for the message ("messages", "requests", ...)
    what: str = "requests"

    def item(self) -> RateLimitItemPerSecond:
        """The ``limits`` item of this rate (whole seconds, at least one)."""
        return RateLimitItemPerSecond(self.amount, max(1, math.ceil(self.seconds)))

    def describe(self) -> str:
        """E.g. ``at most 20 messages per 10 s``."""
        return f"at most {self.amount} {self.what} per {self.seconds:g} s"


class BoundedMemoryStorage(Storage, MovingWindowSupport):
    """An in-process moving-window storage of at most ``max_keys`` keys.

    Each key holds the timestamps of its hits in the window (at most the limit's amount), in a
    ``TTLCache`` whose entries expire ``max_window`` seconds after their last hit; when the cache
    is full the least recently used key is dropped (O(1)). Only the moving-window calls are
    used by the gateway; the counter calls exist for the interface.
    """

    STORAGE_SCHEME = ["frontdoor+bounded-memory"]

    def __init__(
        self,
        max_keys: int = 100_000,
        max_window: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        #: wall-clock seconds (what ``limits`` expects; replaceable in tests)
        self.clock = clock
        self._events: TTLCache[str, deque[float]] = TTLCache(maxsize=max_keys, ttl=max_window)
        self._counters: TTLCache[str, tuple[int, float]] = TTLCache(
            maxsize=max_keys, ttl=max_window
        )

    def __len__(self) -> int:
        return len(self._events) + len(self._counters)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = self.clock()
        events = self._events.get(key)
        if events is None:
            events = deque()
        while events and events[0] <= now - expiry:
            events.popleft()
        if len(events) + amount > limit:
            self._events[key] = events
            return False
        events.extend([now] * amount)
        self._events[key] = events  # (re)setting refreshes the key's expiry
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self.clock()
        events = self._events.get(key)
        if not events:
            return now, 0
        inside = [t for t in events if t > now - expiry]
        return (inside[0], len(inside)) if inside else (now, 0)

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        value, until = self._counters.get(key, (0, 0.0))
        now = self.clock()
        if until <= now:
            value, until = 0, now + expiry
        self._counters[key] = (value + amount, until)
        return value + amount

    async def get(self, key: str) -> int:
        value, until = self._counters.get(key, (0, 0.0))
        return value if until > self.clock() else 0

    async def get_expiry(self, key: str) -> float:
        return self._counters.get(key, (0, self.clock()))[1]

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        count = len(self)
        self._events.clear()
        self._counters.clear()
        return count

    async def clear(self, key: str) -> None:
        self._events.pop(key, None)
        self._counters.pop(key, None)


class RateLimits:
    """Hits against named rates, per key, in one storage (memory by default).

    ``fallback``: the limits to count in while ``storage`` fails (shared storages only).
    """

    def __init__(
        self,
        storage: Storage | None = None,
        *,
        max_keys: int = 100_000,
        fallback: RateLimits | None = None,
    ) -> None:
        self.storage = storage if storage is not None else BoundedMemoryStorage(max_keys)
        self._strategy: RateLimiter
        if isinstance(self.storage, MovingWindowSupport):
            self._strategy = MovingWindowRateLimiter(self.storage)
        else:
            self._strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.fallback = fallback
        self._unavailable: tuple[type[Exception], ...] = (
            (BusError, StorageError) if fallback is not None else ()
        )
        #: while set (``time.monotonic``), count in ``fallback`` without asking ``storage``
        self._down_until: float | None = None

    async def start(self) -> None:
        """Reach the storage now (a shared one is created on first use); one that cannot be
        reached is not an error: it is asked again on use."""
        try:
            if await self.storage.check():
                return
            raise StorageError(RuntimeError("the storage is not healthy"))
        except self._unavailable as exc:
            self._lost(exc)

    async def hit(self, rate: Rate, key: str) -> None:
        """Count one event of ``key`` against ``rate``; ``RateLimited`` when it is over."""
        await self._ask(rate, key, count=True)

    async def check(self, rate: Rate, key: str) -> None:
        """``RateLimited`` when ``key`` has no room left under ``rate`` (counts nothing)."""
        await self._ask(rate, key, count=False)

    async def _ask(self, rate: Rate, key: str, *, count: bool) -> None:
        if self.fallback is not None and self._paused():
            return await self.fallback._ask(rate, key, count=count)
        ask = self._strategy.hit if count else self._strategy.test
        try:
            if await ask(rate.item(), rate.name, key):
                self._recovered()
                return
            refusal = await self._refusal(rate, key)
        except self._unavailable as exc:
            self._lost(exc)
            assert self.fallback is not None
            return await self.fallback._ask(rate, key, count=count)
        raise refusal

    async def hit_and_check(self, counted: Rate, checked: Rate, key: str) -> None:
        """``hit(counted, key)``, then ``check(checked, key)``; a shared storage is asked both
        at once (one round trip instead of two)."""
        if self.fallback is None:
            await self.hit(counted, key)
            await self.check(checked, key)
            return
        results = await asyncio.gather(
            self.hit(counted, key), self.check(checked, key), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _refusal(self, rate: Rate, key: str) -> RateLimited:
        item = rate.item()
        if isinstance(self.storage, SlidingWindowCounterSupport):
            window = await self.storage.get_sliding_window(
                item.key_for(rate.name, key), item.get_expiry()
            )
            retry = sliding_retry_after(item.amount, item.get_expiry(), *window)
        else:
            stats = await self._strategy.get_window_stats(item, rate.name, key)
            clock: Callable[[], float] = getattr(self.storage, "clock", time.time)
            retry = max(1, math.ceil(stats.reset_time - clock()))
        return RateLimited(
            f"too many {rate.what}: {rate.describe()}; try again in {retry} s",
            retry,
            rate.name,
            short=f"too many {rate.what}; retry in {retry} s",
        )

    def _paused(self) -> bool:
        return self._down_until is not None and time.monotonic() < self._down_until

    def _lost(self, exc: Exception) -> None:
        if self._down_until is None:
            log.warning(
                "shared rate limits unavailable (%s); counting in this process until they answer",
                exc,
            )
        self._down_until = time.monotonic() + OUTAGE_PAUSE_SECONDS

    def _recovered(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            log.info("shared rate limits answer again")


def sliding_retry_after(
    limit: int,
    expiry: float,
    previous: int,
    _previous_ttl: float,
    current: int,
    current_ttl: float,
) -> int:
    """Whole seconds until a sliding window counter (``limits``' ``get_sliding_window`` tuple)
    has room for one more event: until the previous window's weight has fallen enough, or, when
    the current window is full, until it has become the previous one and faded enough."""
    left = current_ttl - expiry  # of the current window
    if current < limit:
        if previous <= 0:
            return 1
        wait = max(0.0, left - expiry * (limit - current) / previous)
    else:
        wait = left + expiry * (1 - limit / current)
    return max(1, math.floor(wait) + 1)  # strictly after: at ``wait`` itself it is still full
