"""Where each ticket's notices go: the conversation it was opened in (KV
``fd_ticket_conversations``, entries kept 180 days after the ticket was opened)."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, ValidationError

from events import subjects
from events.bus import Bus
from events.envelope import Conversation
from events.kv import VersionedKV

log = logging.getLogger("frontdoor.ticket_updates")

#: Channels a notice can be delivered on (``api`` callers wait for one answer; no chat).
CHAT_CHANNELS = frozenset({"web", "rest", "slack"})


class TicketConversation(BaseModel):
    """What ``ticket.created`` taught us about a ticket."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    conversation: Conversation
    #: the proven actor id of whoever opened it (their own changes are not announced to them)
    requester: str
    #: False when the conversation is not the requester's to be told in (another channel, or
    #: an agent opened the ticket for someone): e-mail only
    chat: bool = True


class TicketConversations:
    """Ticket number -> ``TicketConversation``, shared by every gateway replica."""

    def __init__(self, kv: VersionedKV) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, bus: Bus) -> TicketConversations:
        """The mapping in its KV bucket (created on first use)."""
        return cls(await VersionedKV.open(bus, subjects.TICKET_CONVERSATIONS_BUCKET))

    @staticmethod
    def key(ticket: int) -> str:
        """The KV key of ticket ``#ticket``."""
        return f"ticket.{ticket}"

    async def remember(self, ticket: int, record: TicketConversation) -> None:
        """Store where ticket ``#ticket``'s notices go."""
        await self._kv.put(self.key(ticket), record.model_dump_json().encode())

    async def lookup(self, ticket: int) -> TicketConversation | None:
        """Where ticket ``#ticket``'s notices go; ``None`` when unknown (or expired)."""
        found = await self._kv.get(self.key(ticket))
        if found is None:
            return None
        try:
            return TicketConversation.model_validate_json(found.value)
        except ValidationError:
            log.warning("ticket #%s: stored conversation does not validate; ignored", ticket)
            return None
