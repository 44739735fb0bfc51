"""Ticket notices in the requester's conversation: one ``reply`` per notice on the bus."""

from __future__ import annotations

import logging
import uuid

from events import subjects
from events.bus import Bus, Worker
from events.envelope import Actor, Envelope
from events.follow import FollowPolicy
from events.payloads import Reply

from .conversations import TicketConversation, TicketConversations
from .texts import TICKET_CREATED, Notice, learn, notice_for

log = logging.getLogger("frontdoor.ticket_updates")

#: Every ticket event of every conversation (the follower picks the ones it needs).
TICKET_EVENTS = subjects.events_filter(envelope_type="ticket.>")
#: Who speaks in a notice: the front door itself, on management's behalf.
NOTICE_ACTOR = Actor(id="system:gateway", name="Frontdoor", roles=("system",))


def notice_reply(event: Envelope, record: TicketConversation, notice: Notice) -> Envelope:
    """The ``reply`` carrying ``notice`` into the requester's conversation.

    Its id derives from the ticket event's, so a redelivered event (or a second replica) makes
    the same envelope and the bus keeps one.
    """
    return Envelope.new(
        "reply",
        Reply(
            text=notice.text,
            service="management",
            action="ticket_notice",
            data={"ticket": notice.ticket, "notice": notice.kind},
        ),
        conversation=record.conversation,
        actor=NOTICE_ACTOR,
        causation_id=event.id,
        id=uuid.uuid5(event.id, "ticket-notice"),
    )


class ChatNotices:
    """Follows the ticket events and tells requesters in their conversation, in event order.

    The durable consumer ``gw_ticket_notices`` is shared by every gateway replica: each event
    is handled by one of them, one at a time, and after a restart they resume where they were.
    An event that fails 20 times (about 90 s) is given up on, with one log line.
    """

    def __init__(self, bus: Bus, conversations: TicketConversations | None = None) -> None:
        self._bus = bus
        self.conversations = conversations
        self._worker: Worker | None = None
        self.published = 0

    async def start(self) -> None:
        """Open the mapping and start following."""
        if self.conversations is None:
            self.conversations = await TicketConversations.open(self._bus)
        self._worker = await self._bus.follow(
            subjects.TICKET_NOTICES_CONSUMER,
            TICKET_EVENTS,
            self.handle,
            # bounded: an event that keeps failing (a full bucket) must not hold up the rest
            FollowPolicy(ordered=True, attempts=20),
        )

    async def stop(self) -> None:
        """Stop following (an event being handled is finished, or comes again later)."""
        if self._worker is not None:
            await self._worker.stop(grace=5.0)
            self._worker = None

    async def handle(self, _seq: int, event: Envelope) -> None:
        """Learn from ``ticket.created``; publish the notice a comment or status change gives."""
        assert self.conversations is not None
        if event.type == TICKET_CREATED:
            learnt = learn(event)
            if learnt is not None:
                await self.conversations.remember(*learnt)
            return
        number = event.payload.get("ticket")
        if not isinstance(number, int):
            return
        record = await self.conversations.lookup(number)
        if record is None or not record.chat:
            return
        notice = notice_for(event, record)
        if notice is not None:
            await self._bus.publish(notice_reply(event, record, notice))
            self.published += 1
