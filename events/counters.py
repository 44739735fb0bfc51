"""Rate counters shared by every process on the bus: a sliding-window counter per key in the KV
bucket ``fd_limits``, written with compare-and-set on the key's revision.

A key holds three numbers: the index of its current fixed window (``floor(now / seconds)``,
the same on every replica since windows are aligned to the epoch), the count of the window
before it and the count of the current one. The count "in the last ``seconds``" is estimated
as ``previous * (1 - elapsed) + current`` (``elapsed``: the part of the current window that
has passed), the *sliding window counter* approximation: it assumes the previous window's
events were spread evenly over it. ``acquire`` admits an event only when the estimate leaves
room for it, and stores the new count only if nobody wrote the key since it was read
(otherwise it reads again and decides again), so replicas never admit more together than one
would alone.

Each process remembers the last revision it wrote of a key (a bounded cache): a hit first
tries to write on that revision, so a key one replica keeps hitting costs one round trip, and a
refusal decided on the remembered state costs none (counts only grow within a window, so the
stored count is at least the remembered one). A key that other processes write too (a caller
spread over replicas by the load balancer) is read before each write instead: two round trips,
until a read finds that nobody else wrote it since. Hits of one key that wait in one process
are decided together in one write, so they never conflict with each other.

A KV operation that fails or takes longer than ``timeout`` raises ``CountersUnavailable``;
the caller decides whether to fail open (the gateway counts in its own memory meanwhile).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from events import subjects
from events.bus import Bus
from events.errors import BusError

T = TypeVar("T")

#: Characters a KV key keeps as they are; every other byte becomes ``=XX``.
_UNSAFE = re.compile(rb"[^A-Za-z0-9_/-]")
_MAX_KEY = 200
#: Writes lost to another replica before a hit gives up (each loss means someone else counted).
_MAX_ATTEMPTS = 20


class CountersUnavailable(BusError):
    """The shared counters did not answer in time (or refused): nothing was counted."""


def counter_key(name: str) -> str:
    """A valid KV key for ``name``, reversible for short names, hashed for long ones."""
    key = _UNSAFE.sub(lambda m: b"=%02X" % m.group(0)[0], name.encode()).decode()
    if len(key) > _MAX_KEY:
        key = "sha256=" + hashlib.sha256(name.encode()).hexdigest()
    return key or "="


@dataclass(frozen=True)
class WindowCount:
    """A key's counts at ``now``: in its current fixed window and in the one before."""

    seconds: float
    now: float
    previous: int
    current: int

    @property
    def window(self) -> int:
        """The index of the current window."""
        return math.floor(self.now / self.seconds)

    @property
    def elapsed(self) -> float:
        """How much of the current window has passed (0 to 1)."""
        return self.now / self.seconds - self.window

    @property
    def estimate(self) -> float:
        """The estimated count of the last ``seconds``."""
        return self.previous * (1.0 - self.elapsed) + self.current

    def has_room(self, limit: int, amount: int = 1) -> bool:
        """True when ``amount`` more events stay within ``limit``."""
        return math.floor(self.estimate) + amount <= limit


@dataclass(frozen=True)
class _State:
    """What a key stores: its window index and the counts of that window and the one before."""

    window: int
    previous: int
    current: int

    def encode(self) -> bytes:
        return b"%d:%d:%d" % (self.window, self.previous, self.current)

    @classmethod
    def decode(cls, raw: bytes) -> _State:
        try:
            window, previous, current = (int(part) for part in raw.split(b":"))
        except ValueError:
            return cls(0, 0, 0)  # unreadable: counted afresh
        return cls(window, previous, current)

    def shifted(self, window: int) -> _State:
        """This state as stored in ``window`` (counts of older windows shift or go)."""
        if window == self.window:
            return self
        if window == self.window + 1:
            return _State(window, self.current, 0)
        return _State(window, 0, 0)

    def at(self, now: float, seconds: float) -> WindowCount:
        """The counts seen from ``now``."""
        state = self.shifted(math.floor(now / seconds))
        return WindowCount(seconds, now, state.previous, state.current)


@dataclass(frozen=True)
class _Known:
    """A key's state at ``revision`` (0: the key did not exist); ``contended``: another
    process wrote it too lately, so the next hit reads it before writing."""

    revision: int
    state: _State
    contended: bool = False


_ABSENT = _Known(0, _State(0, 0, 0))


class SharedCounters:
    """Sliding-window counters in one KV bucket. Build with ``await SharedCounters.open(bus)``."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        timeout: float = 0.5,
        clock: Callable[[], float] = time.time,
        remember: int = 10_000,
    ) -> None:
        self._kv = kv
        #: seconds one KV operation may take before the counters count as unavailable
        self.timeout = timeout
        #: wall-clock seconds: replicas agree on window boundaries as far as their clocks agree
        self.clock = clock
        self._remember = remember
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._queues: dict[str, _Queue] = {}
        #: writes lost to another writer and retried (for benchmarks)
        self.conflicts = 0

    @classmethod
    async def open(
        cls,
        bus: Bus,
        *,
        bucket: str = subjects.LIMITS_BUCKET,
        timeout: float = 0.5,
        open_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> SharedCounters:
        """The counters of ``bucket`` (created on first use with its limits, within
        ``open_timeout`` seconds); ``timeout`` bounds every later KV operation."""
        try:
            kv = await asyncio.wait_for(bus.key_value(bucket), open_timeout)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
            raise CountersUnavailable(f"KV bucket {bucket}: {_reason(exc)}") from exc
        return cls(kv, timeout=timeout, clock=clock)

    async def count(self, name: str, seconds: float) -> WindowCount:
        """The counts of ``name`` now, as stored (one read)."""
        key = counter_key(name)
        known = await self._read(key)
        return known.state.at(self.clock(), seconds)

    async def acquire(
        self, name: str, limit: int, seconds: float, amount: int = 1
    ) -> tuple[bool, WindowCount]:
        """Count ``amount`` events of ``name`` if they fit under ``limit`` per ``seconds``.

        Returns whether they were counted, and the counts they were decided on. Every hit of
        one name uses the same ``limit`` and ``seconds`` (the name says which limit it is)."""
        if amount > limit:
            return False, WindowCount(seconds, self.clock(), 0, 0)
        key = counter_key(name)
        queue = self._queues.setdefault(key, _Queue())
        decided: asyncio.Future[tuple[bool, WindowCount]] = (
            asyncio.get_running_loop().create_future()
        )
        queue.waiting.append((amount, decided))
        if queue.drain is None:
            # its own task: a caller that goes away (a closed request) leaves the others decided
            queue.drain = asyncio.create_task(self._drain(key, queue, limit, seconds))
        return await decided

    async def _drain(self, key: str, queue: _Queue, limit: int, seconds: float) -> None:
        """Decide the waiting hits of ``key``, a batch at a time, until none wait."""
        batch: list[tuple[int, asyncio.Future[tuple[bool, WindowCount]]]] = []
        try:
            while queue.waiting:
                batch, queue.waiting = queue.waiting, []
                await self._decide(key, limit, seconds, batch)
        except BaseException as exc:  # a KV failure, or the loop is closing
            failure = (
                exc
                if isinstance(exc, CountersUnavailable)
                else CountersUnavailable(f"{key!r}: not decided ({_reason(exc)})")
            )
            for _, decided in (*batch, *queue.waiting):
                if not decided.done():
                    decided.set_exception(failure)
            queue.waiting = []
            if not isinstance(exc, Exception):
                raise
        finally:
            queue.drain = None
            if self._queues.get(key) is queue:
                del self._queues[key]

    async def _decide(
        self,
        key: str,
        limit: int,
        seconds: float,
        batch: list[tuple[int, asyncio.Future[tuple[bool, WindowCount]]]],
    ) -> None:
        """Admit the hits of ``batch`` in order while they fit, and store them in one write."""
        cached = self._known.get(key)
        known = cached if cached is not None and not cached.contended else None
        contended = False
        for attempt in range(_MAX_ATTEMPTS):
            fresh = known is None
            if known is None:
                known = await self._read(key)
                if attempt == 0 and cached is not None:
                    # still contended while someone else wrote since this process did
                    contended = known.revision != cached.revision
            now = self.clock()
            counts = known.state.at(now, seconds)
            verdicts: list[tuple[bool, WindowCount]] = []
            for amount, _ in batch:
                admitted = counts.has_room(limit, amount)
                if admitted:
                    counts = WindowCount(seconds, now, counts.previous, counts.current + amount)
                verdicts.append((admitted, counts))
            state = _State(counts.window, counts.previous, counts.current)
            if state == known.state.shifted(counts.window):  # all refused: nothing to write
                self._keep(key, _Known(known.revision, known.state, contended))
            else:
                revision = await self._write(key, state, known.revision)
                if revision is None:
                    self.conflicts += 1
                    contended, known = True, None
                    if not fresh:
                        continue  # the remembered revision was old: read, then try again
                    # two writers retrying in step would keep colliding
                    await asyncio.sleep(random.uniform(0, 0.0005 * (attempt + 1)))
                    continue
                self._keep(key, _Known(revision, state, contended))
            for (_, decided), verdict in zip(batch, verdicts, strict=True):
                if not decided.done():
                    decided.set_result(verdict)
            return
        raise CountersUnavailable(f"{key!r}: {_MAX_ATTEMPTS} writes in a row lost a race")

    async def clear(self, name: str) -> None:
        """Forget ``name``'s counts."""
        key = counter_key(name)
        self._known.pop(key, None)
        await self._call(self._kv.delete(key))

    # -- KV access ----------------------------------------------------------------------------

    async def _read(self, key: str) -> _Known:
        try:
            entry = await self._call(self._kv.get(key))
        except nats.js.errors.KeyNotFoundError:  # also deleted
            known = _ABSENT
        else:
            if entry.value is None or entry.revision is None:
                known = _ABSENT
            else:
                known = _Known(int(entry.revision), _State.decode(bytes(entry.value)))
        return known

    async def _write(self, key: str, state: _State, revision: int) -> int | None:
        """Store ``state`` if ``key`` is still at ``revision``; the new revision, or ``None``
        when someone wrote it in between."""
        try:
            if revision == 0:
                return int(await self._call(self._kv.create(key, state.encode())))
            return int(await self._call(self._kv.update(key, state.encode(), last=revision)))
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def _call(self, op: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await op
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyWrongLastSequenceError):
            raise
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
            raise CountersUnavailable(f"NATS KV: {_reason(exc)}") from exc

    def _keep(self, key: str, known: _Known) -> None:
        self._known[key] = known
        self._known.move_to_end(key)
        if len(self._known) > self._remember:
            self._known.popitem(last=False)


@dataclass
class _Queue:
    """Hits of one key waiting in this process, and the task deciding them."""

    waiting: list[tuple[int, asyncio.Future[tuple[bool, WindowCount]]]] = field(
        default_factory=list
    )
    drain: asyncio.Task[None] | None = None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
