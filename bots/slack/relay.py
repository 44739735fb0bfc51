"""A resumable, ordered reader of some bus events that acts on each one once (Slack relays).

The hand-off mirror and the announcement relay read their events in stream order from a
position stored in ``CURSORS_BUCKET`` (so events published while the front door was down are
still delivered after a restart) and claim each event id in the Slack seen-set before acting (so
two front-door replicas never post the same thing twice). Without a stored position the relay
starts at the beginning of the stream but skips events older than ``max_age``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from nats.js.kv import KeyValue

from bots.seen import SeenSet
from events import subjects
from events.bus import Bus
from events.envelope import Envelope

log = logging.getLogger("frontdoor.slack.relay")

EventHandler = Callable[[int, Envelope], Awaitable[None]]


class CursorRelay:
    """Follow ``filter_subject`` from a stored position, handing each new event to ``handler``."""

    def __init__(
        self,
        bus: Bus,
        seen: SeenSet,
        *,
        name: str,
        filter_subject: str,
        handler: EventHandler,
        max_age: timedelta = timedelta(hours=1),
    ) -> None:
        self._bus = bus
        self._seen = seen
        self.name = name
        self._filter = filter_subject
        self._handler = handler
        self._max_age = max_age
        self._task: asyncio.Task[None] | None = None
        self._kv: KeyValue | None = None
        self.position = 0
        self.handled = 0

    async def start(self) -> None:
        """Load the stored position and start following."""
        self._kv = await self._bus.key_value(subjects.CURSORS_BUCKET)
        try:
            entry = await self._kv.get(self.name)
            self.position = int((entry.value or b"0").decode())
        except Exception:  # no stored position yet (or unreadable): from the start, by age
            self.position = 0
        self._task = asyncio.create_task(self._follow(), name=f"slack-relay-{self.name}")

    async def stop(self) -> None:
        """Stop following (the position of the last handled event is already stored)."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def running(self) -> bool:
        """True while the relay follows the bus."""
        return self._task is not None and not self._task.done()

    async def _follow(self) -> None:
        while True:
            try:
                async for seq, env in self._bus.tail(self._filter, self.position + 1):
                    await self._one(seq, env)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay %s failed; resuming after %s", self.name, self.position)
                await asyncio.sleep(1.0)

    async def _one(self, seq: int, env: Envelope) -> None:
        too_old = env.occurred_at < datetime.now(UTC) - self._max_age
        if not too_old and await self._seen.claim("relay", self.name, str(env.id)):
            delay = 0.5
            for attempt in range(5):
                try:
                    await self._handler(seq, env)
                    self.handled += 1
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception(
                        "relay %s: event %s (seq %s) failed (attempt %s)",
                        self.name,
                        env.type,
                        seq,
                        attempt + 1,
                    )
                    await asyncio.sleep(delay)
                    delay *= 2
        self.position = seq
        assert self._kv is not None
        try:
            await self._kv.put(self.name, str(seq).encode())
        except Exception:
            log.warning("relay %s: could not store position %s", self.name, seq)
