"""Ticket notices in the requester's conversation: one ``reply`` per notice on the bus."""

from __future__ import annotations

import logging
import uuid

from bots.shared_follower import SharedFollower
from events import subjects
from events.bus import Bus
from events.envelope import Actor, Envelope
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


class ChatNotices(SharedFollower):
    """Follows the ticket events and tells requesters in their conversation, in event order.

    The durable consumer ``gw_ticket_notices`` is shared by every gateway replica: each event
    is handled by one of them, one at a time, and after a restart they resume where they were.
    An event that fails 20 times (about 90 s) is given up on, with one log line.
    """

    consumer = subjects.TICKET_NOTICES_CONSUMER
    filter_subject = TICKET_EVENTS

    def __init__(self, bus: Bus, conversations: TicketConversations | None = None) -> None:
        super().__init__(bus)
        self.conversations = conversations
        self.published = 0

    async def start(self) -> None:
        """Open the mapping and start following."""
        if self.conversations is None:
            self.conversations = await TicketConversations.open(self._bus)
        await super().start()

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
