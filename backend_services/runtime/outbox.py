"""The transactional outbox of services that keep a database: nothing a change emits is lost.

A handler's change and the events it emits are written in **one transaction** (the events as
whole envelopes, with ids derived from the intent's id and their order); right after the commit
they are published. If that publish fails (NATS down, the process dies between commit and
publish), the ``OutboxRelay`` of any instance finds them unpublished and publishes them later;
the bus drops a second copy of an id, so a relay that publishes something already published
changes nothing.

The relay marks published entries lazily: the request ids published right after their commit
are collected and marked in one statement per round, so a change costs no extra write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from events.bus import Bus
from events.envelope import Envelope

log = logging.getLogger("frontdoor.outbox")

#: ``(older_than, limit) -> [(request id, envelopes)]``: entries not marked published.
FetchUnpublished = Callable[[datetime, int], Awaitable[list[tuple[str, list[Envelope]]]]]
#: ``(request ids, now)``: mark them published.
MarkPublished = Callable[[list[str], datetime], Awaitable[None]]


def envelopes_json(envelopes: Iterable[Envelope]) -> list[dict[str, Any]]:
    """Envelopes as JSON-able dicts for an outbox column."""
    return [env.model_dump(mode="json", exclude={"claim"}) for env in envelopes]


def envelopes_from_json(rows: Sequence[Any] | None) -> list[Envelope]:
    """Envelopes back from an outbox column (unreadable entries are skipped and logged)."""
    out: list[Envelope] = []
    for row in rows or []:
        try:
            out.append(Envelope.model_validate(row))
        except ValueError:
            log.error("unreadable outbox envelope skipped")
    return out


class OutboxRelay:
    """Publishes outbox entries nobody published, and marks published ones (one per service
    instance; any number may run)."""

    def __init__(
        self,
        bus: Bus,
        fetch_unpublished: FetchUnpublished,
        mark_published: MarkPublished,
        *,
        clock: Callable[[], datetime],
        interval: float = 2.0,
        grace: float = 5.0,
        batch: int = 100,
    ) -> None:
        self._bus = bus
        self._fetch = fetch_unpublished
        self._mark = mark_published
        self._clock = clock
        self.interval = interval
        #: an entry younger than this may still be being published by its own transaction
        self.grace = grace
        self._batch = batch
        self._published: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def published(self, request_id: str) -> None:
        """The entry of ``request_id`` was published right after its commit: mark it later."""
        self._published.add(request_id)

    async def publish(self, request_id: str, envelopes: Sequence[Envelope]) -> list[int]:
        """Publish an entry's envelopes in order, then remember to mark it; their sequences."""
        seqs = [await self._bus.publish(env) for env in envelopes]
        self.published(request_id)
        return seqs

    async def start(self) -> None:
        """Relay once now (what an earlier run left), then every ``interval`` seconds."""
        await self.run_once()
        self._task = asyncio.create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop, marking what was published."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._flush_marks()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or the bus is down: try next round
                log.warning("outbox relay round failed: %r", exc)

    async def run_once(self) -> int:
        """Mark what was published; publish what is unpublished and old enough. Returns how
        many entries it published."""
        await self._flush_marks()
        older_than = self._clock() - timedelta(seconds=self.grace)
        relayed = 0
        for request_id, envelopes in await self._fetch(older_than, self._batch):
            if request_id in self._published:
                continue
            log.warning(
                "outbox: publishing %d event(s) of request %s that were not published after "
                "their commit",
                len(envelopes),
                request_id,
            )
            await self.publish(request_id, envelopes)
            relayed += 1
        await self._flush_marks()
        return relayed

    async def _flush_marks(self) -> None:
        if not self._published:
            return
        ids = list(self._published)
        await self._mark(ids, self._clock())
        self._published.difference_update(ids)
