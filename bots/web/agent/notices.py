"""What the user hears about their hand-off while the workspace takes hand-offs.

"A person will answer here" when a hand-off starts; "back with the bot" or "closed" (and the
rating question) when it ends. These are derived from the bus by the durable consumer
``gw_handoff_notices`` (``Bus.follow``), shared by every gateway replica that runs the
workspace: each hand-off event is handled by one of them, in bus order, and a hand-off that
started while no such gateway ran is answered when the first one starts (the consumer keeps its
position on the server). A redelivered event, or the Slack mirror saying the same, makes
envelopes with the same ids (``bots.handoff.started_notices``), and the bus keeps one.
"""

from __future__ import annotations

import logging

from bots.handoff import (
    HANDOFF_ENDED,
    HANDOFF_FILTER,
    HANDOFF_STARTED,
    ended_notices,
    started_notices,
)
from events import subjects
from events.bus import Bus, Worker
from events.envelope import Envelope
from events.follow import FollowPolicy

log = logging.getLogger("frontdoor.agent.notices")


class HandoffNotices:
    """Follows the hand-off events and publishes the user's notices, once each."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._worker: Worker | None = None
        self.published = 0

    async def start(self) -> None:
        """Create (or join) the durable consumer and start following."""
        self._worker = await self._bus.follow(
            subjects.HANDOFF_NOTICES_CONSUMER,
            HANDOFF_FILTER,
            self.handle,
            # ordered: "a person will answer" before "closed"; bounded so a poisoned event
            # cannot hold up every later hand-off
            FollowPolicy(ordered=True, attempts=20),
        )

    async def stop(self) -> None:
        """Stop following (an event being handled is finished, or comes again later)."""
        if self._worker is not None:
            await self._worker.stop(grace=5.0)
            self._worker = None

    async def handle(self, _seq: int, event: Envelope) -> None:
        """Publish the notices of a ``handoff.started`` or ``handoff.ended``."""
        if event.type == HANDOFF_STARTED:
            notices = started_notices(event)
        elif event.type == HANDOFF_ENDED:
            notices = ended_notices(event)
        else:
            return
        for notice in notices:
            await self._bus.publish(notice)
            self.published += 1
