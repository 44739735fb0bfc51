"""What the user hears about their hand-off while the workspace takes hand-offs.

"A person will answer here" when a hand-off starts; "back with the bot" or "closed" (and the
rating question) when it ends. These are derived from the bus by the durable consumer
``gw_handoff_notices`` (``Bus.follow``), shared by every gateway replica that runs the
workspace: each hand-off event is handled by one of them, in bus order, and a hand-off that
started while no such gateway ran is answered when the first one starts (the consumer keeps its
position on the server). A redelivered event, or the Slack mirror saying the same, makes
envelopes with the same ids (``bots.handoff.started_notices``), and the bus keeps one.

A hand-off event handled later than the bus's duplicate window is one nobody running the
workspace saw in time (the workspace was off; a hand-off cannot end while no gateway runs): if
that hand-off is over, someone else answered it (the Slack mirror, or "nobody can be reached"),
so it is not announced again; one still waiting is.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from bots.handoff import (
    HANDOFF_ENDED,
    HANDOFF_FILTER,
    HANDOFF_STARTED,
    ended_notices,
    started_notices,
)
from bots.shared_follower import SharedFollower
from bots.web.agent.board import HandoffBoard, conversation_ref
from events import subjects
from events.bus import Bus
from events.envelope import Envelope

log = logging.getLogger("frontdoor.agent.notices")

#: Seconds after which a hand-off event is late (the bus no longer drops a repeated notice).
LATE_AFTER_SECONDS = float(subjects.DUPLICATE_WINDOW_SECONDS)


class HandoffNotices(SharedFollower):
    """Follows the hand-off events and publishes the user's notices, once each (in bus order:
    "a person will answer" before "closed")."""

    consumer = subjects.HANDOFF_NOTICES_CONSUMER
    filter_subject = HANDOFF_FILTER

    def __init__(
        self, bus: Bus, board: HandoffBoard, *, late_after: float = LATE_AFTER_SECONDS
    ) -> None:
        super().__init__(bus)
        self._board = board
        self._late_after = late_after
        self.published = 0

    async def handle(self, _seq: int, event: Envelope) -> None:
        """Publish the notices of a ``handoff.started`` or ``handoff.ended``."""
        if event.type not in (HANDOFF_STARTED, HANDOFF_ENDED):
            return
        late = (datetime.now(UTC) - event.occurred_at).total_seconds() > self._late_after
        if late and await self._over(event):
            log.info(
                "not announcing %s %s: handled late, the hand-off is over", event.type, event.id
            )
            return
        if event.type == HANDOFF_STARTED:
            notices = started_notices(event)
        else:
            notices = ended_notices(event)
        for notice in notices:
            await self._bus.publish(notice)
            self.published += 1

    async def _over(self, event: Envelope) -> bool:
        """Whether the hand-off of ``event`` has ended (by the board, once it caught up)."""
        if event.type == HANDOFF_ENDED:
            return True
        # raises TimeoutError while the board replays: the event is retried
        await asyncio.wait_for(self._board.ready.wait(), 30.0)
        item = self._board.get(conversation_ref(event.conversation))
        return item is None or item.started_id != event.id or item.state == "ended"
