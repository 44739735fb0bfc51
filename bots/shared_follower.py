"""A component that follows ``FD_EVENTS`` through a durable consumer shared by every gateway
replica (``Bus.follow``): each event is handled once, in bus order, by one of them."""

from __future__ import annotations

from events.bus import Bus, Worker
from events.envelope import Envelope
from events.follow import FollowPolicy

#: In bus order, one at a time; bounded, so an event that keeps failing (a full bucket, a
#: poisoned payload) cannot hold up every later one.
ORDERED_BOUNDED = FollowPolicy(ordered=True, attempts=20)


class SharedFollower:
    """Subclasses name the consumer and the filter and implement ``handle``."""

    #: the durable consumer's name (shared by the replicas)
    consumer: str
    #: which events of ``FD_EVENTS`` it follows
    filter_subject: str
    policy: FollowPolicy = ORDERED_BOUNDED

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._worker: Worker | None = None

    async def start(self) -> None:
        """Create (or join) the durable consumer and start following."""
        self._worker = await self._bus.follow(
            self.consumer, self.filter_subject, self.handle, self.policy
        )

    async def stop(self) -> None:
        """Stop following (an event being handled is finished, or comes again later)."""
        if self._worker is not None:
            await self._worker.stop(grace=5.0)
            self._worker = None

    async def handle(self, seq: int, event: Envelope) -> None:
        """Handle one event; raise to have it delivered again."""
        raise NotImplementedError
