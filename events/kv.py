"""A versioned key-value bucket with optimistic concurrency (NATS KV behind ``Bus.key_value``).

``get`` returns the value with its revision; ``create``/``update`` succeed only when nobody
wrote the key in between, otherwise they raise ``RevisionConflict`` so the caller can reload
and retry. This keeps nats-py's error types inside ``events``.
"""

from __future__ import annotations

from dataclasses import dataclass

import nats.js.errors
from nats.js.kv import KeyValue

from events.bus import Bus
from events.errors import BusError


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
            entry = await self._kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return VersionedValue(value=bytes(entry.value), revision=int(entry.revision))

    async def create(self, key: str, value: bytes) -> int:
        """Store ``key`` only if it does not exist yet; return the new revision."""
        try:
            return int(await self._kv.create(key, value))
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise RevisionConflict(f"{key!r} was created concurrently") from exc

    async def update(self, key: str, value: bytes, revision: int) -> int:
        """Store ``key`` only if its latest revision is still ``revision``; return the new one."""
        try:
            return int(await self._kv.update(key, value, last=revision))
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise RevisionConflict(f"{key!r} changed since revision {revision}") from exc

    async def put(self, key: str, value: bytes) -> int:
        """Store ``key`` whatever it held; return the new revision."""
        return int(await self._kv.put(key, value))

    async def delete(self, key: str) -> None:
        """Remove ``key`` (a later ``get`` returns ``None``)."""
        await self._kv.delete(key)
