"""A versioned key-value bucket with optimistic concurrency (NATS KV behind ``Bus.key_value``).

``get`` returns the value with its revision; ``create``/``update`` succeed only when nobody
wrote the key in between, otherwise they raise ``RevisionConflict`` so the caller can reload
and retry. This keeps nats-py's error types inside ``events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from events.bus import Bus
from events.errors import BusError

T = TypeVar("T")
#: How long a KV operation is retried while its bucket has no leader (a NATS node was lost and
#: the others elect a new one, within seconds): like a publish, it waits rather than fails.
KV_RETRY_SECONDS = 20.0


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is what a KV operation meets while its stream has no leader."""
    return isinstance(
        exc,
        nats.errors.TimeoutError
        | nats.errors.NoRespondersError
        | nats.js.errors.ServiceUnavailableError
        | nats.js.errors.NoStreamResponseError
        | nats.errors.ConnectionClosedError
        | TimeoutError,
    )


async def retry_transient(
    op: Callable[[], Awaitable[T]], *, seconds: float = KV_RETRY_SECONDS
) -> T:
    """``await op()``, again with back-off while it fails with a ``transient`` error, for up to
    ``seconds``; then its last error. ``op`` must be safe to repeat (a write that may have
    landed before its answer was lost must tell so on the next try)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    delay = 0.05
    while True:
        try:
            return await op()
        except Exception as exc:
            if not transient(exc) or loop.time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


class RevisionConflict(BusError):
    """The key changed (or appeared) since the revision the writer read."""


@dataclass(frozen=True)
class VersionedValue:
    """A value read from the bucket and the revision it was stored at."""

    value: bytes
    revision: int


class VersionedKV:
    """Optimistic-concurrency access to one KV bucket. Build with ``await VersionedKV.open``."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, bus: Bus, bucket: str, *, ttl: float | None = None) -> VersionedKV:
        """The bucket ``bucket`` (created on first use, with its limits)."""
        return cls(await bus.key_value(bucket, ttl=ttl))

    async def get(self, key: str) -> VersionedValue | None:
        """The current value and revision of ``key``; ``None`` when absent or deleted."""
        try:
            entry = await retry_transient(lambda: self._kv.get(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return VersionedValue(value=bytes(entry.value), revision=int(entry.revision))

    async def create(self, key: str, value: bytes) -> int:
        """Store ``key`` only if it does not exist yet; return the new revision."""
        try:
            return int(await retry_transient(lambda: self._kv.create(key, value)))
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            # a retried create whose first try landed finds its own value: still a conflict
            # for the caller, who reloads and finds the state it wrote
            raise RevisionConflict(f"{key!r} was created concurrently") from exc

    async def update(self, key: str, value: bytes, revision: int) -> int:
        """Store ``key`` only if its latest revision is still ``revision``; return the new one."""
        try:
            return int(await retry_transient(lambda: self._kv.update(key, value, last=revision)))
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise RevisionConflict(f"{key!r} changed since revision {revision}") from exc

    async def put(self, key: str, value: bytes) -> int:
        """Store ``key`` whatever it held; return the new revision."""
        return int(await self._kv.put(key, value))

    async def delete(self, key: str) -> None:
        """Remove ``key`` (a later ``get`` returns ``None``)."""
        await retry_transient(lambda: self._kv.delete(key))

    async def purge(self, key: str) -> None:
        """Remove ``key`` and every earlier revision of it (erasure: nothing of it is kept)."""
        await retry_transient(lambda: self._kv.purge(key))
